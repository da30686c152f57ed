"""Synthetic SIRST generator: determinism, target statistics (SIRST v1's), sizes, CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage.measure import label

from lrrnet.data.layouts import build_splits
from lrrnet.data.synthetic import frame_rng, generate_dataset, generate_frame, power_law_noise
from lrrnet.data.validation import validate_samples
from lrrnet.errors import DataError

ROOT = Path(__file__).resolve().parents[1]


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.png"))}


@pytest.fixture(scope="module")
def frames() -> list[tuple[np.ndarray, np.ndarray]]:
    return [generate_frame(frame_rng(0, "test", i), 128, 128) for i in range(200)]


@pytest.fixture(scope="module")
def components(frames) -> tuple[np.ndarray, np.ndarray]:
    """Targets per frame and target areas, as 8-connected components of the masks."""
    counts, areas = [], []
    for _, mask in frames:
        labels = label(mask > 0, connectivity=2)
        counts.append(labels.max())
        areas.extend(np.bincount(labels.ravel())[1:].tolist())
    return np.array(counts), np.array(areas)


def test_same_seed_writes_identical_bytes(tmp_path: Path):
    first = generate_dataset(tmp_path / "a", num_train=4, num_test=2, size=64, seed=3)
    again = generate_dataset(tmp_path / "b", num_train=4, num_test=2, size=64, seed=3)
    other = generate_dataset(tmp_path / "c", num_train=4, num_test=2, size=64, seed=4)
    files = _files(first)
    assert len(files) == 12 and files == _files(again)
    other_files = _files(other)
    assert files.keys() == other_files.keys()
    assert all(files[name] != other_files[name] for name in files if "images" in name)
    parameters = json.loads((first / "synthetic.json").read_text())
    assert parameters["seed"] == 3 and parameters["num_train"] == 4
    assert not (tmp_path / "a.partial").exists()


def test_generated_dataset_loads_and_validates(tmp_path: Path):
    root = generate_dataset(tmp_path / "synth", num_train=10, num_test=3, size="48x80", seed=0)
    splits = build_splits(root)
    assert splits.layout == "split_folders"
    assert (len(splits.train), len(splits.val), len(splits.test)) == (9, 1, 3)
    for name, samples in (("train", splits.train), ("test", splits.test)):
        validate_samples(samples, name)
    image = cv2.imread(str(splits.test[0].image), cv2.IMREAD_UNCHANGED)
    assert image.shape == (48, 80) and image.dtype == np.uint8
    with pytest.raises(DataError, match="not empty"):
        generate_dataset(root, num_train=1, num_test=1, size=48)


def test_frames_are_drawn_per_index():
    # Frame 5 does not depend on frames 0–4 having been generated before it.
    image, mask = generate_frame(frame_rng(0, "trainval", 5), 64, 64)
    for index in range(5):
        generate_frame(frame_rng(0, "trainval", index), 64, 64)
    again_image, again_mask = generate_frame(frame_rng(0, "trainval", 5), 64, 64)
    assert np.array_equal(image, again_image) and np.array_equal(mask, again_mask)
    test_image, _ = generate_frame(frame_rng(0, "test", 5), 64, 64)
    assert not np.array_equal(image, test_image)


@pytest.mark.parametrize(("height", "width"), [(96, 160), (160, 72)])
def test_non_square_frames(height: int, width: int):
    image, mask = generate_frame(np.random.default_rng(1), height, width)
    assert image.shape == mask.shape == (height, width)
    assert image.dtype == mask.dtype == np.uint8
    assert set(np.unique(mask).tolist()) == {0, 255}


def test_frame_too_small():
    with pytest.raises(DataError, match="16x64"):
        generate_frame(np.random.default_rng(0), 16, 64)


def test_target_counts_match_sirst(components):
    counts, _ = components
    share = {n: np.mean(counts == n) for n in (1, 2, 3)}
    assert np.all(counts >= 1)
    assert abs(share[1] - 0.84) < 0.07
    assert abs(share[2] - 0.11) < 0.06
    assert share[3] < 0.08 and np.mean(counts >= 4) < 0.06 and counts.max() <= 7


def test_target_areas_match_sirst(components):
    _, areas = components
    p5, p25, p50, p75, p95 = np.percentile(areas, [5, 25, 50, 75, 95])
    assert 4 <= p5 <= 10
    assert 10 <= p25 <= 18
    assert 16 <= p50 <= 25
    assert 30 <= p75 <= 50
    assert 75 <= p95 <= 150
    assert areas.max() <= 400


def test_targets_are_bright_and_clear_of_the_border(frames):
    brighter = []
    for image, mask in frames:
        assert not (mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any())
        labels, count = label(mask > 0, connectivity=2, return_num=True)
        for index in range(1, count + 1):
            target = labels == index
            ring = cv2.dilate(target.astype(np.uint8), np.ones((7, 7), np.uint8)) > 0
            ring &= ~target
            brighter.append(image[target].mean() > image[ring].mean())
    assert np.mean(brighter) > 0.97


def test_power_law_noise_is_normalised_and_smooth():
    smooth = power_law_noise(np.random.default_rng(0), (64, 96), beta=3.0)
    rough = power_law_noise(np.random.default_rng(0), (64, 96), beta=0.0)
    assert smooth.shape == (64, 96)
    assert abs(smooth.mean()) < 1e-5 and abs(smooth.std() - 1) < 1e-3
    # Neighbouring pixels of 1/f^3 noise are far more alike than those of white noise.
    assert np.abs(np.diff(smooth, axis=1)).mean() < 0.5 * np.abs(np.diff(rough, axis=1)).mean()


def test_cli_writes_the_dataset(tmp_path: Path):
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "tools" / "make_synthetic_dataset.py"),
            "--out",
            str(tmp_path / "cli"),
            "--num-train",
            "3",
            "--num-test",
            "2",
            "--size",
            "40x64",
            "--seed",
            "5",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    images = sorted((tmp_path / "cli" / "trainval" / "images").iterdir())
    assert [p.name for p in images] == ["000000.png", "000001.png", "000002.png"]
    tests = sorted((tmp_path / "cli" / "test" / "images").iterdir())
    assert [p.name for p in tests] == ["000003.png", "000004.png"]  # unique across splits
    assert cv2.imread(str(images[0]), cv2.IMREAD_UNCHANGED).shape == (40, 64)
    again = subprocess.run(
        [
            sys.executable,
            str(ROOT / "tools" / "make_synthetic_dataset.py"),
            "--out",
            str(tmp_path / "cli"),
            "--size",
            "bad",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert again.returncode == 2 and again.stderr.startswith("error: ")


def test_ensure_dataset_refuses_one_generated_with_other_settings(tmp_path: Path):
    from lrrnet.config import load_config
    from lrrnet.data import ensure_dataset
    from lrrnet.errors import DataError

    root = tmp_path / "synth"
    sets = [f"data.root='{root}'", "data.synthetic={'num_train': 3, 'num_test': 2, 'size': 32}"]
    ensure_dataset(load_config("synthetic", sets))  # generated on first use
    assert len(list((root / "trainval" / "images").iterdir())) == 3
    ensure_dataset(load_config("synthetic", sets))  # same settings: reused
    # The training seed does not change the data (runs of several seeds share it) ...
    ensure_dataset(load_config("synthetic", [*sets, "seed=7"]))
    # ... its data.split_seed, frame size and counts do.
    other = [
        *sets[:1],
        "data.synthetic={'num_train': 5, 'num_test': 2, 'size': 48}",
        "data.split_seed=2",
    ]
    with pytest.raises(DataError) as error:
        ensure_dataset(load_config("synthetic", other))
    message = str(error.value)
    for part in ("seed 1 (config wants 2)", "height 32 (config wants 48)", "num_train 3"):
        assert part in message
    assert "num_test" not in message and "\n" not in message
    (root / "synthetic.json").unlink()  # not a dataset this config generated
    with pytest.raises(DataError, match="synthetic.json: missing or unreadable"):
        ensure_dataset(load_config("synthetic", sets))


def _tree(root: Path) -> dict[str, bytes | None]:
    return {
        str(p.relative_to(root)): p.read_bytes() if p.is_file() else None
        for p in sorted(root.rglob("*"))
    }


def _make_synthetic(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "tools" / "make_synthetic_dataset.py"), *args],
        capture_output=True,
        text=True,
        check=False,
    )


def test_overwrite_never_deletes_a_folder_the_generator_did_not_write(tmp_path: Path):
    # A user's folder given as --out by mistake, and an invalid size: nothing may go.
    user = tmp_path / "thesis"
    (user / "chapter").mkdir(parents=True)
    (user / "chapter" / "draft.tex").write_text("months of work")
    before = _tree(user)
    for size in ("0", "-64", "16x64", "bad"):
        result = _make_synthetic("--out", str(user), "--overwrite", "--size", size)
        assert result.returncode == 2 and result.stderr.startswith("error: "), result.stderr
        assert "Traceback" not in result.stderr
    result = _make_synthetic("--out", str(user), "--overwrite", "--num-train", "1")
    assert result.returncode == 2 and "only a synthetic dataset" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert _tree(user) == before and not (tmp_path / "thesis.partial").exists()

    # A real synthetic dataset with one foreign file in it, or a forged synthetic.json:
    # refused too. Each case is its own folder, generated inside the test.
    cases = {
        "extra file": lambda root: (root / "trainval" / "notes.txt").write_text("mine"),
        "extra folder": lambda root: (root / "results").mkdir(),
        "forged record": lambda root: (root / "synthetic.json").write_text('{"generator": "x"}'),
        "no record": lambda root: (root / "synthetic.json").unlink(),
        "linked frame": lambda root: (root / "test" / "masks" / "000009.png").symlink_to(
            user / "chapter" / "draft.tex"
        ),
    }
    for case, spoil in cases.items():
        root = generate_dataset(tmp_path / case, num_train=1, num_test=1, size=32, progress=False)
        spoil(root)
        kept = _tree(root)
        with pytest.raises(DataError, match="only a synthetic dataset") as error:
            generate_dataset(root, num_train=1, num_test=1, size=32, overwrite=True)
        assert "\n" not in str(error.value), case
        assert _tree(root) == kept, case
    assert _tree(user) == before

    # A staging folder that is not the generator's is not removed either.
    (tmp_path / "new.partial").mkdir()
    (tmp_path / "new.partial" / "keep.txt").write_text("mine")
    with pytest.raises(DataError, match="staging folder"):
        generate_dataset(tmp_path / "new", num_train=1, num_test=1, size=32)
    assert (tmp_path / "new.partial" / "keep.txt").read_text() == "mine"


def test_overwrite_replaces_an_earlier_synthetic_dataset_after_checking_arguments(
    tmp_path: Path,
):
    root = generate_dataset(tmp_path / "synth", num_train=2, num_test=1, size=32, seed=1)
    first = _tree(root)
    with pytest.raises(DataError, match="must be >= 32"):
        generate_dataset(root, num_train=2, num_test=1, size=8, overwrite=True)
    with pytest.raises(DataError, match="seed=-1"):
        generate_dataset(root, num_train=2, num_test=1, size=32, seed=-1, overwrite=True)
    assert _tree(root) == first  # the refusals came before any removal
    # An interrupted staging folder of the generator's own is cleared.
    staging = generate_dataset(tmp_path / "synth.partial", num_train=1, num_test=1, size=32)
    (staging / "trainval" / "images" / "000000.png").unlink()
    generate_dataset(root, num_train=1, num_test=1, size=40, seed=2, overwrite=True)
    assert json.loads((root / "synthetic.json").read_text())["height"] == 40
    assert len(_files(root)) == 4 and not staging.exists()
