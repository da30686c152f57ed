"""Atomic writes and strict JSON for every result file."""

import json
import math

import numpy as np
import pytest
import torch

from lrrnet.engine.scoring import write_report
from lrrnet.files import atomic_path, json_text, write_json_atomic
from lrrnet.metrics import MetricAccumulator


def test_a_writer_that_dies_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "metrics.csv"
    path.write_text("old\n")
    with pytest.raises(KeyboardInterrupt), atomic_path(path) as temp:
        temp.write_text("half of the ne")
        raise KeyboardInterrupt  # a kill between the write and the rename
    assert path.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.csv"]


def test_temporary_keeps_the_suffix_so_format_writers_work(tmp_path):
    with atomic_path(tmp_path / "a.png") as temp:
        assert temp.suffix == ".png" and temp.parent == tmp_path
        temp.write_bytes(b"x")
    assert (tmp_path / "a.png").read_bytes() == b"x"


def test_nan_and_infinity_become_null_and_scalars_plain_numbers(tmp_path):
    value = {
        "pd": math.nan,
        "fa": float("inf"),
        "n": np.int64(3),
        "auc": np.float32(0.5),
        "t": torch.tensor(2.0),
        "nested": [np.float64("nan"), 1],
    }
    path = tmp_path / "out.json"
    write_json_atomic(path, value)
    assert json.loads(path.read_text()) == {
        "pd": None,
        "fa": None,
        "n": 3,
        "auc": 0.5,
        "t": 2.0,
        "nested": [None, 1],
    }
    assert "NaN" not in json_text(value) and "Infinity" not in json_text(value)


def test_report_json_of_a_target_free_set_is_valid(tmp_path):
    metrics = MetricAccumulator()
    metrics.update(np.zeros((8, 8), np.float32), np.zeros((8, 8), bool))
    results = metrics.compute()  # no target: Pd and AUC are NaN
    paths = write_report(results, tmp_path)
    loaded = json.loads(paths["json"].read_text(), parse_constant=pytest.fail)
    assert loaded["pd"] is None and loaded["auc"] is None
