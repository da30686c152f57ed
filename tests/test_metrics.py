"""Hand-worked cases for lrrnet.metrics: every expected number is derived in the comments.

Coordinates are (row, column). Images of 512×512 are used for the ``lrrnet`` protocol so
that its resize to 512×512 is the identity and the hand calculation stays simple.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import skimage.measure

from lrrnet.data.io import read_mask
from lrrnet.errors import ConfigError
from lrrnet.metrics import (
    CURVE_THRESHOLDS,
    ROC_THRESHOLDS,
    MetricAccumulator,
    best_threshold,
    format_table,
    label_components,
    match_components,
    mean_and_std,
)

TOL = 1e-12
N512 = 512 * 512


def score(pairs, protocol="standard", threshold=0.5):
    metrics = MetricAccumulator(threshold=threshold, protocol=protocol)
    for prob, mask in pairs:
        metrics.update(prob, mask)
    return metrics.compute()


def image(shape, pixels=(), value=1.0, dtype=np.float32, base=0.0):
    array = np.full(shape, base, dtype=dtype)
    for row, col in pixels:
        array[row, col] = value
    return array


def square(row, col, size=2):
    return [(row + r, col + c) for r in range(size) for c in range(size)]


def assert_close(results, expected):
    for key, value in expected.items():
        assert results[key] == pytest.approx(value, abs=TOL), key


def test_diagonal_pixels_are_one_target():
    # Mask pixels (2,2) and (3,3) touch diagonally: one 8-connected target, centroid
    # (2.5, 2.5). The prediction (2,2) alone has centroid (2,2), at √0.5 ≈ 0.71 px: matched.
    # TP=1, FP=0, FN=1 → IoU = 1/2, P = 1, R = 1/2, F1 = 2·1/(2+0+1) = 2/3.
    mask = image((8, 8), [(2, 2), (3, 3)], dtype=bool, value=True)
    prob = image((8, 8), [(2, 2)], value=0.9)
    results = score([(prob, mask)])
    assert results["n_targets"] == 1
    assert_close(
        results,
        {"miou": 0.5, "niou": 0.5, "precision": 1, "recall": 0.5, "f1": 2 / 3, "pd": 1, "fa": 0},
    )


def _offset_case(offset):
    # Target (10,10),(10,11): centroid (10, 10.5). Predicted cross-like blobs on rows 9–11
    # with row mean 10:
    #   2.9: (10,12),(10,13),(10,14),(9,14),(11,14): column mean 67/5 = 13.4 → 2.9 px
    #   3.1: (10,13),(10,14),(10,15),(9,13),(11,13): column mean 68/5 = 13.6 → 3.1 px
    run, extra = {2.9: (12, 14), 3.1: (13, 13)}[offset]
    blob = [(10, run), (10, run + 1), (10, run + 2), (9, extra), (11, extra)]
    mask = image((20, 24), [(10, 10), (10, 11)], dtype=bool, value=True)
    return image((20, 24), blob, value=0.8), mask


def test_centroid_distance_below_three_matches_and_above_does_not():
    near, far = _offset_case(2.9), _offset_case(3.1)
    centroids = match_components(near[0] > 0.5, near[1]).predicted.centroids
    assert centroids[0] == pytest.approx([10.0, 13.4], abs=TOL)
    # 2.9 px: matched, no false alarm. 3.1 px: missed, its 5 pixels are false alarms.
    assert_close(score([near]), {"pd": 1.0, "fa": 0.0})
    assert_close(score([far]), {"pd": 0.0, "fa": 5 / 480})
    # Together: 1 of 2 targets, 5 false-alarm pixels out of 2·480.
    assert_close(score([near, far]), {"pd": 0.5, "fa": 5 / 960})


def _equal_area_false_alarms():
    # One 2×2 target at (2,2), detected exactly (area 4). Beside it two 2×2 false alarms
    # (area 4, at (8,8) and (12,2)) and an L of area 3 at (12,10),(12,11),(13,10).
    mask = image((512, 512), square(2, 2), dtype=bool, value=True)
    blobs = square(2, 2) + square(8, 8) + square(12, 2) + [(12, 10), (12, 11), (13, 10)]
    return image((512, 512), blobs, value=0.9), mask


def test_equal_area_false_alarms_counted_by_standard_dropped_by_lrrnet():
    prob, mask = _equal_area_false_alarms()
    # Components in raster order of first pixel: (2,2)→1, (8,8)→2, (12,2)→3, (12,10)→4.
    standard = match_components(prob > 0.5, mask)
    assert standard.matched == [(1, 1)]
    assert standard.false_alarms == [2, 3, 4] and standard.ignored == []
    lrrnet = match_components(prob > 0.5, mask, area_rule=True)
    assert lrrnet.false_alarms == [4] and lrrnet.ignored == [2, 3]
    # Standard: Fa = (4 + 4 + 3) / 512². lrrnet: the two area-4 blobs share the matched
    # detection's area and are dropped: Fa = 3 / 512². IoU = 4 / (4 + 11) in both.
    assert_close(score([(prob, mask)]), {"pd": 1, "fa": 11 / N512, "miou": 4 / 15})
    assert_close(score([(prob, mask)], "lrrnet"), {"pd": 1, "fa": 3 / N512, "miou": 4 / 15})


def test_area_rule_looks_only_at_the_same_image():
    # Image 1: the detection of area 4 alone. Image 2: no target, one area-4 blob. The
    # matched area of image 1 must not excuse image 2's blob: Fa = 4 / (2·512²). Image 2's
    # empty mask is the original's one whole-image target, centred far from the blob: missed,
    # so Pd = 1/2.
    prob, mask = _equal_area_false_alarms()
    detection = image((512, 512), square(2, 2), value=0.9)
    lonely = image((512, 512), square(8, 8), value=0.9)
    empty = np.zeros((512, 512), dtype=bool)
    results = score([(detection, mask), (lonely, empty)], "lrrnet")
    assert_close(results, {"fa": 4 / (2 * N512), "pd": 0.5})


def test_image_without_targets_nIoU_and_ROC():
    # Image A: target (1,1) at p=0.8, every other pixel 0.3. Image B: no target, one pixel
    # (5,5) at 0.6, the rest 0.
    mask_a = image((512, 512), [(1, 1)], dtype=bool, value=True)
    prob_a = image((512, 512), [(1, 1)], value=0.8, base=0.3)
    mask_b = np.zeros((512, 512), dtype=bool)
    prob_b = image((512, 512), [(5, 5)], value=0.6)
    pairs = [(prob_a, mask_a), (prob_b, mask_b)]
    # Binary (both protocols: lrrnet maps A/0.8 → target 1, rest 0.375; B/0.6 → 1 at (5,5)):
    # A IoU 1, B IoU 0/1 = 0 → nIoU 1/2; ΣTP=1, ΣFP=1 → IoU 1/2; Fa = 1/(2·512²).
    # lrrnet adds B's whole-image "target" (centre (255.5, 255.5), missed): Pd = 1/2.
    expected = {"miou": 0.5, "niou": 0.5, "pd": 1.0, "fa": 1 / (2 * N512)}
    standard = score(pairs)
    lrrnet = score(pairs, "lrrnet")
    assert_close(standard, expected)
    assert_close(lrrnet, {**expected, "pd": 0.5})
    # Standard ROC: background = 512²−1 pixels at 0.3 (A) + 512²−1 at 0 and 1 at 0.6 (B).
    # At t = 0.005: the 512²−1 of A and B's 0.6 pixel → 512² / (2·512² − 1).
    # lrrnet ROC skips B: A's background (0.375 after normalisation) is all above t ≤ 0.375.
    assert standard["roc_fpr"][1] == pytest.approx(N512 / (2 * N512 - 1), abs=TOL)
    assert standard["roc_fpr"][121] == 0.0  # t = 0.605: nothing left
    assert lrrnet["roc_fpr"][75] == 1.0 and lrrnet["roc_fpr"][76] == 0.0  # 0.375 vs 0.38
    assert np.all(lrrnet["roc_tpr"] == 1.0)  # the normalised target is 1.0 ≥ every t


def test_image_with_neither_target_nor_positive_scores_one():
    results = score([(np.full((5, 7), 0.2, np.float32), np.zeros((5, 7), bool))])
    # Nothing to find, nothing predicted: every pixel ratio is 0/0 → 1; no target → NaN.
    assert_close(results, {"miou": 1, "niou": 1, "precision": 1, "recall": 1, "f1": 1, "fa": 0})
    assert np.isnan(results["pd"]) and np.isnan(results["auc"])
    assert results["n_targets"] == 0


def test_maximum_below_threshold_standard_misses_lrrnet_detects():
    # 3×3 target at rows 100–102, columns 200–202, p = 0.4; background 0.1.
    mask = image((512, 512), square(100, 200, 3), dtype=bool, value=True)
    prob = image((512, 512), square(100, 200, 3), value=0.4, base=0.1)
    # Standard: nothing > 0.5. TP=0, FP=0, FN=9: IoU 0, P = 0 (nothing predicted but
    # targets exist), R = 0, F1 = 0, Pd = 0.
    assert_close(
        score([(prob, mask)]),
        {"miou": 0, "niou": 0, "precision": 0, "recall": 0, "f1": 0, "pd": 0, "fa": 0},
    )
    # lrrnet: divided by 0.4 the target is 1.0 and the background 0.25: found exactly.
    assert_close(
        score([(prob, mask)], "lrrnet"),
        {"miou": 1, "niou": 1, "precision": 1, "recall": 1, "f1": 1, "pd": 1, "fa": 0},
    )


def test_lrrnet_zero_map_detects_nothing_and_counts_at_t0():
    mask = image((512, 512), [(3, 3)], dtype=bool, value=True)
    results = score([(np.zeros((512, 512), np.float32), mask)], "lrrnet")
    assert_close(results, {"miou": 0, "pd": 0, "fa": 0})
    # The map stays 0 (no 0/0 NaN): p ≥ 0 holds at t = 0 only.
    assert results["roc_tpr"][0] == 1 and results["roc_tpr"][1] == 0
    assert results["roc_fpr"][0] == 1 and results["roc_fpr"][1] == 0


def test_lrrnet_resizes_odd_sizes_like_the_original():
    # A 7×13 map goes to 512×512 (bilinear, then /max) and its mask (nearest); the result
    # must equal the standard protocol run on maps prepared that way by hand (the case has
    # a target and no equal-area false alarm, where the two protocols otherwise agree).
    rng = np.random.default_rng(3)
    prob = rng.random((7, 13)).astype(np.float32) * 0.6
    prob[2, 4] = 0.6
    mask = image((7, 13), [(2, 4), (2, 5)], dtype=bool, value=True)
    resized = cv2.resize(prob, (512, 512), interpolation=cv2.INTER_LINEAR)
    resized = resized / resized.max()
    resized_mask = cv2.resize(mask.view(np.uint8), (512, 512), interpolation=cv2.INTER_NEAREST)
    by_hand = score([(resized, resized_mask > 0)])
    lrrnet = score([(prob, mask)], "lrrnet")
    for key in ("miou", "niou", "precision", "recall", "pd", "fa", "auc"):
        assert lrrnet[key] == pytest.approx(by_hand[key], abs=TOL), key
    assert lrrnet["n_targets"] == by_hand["n_targets"] == 1


def test_non_square_odd_size():
    # 7×13 image. Target (1,10),(2,10): centroid (1.5, 10). Prediction: blob (2,10),(2,11),
    # (3,10) with centroid (7/3, 31/3), at √((5/6)² + (1/3)²) ≈ 0.90 px → matched; and a
    # lone pixel (6,0) → false alarm of 1 pixel. TP=1 ((2,10)), FP=3, FN=1 → IoU 1/5.
    mask = image((7, 13), [(1, 10), (2, 10)], dtype=bool, value=True)
    prob = image((7, 13), [(2, 10), (2, 11), (3, 10), (6, 0)], value=0.7)
    match = match_components(prob > 0.5, mask)
    assert match.predicted.centroids[0] == pytest.approx([7 / 3, 31 / 3], abs=TOL)
    assert match.matched == [(1, 1)] and match.false_alarms == [2] and match.missed_targets == []
    assert (match.tp, match.fp, match.fn) == (1, 3, 1)
    assert_close(score([(prob, mask)]), {"miou": 1 / 5, "pd": 1, "fa": 1 / 91})


def test_16bit_and_rgb_masks(tmp_path):
    # 16-bit: values 65535 at (2,3),(2,4) and 1 at (5,8): two targets (any non-zero counts).
    mask16 = np.zeros((6, 9), np.uint16)
    mask16[2, 3:5] = 65535
    mask16[5, 8] = 1
    cv2.imwrite(str(tmp_path / "m16.png"), mask16)
    # RGB: (1,1) only in one channel, (4,4) a faint other channel: two targets.
    mask_rgb = np.zeros((6, 9, 3), np.uint8)
    mask_rgb[1, 1] = (0, 0, 255)
    mask_rgb[4, 4] = (10, 0, 0)
    cv2.imwrite(str(tmp_path / "mrgb.png"), mask_rgb)
    # Prediction on the first target only: Pd = 1/2 each.
    # 16-bit: TP=2, FN=1 → IoU 2/3. RGB: TP=1, FN=1 → IoU 1/2.
    results16 = score([(image((6, 9), [(2, 3), (2, 4)], 0.9), read_mask(tmp_path / "m16.png"))])
    results_rgb = score([(image((6, 9), [(1, 1)], 0.9), read_mask(tmp_path / "mrgb.png"))])
    assert results16["n_targets"] == 2 and results_rgb["n_targets"] == 2
    assert_close(results16, {"pd": 0.5, "miou": 2 / 3})
    assert_close(results_rgb, {"pd": 0.5, "miou": 1 / 2})


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_probability_exactly_at_threshold(dtype):
    # p = 0.5 on the target: not > 0.5 (missed), but ≥ t for t = 0.5 (index 100).
    mask = image((4, 4), [(0, 0)], dtype=bool, value=True)
    results = score([(image((4, 4), [(0, 0)], 0.5, dtype=dtype), mask)])
    assert_close(results, {"miou": 0, "pd": 0})
    assert results["roc_tpr"][100] == 1 and results["roc_tpr"][101] == 0


def test_comparisons_are_exact_in_float64():
    # float32(0.3) = 0.30000001… > 0.3 → positive at threshold 0.3 (a float32 comparison
    # with float32(0.3) would call it equal). float32(0.7) = 0.69999998… < 0.7 → below
    # the ROC threshold 0.7 (index 140), above 0.695 (index 139).
    mask = image((3, 3), [(1, 1)], dtype=bool, value=True)
    for dtype in (np.float32, np.float64):
        at_03 = image((3, 3), [(1, 1)], np.float32(0.3)).astype(dtype)
        assert score([(at_03, mask)], threshold=0.3)["pd"] == 1.0
        at_07 = image((3, 3), [(1, 1)], np.float32(0.7)).astype(dtype)
        tpr = score([(at_07, mask)])["roc_tpr"]
        assert tpr[139] == 1 and tpr[140] == 0


def test_roc_and_auc_tiny_case():
    # 2×3 image, targets T1 = (0,0) and T2 = (1,2) (not adjacent).
    #   p = [[0.9, 0.2, 0.4],
    #        [0.1, 0.6, 0.3]]
    # TPR(t): both targets for t ≤ 0.3 (i ≤ 60), T1 for t ≤ 0.9 (i ≤ 180), then none.
    # Background 0.2, 0.4, 0.1, 0.6: FPR 1 (i ≤ 20), 3/4 (≤ 40), 2/4 (≤ 80), 1/4 (≤ 120), 0.
    prob = np.array([[0.9, 0.2, 0.4], [0.1, 0.6, 0.3]])
    mask = np.array([[1, 0, 0], [0, 0, 1]], dtype=bool)
    results = score([(prob, mask)])
    i = np.arange(201)
    expected_tpr = np.select([i <= 60, i <= 180], [1.0, 0.5], 0.0)
    expected_fpr = np.select([i <= 20, i <= 40, i <= 80, i <= 120], [1, 0.75, 0.5, 0.25], 0.0)
    assert results["roc_tpr"].shape == results["roc_fpr"].shape == (201,)
    np.testing.assert_array_equal(results["roc_tpr"], expected_tpr)
    np.testing.assert_array_equal(results["roc_fpr"], expected_fpr)
    np.testing.assert_array_equal(results["roc_thresholds"], i / 200)
    # Sorted by FPR, ties by TPR: (0,0) (0,.5) (.25,.5) (.5,.5) (.5,1) (.75,1) (1,1).
    # Area: .25·.5 + .25·.5 + 0 + .25·1 + .25·1 = 0.75. (Ties the other way would join
    # (0,0) to (.25,.5) and give 0.6875.)
    assert results["auc"] == pytest.approx(0.75, abs=TOL)
    # Binary at 0.5: 0.9 (T1) and 0.6 touch diagonally → one component {(0,0),(1,1)},
    # centroid (0.5, 0.5), 0.71 px from T1: matched, so no false alarm; T2 missed.
    # TP=1, FP=1, FN=1 → IoU 1/3.
    assert_close(results, {"pd": 0.5, "fa": 0.0, "miou": 1 / 3})


def test_nIoU_is_the_mean_over_images():
    # Image 1: target (0,0),(0,1), predicted (0,0) → 1/2. Image 2: target (1,1), predicted
    # (1,1),(1,2),(2,1) → 1/3. Image 3: nothing at all → 1. nIoU = (1/2 + 1/3 + 1)/3 = 11/18;
    # IoU = ΣTP/(ΣTP+ΣFP+ΣFN) = 2/(2+2+1) = 2/5.
    empty = np.zeros((4, 4), bool)
    pairs = [
        (image((4, 4), [(0, 0)]), image((4, 4), [(0, 0), (0, 1)], dtype=bool, value=True)),
        (image((4, 4), [(1, 1), (1, 2), (2, 1)]), image((4, 4), [(1, 1)], dtype=bool, value=True)),
        (np.zeros((4, 4), np.float32), empty),
    ]
    assert_close(score(pairs), {"niou": 11 / 18, "miou": 2 / 5})


def _random_pairs(seed, count=6):
    rng = np.random.default_rng(seed)
    pairs = []
    for _ in range(count):
        shape = tuple(rng.integers(9, 40, size=2))
        mask = rng.random(shape) < 0.06
        prob = np.clip(mask * 0.7 + rng.random(shape) * 0.55, 0, 1).astype(np.float32)
        pairs.append((prob, mask))
    return pairs


def _same_results(a, b):
    for key, value in a.items():
        if isinstance(value, np.ndarray):
            np.testing.assert_allclose(b[key], value, rtol=0, atol=TOL, err_msg=key)
        elif isinstance(value, list):  # pd_by_area, pd_fa_curve: rows of scalars
            assert len(b[key]) == len(value), key
            for row_a, row_b in zip(value, b[key], strict=True):
                _same_results(row_a, row_b)
        else:
            assert b[key] == pytest.approx(value, abs=TOL, nan_ok=True), key


@pytest.mark.parametrize("protocol", ["standard", "lrrnet"])
def test_summed_states_equal_single_accumulator(protocol):
    pairs = _random_pairs(1)
    single = MetricAccumulator(protocol=protocol)
    first, second = MetricAccumulator(protocol=protocol), MetricAccumulator(protocol=protocol)
    for index, (prob, mask) in enumerate(pairs):
        single.update(prob, mask)
        (first if index % 2 else second).update(prob, mask)
    expected = single.compute()
    summed = first.state() + second.state()  # what all_reduce(SUM) does
    _same_results(expected, MetricAccumulator.from_state(summed, protocol=protocol).compute())
    assert expected["n_images"] == len(pairs)


def _reference(pairs):
    """The standard definitions (docs/metrics.md, "Definitions") implemented deliberately
    plainly with scikit-image, 201 passes."""
    tp = fp = fn = hits = targets = fa_pixels = pixels = 0
    nious, detected, false_pos, background = [], np.zeros(201), np.zeros(201), 0
    for prob, mask in pairs:
        positive = prob.astype(np.float64) > 0.5
        tp_i, fp_i = np.sum(positive & mask), np.sum(positive & ~mask)
        fn_i = np.sum(~positive & mask)
        tp, fp, fn = tp + tp_i, fp + fp_i, fn + fn_i
        nious.append(tp_i / (tp_i + fp_i + fn_i) if tp_i + fp_i + fn_i else 1.0)
        target_labels = skimage.measure.label(mask, connectivity=2)
        regions = skimage.measure.regionprops(target_labels)
        found = list(skimage.measure.regionprops(skimage.measure.label(positive, connectivity=2)))
        for region in regions:
            for k, candidate in enumerate(found):
                if np.linalg.norm(np.subtract(region.centroid, candidate.centroid)) < 3:
                    hits += 1
                    del found[k]
                    break
        fa_pixels += sum(region.area for region in found)
        targets, pixels = targets + len(regions), pixels + mask.size
        background += np.sum(~mask)
        for i, t in enumerate(np.arange(201) / 200):
            above = prob.astype(np.float64) >= t
            false_pos[i] += np.sum(above & ~mask)
            detected[i] += sum(np.any(above[target_labels == r.label]) for r in regions)
    tpr, fpr = detected / targets, false_pos / background
    order = np.lexsort((tpr, fpr))
    return {
        "miou": tp / (tp + fp + fn),
        "niou": np.mean(nious),
        "pd": hits / targets,
        "fa": fa_pixels / pixels,
        "auc": np.trapezoid(tpr[order], fpr[order]),
        "roc_tpr": tpr,
        "roc_fpr": fpr,
    }


def test_random_images_match_a_plain_reference():
    pairs = _random_pairs(7, count=8)
    results = score(pairs)
    expected = _reference(pairs)
    assert expected["pd"] not in (0.0, 1.0) and expected["fa"] > 0  # a non-trivial case
    _same_results(expected, results)


def test_label_order_and_centroids_equal_scikit_image():
    rng = np.random.default_rng(0)
    for _ in range(60):
        binary = rng.random(tuple(rng.integers(1, 48, size=2))) < rng.uniform(0.05, 0.7)
        reference = skimage.measure.label(binary, connectivity=2)
        components = label_components(binary)
        np.testing.assert_array_equal(components.labels, reference)
        regions = skimage.measure.regionprops(reference)
        assert components.count == len(regions)
        for region in regions:
            assert components.areas[region.label - 1] == region.area
            assert tuple(components.centroids[region.label - 1]) == region.centroid


def test_errors():
    with pytest.raises(ConfigError, match="protocol"):
        MetricAccumulator(protocol="paper")
    metrics = MetricAccumulator()
    with pytest.raises(ValueError, match="shape"):
        metrics.update(np.zeros((4, 5)), np.zeros((5, 4), bool))
    with pytest.raises(ValueError, match="NaN"):
        metrics.update(np.full((4, 4), np.nan), np.zeros((4, 4), bool))
    with pytest.raises(ValueError, match="no images"):
        metrics.compute()
    with pytest.raises(ValueError, match="entries"):
        metrics.load_state(np.zeros(3))


def test_format_table_scales_and_rows():
    results = {
        "miou": 0.5,
        "niou": 0.25,
        "precision": 1.0,
        "recall": 0.5,
        "f1": 2 / 3,
        "pd": 0.875,
        "fa": 3.5e-6,
        "auc": 0.75,
        "n_images": 3,
        "n_targets": 8,
    }
    single = format_table(results).splitlines()
    assert single[0].split() == [
        "IoU", "nIoU", "P", "R", "F1", "Pd(e-2)", "Fa(e-6)", "AUC", "images", "targets"
    ]  # fmt: skip
    assert single[1].split() == [
        "50.00", "25.00", "100.00", "50.00", "66.67", "87.50", "3.50", "0.7500", "3", "8"
    ]  # fmt: skip
    table = format_table([("best (val-selected)", results), ("last", {**results, "pd": np.nan})])
    lines = table.splitlines()
    assert len(lines) == 3 and lines[1].startswith("best (val-selected)")
    assert lines[2].startswith("last") and " - " in lines[2]
    assert ROC_THRESHOLDS[100] == 0.5


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("zeros", [0, 2000], ids=["boundaries", "mostly-zero"])
def test_roc_counts_at_every_threshold_boundary(dtype, zeros):
    # Background pixels at every threshold i/200 (as this dtype rounds it) and at both
    # neighbouring floats; FPR(t) must equal the brute-force count of p ≥ t in float64.
    # With many zeros (a map's usual background) and a few negative values beside them.
    t = (np.arange(201) / 200).astype(dtype)
    values = np.concatenate([t, np.nextafter(t, dtype(-1)), np.nextafter(t, dtype(2))])
    values = np.concatenate([values, np.zeros(zeros, dtype), -t[1 : 1 + zeros // 200]])
    prob = np.concatenate([values, [dtype(1)]]).reshape(1, -1)
    mask = np.zeros(prob.shape, bool)
    mask[0, -1] = True  # one target so that the ROC is defined
    fpr = score([(prob, mask)])["roc_fpr"]
    brute = (values.astype(np.float64)[:, None] >= np.arange(201) / 200).sum(axis=0)
    np.testing.assert_array_equal(fpr, brute / values.size)


def lrrnet_reference(pairs, threshold=0.5):
    """The ``lrrnet`` protocol written from its description (docs/metrics.md, "The lrrnet
    protocol"), slowly.

    Independent of lrrnet.metrics: scikit-image labels and region properties, a plain loop
    over targets and predicted components, and one comparison per ROC threshold.
    """
    size = (512, 512)
    tp = fp = fn = 0
    per_image_iou = []
    n_targets = n_detected = fa_pixels = n_pixels = 0
    roc_targets_hit = np.zeros(201)
    roc_background_hit = np.zeros(201)
    roc_targets = roc_background = 0
    for prob, mask in pairs:
        levels = mask.astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            levels = levels / levels.max()  # empty mask: 0/0 = NaN everywhere
        levels = cv2.resize(levels, size, interpolation=cv2.INTER_NEAREST)
        # NaN cast to int64 is a non-zero integer: every pixel belongs to one "target".
        pd_truth = np.where(np.isnan(levels), 1, levels).astype(np.int64) != 0
        truth = np.nan_to_num(levels) > 0
        pred = cv2.resize(prob.astype(np.float32), size, interpolation=cv2.INTER_LINEAR)
        if pred.max() > 0:
            pred = pred / pred.max()
        positive = pred > np.float32(threshold)
        image_tp = int((positive & truth).sum())
        image_fp = int((positive & ~truth).sum())
        image_fn = int((~positive & truth).sum())
        tp, fp, fn = tp + image_tp, fp + image_fp, fn + image_fn
        union = image_tp + image_fp + image_fn
        per_image_iou.append(image_tp / union if union else 1.0)

        predicted = skimage.measure.regionprops(skimage.measure.label(positive, connectivity=2))
        targets = skimage.measure.regionprops(skimage.measure.label(pd_truth, connectivity=2))
        remaining = list(predicted)
        matched_areas = []
        for target in targets:
            for region in remaining:
                if np.linalg.norm(np.subtract(region.centroid, target.centroid)) < 3:
                    matched_areas.append(region.area)
                    remaining.remove(region)
                    n_detected += 1
                    break
        n_targets += len(targets)
        fa_pixels += sum(r.area for r in remaining if r.area not in matched_areas)
        n_pixels += positive.size

        if not truth.any():
            continue  # images without targets are left out of the ROC
        true_regions = skimage.measure.regionprops(skimage.measure.label(truth, connectivity=2))
        roc_targets += len(true_regions)
        roc_background += int((~truth).sum())
        for i in range(201):
            above = pred >= np.float32(i / 200)
            roc_targets_hit[i] += sum(above[tuple(r.coords.T)].any() for r in true_regions)
            roc_background_hit[i] += int((above & ~truth).sum())
    return {
        "miou": tp / (tp + fp + fn),
        "niou": float(np.mean(per_image_iou)),
        "pd": n_detected / n_targets,
        "fa": fa_pixels / n_pixels,
        "n_targets": n_targets,
        "roc_tpr": roc_targets_hit / roc_targets,
        "roc_fpr": roc_background_hit / roc_background,
    }


def _blobby_map(shape, centers, seed):
    rng = np.random.default_rng(seed)
    prob = (rng.random(shape) * 0.3).astype(np.float32)
    for row, col in centers:
        prob[row - 1 : row + 2, col - 1 : col + 2] = 0.9
    return prob


def test_lrrnet_protocol_matches_an_independent_reference():
    # 1. a 512×512 map (what the original inference writes) against a 256×256 mask;
    # 2. an odd-sized pair; 3. an empty mask with a detection at the image centre (it finds
    # the original's whole-image "target") and 4. an empty mask with a detection elsewhere.
    mask_256 = np.zeros((256, 256), np.uint8)
    mask_256[40:43, 60:63] = 255
    mask_256[200:202, 10:12] = 255
    map_512 = _blobby_map((512, 512), [(82, 122), (300, 300)], seed=1)
    mask_odd = np.zeros((37, 53), np.uint8)
    mask_odd[10:12, 20:22] = 255
    map_odd = _blobby_map((37, 53), [(11, 21)], seed=2)
    empty = np.zeros((64, 64), np.uint8)
    at_centre = _blobby_map((64, 64), [(32, 32)], seed=3)
    off_centre = _blobby_map((64, 64), [(5, 50)], seed=4)
    pairs = [(map_512, mask_256), (map_odd, mask_odd), (at_centre, empty), (off_centre, empty)]

    expected = lrrnet_reference(pairs)
    metrics = MetricAccumulator(protocol="lrrnet")
    for prob, mask in pairs:
        metrics.update(prob, mask)
    results = metrics.compute()
    for key in ("miou", "niou", "pd", "fa", "n_targets"):
        assert results[key] == pytest.approx(expected[key], abs=TOL), key
    np.testing.assert_allclose(results["roc_tpr"], expected["roc_tpr"], atol=TOL)
    np.testing.assert_allclose(results["roc_fpr"], expected["roc_fpr"], atol=TOL)
    # 3 real targets + one whole-image target per empty mask; the centred one is found.
    assert results["n_targets"] == 5


def test_lrrnet_empty_mask_is_one_target_standard_has_none():
    empty = np.zeros((512, 512), bool)
    far = image((512, 512), square(8, 8), value=0.9)
    standard, lrrnet = score([(far, empty)]), score([(far, empty)], "lrrnet")
    assert standard["n_targets"] == 0 and np.isnan(standard["pd"])
    assert lrrnet["n_targets"] == 1 and lrrnet["pd"] == 0.0
    assert lrrnet["fa"] == pytest.approx(4 / N512, abs=TOL)  # the blob stays a false alarm
    centred = image((512, 512), square(255, 255), value=0.9)  # centroid (255.5, 255.5)
    found = score([(centred, empty)], "lrrnet")
    assert found["pd"] == 1.0 and found["fa"] == 0.0
    assert found["miou"] == 0.0  # pixel metrics see the empty mask as it is: FP = 4


@pytest.mark.parametrize("threshold", [0.0, 1.0, 50, -0.1])
def test_threshold_outside_the_open_unit_interval_is_refused(threshold):
    with pytest.raises(
        ConfigError, match=f"'eval.threshold' = {threshold!r} must be in \\(0, 1\\)"
    ):
        MetricAccumulator(threshold=threshold)


def _rectangles(shape, sizes):
    """A mask with one h×w rectangle per (h, w), each in its own 20-row band (no contact)."""
    mask = np.zeros(shape, bool)
    for index, (height, width) in enumerate(sizes):
        mask[20 * index + 2 : 20 * index + 2 + height, 2 : 2 + width] = True
    return mask


def test_pd_by_area_bins_hand_case():
    # Areas 1, 9 | 10, 20 | 21, 40 | 41, 107 | 108 px; the prediction copies the targets of
    # area 9, 10, 41 and 108 (same centroid: matched) and misses the others.
    sizes = [(1, 1), (3, 3), (2, 5), (4, 5), (3, 7), (5, 8), (1, 41), (1, 107), (9, 12)]
    mask = _rectangles((200, 120), sizes)
    kept = [(h, w) if h * w in (9, 10, 41, 108) else (0, 0) for h, w in sizes]
    found = _rectangles((200, 120), kept)
    results = score([(found.astype(np.float32), mask)])
    bins = results["pd_by_area"]
    assert [b["area"] for b in bins] == ["<=9", "10-20", "21-40", "41-107", ">107"]
    assert [(b["min_area"], b["max_area"]) for b in bins] == [
        (1, 9),
        (10, 20),
        (21, 40),
        (41, 107),
        (108, None),
    ]
    assert [b["n_targets"] for b in bins] == [2, 2, 2, 2, 1]
    assert [b["pd"] for b in bins] == [0.5, 0.5, 0.0, 0.5, 1.0]
    assert results["pd"] == pytest.approx(4 / 9, abs=TOL)


def _blob_pairs(seed, count=8, side=96):
    """Discs of radius 0–8 px (areas 1 to ~200) on noisy maps: targets of every area bin."""
    rng = np.random.default_rng(seed)
    pairs = []
    for _ in range(count):
        mask = np.zeros((side, side), np.uint8)
        prob = (rng.random(mask.shape) * 0.52).astype(np.float32)  # a few false alarms
        for _ in range(4):
            center = tuple(int(v) for v in rng.integers(10, side - 10, size=2))
            radius = int(rng.integers(0, 9))
            cv2.circle(mask, center, radius, 1, thickness=-1)
            cv2.circle(prob, center, radius, float(rng.uniform(0.2, 1.0)), thickness=-1)
        pairs.append((prob, mask.astype(bool)))
    return pairs


@pytest.mark.parametrize("protocol", ["standard", "lrrnet"])
def test_target_weighted_mean_of_the_area_bins_is_pd(protocol):
    # lrrnet scores at 512×512: frames of that size keep the areas as drawn.
    results = score(_blob_pairs(3, side=512 if protocol == "lrrnet" else 96), protocol=protocol)
    bins = results["pd_by_area"]
    assert sum(b["n_targets"] for b in bins) == results["n_targets"]
    assert sum(1 for b in bins if b["n_targets"]) >= 4  # a spread of sizes
    assert 0 < results["pd"] < 1
    weighted = sum(b["pd"] * b["n_targets"] for b in bins if b["n_targets"])
    assert weighted / results["n_targets"] == pytest.approx(results["pd"], abs=TOL)


def test_empty_area_bin_has_no_pd():
    mask = image((8, 8), [(3, 3)], dtype=bool, value=True)
    bins = score([(image((8, 8), [(3, 3)], value=0.9), mask)])["pd_by_area"]
    assert bins[0]["pd"] == 1.0 and all(np.isnan(b["pd"]) for b in bins[1:])


@pytest.mark.parametrize("protocol", ["standard", "lrrnet"])
def test_pd_fa_curve_rows_equal_scoring_at_that_threshold(protocol):
    pairs = _blob_pairs(5, count=6)
    curve_scores = MetricAccumulator(protocol=protocol, curve_thresholds=CURVE_THRESHOLDS)
    for prob, mask in pairs:
        curve_scores.update(prob, mask)
    curve = curve_scores.compute()["pd_fa_curve"]
    assert [row["threshold"] for row in curve] == list(CURVE_THRESHOLDS)
    assert len({row["pd"] for row in curve}) > 2  # the thresholds do change Pd here
    for row in curve[::4] + [curve[9]]:  # curve[9] is 0.5, the default threshold
        at = score(pairs, protocol=protocol, threshold=row["threshold"])
        for key in ("pd", "fa", "miou", "niou", "precision", "recall", "f1"):
            assert row[key] == pytest.approx(at[key], abs=TOL), (row["threshold"], key)
    # Not monotonic: at low thresholds the noise merges with the targets, moving centroids.
    assert curve[0]["pd"] < max(row["pd"] for row in curve)


def test_curve_state_sums_across_accumulators():
    pairs = _random_pairs(2)
    single = MetricAccumulator(curve_thresholds=(0.3, 0.6))
    first, second = (MetricAccumulator(curve_thresholds=(0.3, 0.6)) for _ in range(2))
    for index, (prob, mask) in enumerate(pairs):
        single.update(prob, mask)
        (first if index % 2 else second).update(prob, mask)
    summed = MetricAccumulator.from_state(
        first.state() + second.state(), curve_thresholds=(0.3, 0.6)
    )
    _same_results(single.compute(), summed.compute())
    with pytest.raises(ValueError, match="entries"):
        MetricAccumulator().load_state(first.state())


def test_best_threshold_picks_the_highest_and_the_lowest_on_ties():
    curve = [
        {"threshold": 0.3, "f1": 0.5, "miou": 0.2},
        {"threshold": 0.4, "f1": 0.7, "miou": 0.4},
        {"threshold": 0.5, "f1": 0.7, "miou": 0.3},
    ]
    assert best_threshold(curve, "f1")["threshold"] == 0.4
    assert best_threshold(curve, "miou")["threshold"] == 0.4
    assert best_threshold(curve[:1], "f1")["threshold"] == 0.3
    with pytest.raises(ValueError):
        best_threshold([], "f1")


def test_mean_and_std_over_runs():
    runs = [{"miou": 0.5, "pd": 1.0}, {"miou": 0.7, "pd": np.nan}, {"miou": 0.9, "pd": 1.0}]
    summary = mean_and_std(runs, keys=("miou", "pd"))
    assert summary["miou"] == pytest.approx((0.7, 0.2))  # sample std, n − 1
    assert all(np.isnan(v) for v in summary["pd"])  # a missing number is not averaged away
    (mean, std) = mean_and_std(runs[:1], keys=("miou",))["miou"]
    assert mean == 0.5 and np.isnan(std)  # one run: no spread to estimate
    assert "50.00 ± -" in format_table(mean_and_std(runs[:1], keys=("miou",)))
    with pytest.raises(ValueError):
        mean_and_std([])


def _curve_maps(rng, count):
    """Maps that stress the one-pass curve: values exactly at the thresholds, 8-bit plateaus,
    blocks that touch, peaks that merge through lower saddles, float32 and float64."""
    pairs = []
    for index in range(count):
        shape = tuple(int(v) for v in rng.integers(5, 48, size=2))
        kind = index % 4
        if kind == 0:  # ties: every value a multiple of 1/20, as the curve's thresholds
            prob = rng.integers(0, 21, size=shape) / 20
        elif kind == 1:  # smooth blobs quantised to 8 bits: plateaus and merging peaks
            noise = cv2.GaussianBlur(rng.random(shape), (0, 0), rng.uniform(0.7, 2.5))
            prob = np.round(255 * (noise - noise.min()) / np.ptp(noise)) / 255
        elif kind == 2:  # 3×3 blocks of a few levels, touching at edges and corners
            blocks = np.round(rng.random((shape[0] // 3 + 1, shape[1] // 3 + 1)) * 8) / 8
            prob = np.kron(blocks, np.ones((3, 3)))[: shape[0], : shape[1]]
        else:  # two bright peaks joined by a ridge: one component low, two high
            prob = rng.random(shape) * 0.3
            row = shape[0] // 2
            prob[row, 1:-1] = 0.45
            prob[row, 1], prob[row, -2] = 0.9, 0.8
        dtype = np.float64 if rng.random() < 0.3 else np.float32
        mask = rng.random(shape) < 0.08
        if rng.random() < 0.6:  # larger targets, some touching the predicted blocks
            mask = cv2.dilate(mask.view(np.uint8), np.ones((2, 2), np.uint8)) > 0
        if index == count - 1:
            mask[:] = False  # an image without targets (the lrrnet whole-image target)
        pairs.append((np.clip(prob, 0, 1).astype(dtype), mask))
    return pairs


@pytest.mark.parametrize(
    ("protocol", "seed"), [("standard", s) for s in range(6)] + [("lrrnet", 0)]
)
def test_pd_fa_curve_equals_scoring_at_each_threshold_exactly(protocol, seed):
    # The curve is computed in one pass over the thresholds; each row must equal, to the
    # last bit, an accumulator scoring the same images at that threshold alone (labelling
    # and matching that threshold's binary map), on maps with ties, plateaus and merges.
    rng = np.random.default_rng(seed)
    pairs = _curve_maps(rng, 3 if protocol == "lrrnet" else 8)
    thresholds = [*CURVE_THRESHOLDS, *np.round(rng.uniform(0.02, 0.98, size=4), 3).tolist()]
    if protocol == "lrrnet":
        thresholds = thresholds[::3]
    thresholds.append(thresholds[0])  # a repeated threshold
    curve_scores = MetricAccumulator(protocol=protocol, curve_thresholds=thresholds)
    for prob, mask in pairs:
        curve_scores.update(prob, mask)
    curve = curve_scores.compute()["pd_fa_curve"]
    assert len({row["fa"] for row in curve}) > 2 and len({row["pd"] for row in curve}) > 1
    for row in curve:
        at = score(pairs, protocol=protocol, threshold=row["threshold"])
        for key in ("pd", "fa", "miou", "niou", "precision", "recall", "f1"):
            assert row[key] == at[key], (row["threshold"], key)


def test_pd_fa_curve_follows_a_merge_between_thresholds():
    # Two 1-pixel peaks (0.9 at (5,3), 0.8 at (5,11)) on a ridge of 0.45 along row 5,
    # columns 3–11. Targets at the peaks. Above 0.5 two components, each on its target:
    # Pd 1, Fa 0. Above 0.4 one 9-pixel component centred at (5, 7), 4 px from both:
    # Pd 0, Fa 9 px.
    prob = np.zeros((11, 15), np.float32)
    prob[5, 3:12] = 0.45
    prob[5, 3], prob[5, 11] = 0.9, 0.8
    mask = image((11, 15), [(5, 3), (5, 11)], dtype=bool, value=True)
    metrics = MetricAccumulator(curve_thresholds=(0.4, 0.5))
    metrics.update(prob, mask)
    low, high = metrics.compute()["pd_fa_curve"]
    assert (low["pd"], low["fa"]) == (0.0, 9 / 165)
    assert (high["pd"], high["fa"]) == (1.0, 0.0)


def test_pd_fa_curve_on_full_size_cluttered_maps_equals_scoring_at_each_threshold():
    # 256×256 maps whose clutter puts every pixel above 0.05 and half of them above 0.1
    # (labelled on the whole image), with blobs far apart above that (labelled on a map
    # compacted to their rows and columns): every row equals that threshold scored alone.
    from lrrnet.engine.metrics_reference import synthetic_pair

    rng = np.random.default_rng(7)
    pairs = [synthetic_pair(rng, 256) for _ in range(3)]
    prob = np.stack([p for p, _ in pairs])
    assert (prob > 0.05).mean() > 0.25 > (prob > 0.15).mean()  # both regimes are met
    thresholds = (0.05, 0.1, 0.15, 0.3, 0.5, 0.95)
    curve_scores = MetricAccumulator(curve_thresholds=thresholds)
    for pair in pairs:
        curve_scores.update(*pair)
    for row in curve_scores.compute()["pd_fa_curve"]:
        at = score(pairs, threshold=row["threshold"])
        for key in ("pd", "fa", "miou", "niou"):
            assert row[key] == at[key], (row["threshold"], key)


def test_a_column_order_map_scores_as_its_row_order_copy():
    from lrrnet.engine.metrics_reference import synthetic_pair

    prob, mask = synthetic_pair(np.random.default_rng(4), 96)
    rows, columns = (MetricAccumulator(curve_thresholds=CURVE_THRESHOLDS) for _ in range(2))
    rows.update(prob, mask)
    columns.update(np.asfortranarray(prob), np.asfortranarray(mask))
    assert np.array_equal(rows.state(), columns.state())
