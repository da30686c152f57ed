"""Dataset layouts built from the real split lists: detection, splits, the errors of a
missing file or folder."""

from __future__ import annotations

import logging
import re
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from lrrnet.data.layouts import (
    Sample,
    build_splits,
    detect_layout,
    find_splits,
    mask_index,
)
from lrrnet.data.validation import validate_samples
from lrrnet.errors import ConfigError, DataError

SPLITS = Path(__file__).parent / "data" / "splits"
IRSTD1K = SPLITS / "basicirstd" / "IRSTD-1K" / "img_idx"
NUDT = SPLITS / "basicirstd" / "NUDT-SIRST" / "img_idx"
NUAA = SPLITS / "basicirstd" / "NUAA-SIRST" / "img_idx"
IDX_427 = SPLITS / "sirst_v1" / "idx_427"


def _png(side: int = 8, value: int = 0) -> bytes:
    return cv2.imencode(".png", np.full((side, side), value, np.uint8))[1].tobytes()


IMAGE_BYTES = _png(8, 100)
MASK_BYTES = _png(8, 255)


def _names(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def _write_files(folder: Path, filenames: list[str], content: bytes) -> None:
    # One encoded PNG written under every name: thousands of files in well under a second.
    folder.mkdir(parents=True, exist_ok=True)
    for filename in filenames:
        (folder / filename).write_bytes(content)


def _pairs(samples: list[Sample]) -> set[tuple[str, str, str]]:
    return {(s.name, s.image.name, s.mask.name if s.mask else "") for s in samples}


@pytest.fixture
def split_folders(tmp_path: Path) -> Path:
    """IRSTD-1k as distributed for LRRNet: trainval/ 800 and test/ 201."""
    for folder, names in (
        ("trainval", _names(IRSTD1K / "train_IRSTD-1K.txt")),
        ("test", _names(IRSTD1K / "test_IRSTD-1K.txt")),
    ):
        _write_files(tmp_path / folder / "images", [f"{n}.png" for n in names], IMAGE_BYTES)
        _write_files(tmp_path / folder / "masks", [f"{n}.png" for n in names], MASK_BYTES)
    return tmp_path


def _basicirstd(root: Path, lists: Path, dataset: str, mask_suffix: str = "") -> Path:
    names = _names(lists / f"train_{dataset}.txt") + _names(lists / f"test_{dataset}.txt")
    _write_files(root / "images", [f"{n}.png" for n in names], IMAGE_BYTES)
    _write_files(root / "masks", [f"{n}{mask_suffix}.png" for n in names], MASK_BYTES)
    (root / "img_idx").mkdir(exist_ok=True)
    for split in ("train", "test"):
        shutil.copyfile(
            lists / f"{split}_{dataset}.txt", root / "img_idx" / f"{split}_{dataset}.txt"
        )
    return root


@pytest.fixture
def sirst_v1(tmp_path: Path) -> Path:
    names = _names(IDX_427 / "trainval.txt") + _names(IDX_427 / "test.txt")
    _write_files(tmp_path / "images", [f"{n}.png" for n in names], IMAGE_BYTES)
    _write_files(tmp_path / "masks", [f"{n}_pixels0.png" for n in names], MASK_BYTES)
    # The official release keeps a box annotation beside every mask: not an image, not a problem.
    _write_files(tmp_path / "masks", [f"{n}.xml" for n in names], b"<annotation/>")
    shutil.copytree(IDX_427, tmp_path / "idx_427")
    return tmp_path


def test_split_files_are_the_real_lists():
    # The SIRST v1 lists end without a newline; the loader must still count the last name.
    assert not (IDX_427 / "trainval.txt").read_bytes().endswith(b"\n")
    assert b"\r\n" in (IRSTD1K / "train_IRSTD-1K.txt").read_bytes()


def test_split_folders_finds_every_pair(split_folders: Path):
    assert detect_layout(split_folders) == "split_folders"
    splits = find_splits(split_folders)
    assert set(splits) == {"train", "test"}
    for split, listed in (("train", "train_IRSTD-1K.txt"), ("test", "test_IRSTD-1K.txt")):
        expected = {(n, f"{n}.png", f"{n}.png") for n in _names(IRSTD1K / listed)}
        assert _pairs(splits[split]) == expected
    folder = split_folders / "trainval"
    assert all(s.image.parent == folder / "images" for s in splits["train"])
    assert all(s.mask.parent == folder / "masks" for s in splits["train"])


def test_split_folders_holdout_is_seeded_and_disjoint(split_folders: Path):
    first = build_splits(split_folders, val_fraction=0.1, seed=1)
    assert (len(first.train), len(first.val), len(first.test)) == (720, 80, 201)
    assert not {s.name for s in first.train} & {s.name for s in first.val}
    assert {s.name for s in first.train + first.val} == set(_names(IRSTD1K / "train_IRSTD-1K.txt"))
    assert first.layout == "split_folders" and "holdout" in first.val_source
    again = build_splits(split_folders, val_fraction=0.1, seed=1)
    assert [s.name for s in again.val] == [s.name for s in first.val]
    other_seed = build_splits(split_folders, val_fraction=0.1, seed=2)
    assert {s.name for s in other_seed.val} != {s.name for s in first.val}
    quarter = build_splits(split_folders, val_fraction=0.25)
    assert (len(quarter.train), len(quarter.val)) == (600, 200)


def test_holdout_follows_the_split_seed_not_the_training_seed(split_folders: Path):
    from lrrnet.config import load_config
    from lrrnet.data import splits_from_config

    def val_names(*overrides: str) -> list[str]:
        cfg = load_config("irstd1k", [f"data.root={str(split_folders)!r}", *overrides])
        return [s.name for s in splits_from_config(cfg).val]

    reference = val_names("seed=1")
    assert len(reference) == 80
    assert val_names("seed=7") == reference  # another training seed: the same split
    assert val_names("seed=7", "data.split_seed=1") == reference
    assert set(val_names("data.split_seed=2")) != set(reference)


def test_val_split_none_trains_on_the_whole_training_split(split_folders: Path, caplog):
    with caplog.at_level(logging.INFO, logger="lrrnet.data.layouts"):
        splits = build_splits(split_folders, val_split="none")
    assert (len(splits.train), len(splits.val), len(splits.test)) == (800, 0, 201)
    assert "last checkpoint" in splits.val_source
    assert any("800 train, 0 val" in record.getMessage() for record in caplog.records)


def test_val_split_test_is_logged_as_optimistic(split_folders: Path, caplog):
    with caplog.at_level(logging.WARNING, logger="lrrnet.data.layouts"):
        splits = build_splits(split_folders, val_split="test")
    assert splits.val == splits.test and len(splits.train) == 800
    assert "optimistic" in splits.val_source
    assert any("optimistic" in record.message for record in caplog.records)


def test_val_split_errors(split_folders: Path):
    with pytest.raises(ConfigError, match="data.val_split"):
        build_splits(split_folders, val_split="best")
    with pytest.raises(DataError, match="no val list"):
        build_splits(split_folders, val_split="val")
    with pytest.raises(ConfigError, match="data.val_fraction"):
        build_splits(split_folders, val_fraction=1.5)
    with pytest.raises(ConfigError, match="'data.split_seed' must be >= 0"):
        build_splits(split_folders, seed=-1)


def test_a_val_fraction_of_zero_is_refused_by_the_config_and_the_splits_alike(
    split_folders: Path,
):
    from lrrnet.config import load_config

    message = "config key 'data.val_fraction' = 0 must be in (0, 1)"
    with pytest.raises(ConfigError) as from_config:
        load_config("synthetic", ["data.val_fraction=0"])
    with pytest.raises(ConfigError) as from_splits:
        build_splits(split_folders, val_fraction=0)
    assert str(from_config.value) == str(from_splits.value) == message
    assert load_config("synthetic", ["data.val_fraction=0.1"])["data"]["val_fraction"] == 0.1
    assert len(build_splits(split_folders, val_fraction=0.1).val) == 80


@pytest.mark.parametrize(
    ("lists", "dataset", "mask_suffix", "counts"),
    [
        (IRSTD1K, "IRSTD-1K", "", (800, 201)),
        (NUDT, "NUDT-SIRST", "", (663, 664)),
        (NUAA, "NUAA-SIRST", "_pixels0", (213, 214)),
    ],
)
def test_basicirstd(tmp_path: Path, lists: Path, dataset: str, mask_suffix: str, counts):
    root = _basicirstd(tmp_path, lists, dataset, mask_suffix)
    assert detect_layout(root) == "basicirstd"
    splits = find_splits(root)
    assert (len(splits["train"]), len(splits["test"])) == counts
    expected = {
        (n, f"{n}.png", f"{n}{mask_suffix}.png") for n in _names(lists / f"train_{dataset}.txt")
    }
    assert _pairs(splits["train"]) == expected
    assert all(s.image.is_file() and s.mask.is_file() for s in splits["train"] + splits["test"])
    holdout = build_splits(root)
    assert (
        len(holdout.val) == round(0.1 * counts[0])
        and len(holdout.train) + len(holdout.val) == counts[0]
    )


def test_basicirstd_needs_a_name_when_several_pairs_exist(tmp_path: Path):
    root = _basicirstd(tmp_path, IRSTD1K, "IRSTD-1K")
    _basicirstd(tmp_path, NUDT, "NUDT-SIRST")
    with pytest.raises(DataError, match="IRSTD-1K.*NUDT-SIRST"):
        find_splits(root)
    assert len(find_splits(root, dataset_name="NUDT-SIRST")["test"]) == 664
    with pytest.raises(DataError, match="SIRST-Aug"):
        find_splits(root, dataset_name="SIRST-Aug")


def test_dnanet_50_50(tmp_path: Path):
    names = {split: _names(NUDT / f"{split}_NUDT-SIRST.txt") for split in ("train", "test")}
    _write_files(
        tmp_path / "images", [f"{n}.png" for n in names["train"] + names["test"]], IMAGE_BYTES
    )
    _write_files(
        tmp_path / "masks", [f"{n}.png" for n in names["train"] + names["test"]], MASK_BYTES
    )
    (tmp_path / "50_50").mkdir()
    # Names with extensions, trailing spaces and blank lines are all tolerated.
    (tmp_path / "50_50" / "train.txt").write_text(
        "\n".join(f"{n}.png " for n in names["train"]) + "\n\n"
    )
    (tmp_path / "50_50" / "test.txt").write_text("\n".join(names["test"]))
    assert detect_layout(tmp_path) == "dnanet"
    splits = find_splits(tmp_path)
    assert [s.name for s in splits["train"]] == names["train"]
    assert [s.name for s in splits["test"]] == names["test"]
    assert (len(splits["train"]), len(splits["test"])) == (663, 664)


def test_sirst_v1_splits(sirst_v1: Path):
    assert detect_layout(sirst_v1) == "sirst_v1"
    splits = find_splits(sirst_v1)
    counts = {split: len(samples) for split, samples in splits.items()}
    assert counts == {"train": 256, "val": 85, "test": 86, "trainval": 341}
    assert _pairs(splits["test"]) == {
        (n, f"{n}.png", f"{n}_pixels0.png") for n in _names(IDX_427 / "test.txt")
    }
    # The file's last line has no newline and must not be lost.
    assert splits["trainval"][-1].name == _names(IDX_427 / "trainval.txt")[-1]

    own_val = build_splits(sirst_v1, val_split="val")
    assert (len(own_val.train), len(own_val.val), len(own_val.test)) == (256, 85, 86)
    assert own_val.val_source == "dataset val list"
    holdout = build_splits(sirst_v1)
    assert (len(holdout.train), len(holdout.val), len(holdout.test)) == (307, 34, 86)
    on_test = build_splits(sirst_v1, val_split="test")
    assert (len(on_test.train), len(on_test.val)) == (341, 86)


def test_sirst_devkit(tmp_path: Path):
    names = {split: _names(IDX_427 / f"{split}.txt") for split in ("trainval", "test")}
    every = names["trainval"] + names["test"]
    _write_files(tmp_path / "PNGImages", [f"{n}.png" for n in every], IMAGE_BYTES)
    _write_files(tmp_path / "SIRST" / "BinaryMask", [f"{n}_pixels0.png" for n in every], MASK_BYTES)
    (tmp_path / "Splits").mkdir()
    for split in ("trainval", "test"):
        (tmp_path / "Splits" / f"{split}_v1.txt").write_text("\r\n".join(names[split]))
    assert detect_layout(tmp_path) == "sirst_devkit"
    splits = find_splits(tmp_path)
    assert set(splits) == {"train", "test"}
    assert (len(splits["train"]), len(splits["test"])) == (341, 86)
    assert all(s.mask.parent == tmp_path / "SIRST" / "BinaryMask" for s in splits["test"])
    with pytest.raises(DataError, match="no val list"):
        build_splits(tmp_path, val_split="val")


@pytest.fixture
def irstd1k_official(tmp_path: Path) -> Path:
    """IRSTD-1k as ISNet released it: IRSTD1k_Img/, IRSTD1k_Label/, trainval.txt, test.txt."""
    names = {split: _names(IRSTD1K / f"{split}_IRSTD-1K.txt") for split in ("train", "test")}
    every = names["train"] + names["test"]
    _write_files(tmp_path / "IRSTD1k_Img", [f"{n}.png" for n in every], IMAGE_BYTES)
    _write_files(tmp_path / "IRSTD1k_Label", [f"{n}.png" for n in every], MASK_BYTES)
    (tmp_path / "trainval.txt").write_text("\n".join(names["train"]) + "\n")
    (tmp_path / "test.txt").write_text("\n".join(names["test"]))
    return tmp_path


@pytest.fixture
def sirst_v2(tmp_path: Path) -> Path:
    """The open-sirst-v2 devkit: 1024 frames in mixed/, 510 of them target-free."""
    targets = [f"Misc_{i}" for i in range(514)]
    backgrounds = [f"Background_{i}" for i in range(510)]
    # Half of val and test hold no target, as in the devkit's _full lists.
    lists = {
        "train": targets[:258] + backgrounds[:254],
        "val": targets[258:386] + backgrounds[254:382],
        "test": targets[386:] + backgrounds[382:],
    }
    lists["trainval"] = lists["train"] + lists["val"]
    every = targets + backgrounds
    _write_files(tmp_path / "mixed", [f"{n}.png" for n in every], IMAGE_BYTES)
    masks = tmp_path / "annotations" / "masks"
    _write_files(masks, [f"{n}_pixels0.png" for n in targets], MASK_BYTES)
    _write_files(masks, [f"{n}_pixels0.png" for n in backgrounds], _png(8, 0))
    _write_files(masks, [f"{n}.xml" for n in every], b"<annotation/>")
    (tmp_path / "splits").mkdir()
    for split, names in lists.items():
        (tmp_path / "splits" / f"{split}_full.txt").write_text("\r\n".join(names) + "\r\n")
        # The _v1 lists cover only the frames with targets.
        v1 = [n for n in names if n.startswith("Misc_")]
        (tmp_path / "splits" / f"{split}_v1.txt").write_text("\n".join(v1))
    return tmp_path


def test_irstd1k_official_layout(irstd1k_official: Path):
    root = irstd1k_official
    assert detect_layout(root) == "irstd1k"
    splits = find_splits(root)
    assert set(splits) == {"train", "test"}
    assert (len(splits["train"]), len(splits["test"])) == (800, 201)
    assert _pairs(splits["test"]) == {
        (n, f"{n}.png", f"{n}.png") for n in _names(IRSTD1K / "test_IRSTD-1K.txt")
    }
    assert all(s.mask.parent == root / "IRSTD1k_Label" for s in splits["train"])
    holdout = build_splits(root)
    assert (len(holdout.train), len(holdout.val), len(holdout.test)) == (720, 80, 201)
    with pytest.raises(DataError, match="no val list"):
        build_splits(root, val_split="val")

    # Copies that carry a 600 / 200 split of trainval: data.val_split=val uses it.
    trainval = _names(root / "trainval.txt")
    (root / "train.txt").write_text("\n".join(trainval[:600]))
    (root / "val.txt").write_text("\n".join(trainval[600:]))
    own_val = build_splits(root, val_split="val")
    assert (len(own_val.train), len(own_val.val), len(own_val.test)) == (600, 200, 201)
    assert [s.name for s in own_val.val] == trainval[600:]
    assert len(build_splits(root).train) == 720  # holdout still draws from all of trainval


def test_sirst_v2_full_and_v1_lists(sirst_v2: Path):
    assert detect_layout(sirst_v2) == "sirst_v2"
    splits = find_splits(sirst_v2)
    counts = {split: len(samples) for split, samples in splits.items()}
    assert counts == {"train": 512, "val": 256, "test": 256, "trainval": 768}
    assert all(s.image.parent == sirst_v2 / "mixed" for s in splits["test"])
    assert all(s.mask.name == f"{s.name}_pixels0.png" and s.mask.is_file() for s in splits["test"])
    own_val = build_splits(sirst_v2, val_split="val")
    assert (len(own_val.train), len(own_val.val), len(own_val.test)) == (512, 256, 256)
    validate_samples(own_val.test, "test")  # target-free frames and .xml files are fine
    v1 = find_splits(sirst_v2, dataset_name="v1")
    assert (len(v1["train"]), len(v1["val"]), len(v1["test"])) == (258, 128, 128)
    with pytest.raises(DataError, match=r"splits/test_v2.txt: split file not found"):
        find_splits(sirst_v2, dataset_name="v2")


@pytest.mark.parametrize(
    ("fixture", "layout", "val_split", "counts"),
    [
        ("split_folders", "split_folders", "holdout", (720, 80, 201)),
        ("sirst_v1", "sirst_v1", "val", (256, 85, 86)),
        ("sirst_v2", "sirst_v2", "val", (512, 256, 256)),
        ("irstd1k_official", "irstd1k", "test", (800, 201, 201)),
    ],
)
def test_every_layout_logs_the_one_split_line(request, caplog, fixture, layout, val_split, counts):
    """Outside checks read "ROOT (LAYOUT): N train, M val (...), K test" from the log."""
    root = request.getfixturevalue(fixture)
    with caplog.at_level(logging.INFO, logger="lrrnet.data.layouts"):
        build_splits(root, val_split=val_split)
    pattern = re.compile(r"^(.+) \((\w+)\): (\d+) train, (\d+) val \(.+\), (\d+) test$")
    lines = [m for r in caplog.records if (m := pattern.match(r.getMessage()))]
    assert len(lines) == 1
    assert lines[0].group(1, 2) == (str(root), layout)
    assert tuple(int(n) for n in lines[0].group(3, 4, 5)) == counts


def test_folder_layout_with_and_without_masks(tmp_path: Path):
    _write_files(tmp_path, ["b.png", "a.bmp"], IMAGE_BYTES)
    assert detect_layout(tmp_path) == "folder"
    assert [(s.name, s.mask) for s in find_splits(tmp_path)["test"]] == [("a", None), ("b", None)]

    root = tmp_path / "with_masks"
    _write_files(root / "images", ["x.png", "y.png"], IMAGE_BYTES)
    _write_files(root / "masks", ["x.png"], MASK_BYTES)
    assert detect_layout(root) == "folder"
    samples = find_splits(root)["test"]
    assert [(s.name, s.mask) for s in samples] == [("x", root / "masks" / "x.png"), ("y", None)]
    validate_samples(samples, "test", require_masks=False)
    with pytest.raises(DataError, match="y.png: no mask"):
        validate_samples(samples, "test")
    test_only = build_splits(root)
    assert (test_only.train, test_only.val, len(test_only.test)) == ([], [], 2)
    with pytest.raises(DataError, match="train split is empty"):
        validate_samples(test_only.train, "train")


def test_unknown_or_missing_root(tmp_path: Path):
    with pytest.raises(DataError, match="dataset folder not found"):
        detect_layout(tmp_path / "absent")
    (tmp_path / "notes.txt").write_text("nothing here")
    with pytest.raises(DataError, match=f"{tmp_path}: no known dataset layout.*img_idx"):
        detect_layout(tmp_path)
    with pytest.raises(ConfigError, match="data.layout"):
        find_splits(tmp_path, layout="coco")


def test_missing_split_file_names_it(sirst_v1: Path):
    (sirst_v1 / "idx_427" / "test.txt").unlink()
    with pytest.raises(DataError, match=r"idx_427/test.txt: split file not found"):
        find_splits(sirst_v1)


def test_empty_split_folder_names_it(split_folders: Path):
    for path in (split_folders / "test" / "images").iterdir():
        path.unlink()
    with pytest.raises(DataError, match=r"test/images: no images found"):
        find_splits(split_folders)


def test_missing_masks_folder_names_it(split_folders: Path):
    shutil.rmtree(split_folders / "test" / "masks")
    with pytest.raises(DataError, match=r"test/masks: folder not found"):
        find_splits(split_folders)


def test_missing_sirst_masks_folder_names_it(sirst_v1: Path):
    shutil.rmtree(sirst_v1 / "masks")
    with pytest.raises(DataError, match=f"{sirst_v1 / 'masks'}: folder not found"):
        find_splits(sirst_v1)


def test_two_files_with_one_stem_are_reported_not_silently_dropped(tmp_path, caplog):
    import logging

    import cv2
    import numpy as np

    from lrrnet.data import find_splits

    frame = np.zeros((8, 8), np.uint8)
    cv2.imwrite(str(tmp_path / "a.png"), frame)
    cv2.imwrite(str(tmp_path / "a.bmp"), frame)
    with caplog.at_level(logging.WARNING, logger="lrrnet.data.layouts"):
        samples = find_splits(tmp_path, layout="folder")["test"]
    assert [s.image.name for s in samples] == ["a.png"]
    assert "a.bmp: ignored, a.png has the same name" in caplog.text


def test_one_mask_rule_exact_name_before_pixels0_then_suffix_order(tmp_path: Path):
    names = ["a.png", "a_pixels0.png", "b_pixels0.png", "c.bmp", "c.png", "d_pixels0.bmp"]
    _write_files(tmp_path / "masks", [*names, "a.xml"], MASK_BYTES)
    masks = tmp_path / "masks"
    assert mask_index(masks) == {
        "a": masks / "a.png",
        "b": masks / "b_pixels0.png",
        "c": masks / "c.png",
        "d": masks / "d_pixels0.bmp",
    }
    assert mask_index(tmp_path / "nowhere", required=False) == {}
    with pytest.raises(DataError, match="nowhere: folder not found"):
        mask_index(tmp_path / "nowhere")
    # The folder layout and scoring pair by the same rule.
    _write_files(tmp_path, ["a.png", "b.png", "c.png", "d.png", "e.png"], IMAGE_BYTES)
    samples = find_splits(tmp_path, layout="folder")["test"]
    assert {s.name: s.mask for s in samples} == {**mask_index(masks), "e": None}


@pytest.mark.parametrize("bad", ["../evil", "..", "sub/000002", "..\\\\evil", "/etc/passwd"])
def test_split_names_with_a_path_are_refused_by_name(tmp_path: Path, bad: str):
    _write_files(tmp_path / "images", ["000001.png", "000002.png"], IMAGE_BYTES)
    _write_files(tmp_path / "masks", ["000001.png", "000002.png"], MASK_BYTES)
    (tmp_path / "50_50").mkdir()
    (tmp_path / "50_50" / "train.txt").write_text("000001\n")
    (tmp_path / "50_50" / "test.txt").write_text(f"000001\n{bad}\n")
    with pytest.raises(DataError) as error:
        find_splits(tmp_path)
    message = str(error.value)
    assert "test.txt" in message and f"line 2: {bad!r}" in message and "\n" not in message


def test_written_names_must_be_plain(tmp_path: Path):
    from lrrnet.data.io import write_prediction

    out = tmp_path / "out"
    with pytest.raises(DataError, match="'../evil': not a plain file name"):
        write_prediction(out, "../evil", np.zeros((8, 8), np.float32))
    assert not (tmp_path / "evil.png").exists() and not (out / "evil.mat").exists()


def test_a_frame_listed_twice_under_two_spellings_is_one_sample(tmp_path: Path, caplog):
    names = [f"{i:06d}" for i in range(1, 21)]
    _write_files(tmp_path / "images", [f"{n}.png" for n in names], IMAGE_BYTES)
    _write_files(tmp_path / "masks", [f"{n}.png" for n in names], MASK_BYTES)
    (tmp_path / "50_50").mkdir()
    # Frame 3 four times (extension, case, spaces, Windows line ends), frame 5 twice as written.
    listed = [*names[:18], "000003.png", " 000003.PNG ", "000003", "000005"]
    (tmp_path / "50_50" / "train.txt").write_bytes("\r\n".join(listed).encode())
    (tmp_path / "50_50" / "test.txt").write_text("000019\n000020\n")
    with caplog.at_level(logging.WARNING, logger="lrrnet"):
        splits = find_splits(tmp_path)
    assert [s.name for s in splits["train"]] == names[:18]
    warnings = [r.getMessage() for r in caplog.records if "duplicate" in r.getMessage()]
    assert len(warnings) == 1 and "train.txt: 4 duplicate entries ignored" in warnings[0]
    assert "000003.png (= 000003)" in warnings[0] and "000005" in warnings[0]
    # The holdout can no longer put one spelling in val and train on the other.
    holdout = build_splits(tmp_path, val_fraction=0.25)
    assert not {s.name for s in holdout.train} & {s.name for s in holdout.val}
    assert len(holdout.train) + len(holdout.val) == 18
