import math

import pytest
import torch

from lrrnet.engine.schedule import check_min_lr, lr_at, make_optimizer
from lrrnet.errors import ConfigError


def test_poly_matches_the_published_formula():
    total = 1000
    for it in (0, 1, 250, 999):
        assert lr_at(it, total, 1e-4, "poly", 0.9) == pytest.approx(
            1e-4 * (1 - it / total) ** 0.9, rel=1e-12
        )
    assert lr_at(total, total, 1e-4) == 0.0


def test_cosine_halfway_and_min_lr():
    assert lr_at(50, 100, 1.0, "cosine") == pytest.approx(0.5)
    assert lr_at(100, 100, 1.0, "cosine", min_lr=0.1) == pytest.approx(0.1)
    assert lr_at(0, 100, 1.0, "cosine", min_lr=0.1) == pytest.approx(1.0)


def test_step_milestones():
    values = [
        lr_at(it, 100, 1.0, "step", step_milestones=(0.5, 0.8), step_gamma=0.1)
        for it in (0, 49, 50, 79, 80)
    ]
    assert values == pytest.approx([1.0, 1.0, 0.1, 0.1, 0.01])


def test_linear_warmup_scales_the_schedule():
    assert lr_at(0, 100, 1.0, "constant", warmup_iters=4) == pytest.approx(0.25)
    assert lr_at(3, 100, 1.0, "constant", warmup_iters=4) == pytest.approx(1.0)
    poly = lr_at(1, 100, 1.0, "poly", warmup_iters=4)
    assert poly == pytest.approx(0.5 * (0.99**0.9))


def test_bad_arguments():
    with pytest.raises(ValueError):
        lr_at(0, 0, 1.0)
    with pytest.raises(ValueError, match="unknown schedule"):
        lr_at(0, 10, 1.0, "exp")
    assert math.isfinite(lr_at(10**6, 10, 1.0))


def test_the_optimizer_and_the_floor_refuse_what_the_config_refuses():
    parameters = [torch.nn.Parameter(torch.zeros(1))]
    with pytest.raises(ConfigError, match="'train.lr' must be >= 0, got -0.1"):
        make_optimizer("adam", parameters, lr=-0.1, weight_decay=0.0)
    with pytest.raises(ConfigError, match="'train.weight_decay' = nan must be finite"):
        make_optimizer("adam", parameters, lr=0.1, weight_decay=float("nan"))
    with pytest.raises(ConfigError, match="'train.min_lr' = 0.2 must be <= train.lr = 0.1"):
        check_min_lr(0.1, 0.2)
    check_min_lr(0.1, 0.1)
