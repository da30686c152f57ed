"""The metrics of infrared small target detection, computed one image at a time.

One module for every caller (trainer, inference, ``cal_from_mask.py``, baselines,
visualisation). Definitions (docs/metrics.md, "Definitions"):

- A pixel is positive when ``p > threshold``; a mask pixel is a target when non-zero.
- **IoU** (the field's "mIoU"): ΣTP / (ΣTP + ΣFP + ΣFN) over all pixels of all images;
  **precision**, **recall** and **F1** from the same totals.
- **nIoU**: mean over images of TP / (TP + FP + FN); an image with neither target nor
  positive pixels scores 1.
- **Pd / Fa**: predicted and true positives are labelled into 8-connected components,
  numbered in row-major order of each component's first pixel (scikit-image's order). For
  each target in that order, the first still-unmatched predicted component whose centroid
  lies at Euclidean distance < 3 px is matched and removed. Pd = matched targets / targets;
  Fa = pixels of unmatched predicted components / all pixels of all images.
- **ROC / AUC**: thresholds t = i/200, i = 0…200, positive when ``p ≥ t``. TPR(t): fraction
  of targets with at least one pixel at ``p ≥ t``; FPR(t): fraction of non-target pixels at
  ``p ≥ t``. AUC: trapezoidal area under TPR against FPR sorted by FPR.

Ratios with a zero denominator: IoU, nIoU and F1 are 1 when prediction and mask are both
empty; precision (no positive pixel predicted) is 1 when there are no target pixels either,
else 0; recall (no target pixel) is 1 when nothing was predicted either, else 0. So
F1 = 2PR / (P + R) = 2TP / (2TP + FP + FN) in every case. Pd, TPR and AUC are NaN when there
is no target at all, FPR (and AUC) when there is no background pixel: there is no number to
report, and NaN shows it rather than hiding it.

Comparisons are exact: in the standard protocol a probability compares as its float64 value
with the float64 numbers ``threshold`` and ``i/200`` (float32 maps are compared in float32
against thresholds chosen to give the same answers), so a pixel at exactly 0.5 is not
positive for the binary metrics and is positive at the ROC threshold 0.5.

The ``lrrnet`` protocol reproduces the original repository's evaluation (its numbers are
what the paper reports); it differs from the standard one in four ways:

1. masks and predictions are each resized to 512×512 on their own (masks nearest-neighbour,
   predictions bilinear as float32), so every image weighs the same whatever its size, and a
   512×512 map written by the original inference scores against a 256×256 mask: the sizes
   are only compared after the resize, as the original does;
2. each prediction is divided by its own maximum before the threshold and the ROC, so any
   map with a positive maximum detects at least its brightest pixel. A map whose maximum is
   0 (or negative) is left as it is: the original divides 0 by 0 and gets NaN; we keep a
   map of zeros, which is positive at t = 0 and nowhere else;
3. an unmatched component counts as a false alarm only when no *matched* component of the
   same image has the same pixel area (the original filters false alarms by area value);
4. images without targets are left out of the ROC;
5. an image without targets counts one target for Pd: the original divides the empty mask
   by its maximum (0/0 = NaN) and casts to int64, which makes every pixel non-zero, so the
   whole image is one target centred on the image centre. It is matched by the centroid
   rule like any target (a detection within 3 px of the centre finds it), so Pd's
   denominator and ``n_targets`` grow by one per empty image. Kept because this protocol
   exists only to reproduce the original's numbers; the standard protocol has no such
   target. IoU, nIoU, P, R and F1 see the empty mask as it is.

The normalised map is float32 and, as NumPy does in the original code, compared with the
thresholds rounded to float32. Masks arrive binarised (non-zero is target), like in the
standard protocol; the original's ``mask / max`` cast to integers keeps only pixels at the
mask's maximum, which differs only for masks with several non-zero grey levels.

Everything the accumulator keeps is a sum (pixel counts, histograms of probabilities
against the 201 thresholds), so :meth:`MetricAccumulator.state` can be all-reduced with SUM
across processes and gives the single-process numbers.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from lrrnet.domains import Domain
from lrrnet.errors import ConfigError

PROTOCOLS = ("standard", "lrrnet")
# The scalar metrics of one evaluation (fractions), in the order tables and files list them.
METRIC_KEYS = ("miou", "niou", "precision", "recall", "f1", "pd", "fa", "auc")
# Those that select a checkpoint (higher is better; train.select_metric) and those that
# choose a threshold on a validation curve (eval.val_threshold).
SELECT_METRICS = ("miou", "niou", "f1", "pd", "auc")
THRESHOLD_METRICS = ("f1", "miou")
ROC_BINS = 200
ROC_THRESHOLDS = np.arange(ROC_BINS + 1, dtype=np.float64) / ROC_BINS  # exactly i/200
MATCH_DISTANCE = 3.0  # px, strict: a centroid at exactly 3 px is not a match
LRRNET_SIZE = 512

# Target-area bins for Pd by size, in pixels of the 8-connected target component (at the
# resolution the protocol scores). Upper edges from the 427 SIRST v1 masks, whose targets
# have area percentiles 5/25/50/75/95 % = 7/14/20/39/107 px: bins ≤ 9 (a 3×3 point or less),
# 10–20 (to the median), 21–40 (to the 75th percentile), 41–107 (to the 95th), > 107.
AREA_BIN_EDGES = (9, 20, 40, 107)
AREA_BIN_LABELS = ("<=9", "10-20", "21-40", "41-107", ">107")
# Thresholds of the Pd–Fa curve (0.05 … 0.95).
CURVE_THRESHOLDS = tuple(i / 20 for i in range(1, 20))
# Candidates for the threshold chosen on validation (eval.val_threshold): the curve's, and
# a finer top. A network trained with SoftIoU saturates its map, so its best cut can lie
# above 0.95 (docs/training.md, "Seeds, full-split training and the val threshold").
VAL_THRESHOLDS = (*CURVE_THRESHOLDS, 0.97, 0.98, 0.99, 0.995, 0.999)
# Per curve threshold, the sums kept: the pixel counts, nIoU sum, matches and false alarms.
_CURVE_SUMS = ("tp", "fp", "fn", "niou_sum", "n_detected", "fa_pixels")

_SCALARS = (
    "tp",
    "fp",
    "fn",
    "niou_sum",
    "n_images",
    "n_targets",
    "n_detected",
    "fa_pixels",
    "n_pixels",
)
# Histogram bin c counts values with exactly c thresholds at or below them (c = 0…201).
_HIST_LEN = ROC_BINS + 2


@dataclass
class Components:
    """8-connected components of a binary map, numbered 1…n in scikit-image's order.

    Attributes:
        labels: ``H×W`` int32, 0 outside components.
        areas: ``(n,)`` pixel counts; ``areas[k - 1]`` belongs to label k.
        centroids: ``(n, 2)`` mean (row, column) of each component's pixels.
    """

    labels: np.ndarray
    areas: np.ndarray
    centroids: np.ndarray

    @property
    def count(self) -> int:
        return len(self.areas)


def label_components(binary: np.ndarray) -> Components:
    """Label the 8-connected components of ``binary`` (``H×W``, non-zero is on).

    OpenCV's SAUF scan numbers components in raster order of their first pixel, the same
    order as ``skimage.measure.label`` (tested); its default block-based algorithm numbers
    them differently and must not be used here. Areas and centroids come from the few
    labelled pixels (OpenCV's own statistics pass over every pixel and cost more); integer
    coordinate sums are exact, so the centroids equal scikit-image's to the last bit.
    """
    binary = np.ascontiguousarray(binary, dtype=bool).view(np.uint8)
    count, labels = cv2.connectedComponentsWithAlgorithm(binary, 8, cv2.CV_32S, cv2.CCL_SAUF)
    pixels = np.flatnonzero(binary)  # faster on the uint8 map than on the int32 labels
    ids = labels.ravel()[pixels]
    areas = np.bincount(ids, minlength=count)[1:]
    rows, cols = np.divmod(pixels, labels.shape[1])
    sums = np.stack(
        [
            np.bincount(ids, weights=rows, minlength=count),
            np.bincount(ids, weights=cols, minlength=count),
        ],
        axis=1,
    )[1:]
    return Components(
        labels=labels,
        areas=areas.astype(np.int64),
        centroids=sums / np.maximum(areas, 1)[:, None],
    )


@dataclass
class ImageMatch:
    """How one image's predicted components meet its targets (ids are label values).

    Attributes:
        predicted: components of the binary prediction.
        targets: components of the mask.
        matched: (target id, predicted id) pairs, in target order.
        missed_targets: target ids without a match.
        false_alarms: unmatched predicted ids counted as false alarms.
        ignored: unmatched predicted ids not counted (``lrrnet`` area rule only).
        tp: target pixels predicted positive.
        fp: background pixels predicted positive.
        fn: target pixels predicted negative.
    """

    predicted: Components
    targets: Components
    matched: list[tuple[int, int]] = field(default_factory=list)
    missed_targets: list[int] = field(default_factory=list)
    false_alarms: list[int] = field(default_factory=list)
    ignored: list[int] = field(default_factory=list)
    tp: int = 0
    fp: int = 0
    fn: int = 0

    @property
    def iou(self) -> float:
        """This image's TP / (TP + FP + FN); 1 when prediction and mask are both empty."""
        union = self.tp + self.fp + self.fn
        return self.tp / union if union else 1.0

    @property
    def fa_pixels(self) -> int:
        """Pixels of the components counted as false alarms."""
        return int(self.predicted.areas[np.asarray(self.false_alarms, dtype=np.intp) - 1].sum())


def match_components(
    pred_binary: np.ndarray,
    mask: np.ndarray,
    *,
    area_rule: bool = False,
    targets: Components | None = None,
) -> ImageMatch:
    """Label prediction and mask and match them with the centroid rule (Pd / Fa, module docstring).

    Args:
        pred_binary: ``H×W`` positive pixels.
        mask: ``H×W`` target pixels (non-zero).
        area_rule: the original repository's false-alarm rule: an unmatched component whose
            area equals a matched component's area is not counted.
        targets: ``label_components(mask)`` when the caller has it already (matching one
            mask at several thresholds).

    Returns:
        The components, the matching and the pixel counts of this image.
    """
    pred_binary = np.asarray(pred_binary, dtype=bool)
    mask = np.asarray(mask, dtype=bool)
    if pred_binary.shape != mask.shape:
        raise ValueError(f"prediction shape {pred_binary.shape} != mask shape {mask.shape}")
    predicted = label_components(pred_binary)
    targets = label_components(mask) if targets is None else targets
    tp = int(np.count_nonzero(pred_binary & mask))
    match = ImageMatch(
        predicted=predicted,
        targets=targets,
        tp=tp,
        fp=int(np.count_nonzero(pred_binary)) - tp,
        fn=int(np.count_nonzero(mask)) - tp,
    )
    partners = _match_centroids(targets.centroids, predicted.centroids)
    for target_index, partner in enumerate(partners.tolist()):
        if partner >= 0:
            match.matched.append((target_index + 1, partner + 1))
        else:
            match.missed_targets.append(target_index + 1)
    unmatched, dropped = _unmatched(predicted.areas, partners, area_rule)
    match.ignored = [int(k) + 1 for k in dropped]
    match.false_alarms = [int(k) + 1 for k in unmatched]
    return match


def _match_centroids(target_centroids: np.ndarray, predicted_centroids: np.ndarray) -> np.ndarray:
    """The centroid rule: for each target in order, the first still-unmatched predicted
    component whose centroid lies at distance < :data:`MATCH_DISTANCE`.

    Args:
        target_centroids: ``(T, 2)`` (row, column), in target order.
        predicted_centroids: ``(P, 2)``, in label order.

    Returns:
        ``(T,)`` the matched predicted index of each target (0-based), −1 when missed.
    """
    partners = np.full(len(target_centroids), -1, dtype=np.intp)
    if not len(target_centroids) or not len(predicted_centroids):
        return partners
    offsets = target_centroids[:, None, :] - predicted_centroids[None, :, :]
    distances = np.sqrt(offsets[..., 0] ** 2 + offsets[..., 1] ** 2)  # targets × predicted
    close = distances < MATCH_DISTANCE
    # Only the few components near some target can be matched; the loop runs over those.
    near = np.flatnonzero(close.any(axis=0))
    available = np.ones(len(near), dtype=bool)
    close = close[:, near]
    for target_index in range(len(target_centroids)):
        candidates = np.flatnonzero(close[target_index] & available)
        if len(candidates):
            available[candidates[0]] = False
            partners[target_index] = near[candidates[0]]
    return partners


def _unmatched(
    areas: np.ndarray, partners: np.ndarray, area_rule: bool
) -> tuple[np.ndarray, np.ndarray]:
    """The predicted indices (0-based) left unmatched by ``partners``: those counted as false
    alarms, and those the ``lrrnet`` area rule drops (their area equals a matched one's)."""
    available = np.ones(len(areas), dtype=bool)
    available[partners[partners >= 0]] = False
    unmatched = np.flatnonzero(available)
    if not area_rule:
        return unmatched, unmatched[:0]
    dropped = np.isin(areas[unmatched], areas[~available])
    return unmatched[~dropped], unmatched[dropped]


def _curve_sums(
    prob: np.ndarray, mask: np.ndarray, targets: Components, cuts: np.ndarray, area_rule: bool
) -> np.ndarray:
    """One image's Pd–Fa curve sums, equal to :func:`match_components` at every cut, in one pass.

    The level of each pixel above the lowest cut (how many cuts lie below it) is computed
    once, and the pixel counts of every cut come from one histogram of the levels. The cuts
    are then visited from the highest down, each one's positive pixels a superset of the
    one above's:

    - while few pixels are on (at most a quarter of the image), each cut adds its new pixels
      to one binary map, whose 8-connected components (labelled by the same SAUF scan as
      :func:`label_components`, so numbered alike) absorb the components of the cut above.
      A component's area and coordinate sums are those of its new pixels plus those of the
      components it absorbed (integer sums, exact in float64), so no pixel is gathered
      twice. The map is compacted to the rows and columns that the lowest such cut uses,
      with one empty row (column) standing for each run of unused ones: connectivity and
      raster order are those of the image, and the labelling costs the compacted size.
    - below that, each cut is labelled on the whole image with OpenCV's statistics pass,
      whose areas and centroids (integer sums divided once in double) are the same numbers.

    Args:
        prob: ``H×W`` the map as the protocol scores it.
        mask: ``H×W`` bool target pixels (for TP, FP, FN).
        targets: the components the centroid rule matches.
        cuts: ``(K,)`` in ``prob``'s type: positive when ``p > cut``; any order, repeats allowed.
        area_rule: the ``lrrnet`` false-alarm rule (see :func:`match_components`).

    Returns:
        ``(K, 6)`` float64 rows of :data:`_CURVE_SUMS`, one per cut.
    """
    steps = np.unique(cuts)  # ascending
    # The pixels above the lowest step, and each one's level: how many steps lie below it,
    # so that p > steps[i] exactly when level > i (a pixel not listed has level 0).
    flat = prob.ravel()
    above = np.flatnonzero(flat > steps[0])
    values = flat[above]
    levels = np.ones(len(above), np.uint8 if len(steps) < 256 else np.intp)
    for step in steps[1:]:
        levels += values > step
    per_level = np.bincount(levels, minlength=len(steps) + 1)
    per_level_target = np.bincount(levels[mask.ravel()[above]], minlength=len(steps) + 1)
    positives = np.cumsum(per_level[::-1])[::-1]  # positives[i + 1]: pixels above steps[i]
    tp_at = np.cumsum(per_level_target[::-1])[::-1]
    n_mask = int(np.count_nonzero(mask))
    # The steps from `sparse_from` up have at most a quarter of the pixels on.
    sparse_from = int(np.searchsorted(-positives[1:], -(prob.size // 4), side="left"))
    detections = _sparse_detections(
        above, levels, prob.shape, len(steps), sparse_from, targets, area_rule
    )
    for step in range(sparse_from):
        detections[step] = _dense_detections(prob > steps[step], targets, area_rule)
    step_sums = np.zeros((len(steps), len(_CURVE_SUMS)))
    for step in range(len(steps)):
        tp = int(tp_at[step + 1])
        fp = int(positives[step + 1]) - tp
        fn = n_mask - tp
        union = tp + fp + fn
        step_sums[step] = (tp, fp, fn, tp / union if union else 1.0, *detections[step])
    return step_sums[np.searchsorted(steps, cuts)]


def _sparse_detections(
    above: np.ndarray,
    levels: np.ndarray,
    shape: tuple[int, int],
    n_steps: int,
    lowest: int,
    targets: Components,
    area_rule: bool,
) -> np.ndarray:
    """``(n_steps, 2)`` matched targets and false-alarm pixels at the steps from ``lowest``
    up (zeros below), by absorbing components on a compacted map (:func:`_curve_sums`).
    ``above`` are flat pixel indices in raster order, ``levels`` their levels."""
    height, width = shape
    detections = np.zeros((n_steps, 2), np.int64)
    chosen = levels > lowest
    if not chosen.any():
        return detections
    pixels, pixel_levels = above[chosen], levels[chosen]
    order = np.argsort(pixel_levels, kind="stable")  # by level, then raster order
    pixels = pixels[order]
    starts = np.concatenate(([0], np.cumsum(np.bincount(pixel_levels, minlength=n_steps + 1))))
    rows, cols = np.divmod(pixels, width)
    row_at, compact_height = _compaction(rows, height)
    col_at, compact_width = _compaction(cols, width)
    compact = row_at[rows] * compact_width + col_at[cols]

    binary = np.zeros((compact_height, compact_width), np.uint8)
    # The components of the step above: one pixel of each (compacted), areas, coordinate sums.
    kept = np.zeros(0, np.intp)
    areas = np.zeros(0, np.int64)
    sums = np.zeros((0, 2))
    detected = fa_pixels = 0
    for step in range(n_steps - 1, lowest - 1, -1):
        new = slice(starts[step + 1], starts[step + 2])  # the pixels of level step + 1
        if new.start < new.stop:
            binary.ravel()[compact[new]] = 1
            count, labels = cv2.connectedComponentsWithAlgorithm(
                binary, 8, cv2.CV_32S, cv2.CCL_SAUF
            )
            labels = labels.ravel()
            new_ids, old_ids = labels[compact[new]], labels[kept]
            areas = _absorb(new_ids, None, old_ids, areas, count).astype(np.int64)
            sums = np.stack(
                [
                    _absorb(new_ids, rows[new], old_ids, sums[:, 0], count),
                    _absorb(new_ids, cols[new], old_ids, sums[:, 1], count),
                ],
                axis=1,
            )
            representative = np.empty(count, np.intp)
            representative[new_ids] = compact[new]
            representative[old_ids] = kept
            kept = representative[1:]
            detected, fa_pixels = _detections(sums / areas[:, None], areas, targets, area_rule)
        detections[step] = (detected, fa_pixels)
    return detections


def _compaction(coordinates: np.ndarray, length: int) -> tuple[np.ndarray, int]:
    """Where each row (or column) of ``length`` goes when only those in ``coordinates`` are
    kept, each run of unused ones between them becoming one empty row; and the new length."""
    used = np.zeros(length, bool)
    used[coordinates] = True
    keep = used.copy()
    keep[1:] |= used[:-1] & ~used[1:]  # the first unused row after a used one separates
    position = np.cumsum(keep) - 1
    return position, int(position[-1]) + 1


def _dense_detections(binary: np.ndarray, targets: Components, area_rule: bool) -> tuple[int, int]:
    """(matched targets, false-alarm pixels) of one step labelled on the whole image."""
    count, _, stats, centroids = cv2.connectedComponentsWithStatsWithAlgorithm(
        binary.view(np.uint8), 8, cv2.CV_32S, cv2.CCL_SAUF
    )
    areas = stats[1:, cv2.CC_STAT_AREA].astype(np.int64)
    return _detections(centroids[1:, ::-1], areas, targets, area_rule)


def _detections(
    centroids: np.ndarray, areas: np.ndarray, targets: Components, area_rule: bool
) -> tuple[int, int]:
    """(matched targets, false-alarm pixels) of components with these centroids and areas."""
    partners = _match_centroids(targets.centroids, centroids)
    false_alarms, _ = _unmatched(areas, partners, area_rule)
    return int(np.count_nonzero(partners >= 0)), int(areas[false_alarms].sum())


def _absorb(
    new_ids: np.ndarray,
    new_values: np.ndarray | None,
    old_ids: np.ndarray,
    old_values: np.ndarray,
    count: int,
) -> np.ndarray:
    """Per component 1…count − 1: the sum of its new pixels' values (None: 1 each) and of
    the values of the components it absorbed."""
    total = np.bincount(new_ids, new_values, count) + np.bincount(old_ids, old_values, count)
    return total[1:]


def _float32_at_most(value: float) -> np.float32:
    """The largest float32 at or below ``value``: ``p > it`` is exactly ``float64(p) > value``."""
    rounded = np.float32(value)
    return np.nextafter(rounded, np.float32(-np.inf)) if float(rounded) > value else rounded


# The smallest float32 at or above the ROC threshold 1/200: v ≥ it exactly when
# float64(v) ≥ 1/200, for float32 v.
_FIRST_ROC_STEP = np.float32(1 / ROC_BINS)
if float(_FIRST_ROC_STEP) < 1 / ROC_BINS:
    _FIRST_ROC_STEP = np.nextafter(_FIRST_ROC_STEP, np.float32(np.inf))

# None: the exact float64 thresholds i/200. An array: thresholds as the original code
# compares them with its float32 map (i/200 rounded to float32 by NumPy's casting).
_LRRNET_ROC_THRESHOLDS = ROC_THRESHOLDS.astype(np.float32)


def _threshold_histogram(values: np.ndarray, thresholds: np.ndarray | None = None) -> np.ndarray:
    """Histogram of how many of the 201 ROC thresholds lie at or below each value.

    One pass instead of 201 comparisons. For float32 values and the exact thresholds i/200,
    ``floor(200·v)`` computed in float64 is exact (a 24-bit mantissa times 200 fits in 53
    bits) and no float32 lies between i/200 and its float64 rounding, so it *is* the count.
    Otherwise ``200·v`` is right up to one step at the threshold boundaries, and one
    comparison with each neighbouring threshold, in the values' own type, corrects it. A
    value equal to a threshold counts as at or above it.

    Args:
        values: float32 or float64 values, any shape.
        thresholds: ``None`` for the exact i/200, or ``(201,)`` thresholds of the values'
            type, each within rounding of i/200.

    Returns:
        ``(202,)`` int64 counts; bin c holds the values with exactly c thresholds ≤ value.
    """
    values = values.ravel()
    if thresholds is None and values.dtype == np.float32:
        # Most pixels of a map lie below the first threshold above 0 (bins 0 and 1): count
        # those with two comparisons, and compute the bins of the others only.
        low = values < _FIRST_ROC_STEP
        n_low = int(np.count_nonzero(low))
        if n_low > values.size // 2:
            n_negative = int(np.count_nonzero(values < 0))
            histogram = _threshold_histogram(values[~low])
            histogram[:2] += (n_negative, n_low - n_negative)
            return histogram
        scaled = np.multiply(values, ROC_BINS, dtype=np.float64)
        np.floor(scaled, out=scaled)
        np.clip(scaled, -1, ROC_BINS, out=scaled)
        scaled += 1
        count = scaled.astype(np.intp)
    else:
        if thresholds is None:
            thresholds = ROC_THRESHOLDS
        padded = np.concatenate(([-np.inf], thresholds, [np.inf])).astype(values.dtype)
        guess = values * ROC_BINS
        np.clip(guess, -1, ROC_BINS, out=guess)
        count = guess.astype(np.intp)  # truncation: (-1, 0) → 0 is fixed like a boundary
        count += 1
        count -= values < padded.take(count)
        count += values >= padded.take(count + 1)
    return np.bincount(count, minlength=_HIST_LEN).astype(np.int64)


def _at_or_above(histogram: np.ndarray) -> np.ndarray:
    """``(201,)`` number of values at or above each threshold, from :func:`_threshold_histogram`."""
    return np.cumsum(histogram[::-1])[::-1][1:]


# At 0 every non-zero pixel is a detection, at 1 no probability can pass: neither is an
# operating point, and a value such as 50 (a percentage) is a typo that would score garbage.
THRESHOLD = Domain("eval.threshold", 0.0, 1.0, low_open=True, high_open=True)
DOMAINS = (THRESHOLD,)


def check_threshold(threshold: float) -> float:
    """``threshold`` as a float when it is in :data:`THRESHOLD`'s (0, 1); a ConfigError
    naming ``eval.threshold`` otherwise (the scripts' ``--threshold`` stands in for it)."""
    return float(THRESHOLD.check(threshold))


def _ratio(numerator: float, denominator: float, if_empty: float) -> float:
    return numerator / denominator if denominator else if_empty


class MetricAccumulator:
    """Accumulates IoU, nIoU, P/R/F1, Pd/Fa, Pd by target area and the ROC over images.

    Example::

        metrics = MetricAccumulator(threshold=0.5)
        for prob, mask in pairs:  # H×W probabilities, H×W mask
            metrics.update(prob, mask)
        print(format_table(metrics.compute()))

    Args:
        threshold: a pixel is positive when ``p > threshold``.
        protocol: ``"standard"`` (the module's definitions) or ``"lrrnet"`` (the original
            repository's).
        curve_thresholds: also score every image at these thresholds (the Pd–Fa curve and
            the threshold chosen on validation; e.g. :data:`CURVE_THRESHOLDS`). Each costs a
            labelling and a matching per image, so it is off by default.
    """

    def __init__(
        self,
        threshold: float = 0.5,
        protocol: str = "standard",
        curve_thresholds: Sequence[float] | None = None,
    ) -> None:
        if protocol not in PROTOCOLS:
            raise ConfigError(
                f"unknown metrics protocol {protocol!r}; expected one of: {', '.join(PROTOCOLS)}"
            )
        self.threshold = check_threshold(threshold)
        self.protocol = protocol
        self.curve_thresholds = tuple(float(t) for t in curve_thresholds or ())
        # The state is one flat vector of sums; these are its sections, in order.
        num_bins = len(AREA_BIN_EDGES) + 1
        sizes = {
            "scalars": len(_SCALARS),
            "background_hist": _HIST_LEN,
            "target_hist": _HIST_LEN,
            "area_targets": num_bins,
            "area_detected": num_bins,
            "curve": len(self.curve_thresholds) * len(_CURVE_SUMS),
        }
        offsets = np.cumsum([0, *sizes.values()])
        self._sections = {
            name: slice(int(start), int(stop))
            for name, start, stop in zip(sizes, offsets[:-1], offsets[1:], strict=True)
        }
        self._state = np.zeros(int(offsets[-1]), dtype=np.float64)

    def _section(self, name: str) -> np.ndarray:
        """A view of one section of the state (writes go to the state)."""
        return self._state[self._sections[name]]

    def _scalar(self, name: str) -> float:
        return float(self._section("scalars")[_SCALARS.index(name)])

    def _add(self, name: str, value: float) -> None:
        self._section("scalars")[_SCALARS.index(name)] += value

    @property
    def _curve(self) -> np.ndarray:
        """``(len(curve_thresholds), len(_CURVE_SUMS))`` view of the per-threshold sums."""
        return self._section("curve").reshape(len(self.curve_thresholds), len(_CURVE_SUMS))

    def _binary_threshold(self, threshold: float, dtype: np.dtype) -> float | np.floating:
        """``threshold`` in the type the protocol compares a map of ``dtype`` with."""
        if self.protocol == "lrrnet":
            return np.float32(threshold)
        if dtype == np.float32:  # the usual map: compare in float32, same answers
            return _float32_at_most(threshold)
        return threshold

    def _prepare(self, prob: np.ndarray, mask: np.ndarray) -> tuple:
        """The map and mask as the protocol scores them, with the ROC thresholds to use.

        Returns:
            ``(prob, mask, roc_thresholds)``: the map is float32 or float64 (compare it with
            :meth:`_binary_threshold`), the ROC thresholds are those of
            :func:`_threshold_histogram`.
        """
        if self.protocol == "lrrnet":
            size = (LRRNET_SIZE, LRRNET_SIZE)
            prob = cv2.resize(prob.astype(np.float32), size, interpolation=cv2.INTER_LINEAR)
            mask = cv2.resize(mask.view(np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0
            peak = prob.max()
            if peak > 0:
                prob = prob / peak
            return prob, mask, _LRRNET_ROC_THRESHOLDS
        if prob.dtype == np.float32:
            return prob, mask, None
        return prob.astype(np.float64), mask, None

    def update(self, prob: np.ndarray, mask: np.ndarray) -> ImageMatch:
        """Score one image.

        Args:
            prob: ``H×W`` target probabilities in [0, 1].
            mask: ``H×W`` ground truth; non-zero is target. Of the same size as ``prob`` in
                the standard protocol; of any size in ``lrrnet`` (both go to 512×512).

        Returns:
            The image's matching (at the protocol's resolution), for logging or drawing.

        Raises:
            ValueError: shapes differ, are not ``H×W``, or ``prob`` is not finite. Callers
                that know the files turn this into a :class:`DataError` naming them.
        """
        prob = np.ascontiguousarray(prob)  # raster order for the scans and OpenCV below
        mask = np.asarray(mask)
        # The lrrnet protocol resizes each to 512×512 first; only the standard one needs equal sizes.
        same_size = self.protocol == "lrrnet" or prob.shape == mask.shape
        if prob.ndim != 2 or mask.ndim != 2 or not same_size:
            raise ValueError(f"prediction shape {prob.shape} != mask shape {mask.shape}")
        if prob.size and not (np.isfinite(prob.min()) and np.isfinite(prob.max())):
            raise ValueError("prediction contains NaN or infinite values")
        prob, mask, roc_thresholds = self._prepare(prob, np.ascontiguousarray(mask != 0))
        area_rule = self.protocol == "lrrnet"

        threshold = self._binary_threshold(self.threshold, prob.dtype)
        binary = prob > threshold
        if area_rule and not mask.any():
            # The original's empty mask is one whole-image target (see the module docstring).
            match = match_components(binary, np.ones_like(mask), area_rule=True)
            match.tp, match.fp, match.fn = 0, int(np.count_nonzero(binary)), 0
        else:
            match = match_components(binary, mask, area_rule=area_rule)
        for name, value in (
            ("tp", match.tp),
            ("fp", match.fp),
            ("fn", match.fn),
            ("niou_sum", match.iou),
            ("n_images", 1),
            ("n_targets", match.targets.count),
            ("n_detected", len(match.matched)),
            ("fa_pixels", match.fa_pixels),
            ("n_pixels", mask.size),
        ):
            self._add(name, value)
        target_bins = area_bin(match.targets.areas)
        detected = np.asarray([target for target, _ in match.matched], dtype=np.intp) - 1
        self._section("area_targets")[:] += np.bincount(target_bins, minlength=len(AREA_BIN_LABELS))
        self._section("area_detected")[:] += np.bincount(
            target_bins[detected], minlength=len(AREA_BIN_LABELS)
        )
        if self.curve_thresholds:
            cuts = [self._binary_threshold(t, prob.dtype) for t in self.curve_thresholds]
            self._curve[:] += _curve_sums(
                prob, mask, match.targets, np.array(cuts, dtype=prob.dtype), area_rule
            )

        if area_rule and not mask.any():
            return match  # the original code leaves images without targets out of the ROC
        target_pixels = np.flatnonzero(mask)
        target_values = prob.ravel()[target_pixels]
        # Background = all pixels minus target pixels: avoids gathering the large part.
        background_hist = self._section("background_hist")
        background_hist += _threshold_histogram(prob, roc_thresholds)
        background_hist -= _threshold_histogram(target_values, roc_thresholds)
        peaks = np.full(match.targets.count, -np.inf, dtype=prob.dtype)
        np.maximum.at(peaks, match.targets.labels.ravel()[target_pixels] - 1, target_values)
        self._section("target_hist")[:] += _threshold_histogram(peaks, roc_thresholds)
        return match

    def state(self) -> np.ndarray:
        """A copy of everything accumulated, as a flat float64 vector of sums.

        Sum these vectors across processes (``all_reduce`` with SUM) and pass the result to
        :meth:`load_state` to get the metrics of all images together.
        """
        return self._state.copy()

    def load_state(self, state: np.ndarray | Iterable[float]) -> MetricAccumulator:
        """Replace the accumulated sums with ``state`` (from :meth:`state`, possibly summed)."""
        state = np.asarray(state, dtype=np.float64).ravel()
        if state.shape != self._state.shape:
            raise ValueError(f"metric state has {state.size} entries, expected {self._state.size}")
        self._state = state.copy()
        return self

    @classmethod
    def from_state(
        cls,
        state: np.ndarray | Iterable[float],
        threshold: float = 0.5,
        protocol: str = "standard",
        curve_thresholds: Sequence[float] | None = None,
    ) -> MetricAccumulator:
        """An accumulator holding ``state``."""
        return cls(threshold, protocol, curve_thresholds).load_state(state)

    @property
    def n_images(self) -> int:
        return int(self._scalar("n_images"))

    def compute(self) -> dict:
        """The metrics of every image seen so far.

        Returns:
            ``miou``, ``niou``, ``precision``, ``recall``, ``f1``, ``pd``, ``fa``, ``auc``
            (fractions), ``n_images``, ``n_targets`` (ints); ``pd_by_area``, one dict per
            area bin (``area``, ``min_area``, ``max_area`` (None: unbounded),
            ``n_targets``, ``n_detected``, ``pd``); ``roc_fpr``, ``roc_tpr``,
            ``roc_thresholds`` (``(201,)`` arrays, threshold i at index i); and, with
            ``curve_thresholds``, ``pd_fa_curve``: one dict per threshold with
            ``threshold``, ``pd``, ``fa``, ``miou``, ``niou``, ``precision``, ``recall``,
            ``f1``.

        Raises:
            ValueError: no image was scored.
        """
        if self.n_images == 0:
            raise ValueError("no images were scored")
        n_targets = self._scalar("n_targets")
        n_pixels = self._scalar("n_pixels")
        targets_above = _at_or_above(self._section("target_hist"))
        background_above = _at_or_above(self._section("background_hist"))
        n_roc_targets = self._section("target_hist").sum()
        n_background = self._section("background_hist").sum()
        tpr = targets_above / n_roc_targets if n_roc_targets else np.full(ROC_BINS + 1, np.nan)
        fpr = background_above / n_background if n_background else np.full(ROC_BINS + 1, np.nan)
        results = {
            **self._pixel_scores(*(self._scalar(k) for k in ("tp", "fp", "fn", "niou_sum"))),
            "pd": _ratio(self._scalar("n_detected"), n_targets, if_empty=math.nan),
            "fa": self._scalar("fa_pixels") / n_pixels,
            "auc": roc_auc(fpr, tpr),
            "n_images": self.n_images,
            "n_targets": int(n_targets),
            "pd_by_area": [
                {
                    "area": label,
                    "min_area": low,
                    "max_area": high,
                    "n_targets": count,
                    "n_detected": found,
                    "pd": _ratio(found, count, if_empty=math.nan),
                }
                for label, low, high, count, found in zip(
                    AREA_BIN_LABELS,
                    (1, *(edge + 1 for edge in AREA_BIN_EDGES)),
                    (*AREA_BIN_EDGES, None),
                    self._section("area_targets").astype(int).tolist(),
                    self._section("area_detected").astype(int).tolist(),
                    strict=True,
                )
            ],
            "roc_fpr": fpr,
            "roc_tpr": tpr,
            "roc_thresholds": ROC_THRESHOLDS.copy(),
        }
        if self.curve_thresholds:
            results["pd_fa_curve"] = [
                {
                    "threshold": threshold,
                    "pd": _ratio(n_detected, n_targets, if_empty=math.nan),
                    "fa": fa_pixels / n_pixels,
                    **self._pixel_scores(tp, fp, fn, niou_sum),
                }
                for threshold, (tp, fp, fn, niou_sum, n_detected, fa_pixels) in zip(
                    self.curve_thresholds, self._curve.tolist(), strict=True
                )
            ]
        return results

    def _pixel_scores(self, tp: float, fp: float, fn: float, niou_sum: float) -> dict:
        """IoU, nIoU, precision, recall and F1 from pixel totals (see the module notes)."""
        return {
            "miou": _ratio(tp, tp + fp + fn, if_empty=1.0),
            "niou": niou_sum / self.n_images,
            "precision": _ratio(tp, tp + fp, if_empty=1.0 if fn == 0 else 0.0),
            "recall": _ratio(tp, tp + fn, if_empty=1.0 if fp == 0 else 0.0),
            "f1": _ratio(2 * tp, 2 * tp + fp + fn, if_empty=1.0),
        }


def area_bin(areas: np.ndarray) -> np.ndarray:
    """The :data:`AREA_BIN_LABELS` index of each target area (pixels)."""
    return np.searchsorted(AREA_BIN_EDGES, np.asarray(areas), side="left").astype(np.intp)


def best_threshold(curve: Sequence[Mapping[str, float]], metric: str) -> Mapping[str, float]:
    """The row of a ``pd_fa_curve`` with the highest ``metric`` (the lowest threshold on ties).

    Args:
        curve: ``compute()["pd_fa_curve"]``, typically of a validation split.
        metric: a key of the rows, e.g. ``"f1"`` or ``"miou"``.
    """
    if not curve:
        raise ValueError("no curve thresholds were scored")
    scores = [row[metric] for row in curve]
    return curve[int(np.nanargmax(scores))] if not all(map(math.isnan, scores)) else curve[0]


def roc_auc(fpr: np.ndarray, tpr: np.ndarray) -> float:
    """Trapezoidal area under TPR against FPR, the points sorted by FPR.

    Points with equal FPR are ordered by TPR, which is the order of decreasing threshold
    (both rates only grow as the threshold falls), so the curve is walked as a staircase
    and ties add no area of their own. No (0, 0) or (1, 1) point is added: the area is that
    of the 201 thresholds, as in the field's code. NaN when either rate is undefined.
    """
    if np.isnan(fpr).any() or np.isnan(tpr).any():
        return math.nan
    order = np.lexsort((tpr, fpr))
    return float(np.trapezoid(tpr[order], fpr[order]))


# (header, key, scale, format) for each column of format_table.
_TABLE_COLUMNS = (
    ("IoU", "miou", 100.0, "{:.2f}"),
    ("nIoU", "niou", 100.0, "{:.2f}"),
    ("P", "precision", 100.0, "{:.2f}"),
    ("R", "recall", 100.0, "{:.2f}"),
    ("F1", "f1", 100.0, "{:.2f}"),
    ("Pd(e-2)", "pd", 100.0, "{:.2f}"),
    ("Fa(e-6)", "fa", 1e6, "{:.2f}"),
    ("AUC", "auc", 1.0, "{:.4f}"),
    ("images", "n_images", 1, "{:d}"),
    ("targets", "n_targets", 1, "{:d}"),
)


def _format_cell(value: float | int | tuple | None, scale: float, fmt: str) -> str:
    if isinstance(value, tuple):  # (mean, std) of mean_and_std
        mean, std = (_format_cell(v, scale, fmt) for v in value)
        return f"{mean} ± {std}"
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return fmt.format(int(value)) if fmt == "{:d}" else fmt.format(value * scale)


def mean_and_std(
    runs: Sequence[Mapping[str, float]], keys: Sequence[str] = METRIC_KEYS
) -> dict[str, tuple[float, float]]:
    """Mean and sample standard deviation (divisor n − 1) of each metric over runs.

    The std of a single run is NaN (there is no spread to estimate); a NaN metric in any run
    makes that metric's mean and std NaN, so a missing number is never averaged away.

    Args:
        runs: one metrics dict per run (e.g. the test metrics of each seed).
        keys: the metrics to summarise.

    Returns:
        ``{key: (mean, std)}``; :func:`format_table` prints the pairs as ``mean ± std``.
    """
    if not runs:
        raise ValueError("no runs to summarise")
    summary = {}
    for key in keys:
        values = np.array([float(run[key]) for run in runs])
        std = float(values.std(ddof=1)) if len(values) > 1 else math.nan
        summary[key] = (float(values.mean()), std)
    return summary


def format_table(results: dict | list[tuple[str, dict]]) -> str:
    """A plain-text table of one or several runs' metrics, as papers print them.

    IoU, nIoU, P, R and F1 in %, Pd ×10⁻² (i.e. in %), Fa ×10⁻⁶, AUC as a fraction; NaN
    and missing values print as ``-``.

    Args:
        results: the dict of :meth:`MetricAccumulator.compute`, or ``(name, dict)`` pairs,
            one row each (e.g. ``[("best (val-selected)", best), ("last", last)]``). A
            ``(mean, std)`` value (:func:`mean_and_std`) prints as ``mean ± std``.
    """
    rows = [("", results)] if isinstance(results, dict) else list(results)
    named = any(name for name, _ in rows)
    header = [column[0] for column in _TABLE_COLUMNS]
    body = [
        [_format_cell(metrics.get(key), scale, fmt) for _, key, scale, fmt in _TABLE_COLUMNS]
        for _, metrics in rows
    ]
    if named:
        header = ["run", *header]
        body = [[name, *cells] for (name, _), cells in zip(rows, body, strict=True)]
    widths = [max(len(row[j]) for row in [header, *body]) for j in range(len(header))]
    lines = []
    for row in [header, *body]:
        cells = [
            cell.ljust(width) if named and j == 0 else cell.rjust(width)
            for j, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def format_area_table(bins: list[dict]) -> str:
    """Pd by target area (the ``pd_by_area`` rows) as a plain-text table, Pd in %."""
    lines = [f"{'area':>8}  {'targets':>7}  {'detected':>8}  {'Pd(e-2)':>7}"]
    for row in bins:
        pd = _format_cell(row["pd"], 100.0, "{:.2f}")
        lines.append(f"{row['area']:>8}  {row['n_targets']:>7d}  {row['n_detected']:>8d}  {pd:>7}")
    return "\n".join(lines)
