"""The low-rank evidence: effective rank, unfolding, measurement over frames, the tool."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from conftest import load_tool

from lrrnet.lowrank import (
    QUANTITIES,
    Measurement,
    effective_rank,
    feature_maps,
    measure,
    singular_values,
    unfold,
)
from lrrnet.models import LRRNet

SMALL = {"base_channels": 8, "num_groups": 4, "channel_mults": (1, 2), "num_res_blocks": 1}


def test_effective_rank_counts_the_energy():
    # Energies 9, 1, 0 of 10: 90 % in the first value, 100 % in two.
    assert effective_rank(np.array([3.0, 1.0, 0.0]), 0.9) == 1
    assert effective_rank(np.array([3.0, 1.0, 0.0]), 0.99) == 2
    assert effective_rank(np.array([3.0, 1.0, 0.0]), 1.0) == 2
    assert effective_rank(np.zeros(4)) == 0


def test_rank_two_matrix_and_full_rank_noise():
    rng = np.random.default_rng(0)
    low = np.outer(rng.random(30), rng.random(40)) + np.outer(rng.random(30), rng.random(40))
    values = singular_values(low)
    assert values.shape == (30,) and np.all(np.diff(values) <= 0)
    assert effective_rank(values, 0.999) == 2
    assert effective_rank(singular_values(rng.standard_normal((30, 40)))) > 20


def test_centring_removes_the_mean_level():
    rng = np.random.default_rng(3)
    structure = np.outer(rng.random(30), rng.random(40)) + np.outer(rng.random(30), rng.random(40))
    bright = 50.0 + 0.1 * (structure - structure.mean())  # a bright, nearly flat frame
    raw, centred = Measurement(), Measurement()
    raw.add(bright, 0.99)
    centred.add(bright, 0.99, center=True)
    assert raw.ranks == [1]  # the mean level holds over 99 % of the energy
    assert centred.ranks == [effective_rank(singular_values(structure - structure.mean()))]
    assert centred.ranks[0] >= 2


def test_unfold_puts_the_channels_side_by_side():
    feature = np.arange(2 * 3 * 4).reshape(2, 3, 4)
    unfolded = unfold(feature)
    assert unfolded.shape == (3, 8)
    np.testing.assert_array_equal(unfolded[1, 4:], feature[1, 1])  # channel 1, row 1
    np.testing.assert_array_equal(unfolded[2, :4], feature[0, 2])


def test_measure_over_frames_of_two_sizes():
    torch.manual_seed(0)
    model = LRRNet(**SMALL)
    rng = np.random.default_rng(1)
    frames = [("a", rng.random((20, 28), dtype=np.float32)), ("b", rng.random((16, 16)))]
    maps = feature_maps(model, frames[0][1])
    assert maps["input"].shape == maps["reconstruction"].shape == (20, 28)  # padded, cropped
    assert maps["background"].shape == maps["shallow"].shape == (8, 20, 28)
    report = measure(model, frames)
    assert report.frames == ["a", "b"]
    measured = report.measurements
    assert list(measured) == list(QUANTITIES)
    assert measured["background B (per channel)"].full_ranks == [20] * 8 + [16] * 8
    assert measured["background B (unfolded)"].full_ranks == [20, 16]
    assert measured["input x"].ranks == [
        effective_rank(singular_values(image)) for _, image in frames
    ]
    assert feature_maps(model, frames[0][1], size=32)["background"].shape == (8, 32, 32)
    with pytest.raises(ValueError, match="energy"):
        measure(model, frames, energy=0.0)


def test_tool_writes_the_table_the_csv_and_the_plot(tmp_path, capsys, script_logging):
    torch.manual_seed(0)
    model = LRRNet(**SMALL)
    checkpoint = tmp_path / "model.pth"
    torch.save({"model": model.state_dict(), "config": {"model": SMALL}}, checkpoint)
    images = tmp_path / "frames"
    images.mkdir()
    rng = np.random.default_rng(2)
    for name in ("f1", "f2", "f3"):
        cv2.imwrite(str(images / f"{name}.png"), rng.integers(0, 255, (24, 32), dtype=np.uint8))
    tool = load_tool("lowrank")
    out = tmp_path / "out"
    args = ["--checkpoint", str(checkpoint), "--images", str(images), "--out", str(out)]
    assert tool.main([*args, "--limit", "2"]) == 0
    printed = capsys.readouterr().out
    assert "effective rank at 99% energy over 2 frame(s)" in printed
    assert all(name in printed for name in QUANTITIES)
    assert (out / "lowrank.txt").read_text().strip() in printed
    assert (out / "lowrank.png").read_bytes()[:4] == b"\x89PNG"
    lines = (out / "lowrank.csv").read_text().splitlines()
    assert len(lines) == 3 and lines[1].startswith("f1,")

    assert tool.main([*args[:2], "--images", str(tmp_path / "missing")]) == 2
    assert "missing" in capsys.readouterr().err
    assert tool.main([*args, "--energy", "1.5"]) == 2
    capsys.readouterr()
    assert tool.main([*args, "--limit", "1", "--center"]) == 0
    assert "centred" in capsys.readouterr().out


def test_centring_features_removes_each_channels_offset(monkeypatch):
    import lrrnet.lowrank as lowrank

    offsets = np.arange(4, dtype=np.float32)[:, None, None] * np.ones((4, 8, 8), np.float32)
    maps = {
        "input": np.full((8, 8), 0.5, np.float32),
        "reconstruction": np.full((8, 8), 0.5, np.float32),
        "background": offsets,  # a different constant per channel: rank 1 unfolded
        "shallow": offsets + 1,
    }
    monkeypatch.setattr(lowrank, "feature_maps", lambda *args, **kwargs: dict(maps))
    raw = measure(None, [("a", maps["input"])])
    centred = measure(None, [("a", maps["input"])], center=True)
    assert raw.measurements["background B (unfolded)"].ranks == [1]
    assert raw.measurements["shallow u (unfolded)"].ranks == [1]
    assert all(m.ranks[0] == 0 for m in centred.measurements.values())  # nothing but offsets
