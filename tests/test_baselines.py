"""Classical baselines: top-hat, robust PCA, IPI, and the tools/baselines.py script."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from lrrnet.baselines import (
    build_patch_image,
    ipi,
    parse_params,
    reconstruct_from_patches,
    rpca_ialm,
    run_baseline_on_files,
    white_tophat,
)
from lrrnet.data.io import read_prediction, write_prediction
from lrrnet.errors import ConfigError, DataError

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tools" / "baselines.py"


# --- top-hat ---------------------------------------------------------------------------


def _tophat_scene() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A ramp background, a 40×40 plateau brighter than the target, and a 3×3 target.

    Returns the image and the boolean masks of the target, the plateau, and the plateau's
    interior (the plateau shrunk by the element size on every side).
    """
    height, width = 96, 96
    _, cols = np.mgrid[:height, :width]
    image = 0.1 + 0.002 * cols  # a linear ramp: the opening rebuilds it exactly
    plateau = np.zeros((height, width), dtype=bool)
    plateau[40:80, 40:80] = True
    interior = np.zeros_like(plateau)
    interior[49:71, 49:71] = True
    target = np.zeros_like(plateau)
    target[15:18, 20:23] = True
    image[plateau] += 0.6  # brighter in absolute terms than the target below
    image[target] += 0.3
    return image.astype(np.float32), target, plateau, interior


@pytest.mark.parametrize("shape", ["disc", "square"])
def test_tophat_finds_small_target_and_ignores_plateau(shape: str) -> None:
    image, target, plateau, interior = _tophat_scene()
    response = white_tophat(image, size=9, shape=shape)
    assert response.dtype == np.float32 and response.shape == image.shape
    assert response.min() >= 0.0 and response.max() <= 1.0
    # A disc cannot reach into the square plateau's corners, so the plateau outline may
    # respond there; away from the outline the target must be the strongest response.
    outline = cv2.dilate(plateau.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
    outline &= ~interior
    away = np.where(outline, -1.0, response)
    assert target[np.unravel_index(np.argmax(away), away.shape)]
    detected = response > 0.15  # half the target's contrast
    assert detected[target].all()
    assert np.abs(response[interior]).max() < 1e-6
    # The plateau is brighter than the target, yet its interior is not detected at all.
    assert image[interior].min() > image[target].max()


def test_tophat_square_element_opens_a_square_plateau_exactly() -> None:
    image, target, _, _ = _tophat_scene()
    response = white_tophat(image, size=9, shape="square")
    assert target[np.unravel_index(np.argmax(response), response.shape)]
    # A flat element cannot follow the ramp where it meets a step (the plateau's edges,
    # the image border): there the response is at most the ramp's rise across the element.
    assert np.abs(response[~target]).max() <= 0.002 * 9


def test_tophat_gain_scales_and_clips() -> None:
    image, target, _, _ = _tophat_scene()
    plain = white_tophat(image, size=9)
    doubled = white_tophat(image, size=9, gain=2.0)
    np.testing.assert_allclose(doubled[target], np.minimum(2 * plain[target], 1), atol=1e-6)
    assert white_tophat(image, size=9, gain=10.0).max() == 1.0


@pytest.mark.parametrize(
    ("params", "word"), [({"size": 0}, "size"), ({"shape": "star"}, "shape"), ({"gain": 0}, "gain")]
)
def test_tophat_rejects_bad_parameters(params: dict, word: str) -> None:
    with pytest.raises(ConfigError, match=word):
        white_tophat(np.zeros((8, 8)), **params)


# --- patch image ------------------------------------------------------------------------


def test_patch_image_covers_borders_and_round_trips() -> None:
    # 47×53 with patch 20 step 10: the step divides neither 27 nor 33, so the last windows
    # must be the extra ones flush with the bottom and right borders.
    image = np.random.default_rng(0).random((47, 53))
    patch_image, positions = build_patch_image(image, patch=20, step=10)
    rows, cols = np.unique(positions[:, 0]), np.unique(positions[:, 1])
    assert rows.tolist() == [0, 10, 20, 27] and cols.tolist() == [0, 10, 20, 30, 33]
    assert patch_image.shape == (400, len(rows) * len(cols))
    top, left = positions[7]
    np.testing.assert_array_equal(
        patch_image[:, 7], image[top : top + 20, left : left + 20].ravel()
    )
    for reduce in ("median", "mean"):
        rebuilt = reconstruct_from_patches(patch_image, positions, image.shape, 20, reduce=reduce)
        np.testing.assert_allclose(rebuilt, image, atol=1e-6)


def test_patch_image_round_trip_on_constant_image() -> None:
    image = np.full((30, 41), 0.37)
    patch_image, positions = build_patch_image(image, patch=12, step=5)
    rebuilt = reconstruct_from_patches(patch_image, positions, image.shape, 12)
    np.testing.assert_allclose(rebuilt, 0.37, atol=1e-6)


def test_median_reconstruction_matches_brute_force() -> None:
    rng = np.random.default_rng(1)
    shape, patch = (23, 19), 8
    _, positions = build_patch_image(np.zeros(shape), patch=patch, step=3)
    values = rng.standard_normal((patch * patch, len(positions)))
    rebuilt = reconstruct_from_patches(values, positions, shape, patch, reduce="median")
    expected = np.zeros(shape)
    for row in range(shape[0]):
        for col in range(shape[1]):
            seen = [
                values[(row - top) * patch + (col - left), index]
                for index, (top, left) in enumerate(positions)
                if top <= row < top + patch and left <= col < left + patch
            ]
            expected[row, col] = np.median(seen)
    np.testing.assert_allclose(rebuilt, expected, atol=1e-5)


# --- robust PCA -------------------------------------------------------------------------


def _planted(rows: int = 100, cols: int = 80, rank: int = 3, density: float = 0.05):
    rng = np.random.default_rng(2)
    low_rank = rng.standard_normal((rows, rank)) @ rng.standard_normal((rank, cols))
    sparse = np.zeros((rows, cols))
    spikes = rng.random((rows, cols)) < density
    sparse[spikes] = rng.uniform(-10, 10, size=int(spikes.sum()))
    return low_rank, sparse


@pytest.mark.parametrize("svd", ["auto", "full", "gram", "partial"])
def test_rpca_recovers_planted_low_rank_plus_sparse(svd: str) -> None:
    low_rank, sparse = _planted()
    recovered_low_rank, recovered_sparse, n_iter = rpca_ialm(low_rank + sparse, svd=svd)
    assert 1 < n_iter < 500
    assert np.linalg.norm(recovered_low_rank - low_rank) / np.linalg.norm(low_rank) < 1e-3
    assert np.linalg.norm(recovered_sparse - sparse) / np.linalg.norm(sparse) < 1e-3
    assert np.linalg.matrix_rank(recovered_low_rank, tol=1e-6 * np.abs(low_rank).max()) == 3


def test_rpca_svd_routes_agree_on_a_high_rank_patch_image() -> None:
    # A noisy frame keeps the rank high, so "auto" leaves the partial SVD for the Gram route.
    rng = np.random.default_rng(3)
    image = 0.5 + 0.05 * rng.standard_normal((40, 40))
    patch_image, _ = build_patch_image(image, patch=10, step=3)
    full = rpca_ialm(patch_image, svd="full")
    fast = rpca_ialm(patch_image, svd="auto")
    assert fast[2] == full[2]
    for exact, approx in zip(full[:2], fast[:2], strict=True):
        assert np.linalg.norm(approx - exact) / np.linalg.norm(exact) < 1e-6


# --- IPI --------------------------------------------------------------------------------


def test_ipi_puts_its_peak_on_the_planted_target() -> None:
    size = 96
    rows, cols = np.mgrid[:size, :size].astype(np.float64)
    background = 0.35 + 0.15 * np.sin(rows / 17.0) * np.cos(cols / 23.0) + 0.001 * cols
    center = (61.0, 34.0)
    target = 0.25 * np.exp(-((rows - center[0]) ** 2 + (cols - center[1]) ** 2) / (2 * 1.2**2))
    image = background + target + 0.003 * np.random.default_rng(4).standard_normal(rows.shape)
    response = ipi(image, patch=30, step=10)
    assert response.dtype == np.float32 and response.shape == image.shape
    assert response.min() >= 0.0 and response.max() <= 1.0
    peak = np.unravel_index(np.argmax(response), response.shape)
    assert np.hypot(peak[0] - center[0], peak[1] - center[1]) <= 1.5
    # The smooth background is absorbed by the low-rank part.
    far = np.hypot(rows - center[0], cols - center[1]) > 6
    assert response[far].max() < 0.25 * response.max()


def test_ipi_shrinks_the_patch_for_small_images() -> None:
    image = np.full((20, 31), 0.2)
    image[9, 15] = 0.9
    response = ipi(image)  # patch 50 > 20: shrunk to 20
    assert response.shape == (20, 31)
    assert np.unravel_index(np.argmax(response), response.shape) == (9, 15)


def test_unknown_method_and_parameter_are_refused_before_any_image(tmp_path: Path) -> None:
    frames = [("a", tmp_path / "never_read.png")]
    with pytest.raises(ConfigError, match="unknown baseline"):
        run_baseline_on_files(frames, "canny", tmp_path / "out")
    with pytest.raises(ConfigError, match="radius"):
        run_baseline_on_files(frames, "tophat", tmp_path / "out", params={"radius": 3})
    assert not (tmp_path / "out").exists()


def test_ordered_map_keeps_the_order_and_raises_an_item_error() -> None:
    import math

    from lrrnet.baselines.pool import ordered_map

    assert list(ordered_map(math.sqrt, [9.0, 4.0, 1.0], workers=2)) == [3.0, 2.0, 1.0]
    with pytest.raises(ValueError, match="math domain"):
        list(ordered_map(math.sqrt, [4.0, -1.0], workers=2))
    for workers in (0, True, 2.0):
        with pytest.raises(ConfigError, match="workers must be a positive integer"):
            list(ordered_map(math.sqrt, [1.0], workers=workers))


def test_workers_write_the_same_maps_and_failures_as_one_process(tmp_path: Path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    for index, spot in enumerate(((5, 6), (20, 30), (12, 3))):
        _write_frame(images / f"f{index}.png", spot)
    (images / "f3.png").write_bytes(b"not a png at all")
    frames = [(f"f{i}", images / f"f{i}.png") for i in range(4)]
    params = {"patch": 16, "step": 8, "k": 3.0}
    runs = {
        workers: run_baseline_on_files(
            frames, "ipi", tmp_path / f"out{workers}", params=params, workers=workers
        )
        for workers in (1, 2)
    }
    assert runs[2].written == runs[1].written == ["f0", "f1", "f2"]
    assert "in the method alone per worker, 2 workers)" in runs[2].summary("ipi")
    assert "in the method alone)" in runs[1].summary("ipi")
    assert len(runs[2].failures) == 1 and runs[2].failures[0].startswith("f3:")
    for name in runs[1].written:
        np.testing.assert_array_equal(
            read_prediction(tmp_path / "out2" / "mat" / f"{name}.mat"),
            read_prediction(tmp_path / "out1" / "mat" / f"{name}.mat"),
        )
    with pytest.raises(ConfigError, match="workers"):
        run_baseline_on_files(frames, "ipi", tmp_path / "out0", params=params, workers=0)
    assert not (tmp_path / "out0").exists()


def test_parse_params_reads_literals_and_words() -> None:
    assert parse_params(["size=7", "shape=square", "lam=None", "gain=2.5"]) == {
        "size": 7,
        "shape": "square",
        "lam": None,
        "gain": 2.5,
    }
    with pytest.raises(ConfigError):
        parse_params(["size"])


# --- tools/baselines.py -----------------------------------------------------------------


def _run_script(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=120
    )


def _write_frame(path: Path, spot: tuple[int, int]) -> None:
    frame = np.full((32, 40), 40, dtype=np.uint8)
    frame[spot[0] : spot[0] + 2, spot[1] : spot[1] + 2] = 220
    cv2.imwrite(str(path), frame)


def test_script_images_mode_writes_maps_and_names_a_corrupt_image(tmp_path: Path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    _write_frame(images / "a.png", (5, 6))
    _write_frame(images / "c.png", (20, 30))
    (images / "b.png").write_bytes(b"not a png at all")
    out = tmp_path / "out"
    # An earlier run's map of b (now unreadable) must not survive to be scored as new.
    write_prediction(out, "b", np.full((32, 40), 0.9, np.float32))
    (out / "notes.txt").write_text("kept")
    result = _run_script("--images", str(images), "--method", "tophat", "--out", str(out))
    assert result.returncode != 0
    assert "b.png" in result.stderr and "error:" in result.stderr
    assert "Traceback" not in result.stderr
    for name, spot in (("a", (5, 6)), ("c", (20, 30))):
        assert (out / "img" / f"{name}.png").is_file()
        prob = read_prediction(out / "mat" / f"{name}.mat")
        assert prob.shape == (32, 40)
        assert np.unravel_index(np.argmax(prob), prob.shape) in {
            (spot[0] + dy, spot[1] + dx) for dy in (0, 1) for dx in (0, 1)
        }
    assert not (out / "img" / "b.png").exists() and not (out / "mat" / "b.mat").exists()
    assert (out / "notes.txt").read_text() == "kept"  # only maps are cleared
    assert "images/s" in result.stdout.splitlines()[-1]
    # Not a terminal here: the progress is a log line with the count and the rate.
    assert re.search(r"tophat: 3/3 img in [0-9.]+ s", result.stderr), result.stderr


def test_script_reports_bad_parameter_without_traceback(tmp_path: Path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    _write_frame(images / "a.png", (5, 6))
    result = _run_script(
        "--images", str(images), "--method", "ipi", "--param", "radius=3", "--out", str(tmp_path)
    )
    assert result.returncode == 2
    assert result.stderr.startswith("error:") and "radius" in result.stderr
    assert "Traceback" not in result.stderr
    result = _run_script(
        "--images", str(images), "--method", "ipi", "--workers", "0", "--out", str(tmp_path)
    )
    assert result.returncode == 2 and "workers must be a positive integer" in result.stderr


def test_script_config_mode_runs_on_the_test_split(tmp_path: Path) -> None:
    root = tmp_path / "data"
    for split, names in (("trainval", ["t1", "t2"]), ("test", ["s1", "s2"])):
        (root / split / "images").mkdir(parents=True)
        (root / split / "masks").mkdir(parents=True)
        for name in names:
            _write_frame(root / split / "images" / f"{name}.png", (8, 8))
            mask = np.zeros((32, 40), dtype=np.uint8)
            mask[8:10, 8:10] = 255
            cv2.imwrite(str(root / split / "masks" / f"{name}.png"), mask)
    out = tmp_path / "out"
    result = _run_script(
        "synthetic",
        "--method",
        "ipi",
        "--set",
        f"data.root={root}",
        "--set",
        "data.generate=False",
        "--param",
        "patch=16",
        "--param",
        "step=8",
        "--out",
        str(out),
    )
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (out / "mat").iterdir()) == ["s1.mat", "s2.mat"]
    prob = read_prediction(out / "mat" / "s1.mat")
    assert np.unravel_index(np.argmax(prob), prob.shape) in {(8, 8), (8, 9), (9, 8), (9, 9)}


def test_script_refuses_an_output_place_that_cannot_be_written_before_any_frame(
    tmp_path: Path, capsys, script_logging, monkeypatch
) -> None:
    from conftest import load_tool

    images = tmp_path / "images"
    images.mkdir()
    _write_frame(images / "a.png", (5, 6))
    notes = tmp_path / "notes.txt"
    notes.write_text("a user's")
    tool = load_tool("baselines")
    for name in ("run_baseline_on_folder", "run_baseline_on_config", "splits_from_config"):
        monkeypatch.setattr(tool, name, lambda *a, _name=name, **k: pytest.fail(f"{_name} ran"))
    out = notes / "x"
    assert tool.main(["--images", str(images), "--method", "tophat", "--out", str(out)]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last == f"error: --out {out}: {notes} is a file, not a folder"
    # Config mode, --tune too: refused before the validation split is read; the default
    # folder is named by the config key that placed it.
    config = ["synthetic", "--method", "tophat", "--tune", "--set", f"paths.results='{notes}'"]
    assert tool.main(config) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert (
        last
        == f"error: paths.results {notes / 'synthetic_tophat'}: {notes} is a file, not a folder"
    )
    # The library refuses it too, before a frame is read.
    with pytest.raises(DataError, match="is a file, not a folder"):
        run_baseline_on_files([("a", tmp_path / "missing.png")], "tophat", out)
    assert notes.read_text() == "a user's"


# --- threshold rules and tuning on validation -----------------------------------------------


def test_adaptive_map_detects_exactly_above_mean_plus_k_std() -> None:
    from lrrnet.baselines.threshold import response_to_map

    rng = np.random.default_rng(0)
    response = rng.random((20, 30)).astype(np.float32) ** 4
    for k in (0.0, 1.0, 3.0):
        threshold = response.mean() + k * response.std()
        detected = response_to_map(response, k=k) > 0.5
        np.testing.assert_array_equal(detected, response > threshold)
    # The fixed gain is unchanged: clip(gain · r).
    np.testing.assert_allclose(response_to_map(response, gain=3.0), np.clip(3 * response, 0, 1))
    assert not response_to_map(np.zeros((4, 4)), k=2.0).any()  # nothing stands out
    with pytest.raises(ConfigError, match="k must be >= 0"):
        response_to_map(response, k=-1.0)
    # Through the detectors' signatures too.
    image = np.full((24, 24), 0.2, np.float32)
    image[10:12, 10:12] = 0.6
    assert (white_tophat(image, size=5, k=3.0) > 0.5).sum() == 4


def test_counts_above_match_brute_force() -> None:
    from lrrnet.baselines.threshold import counts_above

    rng = np.random.default_rng(1)
    response = rng.random((16, 16)).astype(np.float32)
    mask = rng.random((16, 16)) > 0.8
    thresholds = np.array([0.0, 0.25, 0.5, float(response[3, 3]), 0.99])
    positives, true_positives, targets = counts_above(response, mask, thresholds)
    for index, threshold in enumerate(thresholds):
        assert positives[index] == (response > threshold).sum()
        assert true_positives[index] == ((response > threshold) & mask).sum()
    assert targets == mask.sum()


def _scene(folder: Path, name: str, seed: int, contrast: float) -> tuple[Path, Path]:
    """A noisy frame whose one 3×3 target stands ``contrast`` above it (frames differ)."""
    rng = np.random.default_rng(seed)
    frame = 60 + 8 * rng.standard_normal((40, 48))
    row, col = rng.integers(4, 34), rng.integers(4, 42)
    frame[row : row + 3, col : col + 3] += contrast
    mask = np.zeros((40, 48), np.uint8)
    mask[row : row + 3, col : col + 3] = 255
    for sub, array in (("images", np.clip(frame, 0, 255)), ("masks", mask)):
        (folder / sub).mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(folder / sub / f"{name}.png"), array.astype(np.uint8))
    return folder / "images" / f"{name}.png", folder / "masks" / f"{name}.png"


def test_tuning_chooses_the_best_candidate_and_reports_its_val_score(tmp_path: Path) -> None:
    from lrrnet.baselines.tune import GAINS, KS, tune_baseline
    from lrrnet.data import Sample
    from lrrnet.data.io import read_image, read_mask
    from lrrnet.metrics import MetricAccumulator

    # Contrast varies by a factor of 4 from frame to frame, as on real frames.
    samples = [
        Sample(f"f{i}", *_scene(tmp_path, f"f{i}", i, contrast))
        for i, contrast in enumerate((40, 80, 160, 60))
    ]
    result = tune_baseline("tophat", samples, fixed={"size": 7})
    assert result.best.params["size"] == 7 and result.n_images == 4
    assert result.val_metrics["miou"] == pytest.approx(result.best.iou, abs=1e-9)

    frames = [(read_image(s.image), read_mask(s.mask)) for s in samples]

    def val_iou(**params) -> float:
        metrics = MetricAccumulator()
        for image, mask in frames:
            metrics.update(white_tophat(image, **params), mask)
        return metrics.compute()["miou"]

    assert val_iou(**result.best.params) == pytest.approx(result.best.iou, abs=1e-9)
    for gain in GAINS[::4]:
        assert val_iou(size=7, gain=gain) <= result.best.iou + 1e-9
    for k in KS[::3]:
        assert val_iou(size=7, k=k) <= result.best.iou + 1e-9
    assert set(result.best_per_rule) == {"gain", "k"}
    with pytest.raises(ConfigError, match="chooses gain and k"):
        tune_baseline("tophat", samples, fixed={"gain": 4.0})
    in_two = tune_baseline("tophat", samples, fixed={"size": 7}, workers=2, progress=False)
    assert in_two.best == result.best and in_two.val_metrics["miou"] == result.val_metrics["miou"]


def _not_json(constant: str):
    raise AssertionError(f"{constant} is not JSON")


def test_script_tune_selects_on_val_and_writes_test_maps(tmp_path: Path) -> None:
    import json

    root = tmp_path / "data"
    for split, count in (("trainval", 10), ("test", 3)):
        for index in range(count):
            _scene(root / split, f"{split}{index}", 10 * index + len(split), 50 + 15 * index)
    out = tmp_path / "out"
    common = ["synthetic", "--method", "tophat", "--set", f"data.root={root}"]
    result = _run_script(*common, "--set", "data.generate=False", "--tune", "--out", str(out))
    assert result.returncode == 0, result.stderr
    # Strict JSON (no NaN or Infinity), as every report of the project writes it.
    record = json.loads((out / "tuning.json").read_text(), parse_constant=_not_json)
    assert record["selected_on"].startswith("holdout") and record["n_val_images"] == 1
    assert f"tophat: chose size={record['params']['size']}" in result.stdout
    assert "tophat val" in result.stdout  # the val score of the choice, as a table
    assert sorted(p.name for p in (out / "mat").iterdir()) == [
        "test0.mat",
        "test1.mat",
        "test2.mat",
    ]
    on_test = _run_script(
        *common, "--set", "data.generate=False", "--set", "data.val_split='test'", "--tune"
    )
    assert on_test.returncode == 2 and "never on test" in on_test.stderr


# --- Max-Median, MPCM and PSTNN ---------------------------------------------------------

# 64×64 frames: PSTNN's 40×40 windows would leave 4 overlapping patches, too few for a
# low-rank background, so it runs at 16×16 (16 windows) here.
NEW_METHODS = {"maxmedian": {}, "mpcm": {}, "pstnn": {"patch": 16, "step": 16}}
BLOB = (30, 37)


def _blob_frame(
    contrast: float = 0.3,
    background: str = "flat",
    center: tuple[float, float] = BLOB,
    size: int = 64,
    seed: int = 0,
) -> np.ndarray:
    """A Gaussian blob (σ 1.2 px) on a flat or a linear-gradient background, faint noise."""
    rows, cols = np.mgrid[:size, :size].astype(np.float64)
    level = 0.3 + (0.003 * cols + 0.002 * rows if background == "gradient" else 0.0)
    blob = np.exp(-((rows - center[0]) ** 2 + (cols - center[1]) ** 2) / (2 * 1.2**2))
    noise = 0.004 * np.random.default_rng(seed).standard_normal(rows.shape)
    return (level + contrast * blob + noise).astype(np.float32)


@pytest.mark.parametrize("background", ["flat", "gradient"])
@pytest.mark.parametrize("method", sorted(NEW_METHODS))
def test_new_baselines_find_the_blob_and_little_else(method: str, background: str) -> None:
    from lrrnet.baselines import BASELINES
    from lrrnet.baselines.tune import RESPONSES

    image = _blob_frame(background=background)
    params = NEW_METHODS[method]
    response = RESPONSES[method](image, **params)
    assert response.dtype == np.float32 and response.shape == image.shape
    assert response.min() >= 0.0
    assert np.unravel_index(np.argmax(response), response.shape) == BLOB
    target_map = BASELINES[method](image, k=8.0, **params)
    assert target_map.min() >= 0.0 and target_map.max() <= 1.0
    detected = target_map > 0.5
    rows, cols = np.mgrid[:64, :64]
    distance = np.hypot(rows - BLOB[0], cols - BLOB[1])
    assert detected[BLOB] and not detected[distance > 4].any()


@pytest.mark.parametrize("method", sorted(NEW_METHODS))
def test_new_baselines_detect_nothing_on_a_flat_frame(method: str) -> None:
    from lrrnet.baselines import BASELINES
    from lrrnet.baselines.tune import RESPONSES

    flat = np.full((64, 64), 0.4, np.float32)
    params = NEW_METHODS[method]
    assert np.abs(RESPONSES[method](flat, **params)).max() < 1e-6
    for rule in ({}, {"gain": 100.0}, {"k": 3.0}):
        assert not (BASELINES[method](flat, **params, **rule) > 0.5).any()


@pytest.mark.parametrize("method", sorted(NEW_METHODS))
def test_new_baselines_grow_with_the_blob_contrast(method: str) -> None:
    from lrrnet.baselines.tune import RESPONSES

    # PSTNN's first iteration must already see the blob above its threshold (pstnn.py):
    # from 0.2 on it does here.
    peaks = [
        float(RESPONSES[method](_blob_frame(contrast), **NEW_METHODS[method])[BLOB])
        for contrast in (0.2, 0.3, 0.45)
    ]
    assert 0 < peaks[0] < peaks[1] < peaks[2], peaks


@pytest.mark.parametrize("method", ["maxmedian", "mpcm"])
def test_filters_are_shift_invariant_away_from_borders(method: str) -> None:
    from lrrnet.baselines.tune import RESPONSES

    # A textured scene larger than the frame, cropped at two offsets: the response of the
    # shifted crop is the shifted response wherever neither sees the border.
    rng = np.random.default_rng(5)
    scene = cv2.GaussianBlur(rng.random((90, 90)), (0, 0), 3.0) + 0.02 * rng.random((90, 90))
    scene[40:42, 44:46] += 0.3
    shift = (5, 7)
    first = RESPONSES[method](scene[:64, :64].astype(np.float32))
    second = RESPONSES[method](
        scene[shift[0] : shift[0] + 64, shift[1] : shift[1] + 64].astype(np.float32)
    )
    margin = 16  # MPCM's widest reach: the mean filter plus 1.5 patches of 9
    rows, cols = 64 - margin - shift[0], 64 - margin - shift[1]
    np.testing.assert_allclose(
        second[margin:rows, margin:cols],
        first[margin + shift[0] : 64 - margin, margin + shift[1] : 64 - margin],
        rtol=1e-5,
        atol=1e-7,
    )
    assert second.max() > 0


def test_pstnn_peak_follows_the_blob() -> None:
    from lrrnet.baselines.pstnn import pstnn_response

    # The patch grid is fixed, so PSTNN is not shift invariant pixel for pixel; its
    # detection still moves with the target.
    for center in ((30, 37), (12, 50), (45, 20)):
        response = pstnn_response(_blob_frame(center=center, background="gradient"), 16, 16)
        assert np.unravel_index(np.argmax(response), response.shape) == center


def test_max_median_keeps_lines_and_mpcm_ignores_dark_spots() -> None:
    from lrrnet.baselines.maxmedian import max_median_response
    from lrrnet.baselines.mpcm import mpcm_response

    # A one-pixel bright line is the majority along its own direction: Max-Median puts it
    # in the background, where a plain 5×5 median would not.
    image = np.full((32, 32), 0.2, np.float32)
    image[:, 16] = 0.8
    assert max_median_response(image).max() < 1e-6
    dark = np.full((32, 32), 0.5, np.float32)
    dark[15:17, 15:17] = 0.1
    assert mpcm_response(dark).max() < 1e-6
    assert mpcm_response(dark, polarity="both").max() > 0.01


@pytest.mark.parametrize(
    ("method", "params", "word"),
    [
        ("maxmedian", {"size": 4}, "size"),
        ("mpcm", {"scales": (3, 4)}, "scale"),
        ("mpcm", {"polarity": "dark"}, "polarity"),
        ("pstnn", {"rho": 0.5}, "rho"),
        ("pstnn", {"lambda_l": 0.0}, "lambda_l"),
    ],
)
def test_new_baselines_reject_bad_parameters(method: str, params: dict, word: str) -> None:
    from lrrnet.baselines import BASELINES

    with pytest.raises(ConfigError, match=word):
        BASELINES[method](np.zeros((32, 32), np.float32), **params)


def test_runner_writes_maps_that_cal_from_mask_scores(tmp_path: Path) -> None:
    import json

    from lrrnet.data.io import read_prediction

    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir()
    masks.mkdir()
    frames = []
    for index, center in enumerate(((30, 37), (20, 20))):
        frame = _blob_frame(center=center, seed=index)
        cv2.imwrite(str(images / f"f{index}.png"), np.clip(255 * frame, 0, 255).astype(np.uint8))
        mask = np.zeros((64, 64), np.uint8)
        mask[center[0] - 1 : center[0] + 2, center[1] - 1 : center[1] + 2] = 255
        cv2.imwrite(str(masks / f"f{index}.png"), mask)
        frames.append((f"f{index}", images / f"f{index}.png"))
    for method, params in NEW_METHODS.items():
        out = tmp_path / method
        run = run_baseline_on_files(frames, method, out, params={**params, "k": 8.0})
        assert run.written == ["f0", "f1"] and not run.failures
        assert read_prediction(out / "mat" / "f0.mat").shape == (64, 64)
        assert (out / "img" / "f1.png").is_file()
    cal = ROOT / "cal_from_mask.py"
    scored = subprocess.run(
        [
            sys.executable,
            str(cal),
            "--pred",
            str(tmp_path / "mpcm"),
            "--masks",
            str(masks),
            "--json",
            str(tmp_path / "scores.json"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert scored.returncode == 0, scored.stderr
    scores = json.loads((tmp_path / "scores.json").read_text())
    assert scores["n_images"] == 2 and scores["pd"] == 1.0 and scores["miou"] > 0.3


@pytest.mark.parametrize("method", sorted(NEW_METHODS))
def test_tuning_the_new_baselines_chooses_on_val(method: str, tmp_path: Path) -> None:
    from lrrnet.baselines import BASELINES
    from lrrnet.baselines.tune import STRUCTURE_GRIDS, tune_baseline
    from lrrnet.data import Sample
    from lrrnet.data.io import read_image, read_mask
    from lrrnet.metrics import MetricAccumulator

    samples = [
        Sample(f"f{i}", *_scene(tmp_path, f"f{i}", i, contrast))
        for i, contrast in enumerate((60, 120, 90))
    ]
    fixed = {"patch": 16, "step": 16} if method == "pstnn" else {}
    result = tune_baseline(method, samples, fixed=fixed, progress=False)
    for name, values in STRUCTURE_GRIDS[method].items():
        assert result.best.params[name] in values
    assert {"gain", "k"} & set(result.best.params)
    assert result.val_metrics["miou"] == pytest.approx(result.best.iou, abs=1e-9)
    metrics = MetricAccumulator()
    for sample in samples:
        image, mask = read_image(sample.image), read_mask(sample.mask)
        metrics.update(BASELINES[method](image, **result.best.params), mask)
    assert metrics.compute()["miou"] == pytest.approx(result.best.iou, abs=1e-9)
    assert result.best.iou > 0.3


def test_script_tunes_a_new_baseline_and_lists_it(tmp_path: Path) -> None:
    import json

    root = tmp_path / "data"
    for split, count in (("trainval", 10), ("test", 2)):
        for index in range(count):
            _scene(root / split, f"{split}{index}", 10 * index + len(split), 60 + 15 * index)
    out = tmp_path / "out"
    result = _run_script(
        "synthetic",
        "--method",
        "maxmedian",
        "--set",
        f"data.root={root}",
        "--set",
        "data.generate=False",
        "--tune",
        "--out",
        str(out),
    )
    assert result.returncode == 0, result.stderr
    record = json.loads((out / "tuning.json").read_text())
    assert record["method"] == "maxmedian" and record["selected_on"].startswith("holdout")
    assert sorted(p.name for p in (out / "mat").iterdir()) == ["test0.mat", "test1.mat"]
    from lrrnet.baselines import BASELINES  # the script's --method choices

    assert {"maxmedian", "mpcm", "pstnn"} <= set(BASELINES)
