"""Panels of a model run and of saved maps: tools/visualize.py in its CONFIG and --pred modes."""

from __future__ import annotations

import cv2
import numpy as np
import torch
from conftest import run_visualize

from lrrnet.data.io import write_prediction
from lrrnet.models import LRRNet
from lrrnet.visualize import GAP, LEGEND_HEIGHT, NA_GREY, TITLE_HEIGHT

TINY = {"base_channels": 8, "num_groups": 4, "channel_mults": (1, 2), "num_res_blocks": 1}


def expected_scale(height, width):
    return -(-256 // max(height, width))  # the integer enlargement to a 256-px tile


def expected_panel_shape(height, width):
    scale = expected_scale(height, width)
    return (TITLE_HEIGHT + height * scale + LEGEND_HEIGHT, 5 * width * scale + 6 * GAP, 3)


def test_pred_mode_writes_one_panel_per_image(tmp_path):
    images, masks, results = tmp_path / "images", tmp_path / "masks", tmp_path / "results"
    images.mkdir(), masks.mkdir()
    rng = np.random.default_rng(0)
    sizes = {"p": (20, 24), "q": (20, 24), "r": (17, 9)}
    for name, (height, width) in sizes.items():
        frame = rng.integers(0, 120, (height, width), dtype=np.uint8)
        mask = np.zeros((height, width), np.uint8)
        mask[4, 4] = 255
        frame[4, 4] = 250
        cv2.imwrite(str(images / f"{name}.png"), frame)
        cv2.imwrite(str(masks / f"{name}.png"), mask)
        prob = (mask > 0).astype(np.float32) * 0.9
        background = None if name == "r" else frame.astype(np.float32) / 255
        write_prediction(results, name, prob, background=background)
    (results / "background" / "q.png").unlink()  # q's D then comes from its .mat file
    out = tmp_path / "vis"
    done = run_visualize("--pred", results, "--images", images, "--masks", masks, "--out", out)
    assert done.returncode == 0, done.stderr
    assert sorted(path.name for path in out.iterdir()) == ["p.png", "q.png", "r.png", "worst.png"]
    for name, (height, width) in sizes.items():
        panel = cv2.imread(str(out / f"{name}.png"))
        assert panel.shape == expected_panel_shape(height, width)
        scale = expected_scale(height, width)
        left = GAP + width * scale + GAP  # the background tile, second from the left
        tile = panel[TITLE_HEIGHT + 30 : TITLE_HEIGHT + height * scale, left : left + width * scale]
        grey_share = np.mean(np.all(tile[:, :, ::-1] == NA_GREY, axis=2))
        assert (grey_share == 1.0) == (name == "r")  # only r was saved without D

    # The frames may be given as DIR with DIR/images, as everywhere a folder of frames is.
    no_masks = run_visualize("--pred", results, "--images", tmp_path, "--out", tmp_path / "vis2")
    assert no_masks.returncode == 0, no_masks.stderr
    assert sorted(path.name for path in (tmp_path / "vis2").iterdir()) == [
        "p.png",
        "q.png",
        "r.png",
    ]

    missing = run_visualize("--pred", results, "--images", masks.parent / "nowhere", "--out", out)
    assert missing.returncode == 2 and "nowhere" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_config_mode_runs_the_newest_checkpoint(tmp_path, tiny_synthetic_run):
    run_dir, args = tiny_synthetic_run
    torch.manual_seed(0)
    model = LRRNet(**TINY)
    torch.save({"model": model.state_dict(), "config": {"model": TINY}}, run_dir / "best.pth")
    done = run_visualize("synthetic", *args, "--limit", "2")
    assert done.returncode == 0, done.stderr
    assert str(run_dir / "best.pth") in done.stderr
    written = sorted(path.name for path in (tmp_path / "results" / "tiny" / "vis").iterdir())
    assert len(written) == 3 and "worst.png" in written  # two panels and the sheet
    panel = cv2.imread(str(tmp_path / "results" / "tiny" / "vis" / written[0]))
    assert panel.shape == expected_panel_shape(32, 32)
