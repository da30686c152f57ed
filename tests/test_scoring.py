"""Pairing prediction folders with masks, scoring them and writing the report files."""

from __future__ import annotations

import csv
import json

import cv2
import numpy as np
import pytest
import scipy.io

from lrrnet.data.io import write_prediction
from lrrnet.engine.scoring import (
    REPORT_FILES,
    pair_predictions,
    prediction_files,
    read_roc,
    score_folder,
    write_report,
)
from lrrnet.errors import DataError
from lrrnet.metrics import CURVE_THRESHOLDS, METRIC_KEYS, MetricAccumulator

SHAPE = (8, 10)


def write_mask(folder, name, pixels, shape=SHAPE):
    folder.mkdir(parents=True, exist_ok=True)
    mask = np.zeros(shape, np.uint8)
    for row, col in pixels:
        mask[row, col] = 255
    cv2.imwrite(str(folder / name), mask)


def prob_map(pixels, value=0.9, shape=SHAPE):
    prob = np.zeros(shape, np.float32)
    for row, col in pixels:
        prob[row, col] = value
    return prob


@pytest.fixture
def dataset(tmp_path):
    """Masks a (target (2,2)) and b (target (5,7)); results: a found, b missed."""
    masks = tmp_path / "masks"
    write_mask(masks, "a.png", [(2, 2)])
    write_mask(masks, "b.png", [(5, 7)])
    results = tmp_path / "results"
    write_prediction(results, "a", prob_map([(2, 2)]))
    write_prediction(results, "b", prob_map([(0, 0)]))
    return masks, results


def test_results_folder_prefers_mat_over_img(dataset):
    masks, results = dataset
    # Make img/ disagree: if it were read, a would be missed too.
    cv2.imwrite(str(results / "img" / "a.png"), np.zeros(SHAPE, np.uint8))
    pairs, problems = pair_predictions(results, masks)
    assert [p.prediction.suffix for p in pairs] == [".mat", ".mat"] and problems == []
    outcome = score_folder(results, masks, progress=False)
    # a: TP 1; b: FN 1, FP 1 (the blob at (0,0), a false alarm of 1 pixel).
    assert outcome["pd"] == 0.5 and outcome["miou"] == pytest.approx(1 / 3, abs=1e-12)
    assert outcome["fa"] == pytest.approx(1 / 160, abs=1e-12)


def test_img_only_and_flat_folders(dataset, tmp_path):
    masks, results = dataset
    mats = sorted((results / "mat").iterdir())
    for mat in mats:  # a flat folder of .mat files
        (tmp_path / "flat_mat").mkdir(exist_ok=True)
        (tmp_path / "flat_mat" / mat.name).write_bytes(mat.read_bytes())
    for mat in mats:
        mat.unlink()
    (results / "mat").rmdir()
    assert [p.suffix for p in prediction_files(results)] == [".png", ".png"]  # img/ now
    assert [p.suffix for p in prediction_files(tmp_path / "flat_mat")] == [".mat", ".mat"]
    assert [p.suffix for p in prediction_files(results / "img")] == [".png", ".png"]
    expected = score_folder(tmp_path / "flat_mat", masks, progress=False)
    from_png = score_folder(results / "img", masks, progress=False)
    for key in METRIC_KEYS:
        assert from_png[key] == pytest.approx(expected[key], abs=1e-12, nan_ok=True), key


def test_png_maps_are_value_over_255(tmp_path):
    # 128/255 = 0.502 > 0.5: detected; 127/255 = 0.498: not.
    masks, preds = tmp_path / "masks", tmp_path / "preds"
    write_mask(masks, "hit.png", [(1, 1)])
    write_mask(masks, "miss.png", [(1, 1)])
    preds.mkdir()
    for name, value in (("hit", 128), ("miss", 127)):
        cv2.imwrite(str(preds / f"{name}.png"), (prob_map([(1, 1)], value) > 0) * np.uint8(value))
    outcome = score_folder(preds, masks, progress=False)
    assert outcome["pd"] == 0.5 and outcome["n_images"] == 2


def test_pixels0_masks_and_mask_mapping(tmp_path):
    masks, preds = tmp_path / "masks", tmp_path / "preds"
    write_mask(masks, "Misc_1_pixels0.png", [(3, 3)])
    write_prediction(preds, "Misc_1", prob_map([(3, 3)]))
    pairs, _ = pair_predictions(preds, masks)
    assert [(p.name, p.mask.name) for p in pairs] == [("Misc_1", "Misc_1_pixels0.png")]
    # The same pairing from a mapping (what a config's test split gives).
    pairs, _ = pair_predictions(preds, {"Misc_1": masks / "Misc_1_pixels0.png"})
    assert pairs[0].prediction.name == "Misc_1.mat"


def test_a_mask_folder_of_every_split_is_paired_by_the_predictions(dataset, caplog):
    """A release's masks/ holds every split: its extra masks are other splits, not problems."""
    masks, results = dataset
    write_mask(masks, "d.png", [(1, 1)])  # another split's masks, no predictions
    write_mask(masks, "e.png", [(1, 1)])
    (masks / "d.xml").write_text("<annotation/>")  # SIRST v1 keeps boxes beside the masks
    with caplog.at_level("INFO", logger="lrrnet.engine.scoring"):
        pairs, problems = pair_predictions(results, masks)
    assert [p.name for p in pairs] == ["a", "b"] and problems == []
    assert f"2 of the 4 masks in {masks} have no prediction" in caplog.text
    outcome = score_folder(results, masks, progress=False)
    assert outcome["n_images"] == 2 and outcome["n_missing_prediction"] == 0


def test_missing_mask_and_missing_prediction_name_every_file(dataset):
    masks, results = dataset
    write_prediction(results, "c", prob_map([(1, 1)]))  # no mask c
    write_prediction(results, "f", prob_map([(1, 1)]))  # no mask f
    with pytest.raises(DataError) as error:
        pair_predictions(results, masks)
    message = str(error.value)
    assert "\n" not in message and message.startswith("2 unpaired")
    assert "c.mat" in message and "f.mat" in message
    # A split given by name (a config's test split) needs a prediction for every mask.
    listed = {name: masks / f"{name}.png" for name in ("a", "b")} | {"d": masks / "d.png"}
    with pytest.raises(DataError) as error:
        pair_predictions(results, listed)
    message = str(error.value)
    assert (
        message.startswith("3 unpaired") and f"no prediction for mask {masks / 'd.png'}" in message
    )


def test_prediction_is_resized_to_a_mask_of_another_size(dataset, caplog):
    """The mask's resolution is authoritative (SIRST v1 Misc_111's mask is 592×400 for a
    325×220 frame): the prediction is resized to it bilinearly and the mask named once."""
    masks, results = dataset
    write_mask(masks, "b.png", [(10, 14), (10, 15), (11, 14), (11, 15)], shape=(16, 20))
    write_prediction(results, "b", prob_map([(5, 7)]))  # the target, at the frame's size
    with caplog.at_level("WARNING"):
        outcome = score_folder(results, masks, progress=False)
        score_folder(results, masks, progress=False)
    expected = MetricAccumulator()
    expected.update(prob_map([(2, 2)]), prob_map([(2, 2)]) > 0)
    resized = cv2.resize(prob_map([(5, 7)]), (20, 16), interpolation=cv2.INTER_LINEAR)
    expected.update(resized, cv2.imread(str(masks / "b.png"), cv2.IMREAD_UNCHANGED) > 0)
    for key in METRIC_KEYS:
        assert outcome[key] == pytest.approx(expected.compute()[key], abs=1e-12), key
    assert outcome["pd"] == 1.0 and outcome["n_size_mismatch"] == 0
    named = [r.getMessage() for r in caplog.records if "b.png: mask is 20x16" in r.getMessage()]
    assert len(named) == 1 and "b.mat is 10x8" in named[0]


def test_size_mismatch_names_both_files_when_strict(dataset):
    masks, results = dataset
    write_mask(masks, "b.png", [(5, 7)], shape=(9, 10))
    with pytest.raises(DataError) as error:
        score_folder(results, masks, progress=False, strict_sizes=True)
    message = str(error.value)
    assert "\n" not in message and "b.mat" in message and "b.png" in message
    assert "10×8" in message and "10×9" in message


def test_allow_missing_reports_and_counts(dataset, caplog):
    masks, results = dataset
    write_prediction(results, "c", prob_map([(1, 1)]))
    write_mask(masks, "d.png", [(1, 1)])
    write_mask(masks, "b.png", [(5, 7)], shape=(9, 10))
    listed = {path.stem: path for path in masks.iterdir()}
    with caplog.at_level("WARNING"):
        outcome = score_folder(
            results, listed, allow_missing=True, progress=False, strict_sizes=True
        )
    assert (outcome["n_missing_mask"], outcome["n_missing_prediction"]) == (1, 1)
    assert outcome["n_size_mismatch"] == 1
    assert outcome["n_images"] == 1 and outcome["pd"] == 1.0  # only a is scored
    assert "c.mat" in caplog.text and "d.png" in caplog.text and "b.png" in caplog.text


def test_missing_folders_and_empty_folder(tmp_path):
    with pytest.raises(DataError, match="nowhere"):
        prediction_files(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no prediction maps"):
        prediction_files(tmp_path / "empty")
    write_prediction(tmp_path / "preds", "a", prob_map([]))
    with pytest.raises(DataError, match="no_masks"):
        pair_predictions(tmp_path / "preds", tmp_path / "no_masks")


def test_report_files(dataset, tmp_path):
    masks, results = dataset
    outcome = score_folder(results, masks, progress=False)
    saved = json.loads((results / "metrics.json").read_text())
    for key in (*METRIC_KEYS, "n_images", "n_targets"):
        assert saved[key] == pytest.approx(outcome[key], abs=1e-12), key
    assert saved["n_targets"] == 2 and saved["protocol"] == "standard"
    roc = scipy.io.loadmat(str(results / "roc.mat"))
    np.testing.assert_array_equal(roc["fpr"].ravel(), outcome["roc_fpr"])
    np.testing.assert_array_equal(roc["tpr"].ravel(), outcome["roc_tpr"])
    np.testing.assert_array_equal(roc["thresholds"].ravel(), np.arange(201) / 200)
    assert (results / "roc.png").read_bytes()[:4] == b"\x89PNG"
    assert "IoU" in (results / "metrics.txt").read_text()
    assert "Pd by target area" in (results / "metrics.txt").read_text()
    # a (area 1) found, b (area 1) missed: the "<=9" bin holds both.
    assert saved["pd_by_area"][0] == {
        "area": "<=9",
        "min_area": 1,
        "max_area": 9,
        "n_targets": 2,
        "n_detected": 1,
        "pd": 0.5,
    }
    assert all(row["pd"] is None for row in saved["pd_by_area"][1:])  # empty bins: null
    with open(results / "pd_fa.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [float(row["threshold"]) for row in rows] == list(CURVE_THRESHOLDS)
    for row, expected in zip(rows, outcome["pd_fa_curve"], strict=True):
        assert float(row["pd"]) == expected["pd"] and float(row["fa"]) == expected["fa"]
    # 0.9 maps: positive up to threshold 0.85, nothing above.
    assert [float(row["pd"]) for row in rows] == [0.5] * 17 + [0.0] * 2
    assert (results / "pd_fa.png").read_bytes()[:4] == b"\x89PNG"
    # Scoring again ignores the report files beside the predictions.
    again = score_folder(results, masks, progress=False)
    assert again["n_images"] == 2 and again["miou"] == outcome["miou"]


def test_write_report_json_path_puts_files_beside_it(tmp_path):
    metrics = MetricAccumulator()
    metrics.update(np.zeros((4, 4)), np.zeros((4, 4), bool))  # no target: pd and auc NaN
    paths = write_report(
        metrics.compute(), tmp_path / "unused", json_path=tmp_path / "r" / "x.json"
    )
    assert paths["json"] == tmp_path / "r" / "x.json" and (tmp_path / "r" / "roc.mat").is_file()
    assert not (tmp_path / "unused").exists()
    saved = json.loads(paths["json"].read_text())
    assert saved["pd"] is None and saved["miou"] == 1.0  # NaN is written as null


def test_read_roc_reads_back_what_the_report_wrote(dataset, tmp_path):
    masks, results = dataset
    outcome = score_folder(results, masks, progress=False)
    curve = read_roc(results, "mine")
    assert curve.label == "mine" and curve.auc == pytest.approx(outcome["auc"], abs=1e-12)
    np.testing.assert_array_equal(curve.fpr, outcome["roc_fpr"])
    np.testing.assert_array_equal(curve.tpr, outcome["roc_tpr"])
    assert read_roc(results).label == str(results)
    (tmp_path / "unscored").mkdir()
    with pytest.raises(DataError, match="cal_from_mask.py --pred"):
        read_roc(tmp_path / "unscored")


def test_lrrnet_protocol_scores_512_maps_against_256_masks(tmp_path):
    # What the original inference writes: 512×512 maps for 256×256 NUDT-SIRST masks.
    masks = tmp_path / "masks"
    write_mask(
        masks, "000001.png", [(r, c) for r in range(100, 104) for c in range(50, 54)], (256, 256)
    )
    results = tmp_path / "results"
    prob = np.zeros((512, 512), np.float32)
    prob[200:208, 100:108] = 0.9  # the same target at twice the scale
    write_prediction(results, "000001", prob)
    # Standard protocol: the mask's resolution rules (the map is resized to it), and the
    # strict switch makes another size an error; the lrrnet protocol brings both to 512.
    with pytest.raises(DataError, match="size mismatch"):
        score_folder(results, masks, protocol="standard", progress=False, strict_sizes=True)
    assert score_folder(results, masks, protocol="standard", progress=False)["pd"] == 1.0
    scored = score_folder(results, masks, protocol="lrrnet", progress=False)
    assert scored["miou"] == 1.0 and scored["pd"] == 1.0 and scored["fa"] == 0.0
    assert scored["n_size_mismatch"] == 0


def _bytes_under(folder):
    return {p: p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("suffix", [".png", ".mat"])
def test_frames_named_like_report_files_are_scored_and_never_overwritten(tmp_path, suffix):
    # A flat folder of maps whose frames are named like the report files (roc, pd_fa,
    # metrics): every one is scored, and the report goes beside the folder, not into it.
    masks, preds = tmp_path / "masks", tmp_path / "preds"
    preds.mkdir()
    names = ["roc", "pd_fa", "metrics", "a"]
    for name in names:
        write_mask(masks, f"{name}.png", [(2, 2)])
        prob = prob_map([(2, 2)])
        if suffix == ".png":
            cv2.imwrite(str(preds / f"{name}.png"), np.round(prob * 255).astype(np.uint8))
        else:
            scipy.io.savemat(str(preds / f"{name}.mat"), {"T": prob})
    before = _bytes_under(preds)
    for _ in range(2):  # scoring again reads no report back
        outcome = score_folder(preds, masks, progress=False)
        assert outcome["n_images"] == 4 and outcome["pd"] == 1.0
    assert _bytes_under(preds) == before
    report = tmp_path / "preds-report"
    assert outcome["report"]["json"] == str(report / "metrics.json")
    assert {p.name for p in report.iterdir()} == set(REPORT_FILES)
    assert read_roc(preds).auc == outcome["auc"]  # found beside the flat folder

    # In a results folder the maps live in mat/ and img/: the same names score there too,
    # and the report at its top level never meets them.
    results = tmp_path / "results"
    for name in names:
        write_prediction(results, name, prob_map([(2, 2)]))
    maps = _bytes_under(results / "img") | _bytes_under(results / "mat")
    assert score_folder(results, masks, progress=False)["n_images"] == 4
    assert score_folder(results, masks, progress=False)["n_images"] == 4
    assert (_bytes_under(results / "img") | _bytes_under(results / "mat")) == maps
    assert (results / "metrics.json").is_file()


def test_a_report_among_maps_or_masks_is_refused_before_scoring(dataset, tmp_path):
    masks, results = dataset
    flat = results / "mat"
    before = _bytes_under(results) | _bytes_under(masks)
    refused = [
        {"pred_dir": flat, "out_dir": flat},
        {"pred_dir": flat, "out_dir": flat / "sub"},
        {"pred_dir": flat, "json_path": flat / "scores.json"},
        {"pred_dir": flat, "out_dir": results / "mat" / ".." / "mat"},
        {"pred_dir": results, "out_dir": results / "img"},
        {"pred_dir": results, "json_path": results / "mat" / "metrics.json"},
        {"pred_dir": results, "out_dir": masks},
    ]
    for kwargs in refused:
        with pytest.raises(DataError, match="the report would go among the") as error:
            score_folder(masks=masks, progress=False, **kwargs)
        assert "\n" not in str(error.value)
    assert (_bytes_under(results) | _bytes_under(masks)) == before
    # Beside them is fine, and --json keeps its meaning.
    score_folder(flat, masks, progress=False, out_dir=tmp_path / "elsewhere")
    score_folder(results, masks, progress=False, json_path=tmp_path / "j" / "x.json")
    assert (tmp_path / "elsewhere" / "roc.mat").is_file() and (tmp_path / "j" / "roc.png").is_file()


def test_a_results_folder_is_never_read_at_its_top_level(dataset):
    masks, results = dataset
    for folder in ("mat", "img"):
        for path in (results / folder).iterdir():
            path.unlink()
    cv2.imwrite(str(results / "a.png"), np.zeros(SHAPE, np.uint8))  # not a map: top level
    with pytest.raises(DataError, match=r"no prediction maps"):
        prediction_files(results)


def test_an_old_report_among_flat_maps_is_named_with_a_hint(tmp_path):
    masks, preds = tmp_path / "masks", tmp_path / "preds"
    write_mask(masks, "a.png", [(2, 2)])
    preds.mkdir()
    cv2.imwrite(str(preds / "a.png"), np.zeros(SHAPE, np.uint8))
    cv2.imwrite(str(preds / "roc.png"), np.zeros(SHAPE, np.uint8))  # an earlier version's
    with pytest.raises(DataError, match=r"roc\.png: a report written among the maps"):
        score_folder(preds, masks, progress=False)


@pytest.mark.parametrize("threads", [1, 3])
def test_frames_scored_in_threads_sum_to_one_accumulator_bit_for_bit(
    tmp_path, monkeypatch, threads
):
    from lrrnet.engine import scoring
    from lrrnet.engine.metrics_reference import synthetic_pair, write_synthetic_folder

    pred_dir, mask_dir = write_synthetic_folder(tmp_path / "files", num=9, size=96, seed=3)
    monkeypatch.setattr(scoring, "SCORING_THREADS", threads)
    pairs, _ = pair_predictions(pred_dir, mask_dir)
    results = scoring.metrics_of_pairs(pairs, progress=False)
    alone = MetricAccumulator(curve_thresholds=CURVE_THRESHOLDS)
    rng = np.random.default_rng(3)  # the pairs write_synthetic_folder wrote, in name order
    for _ in range(9):
        alone.update(*synthetic_pair(rng, 96))
    expected = alone.compute()
    for key in (*METRIC_KEYS, "n_images", "n_targets", "pd_fa_curve", "pd_by_area"):
        assert results[key] == expected[key], key
    assert np.array_equal(results["roc_fpr"], expected["roc_fpr"])


def test_an_unreadable_frame_among_threads_is_named(tmp_path, monkeypatch):
    from lrrnet.engine import scoring
    from lrrnet.engine.metrics_reference import write_synthetic_folder

    pred_dir, mask_dir = write_synthetic_folder(tmp_path / "files", num=6, size=32, seed=0)
    broken = sorted(pred_dir.rglob("*.mat"))[4]
    broken.write_bytes(b"not a mat file")
    monkeypatch.setattr(scoring, "SCORING_THREADS", 3)
    pairs, _ = pair_predictions(pred_dir, mask_dir)
    with pytest.raises(DataError, match=broken.name):
        scoring.metrics_of_pairs(pairs, progress=False)
