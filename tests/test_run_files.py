"""Run folders: finding a config's runs, and their log.txt, config.yaml, metrics.csv,
TensorBoard events and test_metrics.json."""

import csv
import json
import logging
import math
import os

import pytest
import torch

from lrrnet.config import load_config
from lrrnet.engine import run_files
from lrrnet.engine.checkpoint import TrainState
from lrrnet.errors import CheckpointError
from lrrnet.metrics import METRIC_KEYS


def read_csv(path):
    with open(path) as handle:
        return list(csv.DictReader(handle))


def test_new_run_dirs_of_the_same_second_get_a_suffix(tmp_path):
    cfg = load_config("synthetic", [f"paths.checkpoints={str(tmp_path)!r}", "name='tiny'"])
    first = run_files.new_run_dir(cfg)
    first.mkdir(parents=True)
    second = run_files.new_run_dir(cfg)
    assert first.parent == second.parent == tmp_path / "tiny"
    assert second.name.startswith(first.name) and second != first  # unless a second passed


def test_newest_run_lookup_and_resume_resolution(tmp_path, caplog):
    cfg = load_config("synthetic", [f"paths.checkpoints={str(tmp_path)!r}", "name='tiny'"])
    assert run_files.resolve_resume(cfg, None) is None
    caplog.set_level("INFO", logger="lrrnet")
    assert run_files.resolve_resume(cfg, "auto") is None
    assert "no earlier run of 'tiny'" in caplog.text
    with pytest.raises(CheckpointError, match="no run with best.pth; train first"):
        run_files.newest_run_checkpoint(cfg)
    for stamp in ("20260102-000000", "20260101-000000"):
        (tmp_path / "tiny" / stamp).mkdir(parents=True)
        for name in ("latest.pth", "best.pth"):
            (tmp_path / "tiny" / stamp / name).write_bytes(b"")
    newest = tmp_path / "tiny" / "20260102-000000"
    assert run_files.run_checkpoints(cfg, "latest.pth")[-1] == newest / "latest.pth"
    assert run_files.newest_run_checkpoint(cfg) == newest / "best.pth"
    assert run_files.resolve_resume(cfg, "auto") == newest / "latest.pth"
    assert run_files.resolve_resume(cfg, str(newest)) == newest / "latest.pth"  # a run folder
    with pytest.raises(CheckpointError, match="nowhere.pth: checkpoint to resume from not found"):
        run_files.resolve_resume(cfg, str(tmp_path / "nowhere.pth"))
    # Runs started in the same second get -1, -2, … -10: numeric order, not text order.
    for suffix in (2, 10, 9):
        (tmp_path / "tiny" / f"20260102-000000-{suffix}").mkdir()
        (tmp_path / "tiny" / f"20260102-000000-{suffix}" / "best.pth").write_bytes(b"")
    order = [path.parent.name for path in run_files.run_checkpoints(cfg, "best.pth")]
    assert order == [
        "20260101-000000",
        "20260102-000000",
        "20260102-000000-2",
        "20260102-000000-9",
        "20260102-000000-10",
    ]


def test_log_file_copies_info_lines_while_the_block_runs(tmp_path):
    package_logger = logging.getLogger("lrrnet")
    level = package_logger.level
    package_logger.setLevel(logging.WARNING)  # a quiet console: log.txt still gets INFO
    try:
        with run_files.log_file(tmp_path / "run"):
            logging.getLogger("lrrnet.engine.trainer").info("inside")
        logging.getLogger("lrrnet.engine.trainer").warning("after")
        assert package_logger.level == logging.WARNING and not package_logger.handlers
    finally:
        package_logger.setLevel(level)
    text = (tmp_path / "run" / "log.txt").read_text()
    assert "INFO lrrnet.engine.trainer: inside" in text and "after" not in text
    with run_files.log_file(None):  # the other ranks: no file
        logging.getLogger("lrrnet").info("elsewhere")


def test_write_config_keeps_the_config_a_resume_replaces(tmp_path):
    cfg = load_config("synthetic")
    run_files.write_config(cfg, tmp_path, None)
    first = (tmp_path / "config.yaml").read_text()
    run_files.write_config(cfg, tmp_path, {"config_changes": [], "iteration": 4})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.yaml"]
    changed = load_config("synthetic", ["train.lr=0.5"])
    run_files.write_config(changed, tmp_path, {"config_changes": ["train.lr"], "iteration": 4})
    assert (tmp_path / "config.until-iter4.yaml").read_text() == first
    assert load_config(tmp_path / "config.yaml")["train"]["lr"] == 0.5


def test_metrics_csv_rows_and_val_metrics_left_empty_without_val(tmp_path):
    metrics = {key: 0.25 for key in METRIC_KEYS} | {"n_images": 3}
    run_files.append_metrics_csv(tmp_path, TrainState(iteration=2, best_iteration=2), 1e-3, 0.5, {})
    run_files.append_metrics_csv(tmp_path, TrainState(iteration=4, epoch=1), 1e-4, 0.25, metrics)
    rows = read_csv(tmp_path / "metrics.csv")
    assert list(rows[0]) == [
        "iteration",
        "epoch",
        "lr",
        "train_loss",
        *METRIC_KEYS,
        "best_iteration",
    ]
    assert (rows[0]["miou"], rows[0]["best_iteration"], rows[0]["lr"]) == ("", "2", "0.001")
    assert (rows[1]["epoch"], rows[1]["train_loss"], rows[1]["miou"]) == ("1", "0.250000", "0.25")


def test_truncate_csv_drops_later_rows_and_a_row_cut_by_a_kill(tmp_path):
    path = tmp_path / "metrics.csv"
    path.write_text("iteration,epoch,lr\n2,0,0.1\n4,0,0.1\n6,1,0.1\n8,1")  # 8: cut mid-append
    run_files.truncate_metrics_csv(tmp_path, 6)
    assert path.read_text().splitlines() == ["iteration,epoch,lr", "2,0,0.1", "4,0,0.1", "6,1,0.1"]
    run_files.truncate_metrics_csv(tmp_path, 2)
    assert [row["iteration"] for row in read_csv(path)] == ["2"]
    run_files.truncate_metrics_csv(tmp_path / "nowhere", 2)  # a new run: nothing to cut


def test_tensorboard_scalars_continue_after_the_resumed_iteration(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    writer = run_files.open_tensorboard(tmp_path, 0)
    terms = {"total": torch.tensor(0.5), "mse": torch.tensor(0.1)}
    for iteration in (1, 2, 3):
        run_files.tensorboard_losses(writer, terms, 1e-3, iteration)
    writer.close()
    writer = run_files.open_tensorboard(tmp_path, 2)  # resumed from iteration 2: 3 goes
    run_files.tensorboard_losses(writer, terms, 5e-4, 3)
    writer.close()
    events = EventAccumulator(str(tmp_path))
    events.Reload()
    assert {"loss/total", "loss/mse", "lr"} <= set(events.Tags()["scalars"])
    lrs = {event.step: event.value for event in events.Scalars("lr")}
    assert lrs == {1: pytest.approx(1e-3), 2: pytest.approx(1e-3), 3: pytest.approx(5e-4)}


def test_test_report_is_strict_json(tmp_path):
    report = {"best": {"test": {"pd": math.nan}}, "last": {"test": {"pd": 0.5}}}
    run_files.write_test_report(tmp_path, report)
    loaded = json.loads((tmp_path / "test_metrics.json").read_text())
    assert loaded == {"best": {"test": {"pd": None}}, "last": {"test": {"pd": 0.5}}}


def test_run_lock_refuses_a_second_holder_and_is_released_at_the_end(tmp_path):
    from lrrnet.engine.distributed import init_distributed
    from lrrnet.errors import UserError

    process = init_distributed("cpu")
    run_dir = tmp_path / "run"
    # Another open of the lock file while it is held, as a second process would: refused,
    # naming the holder.
    holder = rf"in use by another training \(process {os.getpid()} holds train.lock\)"
    with (
        run_files.run_lock(run_dir, process),
        pytest.raises(UserError, match=holder),
        run_files.run_lock(run_dir, process),
    ):
        pass
    with run_files.run_lock(run_dir, process):  # released when the block ended
        pass


def test_the_compile_cache_is_saved_and_loaded_or_a_warning(tmp_path, monkeypatch, caplog):
    caplog.set_level("INFO", logger="lrrnet")
    artifacts = bytes(range(256)) * 4
    monkeypatch.setattr(torch.compiler, "save_cache_artifacts", lambda: (artifacts, None))
    path = run_files.save_compile_cache(tmp_path)
    assert path == tmp_path / run_files.COMPILE_CACHE and path.read_bytes() == artifacts
    assert [p.name for p in tmp_path.iterdir()] == [run_files.COMPILE_CACHE]  # no temp left

    loaded = []
    monkeypatch.setattr(torch.compiler, "load_cache_artifacts", loaded.append)
    assert run_files.load_compile_cache(tmp_path) is True and loaded == [artifacts]
    assert "loaded torch.compile's cache of the stopped run (1024 bytes)" in caplog.text

    def refuse(_):
        raise RuntimeError("made by another torch")

    monkeypatch.setattr(torch.compiler, "load_cache_artifacts", refuse)
    assert run_files.load_compile_cache(tmp_path) is False
    assert "torch.compile's cache not loaded (made by another torch)" in caplog.text
    assert run_files.load_compile_cache(tmp_path / "elsewhere") is None

    # Nothing compiled: no file. Saving fails: a warning, no file, the stop goes on.
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setattr(torch.compiler, "save_cache_artifacts", lambda: None)
    assert run_files.save_compile_cache(empty) is None

    def broken():
        raise RuntimeError("no room on the device")

    monkeypatch.setattr(torch.compiler, "save_cache_artifacts", broken)
    assert run_files.save_compile_cache(empty) is None
    assert "torch.compile's cache not saved (no room on the device)" in caplog.text
    assert not list(empty.iterdir())
