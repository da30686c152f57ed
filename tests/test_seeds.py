"""Several seeds of one config: the summary's maths, its file, and an end-to-end run."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
import torch

from lrrnet.config import load_config
from lrrnet.engine.checkpoint import load_checkpoint
from lrrnet.engine.seeds import (
    _resume_for_seed,
    summary_rows,
    summary_table,
    train_seeds,
    write_summary,
)
from lrrnet.engine.trainer import RunResult
from lrrnet.errors import UserError
from lrrnet.metrics import METRIC_KEYS
from tests.test_trainer import tiny_dataset, tiny_overrides  # noqa: F401 (a fixture)


def fake_run(seed, best_iou, last_iou, chosen=None):
    """A RunResult whose report holds IoU values given and 0.5 for the other metrics."""

    def metrics(iou):
        return {key: 0.5 for key in METRIC_KEYS} | {"miou": iou}

    report = {
        "selection": {"val_names_sha256": "same"},
        "threshold": 0.5,
        "best": {"iteration": 10 * seed, "test": metrics(best_iou)},
        "last": {"iteration": 100, "test": metrics(last_iou)},
    }
    if chosen is not None:
        for which in ("best", "last"):
            report[which]["val_threshold"] = {"by": "f1", "threshold": chosen}
            report[which]["test_at_val_threshold"] = metrics(0.9)
    return seed, RunResult(f"tiny{seed}", Path(f"runs/{seed}"), report=report)


def test_summary_rows_hold_every_run_then_mean_and_sample_std(tmp_path):
    rows = summary_rows([fake_run(1, 0.5, 0.4), fake_run(2, 0.7, 0.4), fake_run(3, 0.9, 0.7)])
    per_run = [row for row in rows if row["run"] not in ("mean", "std")]
    assert [(r["seed"], r["checkpoint"], r["miou"]) for r in per_run] == [
        (1, "best", 0.5),
        (1, "last", 0.4),
        (2, "best", 0.7),
        (2, "last", 0.4),
        (3, "best", 0.9),
        (3, "last", 0.7),
    ]
    stats = {(r["run"], r["checkpoint"]): r for r in rows if r["run"] in ("mean", "std")}
    # best: 0.5, 0.7, 0.9 -> mean 0.7, sample std sqrt((0.04 + 0 + 0.04) / 2) = 0.2
    assert stats["mean", "best"]["miou"] == pytest.approx(0.7)
    assert stats["std", "best"]["miou"] == pytest.approx(0.2)
    # last: 0.4, 0.4, 0.7 -> mean 0.5, sample std sqrt((0.01 + 0.01 + 0.04) / 2) = sqrt(0.03)
    assert stats["mean", "last"]["miou"] == pytest.approx(0.5)
    assert stats["std", "last"]["miou"] == pytest.approx(math.sqrt(0.03))
    assert stats["std", "best"]["f1"] == 0.0  # equal values, no spread

    path = write_summary(rows, tmp_path / "seeds_summary_x.csv")
    with path.open() as handle:
        saved = list(csv.DictReader(handle))
    assert len(saved) == 6 + 4
    assert float(saved[-2]["miou"]) == pytest.approx(0.5)  # mean of last, written in full
    table = summary_table(rows)
    assert "mean ± std best" in table and "70.00 ± 20.00" in table
    assert "seed 3 last" in table


def test_summary_covers_the_threshold_chosen_on_val():
    rows = summary_rows([fake_run(1, 0.5, 0.4, chosen=0.35), fake_run(2, 0.7, 0.4, chosen=0.4)])
    chosen = [r for r in rows if r["checkpoint"] == "best@val_threshold"]
    assert [r["threshold"] for r in chosen[:2]] == [0.35, 0.4]
    assert [r["run"] for r in chosen] == ["runs/1", "runs/2", "mean", "std"]
    assert chosen[2]["miou"] == pytest.approx(0.9) and chosen[3]["miou"] == 0.0


def test_seed_errors_before_any_run(tmp_path):
    cfg = load_config("synthetic")
    with pytest.raises(UserError, match="repeated seed"):
        train_seeds(cfg, [1, 1])
    with pytest.raises(UserError, match="--resume auto only"):
        train_seeds(cfg, [1, 2], resume=str(tmp_path / "latest.pth"))


def test_run_configs_seeds_end_to_end(tiny_dataset, tmp_path, capsys, script_logging):  # noqa: F811
    import run_configs  # a script of the project root, which pytest puts on sys.path

    args = ["synthetic", "--seeds", "4", "5"]
    for item in tiny_overrides(tiny_dataset, tmp_path / "c", **{"train.epochs": 1}):
        args += ["--set", item]
    assert run_configs.main(args) == 0
    printed = capsys.readouterr().out
    assert "mean ± std best" in printed and "mean ± std last" in printed

    folder = tmp_path / "c" / "tiny"
    (summary,) = folder.glob("seeds_summary_*.csv")
    assert f"summary: {summary}" in printed
    with summary.open() as handle:
        rows = list(csv.DictReader(handle))
    runs = sorted({row["run"] for row in rows} - {"mean", "std"})
    assert len(runs) == 2 and all(Path(run).parent == folder for run in runs)
    reports = [json.loads((Path(run) / "test_metrics.json").read_text()) for run in runs]
    # Same split (split_seed), different training (seed).
    assert len({r["selection"]["val_names_sha256"] for r in reports}) == 1
    weights = [load_checkpoint(Path(run) / "latest.pth")["model"] for run in runs]
    assert not all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    mean_best = next(r for r in rows if r["run"] == "mean" and r["checkpoint"] == "best")
    ious = [float(r["miou"]) for r in rows if r["run"] in runs and r["checkpoint"] == "best"]
    assert float(mean_best["miou"]) == pytest.approx(sum(ious) / 2)


def test_resume_auto_picks_the_newest_run_of_each_seed(tmp_path):
    folder = tmp_path / "tiny"
    for stamp, seed in (("20260101-000000", 1), ("20260102-000000", 2), ("20260103-000000", 1)):
        (folder / stamp).mkdir(parents=True)
        (folder / stamp / "config.yaml").write_text(f"seed: {seed}\n")
        (folder / stamp / "latest.pth").write_bytes(b"")
    cfg = load_config("synthetic", [f"paths.checkpoints={str(tmp_path)!r}", "name='tiny'"])
    assert _resume_for_seed(cfg, 1) == str(folder / "20260103-000000" / "latest.pth")
    assert _resume_for_seed(cfg, 2) == str(folder / "20260102-000000" / "latest.pth")
    assert _resume_for_seed(cfg, 3) is None
