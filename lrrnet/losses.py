"""LRRNet's training losses.

The published recipe:

    total = SoftIoU(T, M) + 0.1 · MSE(D, X) + [0.8 · SoftIoU(T, M) + 0.2 · mean(T > 0)]

``mean(T > 0)`` (the original "L1" term) is a hard threshold with no gradient, so the recipe
in effect trains on 1.8 · SoftIoU + 0.1 · MSE; ``l1_mode="soft"`` swaps in mean(sigmoid T),
which does push the target map towards sparsity. Every loss is computed in float32, also
under autocast: sums over 512×512 pixels lose too much in half precision.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from lrrnet.domains import Domain
from lrrnet.errors import ConfigError

L1Mode = Literal["hard", "soft"]
L1_MODES: tuple[str, ...] = ("hard", "soft")
# The terms' weights: a negative one would train the network to increase its term.
DOMAINS = tuple(
    Domain(f"loss.{name}", low=0.0, note="0: the term off")
    for name in ("softiou", "mse", "softiou_l1")
)
# Weights inside the original SoftIoU + L1 term.
SOFTIOU_L1_IOU_WEIGHT = 0.8
SOFTIOU_L1_L1_WEIGHT = 0.2


def soft_iou_loss(
    target_logits: torch.Tensor, mask: torch.Tensor, smooth: float = 1.0
) -> torch.Tensor:
    """1 − mean over the batch of the soft IoU of sigmoid(T) and the mask.

    Per sample: ``(Σ p·m + smooth) / (Σ p + Σ m − Σ p·m + smooth)`` with p = sigmoid(T) and
    sums over the sample's pixels; the smoothing keeps target-free frames defined.

    Args:
        target_logits: T, B×1×H×W.
        mask: M, B×1×H×W, values in [0, 1] (bool allowed).
        smooth: added to numerator and denominator.

    Returns:
        A float32 scalar.
    """
    prob = torch.sigmoid(target_logits.float()).flatten(1)
    mask = mask.float().flatten(1)
    intersection = (prob * mask).sum(dim=1)
    union = prob.sum(dim=1) + mask.sum(dim=1) - intersection
    return 1.0 - ((intersection + smooth) / (union + smooth)).mean()


def l1_term(target_logits: torch.Tensor, l1_mode: L1Mode = "hard") -> torch.Tensor:
    """The sparsity term of the original SoftIoU + L1 loss.

    Args:
        target_logits: T, B×1×H×W.
        l1_mode: ``"hard"``: mean(T > 0), the fraction of pixels predicted as target, as in
            the original code. It is a step function of T, so it has NO gradient: it only
            shifts the reported loss and does not regularise anything. ``"soft"``:
            mean(sigmoid T), a differentiable version that does penalise target area.

    Returns:
        A float32 scalar.
    """
    if l1_mode == "hard":
        return (target_logits > 0).float().mean()
    if l1_mode == "soft":
        return torch.sigmoid(target_logits.float()).mean()
    raise ConfigError(f"loss.l1_mode must be one of {L1_MODES}, got {l1_mode!r}")


def soft_iou_l1_loss(
    target_logits: torch.Tensor, mask: torch.Tensor, l1_mode: L1Mode = "hard"
) -> torch.Tensor:
    """``0.8 · SoftIoU(T, M) + 0.2 · L1(T)``, the original "SoftIoU + L1" term.

    With ``l1_mode="hard"`` (the original) the L1 part has no gradient, so only the
    0.8 · SoftIoU part trains the network; ``"soft"`` makes the L1 part differentiable.
    See :func:`l1_term`.

    Args:
        target_logits: T, B×1×H×W.
        mask: M, B×1×H×W.
        l1_mode: ``"hard"`` or ``"soft"``.
    """
    return SOFTIOU_L1_IOU_WEIGHT * soft_iou_loss(
        target_logits, mask
    ) + SOFTIOU_L1_L1_WEIGHT * l1_term(target_logits, l1_mode)


def reconstruction_loss(reconstruction: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    """Mean squared error between the reconstruction D and the input X (both B×1×H×W)."""
    return F.mse_loss(reconstruction.float(), image.float())


class LRRNetLoss(nn.Module):
    """``softiou · SoftIoU + mse · MSE(D, X) + softiou_l1 · (0.8 · SoftIoU + 0.2 · L1)``.

    Keyword arguments match the ``loss`` section of the config, so
    ``LRRNetLoss(**cfg["loss"])`` works and an unknown key fails. The defaults are the
    published recipe (effectively 1.8 · SoftIoU + 0.1 · MSE with ``l1_mode="hard"``).

    Args:
        softiou: weight of the SoftIoU term.
        mse: weight of the reconstruction MSE.
        softiou_l1: weight of the original SoftIoU + L1 term.
        l1_mode: ``"hard"`` (original, no gradient) or ``"soft"`` (mean sigmoid T).
    """

    def __init__(
        self,
        *,
        softiou: float = 1.0,
        mse: float = 0.1,
        softiou_l1: float = 1.0,
        l1_mode: L1Mode = "hard",
    ) -> None:
        super().__init__()
        if l1_mode not in L1_MODES:
            raise ConfigError(f"loss.l1_mode must be one of {L1_MODES}, got {l1_mode!r}")
        self.weights = {"softiou": softiou, "mse": mse, "softiou_l1": softiou_l1}
        for domain, weight in zip(DOMAINS, self.weights.values(), strict=True):
            domain.check(weight)
        self.l1_mode = l1_mode

    def forward(
        self,
        reconstruction: torch.Tensor,
        target_logits: torch.Tensor,
        image: torch.Tensor,
        mask: torch.Tensor,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Args:
            reconstruction: D, B×1×H×W.
            target_logits: T, B×1×H×W.
            image: X, B×1×H×W, the network's input.
            mask: M, B×1×H×W.

        Returns:
            ``(total, terms)``: the float32 scalar to backpropagate, and the detached
            unweighted values of ``softiou``, ``mse``, ``softiou_l1`` plus ``total`` (for
            logging and for naming a non-finite term).
        """
        with torch.autocast(device_type=target_logits.device.type, enabled=False):
            terms = {
                "softiou": soft_iou_loss(target_logits, mask),
                "mse": reconstruction_loss(reconstruction, image),
                "softiou_l1": soft_iou_l1_loss(target_logits, mask, self.l1_mode),
            }
            total = sum(self.weights[name] * value for name, value in terms.items())
        logged = {name: value.detach() for name, value in terms.items()}
        logged["total"] = total.detach()
        return total, logged

    def extra_repr(self) -> str:
        weights = ", ".join(f"{name}={weight}" for name, weight in self.weights.items())
        return f"{weights}, l1_mode={self.l1_mode!r}"
