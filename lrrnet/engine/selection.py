"""Checkpoint selection: a training run scored on val as it trains, and on test at its end.

Honesty rules kept here: checkpoints are selected on a validation split held out of the
training data (unless the config asks for the original best-on-test behaviour, which is
logged as optimistic), and both the selected and the last checkpoint are scored on test.
:func:`validate_and_save` scores val, keeps the best by ``train.select_metric`` and writes
the checkpoints; :func:`test_best_and_last` scores the last weights and those of
``best.pth`` on test and returns what ``test_metrics.json`` holds.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

from lrrnet.data import Sample, Splits
from lrrnet.engine import distributed, run_files
from lrrnet.engine.checkpoint import (
    gather_rng_states,
    load_checkpoint,
    save_checkpoint,
    unwrap_model,
)
from lrrnet.engine.evaluator import evaluate_at
from lrrnet.engine.predictor import Predictor
from lrrnet.engine.training_run import TrainingRun, training_checkpoint
from lrrnet.metrics import VAL_THRESHOLDS, best_threshold

logger = logging.getLogger(__name__)

# The metrics of a log line, as str.format fields named by the keys of evaluate_at's results.
METRICS_LINE = "IoU {miou:.4f} nIoU {niou:.4f} F1 {f1:.4f} Pd {pd:.4f} Fa {fa:.3e}"


def validate_and_save(run: TrainingRun, val_samples: Sequence[Sample], train_loss: float) -> float:
    """Score ``run`` on val, update its state's best, and save: ``latest.pth`` (``best.pth``
    too when the score improved), a ``metrics.csv`` row with ``train_loss`` (the mean since
    the last evaluation), the TensorBoard scalars and panels.

    The predictor scores the weight average when there is one (``run.averaged_model``),
    which the checkpoints then hold as their ``model`` beside the live weights.

    Without validation images the newest weights count as the best. Every rank scores its
    share of val and sends its RNG states; rank 0 writes (``run.writer`` is None elsewhere).

    Returns:
        The seconds it took: validation and checkpoint writing both pause training.
    """
    started = time.perf_counter()
    cfg, process, state, predictor = run.cfg, run.process, run.state, run.predictor
    select_metric = cfg["train"]["select_metric"]
    if val_samples:
        metrics = _score(predictor, val_samples, cfg, process, "val")
        score = metrics.get(select_metric, -math.inf)
    else:
        metrics, score = {}, float(state.iteration)
    if math.isnan(score):  # e.g. Pd or AUC on a validation split without targets
        logger.warning("val %s is undefined (no targets?); not selecting on it", select_metric)
        score = -math.inf
    improved = score > state.best_score
    if improved:
        state.best_score, state.best_iteration, state.evals_since_best = score, state.iteration, 0
    else:
        state.evals_since_best += 1
    rng_states = gather_rng_states(process)
    if process.is_main:
        checkpoint = training_checkpoint(run, metrics, rng_states)
        save_checkpoint(checkpoint, run.run_dir / "latest.pth")
        if improved:
            save_checkpoint(checkpoint, run.run_dir / "best.pth")
        lr = run.optimizer.param_groups[0]["lr"]
        run_files.append_metrics_csv(run.run_dir, state, lr, train_loss, metrics)
        if metrics:
            panels = val_samples[: cfg["train"]["num_log_images"]]
            threshold = cfg["eval"]["threshold"]
            run_files.tensorboard_validation(
                run.writer, metrics, predictor, panels, state.iteration, threshold
            )
            line, best = METRICS_LINE.format(**metrics), " (best)" if improved else ""
            logger.info("iter %d epoch %d val: %s%s", state.iteration, state.epoch, line, best)
            if metrics.get("n_targets") and metrics["pd"] == 0 and metrics["fa"] == 0:
                # Nothing at all reaches the threshold: the map has saturated towards
                # background, and SoftIoU's gradient through sigmoid(T) may not bring it back.
                logger.warning(
                    "iter %d val: no pixel of the %d frames reaches the threshold %g; the "
                    "target map has collapsed to background (docs/training.md, Collapse to "
                    "background)",
                    state.iteration,
                    metrics["n_images"],
                    cfg["eval"]["threshold"],
                )
    return time.perf_counter() - started


def test_best_and_last(run: TrainingRun, splits: Splits) -> dict[str, Any]:
    """Test the last weights of ``run`` (those its predictor runs), then those of ``best.pth``.

    The predictor's network is the weight average under ``train.ema_decay``. The best
    checkpoint is scored on its own unless it is the last one; the network ends with the last
    weights again.

    Returns:
        What ``test_metrics.json`` holds: ``selection`` (where and by what the checkpoint was
        selected, and the split), ``threshold``, and the entries ``best`` and ``last``: the
        iteration, for best the val metrics it was selected with, and :func:`_test_entry`.
    """
    cfg, process, predictor, iteration = run.cfg, run.process, run.predictor, run.state.iteration
    network = unwrap_model(predictor.model)
    entry = _test_entry(cfg, process, predictor, splits, "test (last)")
    last = {"iteration": iteration, **entry}
    last_weights = {k: v.clone() for k, v in network.state_dict().items()}
    distributed.barrier(process)
    best_checkpoint = load_checkpoint(run.run_dir / "best.pth", map_location=process.device)
    if best_checkpoint["iteration"] != iteration:  # else the same weights (data.val_split=none)
        network.load_state_dict(best_checkpoint["model"])
        entry = _test_entry(cfg, process, predictor, splits, "test (best)")
        network.load_state_dict(last_weights)
    val = best_checkpoint.get("metrics", {})
    best = {"iteration": best_checkpoint["iteration"], "val": val, **entry}
    return {
        "selection": _selection(cfg, splits),
        "threshold": cfg["eval"]["threshold"],
        "best": best,
        "last": last,
    }


def _selection(cfg: Mapping[str, Any], splits: Splits) -> dict[str, Any]:
    """Where and by what the checkpoint was selected, and what identifies the split: its
    seed, sizes, and the validation names with their hash (runs of several training seeds
    can be checked to have scored on the same split by comparing ``val_names_sha256``)."""
    val_names = sorted(sample.name for sample in splits.val)
    return {
        "split": splits.val_source if splits.val else "none (no validation images: best = last)",
        "metric": cfg["train"]["select_metric"],
        "val_split": cfg["data"]["val_split"],
        "split_seed": cfg["data"]["split_seed"],
        "n_train": len(splits.train),
        "n_val": len(val_names),
        "n_test": len(splits.test),
        "val_names_sha256": hashlib.sha256("\n".join(val_names).encode()).hexdigest(),
        "val_names": val_names,
    }


def _test_entry(
    cfg: Mapping[str, Any],
    process: distributed.DistInfo,
    predictor: Predictor,
    splits: Splits,
    desc: str,
) -> dict[str, Any]:
    """Test metrics of the weights in the predictor; with ``eval.val_threshold``, also at the
    threshold that scores best on val with these same weights (val first, so one pass over
    test scores both thresholds)."""
    chosen_by = cfg["eval"]["val_threshold"]
    if chosen_by == "off":
        return {"test": _score(predictor, splits.test, cfg, process, desc)}
    (on_val,) = _score_at(predictor, splits.val, cfg, process, "val", [None], VAL_THRESHOLDS)
    chosen = best_threshold(on_val["pd_fa_curve"], chosen_by)
    standard, at_chosen = _score_at(
        predictor, splits.test, cfg, process, desc, [None, chosen["threshold"]]
    )
    return {
        "test": standard,
        "val_threshold": {"by": chosen_by, **chosen},
        "test_at_val_threshold": at_chosen,
    }


def _score(
    predictor: Predictor,
    samples: Sequence[Sample],
    cfg: Mapping[str, Any],
    process: distributed.DistInfo,
    desc: str,
) -> dict[str, Any]:
    """The config's metrics on ``samples`` at ``eval.threshold`` (see :func:`_score_at`)."""
    (metrics,) = _score_at(predictor, samples, cfg, process, desc, [None])
    return metrics


def _score_at(
    predictor: Predictor,
    samples: Sequence[Sample],
    cfg: Mapping[str, Any],
    process: distributed.DistInfo,
    desc: str,
    thresholds: Sequence[float | None],
    curve_thresholds: Sequence[float] | None = None,
) -> list[dict[str, Any]]:
    """The config's metrics on ``samples`` at each threshold (None: ``eval.threshold``), from
    one pass of the predictor, without the ROC arrays (which logs do not need).

    Each rank scores its share; the counts are summed over ranks. Rank 0 shows the progress
    (a bar on a terminal, log lines elsewhere). ``curve_thresholds`` adds ``pd_fa_curve``.
    """
    results = evaluate_at(
        predictor,
        samples,
        [cfg["eval"]["threshold"] if t is None else t for t in thresholds],
        protocol=cfg["eval"]["protocol"],
        batch_size=cfg["eval"]["batch_size"],
        process=process,
        progress=process.is_main,
        desc=desc,
        curve_thresholds=curve_thresholds,
    )
    return [{k: v for k, v in m.items() if not k.startswith("roc_")} for m in results]


def log_test_report(report: Mapping[str, Any]) -> None:
    """The numbers of ``test_metrics.json`` in the log: one line per checkpoint and threshold."""
    selection = report["selection"]
    logger.info("checkpoint selected on %s by %s", selection["split"], selection["metric"])
    for which in ("best", "last"):
        entry = report[which]
        scored = [("test", entry["test"])]
        if "val_threshold" in entry:
            threshold = entry["val_threshold"]["threshold"]
            scored.append((f"test at val threshold {threshold:g}", entry["test_at_val_threshold"]))
        for label, metrics in scored:
            line = METRICS_LINE.format(**metrics) + f" AUC {metrics['auc']:.4f}"
            logger.info("%s (%s, iter %d): %s", label, which, entry["iteration"], line)
