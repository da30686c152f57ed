"""The yardstick for :mod:`lrrnet.metrics`: a plain per-threshold implementation written the
way the field's evaluation code is, timed against :class:`lrrnet.metrics.MetricAccumulator`.

The plain implementation uses scikit-image labels and regionprops and makes one thresholded
pass per ROC threshold per image; it is a reference to check against and to time, never a
code path. :func:`time_end_to_end` times ``cal_from_mask.py`` against it on saved files, each
in a fresh interpreter. What ``tools/benchmark_metrics.py`` runs.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import scipy.io
from skimage import measure

from lrrnet.metrics import MetricAccumulator


def synthetic_pair(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """A mask with 1–4 small elliptic targets and a plausible probability map for it.

    The map has smooth low clutter, most targets (some dim or missed), and a few bright
    false blobs, so every branch of the matching and the ROC is exercised.
    """
    mask = np.zeros((size, size), np.uint8)
    prob = np.zeros((size, size), np.float32)
    for _ in range(rng.integers(1, 5)):
        centre = tuple(int(c) for c in rng.integers(8, size - 8, size=2))
        axes = tuple(int(a) for a in rng.integers(1, 6, size=2))
        cv2.ellipse(mask, centre, axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
        if rng.random() < 0.85:  # detected, with some shift and blur
            shifted = (centre[0] + int(rng.integers(-2, 3)), centre[1] + int(rng.integers(-2, 3)))
            cv2.ellipse(prob, shifted, axes, 0.0, 0, 360, float(rng.uniform(0.3, 1.0)), -1)
    for _ in range(rng.integers(0, 4)):  # false alarms
        centre = tuple(int(c) for c in rng.integers(0, size, size=2))
        cv2.circle(prob, centre, int(rng.integers(1, 4)), float(rng.uniform(0.2, 0.9)), -1)
    clutter = cv2.GaussianBlur(rng.random((size, size)).astype(np.float32), (0, 0), 3) * 0.2
    prob = cv2.GaussianBlur(prob, (0, 0), 1.0) + clutter
    return np.clip(prob, 0.0, 1.0), mask.astype(bool)


def reference_metrics(pairs: list[tuple[np.ndarray, np.ndarray]]) -> dict:
    """IoU, nIoU, Pd, Fa and AUC as docs/metrics.md ("Definitions") states them, computed
    the plain way: 201 thresholded passes, regionprops loops."""
    thresholds = np.arange(201) / 200
    tp = fp = fn = 0
    ious = []
    matched = n_targets = fa_pixels = n_pixels = 0
    detected = np.zeros(201)
    false_positive = np.zeros(201)
    n_background = 0
    for prob, mask in pairs:
        prob = prob.astype(np.float64)
        positive = prob > 0.5
        image_tp = int(np.sum(positive & mask))
        image_fp = int(np.sum(positive & ~mask))
        image_fn = int(np.sum(~positive & mask))
        tp, fp, fn = tp + image_tp, fp + image_fp, fn + image_fn
        union = image_tp + image_fp + image_fn
        ious.append(image_tp / union if union else 1.0)

        target_labels = measure.label(mask, connectivity=2)
        targets = measure.regionprops(target_labels)
        predicted = measure.regionprops(measure.label(positive, connectivity=2))
        for target in targets:
            for index, candidate in enumerate(predicted):
                distance = np.linalg.norm(np.array(target.centroid) - np.array(candidate.centroid))
                if distance < 3:
                    matched += 1
                    del predicted[index]
                    break
        fa_pixels += sum(region.area for region in predicted)
        n_targets += len(targets)
        n_pixels += mask.size

        background = ~mask
        n_background += int(background.sum())
        for i, threshold in enumerate(thresholds):
            above = prob >= threshold
            false_positive[i] += np.sum(above & background)
            for target in targets:
                detected[i] += np.any(above[target_labels == target.label])
    tpr = detected / n_targets
    fpr = false_positive / n_background
    order = np.lexsort((tpr, fpr))
    return {
        "miou": tp / (tp + fp + fn),
        "niou": float(np.mean(ious)),
        "pd": matched / n_targets,
        "fa": fa_pixels / n_pixels,
        "auc": float(np.trapezoid(tpr[order], fpr[order])),
    }


def accumulator_metrics(pairs: list[tuple[np.ndarray, np.ndarray]]) -> dict:
    """The same pairs scored by :class:`~lrrnet.metrics.MetricAccumulator` (threshold 0.5,
    standard protocol)."""
    metrics = MetricAccumulator(threshold=0.5, protocol="standard")
    for prob, mask in pairs:
        metrics.update(prob, mask)
    return metrics.compute()


def compare_metrics(
    num: int = 200, reference_num: int = 10, size: int = 512, seed: int = 0
) -> dict[str, Any]:
    """Scores ``num`` seeded :func:`synthetic_pair` pairs with the accumulator and the first
    ``reference_num`` of them with :func:`reference_metrics`.

    Returns:
        ``fast`` (the accumulator's metrics on all pairs), ``reference`` (the reference's on
        the subset), ``fast_s_per_frame`` and ``reference_s_per_frame`` (seconds per frame
        of each, the reference's extrapolated from the subset), ``worst`` (the largest
        difference of the two on the subset), ``num`` and ``reference_num`` (the counts
        scored).
    """
    rng = np.random.default_rng(seed)
    pairs = [synthetic_pair(rng, size) for _ in range(num)]
    subset = pairs[:reference_num]

    start = time.perf_counter()
    fast = accumulator_metrics(pairs)
    fast_per_frame = (time.perf_counter() - start) / len(pairs)
    start = time.perf_counter()
    plain = reference_metrics(subset)
    plain_per_frame = (time.perf_counter() - start) / len(subset)

    on_subset = accumulator_metrics(subset)
    return {
        "fast": fast,
        "reference": plain,
        "fast_s_per_frame": fast_per_frame,
        "reference_s_per_frame": plain_per_frame,
        "worst": max(abs(on_subset[key] - plain[key]) for key in plain),
        "num": len(pairs),
        "reference_num": len(subset),
    }


def write_synthetic_folder(
    folder: str | Path, num: int = 100, size: int = 512, seed: int = 0
) -> tuple[Path, Path]:
    """Write ``num`` seeded :func:`synthetic_pair` pairs as ``cal_from_mask.py`` reads them:
    ``folder/pred/mat/<name>.mat`` (float32 ``T``, as ``inference.py`` writes) and
    ``folder/masks/<name>.png``.

    Returns:
        The prediction folder and the mask folder.
    """
    pred_dir, mask_dir = Path(folder) / "pred", Path(folder) / "masks"
    (pred_dir / "mat").mkdir(parents=True, exist_ok=True)
    mask_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for index in range(num):
        prob, mask = synthetic_pair(rng, size)
        scipy.io.savemat(str(pred_dir / "mat" / f"{index:06d}.mat"), {"T": prob})
        cv2.imwrite(str(mask_dir / f"{index:06d}.png"), mask.astype(np.uint8) * 255)
    return pred_dir, mask_dir


def reference_score_folder(pred_dir: str | Path, mask_dir: str | Path) -> dict:
    """The original evaluation end to end: read every ``pred_dir/mat/<name>.mat`` and its
    mask ``mask_dir/<name>.png``, then :func:`reference_metrics` on all of them."""
    pairs = []
    for path in sorted((Path(pred_dir) / "mat").glob("*.mat")):
        prob = scipy.io.loadmat(str(path))["T"]
        mask = cv2.imread(str(Path(mask_dir) / f"{path.stem}.png"), cv2.IMREAD_GRAYSCALE) > 0
        pairs.append((prob, mask))
    return reference_metrics(pairs)


def time_end_to_end(
    num: int = 100,
    size: int = 512,
    seed: int = 0,
    cal_from_mask: str | Path = "cal_from_mask.py",
    repeats: int = 1,
    folders: tuple[str | Path, str | Path] | None = None,
    script_options: Sequence[str] = (),
) -> dict[str, Any]:
    """Wall-clock seconds of ``cal_from_mask.py`` and of :func:`reference_score_folder`, each
    a fresh interpreter (imports, reading, scoring and, for the script, its report files), on
    ``num`` pairs written to a temporary folder, or on existing ``folders``.

    Args:
        cal_from_mask: the script to time; another checkout's runs with that checkout's
            ``lrrnet`` (its folder goes first on ``PYTHONPATH``).
        repeats: runs of each, interleaved; the fastest counts.
        folders: ``(results folder, mask folder)`` to score instead of synthetic pairs: a
            results folder of ``inference.py`` (maps in ``mat/``) and ``<name>.png`` masks.
        script_options: more arguments for the script (e.g. ``--no-plots``).

    Returns:
        ``script_s``, ``reference_s`` (the fastest runs' wall-clock seconds),
        ``script_cpu_s``, ``reference_cpu_s`` (the least CPU seconds, user + system, which
        other jobs on the machine inflate less), ``script_runs``, ``reference_runs`` (every
        run's wall-clock seconds), ``num`` and ``size``.
    """
    script = Path(cal_from_mask).resolve()
    environment = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(script.parent), os.environ.get("PYTHONPATH", "")]),
    }
    with tempfile.TemporaryDirectory() as folder:
        if folders is None:
            pred_dir, mask_dir = write_synthetic_folder(folder, num, size, seed)
        else:
            pred_dir, mask_dir = (Path(f) for f in folders)
            num = len(list((pred_dir / "mat").glob("*.mat")))
        commands = {
            "script": [
                sys.executable,
                str(script),
                "--pred",
                str(pred_dir),
                "--masks",
                str(mask_dir),
                "--json",
                str(Path(folder) / "report" / "metrics.json"),
                *script_options,
            ],
            "reference": [
                sys.executable,
                "-c",
                "import sys; from lrrnet.engine.metrics_reference import reference_score_folder;"
                " print(reference_score_folder(sys.argv[1], sys.argv[2]))",
                str(pred_dir),
                str(mask_dir),
            ],
        }
        runs: dict[str, list[float]] = {name: [] for name in commands}
        cpu: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(repeats):
            for name, command in commands.items():
                before = resource.getrusage(resource.RUSAGE_CHILDREN)
                start = time.perf_counter()
                subprocess.run(command, check=True, capture_output=True, env=environment)
                runs[name].append(time.perf_counter() - start)
                after = resource.getrusage(resource.RUSAGE_CHILDREN)
                cpu[name].append(
                    after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
                )
    return {
        "script_s": min(runs["script"]),
        "reference_s": min(runs["reference"]),
        "script_cpu_s": min(cpu["script"]),
        "reference_cpu_s": min(cpu["reference"]),
        "script_runs": runs["script"],
        "reference_runs": runs["reference"],
        "num": num,
        "size": size if folders is None else None,
    }
