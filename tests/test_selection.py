"""Checkpoint selection on val: the best by train.select_metric, what is saved, early-stop counts.

The evaluation itself is replaced by given metrics; end-to-end selection and the final test
of best and last run in tests/test_trainer.py.
"""

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from lrrnet.config import load_config
from lrrnet.data import Sample
from lrrnet.engine import selection
from lrrnet.engine.checkpoint import TrainState, load_checkpoint
from lrrnet.engine.distributed import init_distributed
from lrrnet.engine.training_run import TrainingRun
from lrrnet.metrics import METRIC_KEYS, MetricAccumulator


class Scalars:
    """A stand-in TensorBoard writer that keeps what it is given."""

    def __init__(self):
        self.scalars = {}

    def add_scalar(self, tag, value, step):
        self.scalars[tag, step] = value


@pytest.fixture
def run(tmp_path):
    model = nn.Conv2d(1, 1, 3)
    return TrainingRun(
        cfg=load_config("synthetic", ["train.select_metric='pd'", "train.num_log_images=0"]),
        process=init_distributed("cpu"),
        state=TrainState(),
        model=model,
        averaged_model=None,
        optimizer=torch.optim.Adam(model.parameters()),
        scaler=torch.amp.GradScaler("cuda", enabled=False),
        predictor=None,  # evaluate_at is replaced below
        iters_per_epoch=4,
        run_dir=tmp_path,
        writer=Scalars(),
    )


@pytest.fixture
def val_samples(tmp_path):
    return [Sample("a", tmp_path / "a.png", tmp_path / "a.png")]


def test_best_is_kept_by_the_select_metric_and_undefined_scores_never_win(
    run, val_samples, monkeypatch
):
    scores = iter([0.5, 0.7, math.nan, 0.6])
    monkeypatch.setattr(
        selection,
        "evaluate_at",
        lambda *args, **kwargs: [{k: 0.1 for k in METRIC_KEYS} | {"pd": next(scores)}],
    )
    state = run.state
    for iteration in (2, 4, 6, 8):
        state.iteration = iteration
        seconds = selection.validate_and_save(run, val_samples, train_loss=0.5)
        assert seconds > 0
        latest = load_checkpoint(run.run_dir / "latest.pth")
        assert latest["iteration"] == iteration and latest["iters_per_epoch"] == 4
    assert (state.best_iteration, state.best_score, state.evals_since_best) == (4, 0.7, 2)
    assert load_checkpoint(run.run_dir / "best.pth")["metrics"]["pd"] == 0.7
    assert run.writer.scalars["val/pd", 8] == 0.6
    assert len((run.run_dir / "metrics.csv").read_text().splitlines()) == 1 + 4


def test_without_val_images_the_newest_weights_are_the_best(run):
    state = run.state
    for iteration in (3, 6):
        state.iteration = iteration
        selection.validate_and_save(run, [], train_loss=0.5)
    assert (state.best_iteration, state.evals_since_best) == (6, 0)
    assert load_checkpoint(run.run_dir / "best.pth")["metrics"] == {}
    assert not run.writer.scalars  # no val metrics to plot


@pytest.mark.parametrize(
    ("pd", "fa", "warned"), [(0.0, 0.0, True), (0.0, 1e-5, False), (0.5, 0.0, False)]
)
def test_a_val_pass_with_no_pixel_above_the_threshold_is_named_a_collapse(
    run, val_samples, monkeypatch, caplog, pd, fa, warned
):
    metrics = {k: 0.0 for k in METRIC_KEYS} | {"pd": pd, "fa": fa, "n_images": 66, "n_targets": 97}
    monkeypatch.setattr(selection, "evaluate_at", lambda *args, **kwargs: [metrics])
    run.state.iteration = 100
    with caplog.at_level("WARNING", logger="lrrnet.engine.selection"):
        selection.validate_and_save(run, val_samples, train_loss=0.5)
    collapsed = [r for r in caplog.records if "collapsed to background" in r.getMessage()]
    assert len(collapsed) == int(warned)
    if warned:
        assert "no pixel of the 66 frames reaches the threshold 0.5" in collapsed[0].getMessage()


def test_the_val_threshold_can_be_chosen_above_the_curve_top_for_saturated_maps(
    run, val_samples, monkeypatch
):
    # A map as SoftIoU training leaves it: the target at 0.9995, and a ring of false alarms
    # around it at 0.985, above every curve threshold (0.05 … 0.95) but below 0.99.
    prob, mask = np.zeros((16, 16), np.float32), np.zeros((16, 16), bool)
    prob[5:10, 5:10], prob[6:9, 6:9], mask[6:9, 6:9] = 0.985, 0.9995, True

    def evaluate_at(predictor, samples, thresholds, curve_thresholds=None, **kwargs):
        results = []
        for threshold in thresholds:
            accumulator = MetricAccumulator(threshold, curve_thresholds=curve_thresholds)
            accumulator.update(prob, mask)
            results.append(accumulator.compute())
        return results

    monkeypatch.setattr(selection, "evaluate_at", evaluate_at)
    cfg = load_config("synthetic", ["eval.val_threshold='miou'"])
    splits = SimpleNamespace(val=val_samples, test=val_samples)
    entry = selection._test_entry(cfg, run.process, None, splits, "test")
    assert entry["test"]["miou"] == pytest.approx(9 / 25)  # at 0.5 the ring counts
    # 0.99, 0.995 and 0.999 all cut the ring away; the lowest of them is kept.
    assert entry["val_threshold"]["threshold"] == 0.99
    assert entry["test_at_val_threshold"]["miou"] == 1.0
