"""Finding the images, masks and splits of a dataset in any of the layouts it ships in.

Finding a dataset reads no pixels: only file names, folders and split files. A listed image
or mask that is absent still becomes a :class:`Sample` pointing where the file should be, so
that :func:`lrrnet.data.validation.validate_samples`, which opens every file, can report every
problem at once instead of the first one. The layouts (docs/datasets.md, "Layouts"):

- ``split_folders``: ``ROOT/{trainval,test}/{images,masks}/NAME.png`` (IRSTD-1k, NUDT-SIRST,
  SIRST-Aug as distributed for LRRNet, and the synthetic dataset).
- ``basicirstd``: ``ROOT/images``, ``ROOT/masks``, ``ROOT/img_idx/{train,test}_<NAME>.txt``.
- ``dnanet``: ``ROOT/images``, ``ROOT/masks``, ``ROOT/50_50/{train,test}.txt``.
- ``sirst_v1``: ``ROOT/images/Misc_N.png``, ``ROOT/masks/Misc_N_pixels0.png``,
  ``ROOT/idx_427/{train,val,test,trainval}.txt``.
- ``sirst_devkit``: ``ROOT/PNGImages``, ``ROOT/SIRST/BinaryMask/*_pixels0.png``,
  ``ROOT/Splits/{trainval,test}_v1.txt`` (``train_v1``/``val_v1`` used when present).
- ``sirst_v2``: the open-sirst-v2 devkit, ``ROOT/mixed/NAME.png`` (target frames and
  target-free background frames), ``ROOT/annotations/masks/NAME_pixels0.png``,
  ``ROOT/splits/{train,val,test,trainval}_<NAME>.txt`` with NAME ``full`` (512 / 256 / 256 /
  768, the default) or ``v1`` (``data.dataset_name``).
- ``irstd1k``: IRSTD-1k as ISNet released it, ``ROOT/IRSTD1k_Img/XDU*.png``,
  ``ROOT/IRSTD1k_Label/XDU*.png``, ``ROOT/{trainval,test}.txt`` (800 / 201), and in some
  copies ``ROOT/{train,val}.txt`` (600 / 200).
- ``folder``: images directly in ``ROOT`` or ``ROOT/images``, masks optional in
  ``ROOT/masks`` (inference); the only split is ``test``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lrrnet.data.io import (
    IMAGE_SUFFIXES,
    image_files,
    is_plain_name,
    list_images,
)
from lrrnet.domains import Domain
from lrrnet.errors import ConfigError, DataError, summarize

logger = logging.getLogger(__name__)

LAYOUTS = (
    "split_folders",
    "basicirstd",
    "dnanet",
    "sirst_v1",
    "sirst_devkit",
    "sirst_v2",
    "irstd1k",
    "folder",
)
# Every split a listed layout may name; the split files are <split><suffix>.
LISTED_SPLITS = ("train", "val", "test", "trainval")
# SIRST-V2 split lists: splits/<split>_<NAME>.txt; "full" is the devkit's main protocol.
SIRST_V2_DEFAULT_LISTS = "full"
VAL_SPLITS = ("holdout", "val", "test", "none")
# The holdout's share of the training split: none of it is no holdout (data.val_split="none"
# trains without validation) and all of it leaves nothing to train on.
VAL_FRACTION = Domain("data.val_fraction", 0.0, 1.0, low_open=True, high_open=True)
# NumPy's generators take non-negative seeds only.
SPLIT_SEED = Domain("data.split_seed", low=0, integer=True)
DOMAINS = (VAL_FRACTION, SPLIT_SEED)

# SIRST v1 names its masks after the image with this suffix; other datasets use the same name.
MASK_SUFFIX = "_pixels0"


@dataclass(frozen=True)
class Sample:
    """One frame of a dataset.

    Attributes:
        name: image name without extension; outputs are written as ``<name>.png``.
        image: path of the image file (it may not exist; see
            :func:`lrrnet.data.validation.validate_samples`).
        mask: path of the ground-truth mask, or None when the dataset has none for it.
    """

    name: str
    image: Path
    mask: Path | None


@dataclass
class Splits:
    """The train / val / test samples a run uses, and where they came from.

    Attributes:
        train: samples to train on.
        val: samples for checkpoint selection.
        test: samples for the final report.
        layout: the dataset layout they were found in.
        val_source: where ``val`` came from, for the log and the run folder.
    """

    train: list[Sample]
    val: list[Sample]
    test: list[Sample]
    layout: str
    val_source: str


class _FolderIndex:
    """Image files of one folder, listed once, looked up by file name or by stem.

    Args:
        folder: the folder (a DataError when it is missing).
        files: its files when already listed, else every image file in it.
    """

    def __init__(self, folder: Path, files: list[Path] | None = None) -> None:
        self.folder = folder
        self.by_filename: dict[str, Path] = {}
        self.by_stem: dict[str, Path] = {}
        files = image_files(folder) if files is None else list(files)
        # Sorting by suffix preference makes the choice stable when a stem has two files.
        files.sort(key=lambda p: (p.stem, IMAGE_SUFFIXES.index(p.suffix.lower()), p.name))
        for path in files:
            self.by_filename[path.name] = path
            kept = self.by_stem.setdefault(path.stem, path)
            if kept is not path:
                logger.warning("%s: ignored, %s has the same name and is used", path, kept.name)

    def find(self, name: str) -> Path | None:
        """The file called ``name`` (with its extension) or ``name.<image suffix>``."""
        return self.by_filename.get(name) or self.by_stem.get(name)


def _strip_extension(name: str) -> str:
    path = Path(name)
    return path.stem if path.suffix.lower() in IMAGE_SUFFIXES else name


def _read_split_file(path: Path) -> list[str]:
    """Names listed one per line; blank lines, whitespace, CRLF and duplicates are dropped.

    Two entries are duplicates when they name one frame once the image extension is
    dropped (``000003.png``, ``000003``, `` 000003.PNG``); the first spelling is kept and
    one warning names the others.
    """
    if not path.is_file():
        raise DataError(f"{path}: split file not found")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: cannot read split file ({error})") from None
    names = [line.strip() for line in text.splitlines()]
    names = [name for name in names if name]
    unsafe = [
        f"line {n}: {line.strip()!r}"
        for n, line in enumerate(text.splitlines(), 1)
        if line.strip() and not is_plain_name(line.strip())
    ]
    if unsafe:
        raise DataError(
            f"{path}: {len(unsafe)} name(s) are not plain file names (path separators and '..' "
            f"are refused): {summarize(unsafe, ', ')}"
        )
    # One frame, one entry: "000003.png" and "000003" name the same frame, which would
    # otherwise become two samples, one of which the holdout could take while the other trains.
    first_spelling: dict[str, str] = {}
    duplicates = []
    for name in names:
        frame = _strip_extension(name)
        if frame not in first_spelling:
            first_spelling[frame] = name
        else:
            earlier = first_spelling[frame]
            duplicates.append(name if name == earlier else f"{name} (= {earlier})")
    if duplicates:
        logger.warning(
            "%s: %d duplicate entries ignored (a frame listed again): %s",
            path,
            len(duplicates),
            summarize(duplicates, ", "),
        )
    unique = list(first_spelling.values())
    if not unique:
        raise DataError(f"{path}: split file lists no images")
    return unique


def mask_index(folder: str | Path, required: bool = True) -> dict[str, Path]:
    """The masks in ``folder`` by the name of the image each belongs to.

    The mask of image ``<name>`` is ``<name>.<suffix>`` or, as SIRST v1 names them,
    ``<name>_pixels0.<suffix>``. Where an image has several, the exact name wins over
    ``_pixels0``, then the order of :data:`IMAGE_SUFFIXES`; a file left out for the same
    name is named in a warning, as a second image of one name is.

    Args:
        folder: the mask folder.
        required: a missing folder is a DataError; otherwise it holds no masks.
    """
    folder = Path(folder)
    if not folder.is_dir() and not required:
        return {}
    candidates = sorted(
        image_files(folder),
        key=lambda p: (
            p.stem.endswith(MASK_SUFFIX),
            IMAGE_SUFFIXES.index(p.suffix.lower()),
            p.name,
        ),
    )
    index: dict[str, Path] = {}
    for path in candidates:
        kept = index.setdefault(path.stem.removesuffix(MASK_SUFFIX), path)
        if kept is not path:
            logger.warning("%s: ignored, %s has the same name and is used", path, kept.name)
    return index


def _samples_from_names(
    names: Sequence[str],
    images: _FolderIndex,
    masks: dict[str, Path],
    masks_dir: Path,
    mask_suffix: str = "",
) -> list[Sample]:
    """Samples for listed names; absent files become the paths where they were expected."""
    samples = []
    for listed in names:
        name = _strip_extension(listed)
        image = images.find(listed) or images.find(name) or images.folder / f"{name}.png"
        mask = masks.get(name) or masks_dir / f"{name}{mask_suffix}.png"
        samples.append(Sample(name=name, image=image, mask=mask))
    return samples


def _samples_from_folder(
    images: _FolderIndex, masks_dir: Path, mask_required: bool
) -> list[Sample]:
    masks = mask_index(masks_dir, required=mask_required)
    samples = []
    for stem, image in sorted(images.by_stem.items()):
        mask = masks.get(stem)
        if mask is None and mask_required:
            mask = masks_dir / f"{stem}.png"
        samples.append(Sample(name=stem, image=image, mask=mask))
    return samples


def _train_folder(root: Path) -> Path:
    # LRRNet's archives call the training split "trainval"; a few re-packs call it "train".
    return root / "trainval" if (root / "trainval").is_dir() else root / "train"


def _basicirstd_names(root: Path) -> list[str]:
    """Dataset names with both ``img_idx/train_<NAME>.txt`` and ``img_idx/test_<NAME>.txt``."""
    folder = root / "img_idx"
    if not folder.is_dir():
        return []
    train = {p.name[len("train_") : -len(".txt")] for p in folder.glob("train_*.txt")}
    test = {p.name[len("test_") : -len(".txt")] for p in folder.glob("test_*.txt")}
    return sorted(train & test)


def detect_layout(root: str | Path) -> str:
    """Name the layout of the dataset at ``root``.

    Returns:
        One of :data:`LAYOUTS`.

    Raises:
        DataError: ``root`` is missing or matches no layout (the message says what was
            looked for).
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: dataset folder not found")
    if (_train_folder(root) / "images").is_dir() and (root / "test" / "images").is_dir():
        return "split_folders"
    if (root / "idx_427").is_dir() and (root / "images").is_dir():
        return "sirst_v1"
    if (root / "PNGImages").is_dir() and (root / "Splits").is_dir():
        return "sirst_devkit"
    if (root / "mixed").is_dir() and (root / "splits").is_dir():
        return "sirst_v2"
    if (root / "IRSTD1k_Img").is_dir() and (root / "IRSTD1k_Label").is_dir():
        return "irstd1k"
    if (root / "images").is_dir() and _basicirstd_names(root):
        return "basicirstd"
    if (root / "images").is_dir() and (root / "50_50").is_dir():
        return "dnanet"
    if list_images(root):
        return "folder"
    raise DataError(
        f"{root}: no known dataset layout (looked for trainval/ + test/ with images/ and "
        "masks/; images/ with img_idx/train_<NAME>.txt, 50_50/ or idx_427/; PNGImages/ with "
        "Splits/; mixed/ with splits/; IRSTD1k_Img/ with IRSTD1k_Label/; or image files in "
        "the folder or its images/)"
    )


# Layouts whose splits are name lists: (list folder, list suffix, images folder, masks
# folder, mask name suffix), all relative to the root; the list suffix of sirst_v2 depends
# on data.dataset_name.
LISTED_LAYOUTS = {
    "dnanet": ("50_50", ".txt", "images", "masks", ""),
    "sirst_v1": ("idx_427", ".txt", "images", "masks", "_pixels0"),
    "sirst_devkit": ("Splits", "_v1.txt", "PNGImages", "SIRST/BinaryMask", "_pixels0"),
    "sirst_v2": ("splits", None, "mixed", "annotations/masks", "_pixels0"),
    "irstd1k": (".", ".txt", "IRSTD1k_Img", "IRSTD1k_Label", ""),
}


def _find_basicirstd(root: Path, dataset_name: str | None) -> dict[str, list[Sample]]:
    choices = _basicirstd_names(root)
    if dataset_name is None:
        if len(choices) != 1:
            raise DataError(
                f"{root / 'img_idx'}: set data.dataset_name to one of {choices} "
                "(several train_<NAME>.txt / test_<NAME>.txt pairs)"
                if choices
                else f"{root / 'img_idx'}: no train_<NAME>.txt / test_<NAME>.txt pair"
            )
        dataset_name = choices[0]
    elif dataset_name not in choices:
        raise DataError(
            f"{root / 'img_idx'}: no train_{dataset_name}.txt / test_{dataset_name}.txt "
            f"(data.dataset_name); found {choices}"
        )
    images, masks = _FolderIndex(root / "images"), mask_index(root / "masks")
    return {
        split: _samples_from_names(
            _read_split_file(root / "img_idx" / f"{split}_{dataset_name}.txt"),
            images,
            masks,
            root / "masks",
        )
        for split in ("train", "test")
    }


def _find_listed(
    list_dir: Path,
    list_suffix: str,
    images: _FolderIndex,
    masks_dir: Path,
    mask_suffix: str,
) -> dict[str, list[Sample]]:
    """Splits from the split files ``list_dir/<split><list_suffix>`` that are present."""
    list_names = {split: f"{split}{list_suffix}" for split in LISTED_SPLITS}
    masks = mask_index(masks_dir)
    splits = {
        split: _samples_from_names(
            _read_split_file(list_dir / filename), images, masks, masks_dir, mask_suffix
        )
        for split, filename in list_names.items()
        if (list_dir / filename).is_file()
    }
    if "test" not in splits:
        raise DataError(f"{list_dir / list_names['test']}: split file not found")
    if "train" not in splits and "trainval" not in splits:
        raise DataError(f"{list_dir / list_names['train']}: split file not found")
    if "val" in splits:
        # "train" + "val" partition "trainval": holdout and best-on-test runs train on the
        # whole of it, a run selecting on the dataset's val list trains on "train" only.
        if "trainval" not in splits:
            splits["trainval"] = splits["train"] + splits["val"]
        if "train" not in splits:
            val_names = {s.name for s in splits["val"]}
            splits["train"] = [s for s in splits["trainval"] if s.name not in val_names]
    elif "trainval" in splits:
        splits["train"] = splits.pop("trainval")
    return splits


def find_splits(
    root: str | Path, layout: str = "auto", dataset_name: str | None = None
) -> dict[str, list[Sample]]:
    """The splits a dataset defines, as lists of samples in listing order.

    Args:
        root: dataset folder.
        layout: one of :data:`LAYOUTS`, or ``"auto"`` to detect it.
        dataset_name: BasicIRSTD split-file suffix (``img_idx/train_<NAME>.txt``; None uses
            the only pair present) or SIRST-V2 list name (``splits/train_<NAME>.txt``;
            None is ``full``).

    Returns:
        ``"train"`` and ``"test"`` always (``"test"`` only, for the ``folder`` layout);
        ``"val"`` where the dataset lists one (SIRST v1 ``idx_427``, SIRST-V2, IRSTD-1k copies
        with ``val.txt``), and then also ``"trainval"``, the union of ``"train"`` and
        ``"val"``. For split folders ``"train"`` is ``trainval/``.

    Raises:
        DataError: the root, a split file or a split folder is missing, or a split is empty.
        ConfigError: ``layout`` is not a known layout.
    """
    root = Path(root)
    if layout == "auto":
        layout = detect_layout(root)
    elif layout not in LAYOUTS:
        raise ConfigError(f"data.layout: unknown layout {layout!r}; expected auto or {LAYOUTS}")
    elif not root.is_dir():
        raise DataError(f"{root}: dataset folder not found")

    if layout == "split_folders":
        splits = {}
        for split, folder in (("train", _train_folder(root)), ("test", root / "test")):
            splits[split] = _samples_from_folder(
                _FolderIndex(folder / "images"), folder / "masks", mask_required=True
            )
            if not splits[split]:
                raise DataError(f"{folder / 'images'}: no images found")
    elif layout == "basicirstd":
        splits = _find_basicirstd(root, dataset_name)
    elif layout in LISTED_LAYOUTS:
        list_dir, list_suffix, images_dir, masks_dir, mask_suffix = LISTED_LAYOUTS[layout]
        if layout == "sirst_v2":
            list_suffix = f"_{dataset_name or SIRST_V2_DEFAULT_LISTS}.txt"
        splits = _find_listed(
            root / list_dir,
            list_suffix,
            _FolderIndex(root / images_dir),
            root / masks_dir,
            mask_suffix,
        )
    else:  # folder
        frames = list_images(root)
        if not frames:
            raise DataError(f"{root}: no images found ({', '.join(IMAGE_SUFFIXES)})")
        images = _FolderIndex(frames[0].parent, frames)
        splits = {"test": _samples_from_folder(images, root / "masks", mask_required=False)}
    return splits


def folder_samples(folder: str | Path) -> list[Sample]:
    """The frames of a plain folder (``DIR`` or ``DIR/images``, see
    :func:`lrrnet.data.io.list_images`) as samples, with masks from ``DIR/masks`` where present.
    """
    return find_splits(folder, layout="folder")["test"]


def _holdout(train: list[Sample], fraction: float, seed: int) -> tuple[list[Sample], list[Sample]]:
    """Split ``train`` into (train, val) with a seeded, order-preserving random choice."""
    if len(train) < 2:
        raise DataError(
            f"cannot hold out a validation split from {len(train)} training image(s); "
            "set data.val_split"
        )
    num_val = min(max(1, math.floor(fraction * len(train) + 0.5)), len(train) - 1)
    chosen = set(np.random.default_rng(seed).permutation(len(train))[:num_val].tolist())
    kept = [s for i, s in enumerate(train) if i not in chosen]
    held = [s for i, s in enumerate(train) if i in chosen]
    return kept, held


def build_splits(
    root: str | Path,
    layout: str = "auto",
    dataset_name: str | None = None,
    val_split: str = "holdout",
    val_fraction: float = 0.1,
    seed: int = 1,
) -> Splits:
    """Train, validation and test samples for a run.

    Args:
        root: dataset folder.
        layout: one of :data:`LAYOUTS` or ``"auto"``.
        dataset_name: BasicIRSTD split-file suffix; see :func:`find_splits`.
        val_split: ``"holdout"`` (a seeded ``val_fraction`` of the training split, removed
            from it), ``"val"`` (the dataset's own val list; SIRST v1 then trains on its
            ``train`` list) or ``"test"`` (the original code's best-on-test selection,
            optimistic; logged as a warning) or ``"none"`` (no validation: train on the whole
            training split, as BasicIRSTD does; the trainer then reports the last checkpoint).
        val_fraction: share of the training split held out, in (0, 1).
        seed: seed of the holdout choice (``data.split_seed``, not the training seed, so that
            runs with different training seeds see the same split).

    Raises:
        ConfigError: unknown ``val_split``, ``val_fraction`` outside (0, 1) or a negative
            ``seed``.
        DataError: see :func:`find_splits`; also ``val_split="val"`` on a dataset without a
            val list. The ``folder`` layout gives empty train and val splits.
    """
    if val_split not in VAL_SPLITS:
        raise ConfigError(
            f"data.val_split: unknown value {val_split!r}; expected one of {VAL_SPLITS}"
        )
    VAL_FRACTION.check(val_fraction)
    SPLIT_SEED.check(seed)
    if layout == "auto":
        layout = detect_layout(root)
    found = find_splits(root, layout=layout, dataset_name=dataset_name)
    test = found["test"]
    if "train" not in found:
        # A plain folder is for inference and evaluation: a trainer's validation of the
        # empty train split reports it.
        return Splits(
            train=[], val=[], test=test, layout=layout, val_source="none (test-only layout)"
        )

    if val_split == "val":
        if "val" not in found:
            raise DataError(
                f"{root}: the dataset has no val list (data.val_split='val'); "
                "use 'holdout' or 'test'"
            )
        train, val, source = found["train"], found["val"], "dataset val list"
    elif val_split == "holdout":
        full_train = found.get("trainval", found["train"])
        train, val = _holdout(full_train, val_fraction, seed)
        source = (
            f"holdout {val_fraction:.0%} of train ({len(val)} of {len(full_train)} images, "
            f"seed {seed})"
        )
    elif val_split == "none":
        train, val = found.get("trainval", found["train"]), []
        source = "none: the whole training split is trained on, the last checkpoint reported"
    else:
        train, val = found.get("trainval", found["train"]), test
        source = "test split (best-on-test, optimistic)"
        logger.warning(
            "data.val_split='test': checkpoints are selected on the test split, so the "
            "reported test numbers are optimistic (the original code's protocol)"
        )

    leaked = {s.name for s in train} & {s.name for s in test}
    if leaked:
        logger.warning(
            "%s: %d image names are in both the train and the test split (e.g. %s)",
            root,
            len(leaked),
            sorted(leaked)[0],
        )
    logger.info(
        "%s (%s): %d train, %d val (%s), %d test",
        root,
        layout,
        len(train),
        len(val),
        source,
        len(test),
    )
    return Splits(train=train, val=val, test=test, layout=layout, val_source=source)
