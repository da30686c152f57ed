"""The optimizer, and the learning rate as a pure function of the iteration (no scheduler
objects to resume)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import torch

from lrrnet.domains import Domain
from lrrnet.errors import ConfigError

OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
}
SCHEDULES = ("poly", "cosine", "step", "constant")

# The learning rate and its schedule's settings; train.min_lr is also at most train.lr
# (check_min_lr), or the schedule would climb.
LR = Domain("train.lr", low=0.0)
MIN_LR = Domain("train.min_lr", low=0.0)
WEIGHT_DECAY = Domain("train.weight_decay", low=0.0)
# A negative power would make the factor grow without bound as the run ends.
POLY_POWER = Domain("train.poly_power", low=0.0)
STEP_GAMMA = Domain("train.step_gamma", low=0.0)
# Fractions of the run; a milestone past 1 would never be reached.
STEP_MILESTONES = Domain("train.step_milestones", 0.0, 1.0, min_items=0)
WARMUP_ITERS = Domain("train.warmup_iters", low=0, integer=True, note="0: off")
DOMAINS = (LR, MIN_LR, WEIGHT_DECAY, POLY_POWER, STEP_GAMMA, STEP_MILESTONES, WARMUP_ITERS)


def check_min_lr(lr: float, min_lr: float) -> None:
    """Raises ConfigError when the floor ``min_lr`` is above the learning rate ``lr``."""
    if min_lr > lr:
        raise ConfigError(
            f"config key 'train.min_lr' = {min_lr} must be <= train.lr = {lr} (the floor the "
            "schedule decays to)"
        )


def make_optimizer(
    name: str, parameters: Iterable[torch.nn.Parameter], lr: float, weight_decay: float
) -> torch.optim.Optimizer:
    """``train.optimizer`` (a key of :data:`OPTIMIZERS`) over ``parameters``."""
    LR.check(lr)
    WEIGHT_DECAY.check(weight_decay)
    return OPTIMIZERS[name](parameters, lr=lr, weight_decay=weight_decay)


def lr_at(
    iteration: int,
    total_iters: int,
    base_lr: float,
    schedule: str = "poly",
    poly_power: float = 0.9,
    warmup_iters: int = 0,
    min_lr: float = 0.0,
    step_milestones: Sequence[float] = (),
    step_gamma: float = 0.1,
) -> float:
    """Learning rate for the step that starts at ``iteration`` (0-based).

    ``poly`` is the published recipe, ``base · (1 − it/total)^0.9`` evaluated every
    iteration; ``min_lr`` lifts the floor (``min_lr + (base − min_lr) · factor``) and is 0 in
    the recipe. ``step`` multiplies by ``step_gamma`` at each milestone, given as fractions
    of the run. A linear warm-up over the first ``warmup_iters`` steps scales any schedule.
    """
    if total_iters <= 0:
        raise ValueError(f"total_iters must be positive, got {total_iters}")
    progress = min(max(iteration / total_iters, 0.0), 1.0)
    if schedule == "poly":
        factor = (1.0 - progress) ** poly_power
    elif schedule == "cosine":
        factor = 0.5 * (1.0 + math.cos(math.pi * progress))
    elif schedule == "step":
        factor = step_gamma ** sum(progress >= m for m in step_milestones)
    elif schedule == "constant":
        factor = 1.0
    else:
        raise ValueError(f"unknown schedule '{schedule}'")
    if warmup_iters > 0 and iteration < warmup_iters:
        factor *= (iteration + 1) / warmup_iters
    return min_lr + (base_lr - min_lr) * factor
