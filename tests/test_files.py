"""Atomic writes and strict JSON for every result file."""

import json
import math
import os
import tempfile

import numpy as np
import pytest
import torch

from lrrnet.engine.scoring import write_report
from lrrnet.errors import DataError
from lrrnet.files import atomic_path, check_writable, json_text, write_json_atomic
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


def test_a_folder_that_exists_or_can_be_made_is_writable_and_nothing_is_left(tmp_path):
    (tmp_path / "there").mkdir()
    for folder in (tmp_path / "there", tmp_path / "new" / "deeper"):
        assert check_writable(folder, "--out") == folder
    assert check_writable(tmp_path / "new" / "metrics.json", "--json", file=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["there"]  # nothing made
    assert list((tmp_path / "there").iterdir()) == []


def test_a_path_under_a_file_or_a_broken_link_is_refused_by_flag_and_path(tmp_path):
    (tmp_path / "notes.txt").write_text("a user's")
    (tmp_path / "gone").symlink_to(tmp_path / "missing")
    for path, flag, file in (
        (tmp_path / "notes.txt", "--out", False),
        (tmp_path / "notes.txt" / "x" / "y", "--out", False),
        (tmp_path / "notes.txt" / "m.json", "--json", True),
        (tmp_path / "gone" / "x", "--report", False),
    ):
        with pytest.raises(DataError, match="not a folder") as error:
            check_writable(path, flag, file=file)
        assert str(error.value).startswith(f"{flag} {path}: ") and "\n" not in str(error.value)
    with pytest.raises(DataError, match="--table .*is a folder, not a file"):
        check_writable(tmp_path, "--table", file=True)
    assert (tmp_path / "notes.txt").read_text() == "a user's"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only folder")
def test_a_read_only_folder_is_refused(tmp_path):
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        for path in (folder, folder / "new"):
            with pytest.raises(DataError, match=f"--out {path}: cannot write into {folder}"):
                check_writable(path, "--out")
    finally:
        folder.chmod(0o755)


def test_a_folder_where_no_file_can_be_made_is_refused_even_when_access_says_yes(
    tmp_path, monkeypatch
):
    # As on a read-only mount, or for root where os.access says yes to everything.
    def refuse(*args, **kwargs):
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    with pytest.raises(DataError, match=r"--out .*/x: cannot write into .*Read-only file system"):
        check_writable(tmp_path / "x", "--out")
