"""The real datasets as their authors distribute them (``../shared/datasets``), when present.

Each dataset is found in its official layout with its exact split counts, trains one
iteration with a tiny network at a tiny size, and SIRST v1's test split (with ``Misc_111``,
whose mask is larger than its image) goes through inference and ``cal_from_mask.py``.
Skipped, with the reason, where the datasets are absent (a user's fresh clone). They are
read in place, never copied.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import scipy.io
import torch

from lrrnet.config import load_config
from lrrnet.data import TrainDataset, build_splits, splits_from_config
from lrrnet.engine.trainer import train
from lrrnet.losses import LRRNetLoss
from lrrnet.models import build_model

ROOT = Path(__file__).resolve().parents[1]
DATASETS = ROOT.parent / "shared" / "datasets"
SIRST = DATASETS / "SIRST"
NUDT = DATASETS / "NUDT-SIRST"
IRSTD1K_SAMPLE = DATASETS / "IRSTD-1k-sample"

TINY = {
    "model.base_channels": 8,
    "model.num_groups": 4,
    "model.channel_mults": (1, 2),
    "model.num_res_blocks": 1,
    "data.base_size": 32,
    "data.num_workers": 0,
    "train.batch_size": 2,
    "train.max_iters": 1,
    "train.device": "cpu",
    "train.num_log_images": 1,
}


def _needs(root: Path):
    return pytest.mark.skipif(
        not root.is_dir(), reason=f"{root} not present (the real datasets are not shipped)"
    )


def _overrides(root: Path, checkpoints: Path) -> list[str]:
    values = TINY | {"data.root": str(root), "paths.checkpoints": str(checkpoints)}
    return [f"{k}={v!r}" if isinstance(v, str) else f"{k}={v}" for k, v in values.items()]


def _split_line(log: str) -> tuple[str, str, int, int, int]:
    found = re.findall(r": (.+) \((\w+)\): (\d+) train, (\d+) val \(.+\), (\d+) test$", log, re.M)
    assert len(found) == 1, found
    root, layout, *counts = found[0]
    return (root, layout, *map(int, counts))


@_needs(SIRST)
def test_sirst_v1_official_release_trains_infers_and_scores(tmp_path):
    splits = build_splits(SIRST, val_split="val")
    assert splits.layout == "sirst_v1"
    assert (len(splits.train), len(splits.val), len(splits.test)) == (256, 85, 86)
    assert "Misc_111" in {s.name for s in splits.test}

    overrides = _overrides(SIRST, tmp_path / "checkpoints")
    result = train(load_config("sirst", overrides))
    log = (result.run_dir / "log.txt").read_text()
    assert _split_line(log) == (str(SIRST), "sirst_v1", 256, 85, 86)
    assert "Misc_111_pixels0.png: mask is 592x400 but image" in log
    assert "trained 1 iterations in" in log
    test = json.loads((result.run_dir / "test_metrics.json").read_text())["best"]["test"]
    assert test["n_images"] == 86

    # What a user runs next: inference on the test split, then scoring against the
    # release's masks/ folder, which holds every split and an .xml beside each mask.
    out = tmp_path / "results"
    sets = [arg for item in overrides for arg in ("--set", item)]
    checkpoint = result.run_dir / "best.pth"
    inferred = subprocess.run(
        [sys.executable, str(ROOT / "inference.py"), "sirst", *sets]
        + ["--checkpoint", str(checkpoint), "--out", str(out), "--device", "cpu"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert inferred.returncode == 0, inferred.stderr
    frame = scipy.io.loadmat(str(out / "mat" / "Misc_111.mat"))["T"]
    assert frame.shape == (220, 325)  # at the image's own size, not the mask's
    scored = subprocess.run(
        [sys.executable, str(ROOT / "cal_from_mask.py"), "--pred", str(out)]
        + ["--masks", str(SIRST / "masks"), "--json", str(tmp_path / "scores.json")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert scored.returncode == 0, scored.stderr
    assert (
        "341 of the 427 masks" in scored.stderr and "Misc_111_pixels0.png: mask is" in scored.stderr
    )
    saved = json.loads((tmp_path / "scores.json").read_text())
    assert (saved["n_images"], saved["n_targets"]) == (86, test["n_targets"])
    # The same maps, scored by the trainer and by cal_from_mask, give the same numbers.
    for key in ("miou", "niou", "pd", "fa"):
        assert saved[key] == pytest.approx(test[key], abs=1e-3), key


@_needs(IRSTD1K_SAMPLE)
def test_irstd1k_official_sample_trains_one_iteration(tmp_path):
    splits = splits_from_config(load_config("irstd1k", [f"data.root={str(IRSTD1K_SAMPLE)!r}"]))
    assert splits.layout == "irstd1k"
    assert len(splits.train) + len(splits.val) == 16 and len(splits.test) == 8
    assert all(s.mask.parent.name == "IRSTD1k_Label" for s in splits.test)

    result = train(load_config("irstd1k", _overrides(IRSTD1K_SAMPLE, tmp_path)))
    log = (result.run_dir / "log.txt").read_text()
    assert _split_line(log) == (str(IRSTD1K_SAMPLE), "irstd1k", 14, 2, 8)
    assert "trained 1 iterations in" in log
    test = json.loads((result.run_dir / "test_metrics.json").read_text())["last"]["test"]
    assert test["n_images"] == 8 and test["n_targets"] > 0


@_needs(NUDT)
def test_nudt_sirst_dnanet_layout_trains_one_iteration():
    """Counts, then one optimisation step on real frames through the training pipeline.

    Not the whole trainer: its final test scores all 664 test frames twice, which costs
    more than the rest of this file on a 2-core machine; SIRST v1 and IRSTD-1k above run it.
    """
    cfg = load_config("nudt", [f"{k}={v}" for k, v in TINY.items()] + [f"data.root={str(NUDT)!r}"])
    splits = splits_from_config(cfg)
    assert splits.layout == "dnanet"
    assert len(splits.train) + len(splits.val) == 663 and len(splits.test) == 664

    torch.manual_seed(1)
    model = build_model(cfg)
    data = cfg["data"]
    dataset = TrainDataset(splits.train, base_size=data["base_size"], seed=cfg["seed"])
    batch = torch.utils.data.default_collate([dataset[0], dataset[1]])
    assert batch["image"].shape == batch["mask"].shape == (2, 1, 32, 32)
    assert batch["mask"].sum() > 0  # NUDT-SIRST frames hold targets
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg["train"]["lr"])
    before = [p.detach().clone() for p in model.parameters()]
    reconstruction, target_logits = model(batch["image"])
    loss, _ = LRRNetLoss(**cfg["loss"])(
        reconstruction, target_logits, batch["image"], batch["mask"]
    )
    loss.backward()
    optimizer.step()
    assert torch.isfinite(loss)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
