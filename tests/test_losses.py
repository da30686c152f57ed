"""Losses: SoftIoU by hand, the gradient-free hard L1, the published weighting."""

from __future__ import annotations

import pytest
import torch

from configs.base import config
from lrrnet.errors import ConfigError
from lrrnet.losses import (
    LRRNetLoss,
    l1_term,
    reconstruction_loss,
    soft_iou_l1_loss,
    soft_iou_loss,
)

BIG = 100.0  # sigmoid(±100) is 1 / 0 in float32


def two_samples() -> tuple[torch.Tensor, torch.Tensor]:
    """Sample 0: p = [1, 0, .5, .5], m = [1, 0, 0, 0]. Sample 1: p = 0, m = 0."""
    logits = torch.tensor([[[[BIG, -BIG], [0.0, 0.0]]], [[[-BIG, -BIG], [-BIG, -BIG]]]])
    mask = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]], [[[0.0, 0.0], [0.0, 0.0]]]])
    return logits, mask


def test_soft_iou_by_hand() -> None:
    logits, mask = two_samples()
    # Sample 0: (1 + 1) / (2 + 1 − 1 + 1) = 2/3. Sample 1: (0 + 1) / (0 + 1) = 1.
    expected = 1 - (2 / 3 + 1) / 2
    assert soft_iou_loss(logits, mask).item() == pytest.approx(expected, abs=1e-6)
    assert soft_iou_loss(logits, mask.bool()).item() == pytest.approx(expected, abs=1e-6)


def test_soft_iou_is_per_sample_then_mean() -> None:
    """Not a pooled IoU over the batch: an empty frame counts as much as a busy one."""
    logits, mask = two_samples()
    pooled = 1 - (1 + 1) / (2 + 1 - 1 + 1)  # what summing over the whole batch would give
    assert soft_iou_loss(logits, mask).item() != pytest.approx(pooled, abs=1e-3)
    assert soft_iou_loss(logits[:1], mask[:1]).item() == pytest.approx(1 / 3, abs=1e-6)


def test_hard_l1_has_no_gradient_and_soft_l1_has_one() -> None:
    logits = torch.tensor([[[[2.0, -1.0], [0.5, -3.0]]]], requires_grad=True)
    hard = l1_term(logits, "hard")
    assert hard.item() == pytest.approx(0.5)  # 2 of 4 logits are positive
    assert not hard.requires_grad
    soft = l1_term(logits, "soft")
    (gradient,) = torch.autograd.grad(soft, logits)
    sigmoid = torch.sigmoid(logits.detach())
    torch.testing.assert_close(gradient, sigmoid * (1 - sigmoid) / 4)


def test_hard_softiou_l1_trains_only_on_its_softiou_part() -> None:
    logits, mask = two_samples()
    logits = logits.clone().requires_grad_(True)
    (with_l1,) = torch.autograd.grad(soft_iou_l1_loss(logits, mask, "hard"), logits)
    (iou_only,) = torch.autograd.grad(0.8 * soft_iou_loss(logits, mask), logits)
    torch.testing.assert_close(with_l1, iou_only)


def test_default_loss_is_the_published_recipe() -> None:
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 1, 8, 8, generator=generator)
    reconstruction = torch.rand(2, 1, 8, 8, generator=generator)
    image = torch.rand(2, 1, 8, 8, generator=generator)
    mask = (torch.rand(2, 1, 8, 8, generator=generator) > 0.8).float()
    # The recipe written out independently of the module.
    prob = torch.sigmoid(logits)
    inter = (prob * mask).sum(dim=(1, 2, 3))
    iou = (inter + 1) / (prob.sum(dim=(1, 2, 3)) + mask.sum(dim=(1, 2, 3)) - inter + 1)
    softiou = 1 - iou.mean()
    mse = ((reconstruction - image) ** 2).mean()
    expected = 1.8 * softiou + 0.1 * mse + 0.2 * (logits > 0).float().mean()

    total, terms = LRRNetLoss()(reconstruction, logits, image, mask)
    assert total.item() == pytest.approx(expected.item(), abs=1e-6)
    assert set(terms) == {"softiou", "mse", "softiou_l1", "total"}
    assert terms["softiou"].item() == pytest.approx(softiou.item(), abs=1e-6)
    assert terms["mse"].item() == pytest.approx(mse.item(), abs=1e-7)
    assert all(not value.requires_grad and value.dim() == 0 for value in terms.values())
    assert reconstruction_loss(reconstruction, image).item() == pytest.approx(mse.item())


def test_loss_weights_come_from_the_config_section() -> None:
    assert LRRNetLoss(**config["loss"]).weights == {"softiou": 1.0, "mse": 0.1, "softiou_l1": 1.0}
    generator = torch.Generator().manual_seed(1)
    logits, reconstruction, image = torch.randn(3, 1, 1, 4, 4, generator=generator)
    mask = torch.zeros(1, 1, 4, 4)
    only_mse, terms = LRRNetLoss(softiou=0.0, mse=2.0, softiou_l1=0.0)(
        reconstruction, logits, image, mask
    )
    assert only_mse.item() == pytest.approx(2.0 * terms["mse"].item())
    with pytest.raises(TypeError):
        LRRNetLoss(soft_iou=1.0)
    with pytest.raises(ConfigError, match="l1_mode"):
        LRRNetLoss(l1_mode="smooth")
    with pytest.raises(ConfigError, match="'loss.mse' must be >= 0"):
        LRRNetLoss(mse=-0.1)
    with pytest.raises(ConfigError, match="'loss.softiou' = inf must be finite"):
        LRRNetLoss(softiou=float("inf"))


def test_loss_is_float32_under_autocast() -> None:
    generator = torch.Generator().manual_seed(2)
    logits, reconstruction, image = torch.randn(3, 2, 1, 8, 8, generator=generator)
    mask = torch.zeros(2, 1, 8, 8)
    mask[:, :, 3:5, 3:5] = 1
    expected, _ = LRRNetLoss(l1_mode="soft")(reconstruction, logits, image, mask)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        total, terms = LRRNetLoss(l1_mode="soft")(
            reconstruction.bfloat16(), logits.bfloat16(), image.bfloat16(), mask
        )
    assert total.dtype == torch.float32
    assert all(value.dtype == torch.float32 for value in terms.values())
    assert total.item() == pytest.approx(expected.item(), abs=2e-2)  # inputs rounded to bf16
