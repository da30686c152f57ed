import math

import pytest
import torch

from lrrnet.config import load_config
from lrrnet.engine.schedule import check_min_lr, lr_at, make_optimizer, total_iterations
from lrrnet.errors import ConfigError

BASE_TRAIN = load_config("base")["train"]


def lr(iteration: int, total: int, base_lr: float, **train) -> float:
    """lr_at for a run of ``total`` iterations (one epoch) from ``base_lr``, the schedule
    settings the base config's unless ``train`` names them."""
    section = {**BASE_TRAIN, "epochs": 1, "max_iters": None, "lr": base_lr, **train}
    return lr_at(section, iteration, total)


def test_poly_matches_the_published_formula():
    total = 1000
    for it in (0, 1, 250, 999):
        assert lr(it, total, 1e-4, schedule="poly", poly_power=0.9) == pytest.approx(
            1e-4 * (1 - it / total) ** 0.9, rel=1e-12
        )
    assert lr(total, total, 1e-4) == 0.0


def test_cosine_halfway_and_min_lr():
    assert lr(50, 100, 1.0, schedule="cosine") == pytest.approx(0.5)
    assert lr(100, 100, 1.0, schedule="cosine", min_lr=0.1) == pytest.approx(0.1)
    assert lr(0, 100, 1.0, schedule="cosine", min_lr=0.1) == pytest.approx(1.0)


def test_step_milestones():
    values = [
        lr(it, 100, 1.0, schedule="step", step_milestones=(0.5, 0.8), step_gamma=0.1)
        for it in (0, 49, 50, 79, 80)
    ]
    assert values == pytest.approx([1.0, 1.0, 0.1, 0.1, 0.01])


def test_linear_warmup_scales_the_schedule():
    assert lr(0, 100, 1.0, schedule="constant", warmup_iters=4) == pytest.approx(0.25)
    assert lr(3, 100, 1.0, schedule="constant", warmup_iters=4) == pytest.approx(1.0)
    poly = lr(1, 100, 1.0, schedule="poly", warmup_iters=4)
    assert poly == pytest.approx(0.5 * (0.99**0.9))


def test_the_run_length_is_the_epochs_capped_at_max_iters():
    assert total_iterations({"epochs": 3, "max_iters": None}, 10) == 30
    assert total_iterations({"epochs": 3, "max_iters": 12}, 10) == 12
    # 2 epochs of 10 capped at 5: the poly decay spreads over the 5 steps that run.
    capped = {**BASE_TRAIN, "epochs": 2, "max_iters": 5, "lr": 1.0}
    assert lr_at(capped, 1, 10) == pytest.approx(0.8**0.9)


def test_bad_arguments():
    with pytest.raises(ValueError):
        lr(0, 0, 1.0)
    with pytest.raises(ValueError, match="unknown schedule"):
        lr(0, 10, 1.0, schedule="exp")
    assert math.isfinite(lr(10**6, 10, 1.0))


def test_the_optimizer_and_the_floor_refuse_what_the_config_refuses():
    parameters = [torch.nn.Parameter(torch.zeros(1))]
    with pytest.raises(ConfigError, match="'train.lr' must be >= 0, got -0.1"):
        make_optimizer("adam", parameters, lr=-0.1, weight_decay=0.0)
    with pytest.raises(ConfigError, match="'train.weight_decay' = nan must be finite"):
        make_optimizer("adam", parameters, lr=0.1, weight_decay=float("nan"))
    with pytest.raises(ConfigError, match="'train.min_lr' = 0.2 must be <= train.lr = 0.1"):
        check_min_lr(0.1, 0.2)
    check_min_lr(0.1, 0.1)
