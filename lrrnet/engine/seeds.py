"""Several training seeds of one config, and their summary: mean ± std of the test metrics.

``run_configs.py CONFIG --seeds 1 2 3`` trains one run per seed (``seed=S`` added to the
overrides) and writes ``checkpoints/<name>/seeds_summary_<timestamp>.csv`` beside the run
folders: one row per run and checkpoint (``best``, ``last``, and the ``…@val_threshold``
rows when ``eval.val_threshold`` is set), then the mean and the sample standard deviation
(n − 1) of every test metric per checkpoint. The holdout split follows ``data.split_seed``,
not the seed, so every run is scored on the same validation and test images (each run's
``test_metrics.json`` records the validation names' hash; the summary checks they agree).
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from lrrnet.config_tree import freeze, override
from lrrnet.engine.distributed import is_main_process
from lrrnet.engine.run_files import run_checkpoints
from lrrnet.engine.trainer import RunResult, train
from lrrnet.errors import UserError
from lrrnet.metrics import METRIC_KEYS, format_table, mean_and_std

logger = logging.getLogger(__name__)

# The checkpoints a summary covers, as (row label, key of test_metrics.json's entry, metrics).
_SCORED = (("", "test"), ("@val_threshold", "test_at_val_threshold"))


@dataclass
class SeedRuns:
    """The runs of one config over several seeds.

    Attributes:
        name: the config's run name.
        runs: ``(seed, result)`` of every run that finished.
        failed: ``(seed, message)`` of every run that stopped with a user error.
        summary_path: the CSV written (None when no run finished, or one stopped).
        table: the printed summary table.
        stopped: the run that ``train.time_limit`` stopped; the later seeds did not start,
            and the summary waits for a call that finishes them all.
    """

    name: str
    runs: list[tuple[int, RunResult]] = field(default_factory=list)
    failed: list[tuple[int, str]] = field(default_factory=list)
    summary_path: Path | None = None
    table: str = ""
    stopped: RunResult | None = None


def train_seeds(
    cfg: Mapping[str, Any],
    seeds: Sequence[int],
    resume: str | None = None,
) -> SeedRuns:
    """Train ``cfg`` once per seed and write the summary beside the run folders.

    Args:
        cfg: a resolved config (:func:`lrrnet.config.load_config`); its ``seed`` is replaced
            by each of ``seeds`` in turn.
        seeds: the training seeds, distinct.
        resume: None, or ``"auto"``: each seed continues the newest run of this config with
            that seed (a finished run is only scored again).

    Raises:
        UserError: repeated seeds, or a resume path (it names one run, not one per seed).
    """
    if len(set(seeds)) != len(seeds):
        raise UserError(f"--seeds: repeated seed(s) in {list(seeds)}")
    if resume not in (None, "auto"):
        raise UserError("--seeds takes --resume auto only (a path names a single run)")
    configs = {seed: freeze(override(cfg, {"seed": seed})) for seed in seeds}
    outcome = SeedRuns(name=configs[seeds[0]]["name"])
    for seed, cfg in configs.items():
        logger.info("%s: seed %d of %s", outcome.name, seed, list(seeds))
        try:
            result = train(cfg, resume=_resume_for_seed(cfg, seed) if resume else None)
        except UserError as error:
            logger.error("%s seed %d: %s", outcome.name, seed, error)
            outcome.failed.append((seed, str(error)))
            continue
        if not result.finished:
            outcome.stopped = result
            break
        outcome.runs.append((seed, result))
    if outcome.runs and outcome.stopped is None and is_main_process():  # rank 0 writes
        folder = Path(configs[seeds[0]]["paths"]["checkpoints"], outcome.name)
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        outcome.summary_path = folder / f"seeds_summary_{stamp}.csv"
        rows = summary_rows(outcome.runs)
        write_summary(rows, outcome.summary_path)
        outcome.table = summary_table(rows)
        _check_same_split(outcome.runs)
    return outcome


def summary_rows(runs: Sequence[tuple[int, RunResult]]) -> list[dict[str, Any]]:
    """One row per run and scored checkpoint, then mean and std rows per checkpoint.

    Each row has ``run`` (the run folder, or ``mean`` / ``std``), ``seed``, ``checkpoint``
    (``best``, ``last``, ``best@val_threshold`` …), ``iteration``, ``threshold`` and the
    metrics of :data:`METRIC_KEYS` (fractions; for the mean and std rows, the statistic).
    """
    per_run, by_checkpoint = [], {}
    for seed, result in runs:
        for which in ("best", "last"):
            entry = result.report[which]
            for suffix, key in _SCORED:
                if key not in entry:
                    continue
                threshold = (
                    entry["val_threshold"]["threshold"] if suffix else result.report["threshold"]
                )
                checkpoint = which + suffix
                metrics = entry[key]
                by_checkpoint.setdefault(checkpoint, []).append(metrics)
                per_run.append(
                    {
                        "run": str(result.run_dir),
                        "seed": seed,
                        "checkpoint": checkpoint,
                        "iteration": entry["iteration"],
                        "threshold": threshold,
                        **{k: metrics[k] for k in METRIC_KEYS},
                    }
                )
    statistics = []
    for checkpoint, metrics in by_checkpoint.items():
        summary = mean_and_std(metrics)
        for index, statistic in enumerate(("mean", "std")):
            statistics.append(
                {
                    "run": statistic,
                    "seed": " ".join(str(seed) for seed, _ in runs),
                    "checkpoint": checkpoint,
                    "iteration": "",
                    "threshold": "",
                    **{k: summary[k][index] for k in METRIC_KEYS},
                }
            )
    return per_run + statistics


def write_summary(rows: list[dict[str, Any]], path: Path) -> Path:
    """The rows of :func:`summary_rows` as CSV (metrics as fractions, full precision)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def summary_table(rows: list[dict[str, Any]]) -> str:
    """The printed summary: each run's rows, then ``mean ± std`` per checkpoint."""
    table_rows = [
        (f"seed {row['seed']} {row['checkpoint']}", row)
        for row in rows
        if row["run"] not in ("mean", "std")
    ]
    means = {row["checkpoint"]: row for row in rows if row["run"] == "mean"}
    stds = {row["checkpoint"]: row for row in rows if row["run"] == "std"}
    for checkpoint, mean in means.items():
        paired = {k: (mean[k], stds[checkpoint][k]) for k in METRIC_KEYS}
        table_rows.append((f"mean ± std {checkpoint}", paired))
    return format_table(table_rows)


def _resume_for_seed(cfg, seed: int) -> str | None:
    """``latest.pth`` of the newest run of this config trained with ``seed``, if any."""
    for path in reversed(run_checkpoints(cfg, "latest.pth")):
        saved = yaml.safe_load((path.parent / "config.yaml").read_text())
        if saved.get("seed") == seed:
            return str(path)
    logger.info("--resume auto: no earlier run of '%s' with seed %d", cfg["name"], seed)
    return None


def _check_same_split(runs: Sequence[tuple[int, RunResult]]) -> None:
    """Warn when the runs did not validate on the same images (e.g. split_seed overridden)."""
    hashes = {result.report["selection"]["val_names_sha256"] for _, result in runs}
    if len(hashes) > 1:
        logger.warning(
            "the seeds' runs validated on different images (%d distinct val splits): "
            "their spread mixes training and data variation",
            len(hashes),
        )
