"""Scoring a predictor on samples: several thresholds from one pass."""

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from lrrnet.data import Sample
from lrrnet.engine.evaluator import evaluate_at
from lrrnet.engine.predictor import Predictor
from lrrnet.models import LRRNet


@pytest.fixture
def samples(tmp_path: Path) -> list[Sample]:
    rng = np.random.default_rng(0)
    made = []
    for index in range(5):
        image = rng.integers(20, 120, size=(32, 32)).astype(np.uint8)
        mask = np.zeros((32, 32), dtype=np.uint8)
        top, left = rng.integers(2, 28, size=2)
        image[top : top + 3, left : left + 3] = 250
        mask[top : top + 3, left : left + 3] = 255
        cv2.imwrite(str(tmp_path / f"i{index}.png"), image)
        cv2.imwrite(str(tmp_path / f"m{index}.png"), mask)
        made.append(Sample(f"f{index}", tmp_path / f"i{index}.png", tmp_path / f"m{index}.png"))
    return made


def test_several_thresholds_in_one_pass_equal_separate_passes(samples) -> None:
    torch.manual_seed(0)
    model = LRRNet(base_channels=8, num_groups=4).eval()
    forwards = []
    model.register_forward_hook(lambda *_: forwards.append(1))
    predictor = Predictor(model, device="cpu", size="native")
    thresholds = [0.3, 0.5, 0.7]
    together = evaluate_at(predictor, samples, thresholds, batch_size=2, curve_thresholds=[0.4])
    one_pass = len(forwards)
    assert one_pass == 3  # 5 frames of one size in batches of 2
    for threshold, metrics in zip(thresholds, together, strict=True):
        (alone,) = evaluate_at(
            predictor, samples, [threshold], batch_size=2, curve_thresholds=[0.4]
        )
        assert metrics.keys() == alone.keys()
        for key, value in alone.items():
            np.testing.assert_equal(metrics[key], value, err_msg=key)
    assert len(forwards) == 4 * one_pass
    # The thresholds do matter here: the maps are not all above or all below them.
    assert together[0]["fa"] != together[2]["fa"] or together[0]["miou"] != together[2]["miou"]
