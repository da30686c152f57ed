"""Reading images and masks, writing prediction maps.

Every reader returns NumPy arrays at the file's own size and raises :class:`DataError`
naming the file when it cannot: the callers collect or report these, never skip them.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import IO

import cv2
import numpy as np

from lrrnet.data.matfile import read_matrix
from lrrnet.errors import DataError
from lrrnet.files import atomic_path, check_writable

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".bmp", ".jpg", ".jpeg", ".tif", ".tiff")


def is_plain_name(name: str) -> bool:
    """True for a bare file name: no path separator, not empty, not ``.`` or ``..``.

    Names come from split lists downloaded with the datasets; one like ``../evil`` would
    read and write files outside the dataset and results folders.
    """
    return bool(name) and name not in (".", "..") and not any(c in name for c in "/\\\0")


def named_file(folder: str | Path, name: str, suffix: str) -> Path:
    """``folder / (name + suffix)``, or a DataError when ``name`` is not a plain file name."""
    if not is_plain_name(name):
        raise DataError(f"{name!r}: not a plain file name (path separators and '..' are refused)")
    return Path(folder) / f"{name}{suffix}"


def _decode(path: str | Path) -> np.ndarray:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    # IMREAD_UNCHANGED keeps 16-bit depth; cv2.imread returns None on a corrupt file.
    array = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if array is None or array.size == 0:
        raise DataError(f"{path}: cannot decode image (corrupt or unsupported format)")
    # A frame or mask is one plane of grey levels, or a colour image of up to 4 channels
    # (BGR(A)); anything else (a multi-page stack, a many-band TIFF) is not what it claims.
    if not (array.ndim == 2 or (array.ndim == 3 and 1 <= array.shape[2] <= 4)):
        raise DataError(
            f"{path}: decodes to shape {array.shape}, expected H×W grey or H×W×C colour "
            "with at most 4 channels"
        )
    return array


def _to_gray(array: np.ndarray, path: str | Path) -> np.ndarray:
    if array.ndim == 2:
        return array
    if array.ndim == 3 and array.shape[2] in (3, 4):
        # OpenCV decodes colour as BGR(A); alpha carries no intensity.
        return cv2.cvtColor(np.ascontiguousarray(array[:, :, :3]), cv2.COLOR_BGR2GRAY)
    if array.ndim == 3 and array.shape[2] == 1:
        return array[:, :, 0]
    raise DataError(f"{path}: unsupported image shape {array.shape}")


def _check_unit_range(array: np.ndarray, path: str | Path, what: str) -> np.ndarray:
    """``array`` when it is finite and within [0, 1]; else a DataError naming the file."""
    if array.size:
        low, high = float(np.min(array)), float(np.max(array))
        if not (np.isfinite(low) and np.isfinite(high)):
            raise DataError(f"{path}: {what} holds NaN or infinite values")
        if low < 0.0 or high > 1.0:
            raise DataError(
                f"{path}: {what} values lie in [{low:.4g}, {high:.4g}], outside [0, 1] "
                "(a 0–255 map or logits? save probabilities in [0, 1])"
            )
    return array


def read_image(path: str | Path) -> np.ndarray:
    """Read an infrared frame as one channel scaled to [0, 1].

    8-bit images are divided by 255, 16-bit by 65535; float images (TIFF) must already lie
    in [0, 1] (there is no scale to guess from a float file), else a DataError names the file.

    Returns:
        ``H×W`` float32 array.
    """
    return image_to_unit(read_image_gray(path), path)


def read_image_gray(path: str | Path) -> np.ndarray:
    """A frame as one channel in its file's own type (uint8, uint16 or float), unscaled.

    For resizing before the scale to [0, 1], as the original training code resizes uint8.
    """
    return _to_gray(_decode(path), path)


def image_to_unit(array: np.ndarray, path: str | Path) -> np.ndarray:
    """``H×W`` grey levels of :func:`read_image_gray` as float32 in [0, 1] (see :func:`read_image`)."""
    if array.dtype == np.uint8:
        return array.astype(np.float32) / 255.0
    if array.dtype == np.uint16:
        return array.astype(np.float32) / 65535.0
    if np.issubdtype(array.dtype, np.floating):
        return _check_unit_range(array.astype(np.float32), path, "float image")
    raise DataError(f"{path}: unsupported pixel type {array.dtype}")


def read_mask(path: str | Path) -> np.ndarray:
    """Read a ground-truth mask; a pixel is a target when its value is non-zero.

    RGB masks are reduced to one channel by taking any non-zero channel, so a coloured
    annotation is never lost to the grey conversion weights.

    Returns:
        ``H×W`` bool array.
    """
    array = _decode(path)
    if array.ndim == 3:
        return np.any(array > 0, axis=2)
    return array > 0


def read_mask_levels(path: str | Path) -> np.ndarray:
    """A ground-truth mask divided by its maximum, as the published recipe trains on.

    A binary mask becomes {0, 1}; a mask with several grey levels keeps them as fractions of
    its maximum; an empty mask is all 0. RGB masks take the largest channel.

    Returns:
        ``H×W`` float32 array in [0, 1].
    """
    array = _decode(path)
    if array.ndim == 3:
        array = array.max(axis=2)
    levels = array.astype(np.float32)
    peak = levels.max()
    return levels / peak if peak > 0 else np.zeros_like(levels)


# What a .mat variable that is not a real array holds, by NumPy's dtype kind.
MAT_KINDS = {
    "c": "complex",
    "O": "a cell array or struct",
    "V": "a struct",
    "U": "text",
    "S": "text",
}


def read_prediction(path: str | Path) -> np.ndarray:
    """Read a saved probability map: ``.mat`` (variable ``T``) or ``.png`` (value / 255).

    A ``.mat`` or float image map with values outside [0, 1] (a 0–255 map, or logits from
    another framework) is refused with a DataError naming the file: scoring it would be
    garbage. So is a ``.mat`` whose ``T`` is not a real, non-empty H×W array (complex, a
    cell or struct, text, 3-D, empty). 8-bit maps are divided by 255, 16-bit by 65535.

    Returns:
        ``H×W`` float32 array in [0, 1].
    """
    path = Path(path)
    if path.suffix.lower() == ".mat":
        if not path.is_file():
            raise DataError(f"{path}: file not found")
        stored = read_matrix(path, "T")
        if stored is None:  # not a real matrix in a plain level-5 file: SciPy says what
            stored = _scipy_map(path)
        # Real numbers only: a cast would drop a complex map's imaginary part silently and
        # fail with a traceback on a cell, a struct or text.
        if not isinstance(stored, np.ndarray) or stored.dtype.kind not in "biuf":
            kind = MAT_KINDS.get(getattr(stored, "dtype", np.dtype(object)).kind, "not numeric")
            raise DataError(f"{path}: variable 'T' is {kind}, expected a real H×W array")
        if stored.ndim != 2 or stored.size == 0:
            raise DataError(f"{path}: variable 'T' has shape {stored.shape}, expected H×W")
        # MATLAB stores arrays by column and loadmat keeps that order; every later step
        # (OpenCV's labelling, raster-order scans) wants rows, so convert once here.
        map_rows = np.ascontiguousarray(stored, dtype=np.float32)
        return _check_unit_range(map_rows, path, "variable 'T'")
    array = _to_gray(_decode(path), path)
    if array.dtype == np.uint16:
        return array.astype(np.float32) / 65535.0
    if np.issubdtype(array.dtype, np.floating):
        return _check_unit_range(array.astype(np.float32), path, "float map")
    return array.astype(np.float32) / 255.0


def _scipy_map(path: Path) -> object:
    """Variable ``T`` of a ``.mat`` file that :func:`read_matrix` leaves to SciPy."""
    import scipy.io  # here: its import costs more than reading a hundred plain maps

    try:
        # Only T: a map written with its background (D) would read it for nothing.
        content = scipy.io.loadmat(str(path), variable_names=("T",))
    except Exception as error:  # scipy raises several types for a damaged file
        raise DataError(f"{path}: cannot read .mat file ({error})") from None
    if "T" not in content:
        raise DataError(f"{path}: no variable 'T' in .mat file")
    return content["T"]


def write_prediction(
    out_dir: str | Path,
    name: str,
    prob: np.ndarray,
    background: np.ndarray | None = None,
) -> None:
    """Write ``OUT/img/<name>.png`` (uint8, round(255·p)) and ``OUT/mat/<name>.mat`` (``T``).

    Args:
        out_dir: results folder.
        name: image name without extension.
        prob: ``H×W`` target probabilities in [0, 1].
        background: optional ``H×W`` reconstructed image ``D``, written to
            ``OUT/background/<name>.png`` and into the ``.mat`` file as ``D``.

    Raises:
        DataError: ``name`` is not a plain file name, or ``OUT/``:data:`WRITTEN_MAPS` is a
            symbolic link or not a regular file (nothing is written then).
    """
    out_dir = Path(out_dir)
    prob = np.asarray(prob, dtype=np.float32)
    variables = {"T": prob}
    pngs = {"img": prob}
    if background is not None:
        variables["D"] = pngs["background"] = np.asarray(background, dtype=np.float32)
    paths = {folder: named_file(out_dir / folder, name, ".png") for folder in pngs}
    mat_path = named_file(out_dir / "mat", name, ".mat")
    # Listed before they exist: a kill between the two leaves an entry without a file
    # (harmless to clear), never a map that the next run's clearing would not know as its own.
    _record_written(out_dir, [f"{folder}/{name}.png" for folder in pngs] + [f"mat/{name}.mat"])
    # Each file through a temporary name and a rename: a kill never leaves half a map.
    for folder, values in pngs.items():
        path = paths[folder]
        with atomic_path(path) as temp:
            if not cv2.imwrite(
                str(temp), np.round(np.clip(values, 0.0, 1.0) * 255.0).astype(np.uint8)
            ):
                raise DataError(f"{path}: cannot write file")
    import scipy.io  # here: scoring, which reads maps, never needs it for plain ones

    with atomic_path(mat_path) as temp:
        scipy.io.savemat(str(temp), variables, do_compression=True)


# What write_prediction writes, by subfolder of OUT.
PREDICTION_FILES = {"img": ".png", "mat": ".mat", "background": ".png"}

# In a results folder: every map write_prediction wrote there, one ``img/<name>.png``-style
# path a line. Only what it lists is ever removed (docs/inference.md, "Running a model on
# frames").
WRITTEN_MAPS = "written_maps.txt"


# Opened without following a link, and without waiting on a FIFO planted in its place.
_MANIFEST_FLAGS = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)


def _open_manifest(path: Path, flags: int, mode: str) -> IO[str]:
    """``path`` (an ``OUT/written_maps.txt``) opened with ``os.open`` ``flags``, refused
    unless it is a regular file: through a symbolic link (planted, or left by copying) the
    run would append to, or clear by, a file outside ``OUT``.

    Raises:
        DataError: one line naming the manifest.
    """
    if path.is_symlink():
        raise DataError(f"{path} is a symbolic link; remove it")
    try:
        descriptor = os.open(path, flags | _MANIFEST_FLAGS, 0o644)
    except OSError as error:
        if path.is_symlink():  # made between the check and the open
            raise DataError(f"{path} is a symbolic link; remove it") from None
        raise DataError(f"{path}: cannot open ({error.strerror})") from None
    if not stat.S_ISREG(os.fstat(descriptor).st_mode):
        os.close(descriptor)
        raise DataError(f"{path} is not a regular file; remove it")
    return os.fdopen(descriptor, mode)


def _record_written(out_dir: Path, entries: list[str]) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT
    with _open_manifest(out_dir / WRITTEN_MAPS, flags, "a") as handle:
        handle.write("".join(f"{entry}\n" for entry in entries))


def _written_entries(out_dir: Path) -> list[str]:
    """The lines of ``out_dir``'s :data:`WRITTEN_MAPS`; none when it does not exist."""
    manifest = out_dir / WRITTEN_MAPS
    if not os.path.lexists(manifest):
        return []
    with _open_manifest(manifest, os.O_RDONLY, "r") as handle:
        return handle.read().splitlines()


def check_prediction_folder(
    out_dir: str | Path, flag: str = "--out", with_background: bool = False
) -> None:
    """Refuse, before any work, an ``out_dir`` that cannot receive what
    :func:`write_prediction` writes there (:data:`WRITTEN_MAPS`, ``img/``, ``mat/`` and with
    ``with_background`` ``background/``; see :func:`lrrnet.files.check_writable`).

    Raises:
        DataError: one line naming ``flag`` and the folder that cannot be written.
    """
    out_dir = Path(out_dir)
    check_writable(out_dir, flag)
    for folder in PREDICTION_FILES:
        if folder != "background" or with_background:
            check_writable(out_dir / folder, flag)


def _written_map(out_dir: Path, entry: str) -> Path | None:
    """The file a manifest line names, or None for a line write_prediction never writes
    (another folder, another suffix, a path that leaves ``out_dir``): a hand-edited or
    hostile manifest cannot point the clearing at anything else."""
    folder, _, file_name = entry.partition("/")
    suffix = PREDICTION_FILES.get(folder)
    if suffix is None or not is_plain_name(file_name) or not file_name.endswith(suffix):
        return None
    return out_dir / folder / file_name


def clear_predictions(
    out_dir: str | Path, names: Iterable[str] = (), with_background: bool = False
) -> int:
    """Remove the maps an earlier run wrote into ``out_dir``; returns how many.

    Only files that :func:`write_prediction` listed in ``out_dir``'s :data:`WRITTEN_MAPS`
    are removed; anything else is never touched, whatever its name (maps put there by hand
    or by another program are logged as left in place). Called before a run writes its own
    maps, so a frame that fails this time cannot leave an older map to be scored as new.

    Args:
        out_dir: results folder.
        names: the maps the run will write; one whose file exists and is not listed would
            be overwritten, so it is refused before anything is removed.
        with_background: the run also writes ``background/<name>.png``.

    Raises:
        DataError: a map to write would replace a file this framework did not write, or
            :data:`WRITTEN_MAPS` is a symbolic link or not a regular file.
    """
    out_dir = Path(out_dir)
    manifest = out_dir / WRITTEN_MAPS
    entries = _written_entries(out_dir)
    ours = {path for entry in entries if (path := _written_map(out_dir, entry)) is not None}
    folders = ("img", "mat", "background") if with_background else ("img", "mat")
    clashes = [
        path
        for name in names
        for folder in folders
        if (path := out_dir / folder / f"{name}{PREDICTION_FILES[folder]}") not in ours
        and (path.exists() or path.is_symlink())
    ]
    if clashes:
        raise DataError(
            f"{out_dir}: {len(clashes)} file(s) that this framework did not write would be "
            f"overwritten, e.g. {clashes[0]} (not in {WRITTEN_MAPS}); choose another --out"
        )
    removed = 0
    for path in ours:
        if path.is_file() and not path.is_symlink():
            path.unlink()
            removed += 1
    manifest.unlink(missing_ok=True)
    foreign = [
        path
        for folder, suffix in PREDICTION_FILES.items()
        if (out_dir / folder).is_dir()
        for path in (out_dir / folder).iterdir()
        if path.suffix.lower() == suffix and not path.name.startswith(".")
    ]
    if foreign:
        logger.warning(
            "%s: %d map(s) that this framework did not write there (not in %s) are left in "
            "place, e.g. %s",
            out_dir,
            len(foreign),
            WRITTEN_MAPS,
            foreign[0],
        )
    return removed


def check_apart_from_inputs(out_dir: str | Path, inputs: Iterable[str | Path]) -> None:
    """Refuse an output folder that holds any of the ``inputs`` (at any depth).

    Writing maps there would mix them with the frames (``--images U/img --out U`` writes
    ``U/img/<name>.png`` over the frame of that name), and clearing would meet them.

    Raises:
        DataError: one line naming the folder and a frame inside it.
    """
    out_dir = Path(out_dir).resolve()
    for path in inputs:
        resolved = Path(path).resolve()
        if resolved == out_dir or resolved.is_relative_to(out_dir):
            raise DataError(
                f"{out_dir}: output folder holds the input {path}; write the maps to a folder "
                "apart from the frames"
            )


def image_files(folder: str | Path) -> list[Path]:
    """The image files (:data:`IMAGE_SUFFIXES`) directly inside ``folder``, sorted by name.

    Hidden files are left out: an atomic write in progress (or one a kill interrupted) is a
    ``.NAME.*.tmp.png`` beside the maps, never a frame or a map of its own.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: folder not found")
    return sorted(
        p
        for p in folder.iterdir()
        if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".") and p.is_file()
    )


def list_images(folder: str | Path) -> list[Path]:
    """The frames of a plain folder, sorted by name: those in ``DIR/images`` when it holds
    any, else those directly in ``DIR`` (the ``folder`` layout of :mod:`lrrnet.data.layouts`).
    """
    inner = Path(folder) / "images"
    frames = image_files(inner) if inner.is_dir() else []
    return frames or image_files(folder)
