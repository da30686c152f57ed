"""detections.csv: one row per 8-connected component of p > threshold, as the metrics see them."""

import csv

import numpy as np
import pytest

from lrrnet.engine.detections import (
    FIELDS,
    Detection,
    detections_writer,
    frame_detections,
    read_detections,
)
from lrrnet.metrics import MetricAccumulator


def blob_map():
    """A 20×24 map with three components above 0.5 and pixels that must not count."""
    prob = np.full((20, 24), 0.1, np.float32)
    prob[2:5, 3:6] = 0.9  # a 3×3 square
    prob[3, 4] = 0.95  # its peak, at its centre
    prob[10, 10] = prob[11, 11] = 0.7  # diagonal neighbours: one 8-connected component
    prob[15, 20] = 0.6  # a single pixel
    prob[0, 23] = 0.5  # exactly at the threshold: not positive (p > t)
    prob[18, 2] = np.nextafter(np.float32(0.5), np.float32(1))  # just above it: positive
    return prob


def test_rows_are_the_components_with_centroid_area_peak_and_mean():
    rows = frame_detections("f", blob_map(), 0.5)
    square_mean = (8 * 0.9 + 0.95) / 9
    expected = [
        Detection("f", 1, 3.0, 4.0, 9, 0.95, square_mean),
        Detection("f", 2, 10.5, 10.5, 2, 0.7, 0.7),
        Detection("f", 3, 15.0, 20.0, 1, 0.6, 0.6),
        Detection("f", 4, 18.0, 2.0, 1, 0.5, 0.5),
    ]
    assert [(r.frame, r.target, r.y, r.x, r.area) for r in rows] == [
        (e.frame, e.target, e.y, e.x, e.area) for e in expected
    ]
    for row, want in zip(rows, expected, strict=True):
        assert row.peak == pytest.approx(want.peak, abs=1e-6)
        assert row.mean == pytest.approx(want.mean, abs=1e-6)


def test_the_count_is_the_metrics_predicted_component_count():
    prob = blob_map()
    for threshold in (0.5, 0.65, 0.92, 0.99):
        match = MetricAccumulator(threshold).update(prob, np.zeros(prob.shape, bool))
        rows = frame_detections("f", prob, threshold)
        assert len(rows) == match.predicted.count
        assert [r.area for r in rows] == match.predicted.areas.tolist()
        centroids = np.array([(r.y, r.x) for r in rows]).reshape(-1, 2)
        np.testing.assert_array_equal(centroids, match.predicted.centroids)


def test_an_empty_map_has_no_rows():
    assert frame_detections("f", np.zeros((8, 8), np.float32), 0.5) == []


def test_the_file_has_the_header_and_the_rows_of_every_frame(tmp_path):
    path = tmp_path / "detections.csv"
    with detections_writer(path, 0.5) as add:
        assert add("a", blob_map()) == 4
        assert add("b", np.zeros((4, 4), np.float32)) == 0
        assert add("c", blob_map()[:6, :8]) == 1
    with path.open(newline="") as handle:
        assert next(csv.reader(handle)) == list(FIELDS)
    rows = read_detections(path)
    assert [(r.frame, r.target) for r in rows] == [("a", 1), ("a", 2), ("a", 3), ("a", 4), ("c", 1)]
    assert rows[0].y == 3.0 and rows[0].area == 9 and rows[0].peak == pytest.approx(0.95)


def test_a_failed_run_leaves_the_old_file_whole(tmp_path):
    path = tmp_path / "detections.csv"
    path.write_text("old\n")
    with pytest.raises(RuntimeError), detections_writer(path, 0.5) as add:
        add("a", blob_map())
        raise RuntimeError("killed mid-run")
    assert path.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["detections.csv"]  # no temporary left
