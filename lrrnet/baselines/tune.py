"""Choosing a classical baseline's parameters on a validation split, never on test.

Each frame's response is computed once per structural setting (the top-hat's element
size, Max-Median's line length; one setting for IPI, MPCM and PSTNN); every threshold rule
is then swept on it by counting pixels above each threshold
(:func:`lrrnet.baselines.threshold.counts_above`), so a sweep of dozens of thresholds
costs about one extra pass over the frame. The choice maximises IoU (ΣTP / Σ(TP+FP+FN),
the field's "mIoU") over both rules: a fixed gain and the per-frame ``mean + k·std``.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lrrnet.baselines.ipi import ipi_response
from lrrnet.baselines.maxmedian import max_median_response
from lrrnet.baselines.mpcm import mpcm_response
from lrrnet.baselines.pool import check_workers, ordered_map
from lrrnet.baselines.pstnn import pstnn_response
from lrrnet.baselines.threshold import adaptive_threshold, counts_above, response_to_map
from lrrnet.baselines.tophat import tophat_response
from lrrnet.data.layouts import Sample
from lrrnet.data.transforms import resize_map
from lrrnet.data.validation import read_sample
from lrrnet.errors import ConfigError, DataError
from lrrnet.metrics import MetricAccumulator
from lrrnet.progress import Progress

logger = logging.getLogger(__name__)

RESPONSES: dict[str, Callable[..., np.ndarray]] = {
    "tophat": tophat_response,
    "maxmedian": max_median_response,
    "ipi": ipi_response,
    "mpcm": mpcm_response,
    "pstnn": pstnn_response,
}
# Structural settings tried, each one a new response per frame. The filters' widths are
# cheap to vary; IPI keeps Gao et al.'s patch 50 / step 10 (a second setting would double
# a cost of seconds per frame), MPCM its four scales, which already span target sizes, and
# PSTNN its published setting.
STRUCTURE_GRIDS: dict[str, dict[str, tuple]] = {
    "tophat": {"size": (3, 5, 7, 9, 11, 15, 21)},
    "maxmedian": {"size": (3, 5, 7, 9, 11, 15, 21)},
    "ipi": {},
    "mpcm": {},
    "pstnn": {},
}
# Fixed gains 1 … 128 (a target is r > 0.5 / gain) and per-frame multipliers k.
GAINS = tuple(float(2.0**e) for e in np.arange(0.0, 7.25, 0.25))
KS = (0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 12.0, 15.0, 20.0, 25.0, 30.0, 40.0)


@dataclass
class Choice:
    """One candidate: structural parameters plus a gain or a k, and its val IoU."""

    params: dict[str, Any]
    iou: float


@dataclass
class TuneResult:
    """What tuning chose and how it scored on the validation split.

    Attributes:
        best: the chosen parameters (structural ones and ``gain`` or ``k``) and val IoU.
        best_per_rule: the best fixed-gain and the best adaptive candidate.
        val_metrics: every metric of the choice on val (standard protocol, threshold 0.5).
        n_images: validation frames used.
    """

    best: Choice
    best_per_rule: dict[str, Choice] = field(default_factory=dict)
    val_metrics: dict[str, Any] = field(default_factory=dict)
    n_images: int = 0


def _structures(method: str, fixed: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every structural setting to try; parameters given by the user are not varied."""
    grid = {name: values for name, values in STRUCTURE_GRIDS[method].items() if name not in fixed}
    names = list(grid)
    return [
        dict(fixed) | dict(zip(names, values, strict=True))
        for values in itertools.product(*grid.values())
    ]


def _read(sample: Sample) -> tuple[np.ndarray, np.ndarray]:
    image, mask, problems = read_sample(sample)
    if problems:
        raise DataError("; ".join(problems))
    return image, mask


def _response(job: tuple[str, dict[str, Any], np.ndarray, tuple[int, int]]) -> np.ndarray:
    """One frame's response at its mask's resolution (module level, for worker processes)."""
    method, structure, image, mask_shape = job
    # The mask's resolution is authoritative (as in scoring): resize the response.
    return resize_map(RESPONSES[method](image, **structure), mask_shape)


def tune_baseline(
    method: str,
    samples: Sequence[Sample],
    fixed: Mapping[str, Any] | None = None,
    progress: bool = True,
    workers: int = 1,
) -> TuneResult:
    """Choose a baseline's parameters by val IoU over structures × threshold rules.

    Args:
        method: a key of :data:`RESPONSES`.
        samples: the validation split (with masks).
        fixed: parameters not to tune (e.g. ``shape``, or ``size`` to keep one size); a
            ``gain`` or ``k`` here is rejected, since thresholds are what is tuned.
        progress: show progress.
        workers: frames whose response is computed at once, each in its own process
            (1: in this one); the choice does not depend on it.

    Returns:
        The :class:`TuneResult`.

    Raises:
        ConfigError: an unknown method, a threshold given in ``fixed``, or ``workers`` < 1.
        DataError: the split is empty or a frame cannot be read.
    """
    if method not in RESPONSES:
        raise ConfigError(f"unknown baseline {method!r}; choose one of {sorted(RESPONSES)}")
    fixed = dict(fixed or {})
    if {"gain", "k"} & set(fixed):
        raise ConfigError("--tune chooses gain and k; do not pass them with --param")
    check_workers(workers)
    if not samples:
        raise DataError("validation split is empty: nothing to tune on")
    gain_thresholds = 0.5 / np.asarray(GAINS)
    frames = [_read(sample) for sample in samples]
    best_responses: list[np.ndarray] = []
    best: Choice | None = None
    best_per_rule: dict[str, Choice] = {}
    structures = _structures(method, fixed)
    bar = Progress(len(structures) * len(frames), f"tune {method}", enabled=progress)
    for structure in structures:
        totals = {"gain": np.zeros((3, len(GAINS))), "k": np.zeros((3, len(KS)))}
        responses = []
        jobs = [(method, structure, image, mask.shape) for image, mask in frames]
        for response, (_, mask) in zip(ordered_map(_response, jobs, workers), frames, strict=True):
            responses.append(response)
            adaptive = np.array([adaptive_threshold(response, k) for k in KS])
            for rule, thresholds in (("gain", gain_thresholds), ("k", adaptive)):
                positives, true_positives, targets = counts_above(response, mask, thresholds)
                totals[rule] += np.stack(
                    [positives, true_positives, np.full_like(positives, targets)]
                )
            bar.update()
        improved = False
        for rule, values in (("gain", GAINS), ("k", KS)):
            positives, true_positives, targets = totals[rule]
            union = positives + targets - true_positives
            ious = np.divide(true_positives, union, out=np.zeros_like(union), where=union > 0)
            index = int(np.argmax(ious))
            candidate = Choice(structure | {rule: values[index]}, float(ious[index]))
            logger.info(
                "%s %s: best %s=%g, val IoU %.4f",
                method,
                structure,
                rule,
                values[index],
                ious[index],
            )
            if rule not in best_per_rule or candidate.iou > best_per_rule[rule].iou:
                best_per_rule[rule] = candidate
            if best is None or candidate.iou > best.iou:
                best, improved = candidate, True
        if improved:
            best_responses = responses
    bar.close()

    metrics = MetricAccumulator()
    threshold_params = {key: best.params[key] for key in ("gain", "k") if key in best.params}
    for response, (_, mask) in zip(best_responses, frames, strict=True):
        metrics.update(response_to_map(response, **threshold_params), mask)
    return TuneResult(best, best_per_rule, metrics.compute(), len(frames))
