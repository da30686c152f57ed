"""The optimizer, and the learning rate as a pure function of the iteration (no scheduler
objects to resume)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

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


def total_iterations(train_cfg: Mapping[str, Any], iters_per_epoch: int) -> int:
    """The run's length: ``train.epochs`` epochs, capped at ``train.max_iters`` when set."""
    total = train_cfg["epochs"] * iters_per_epoch
    if train_cfg["max_iters"] is not None:
        total = min(total, train_cfg["max_iters"])
    return total


def lr_at(train_cfg: Mapping[str, Any], iteration: int, iters_per_epoch: int) -> float:
    """Learning rate for the step that starts at ``iteration`` (0-based), from the ``train``
    section of a config (``lr``, ``schedule`` and its settings, and the run's length).

    ``poly`` is the published recipe, ``lr · (1 − it/total)^poly_power`` (0.9) evaluated
    every iteration; ``min_lr`` lifts the floor (``min_lr + (lr − min_lr) · factor``) and is 0
    in the recipe. ``step`` multiplies by ``step_gamma`` at each of ``step_milestones``, given
    as fractions of the run. A linear warm-up over the first ``warmup_iters`` steps scales any
    schedule.
    """
    total_iters = total_iterations(train_cfg, iters_per_epoch)
    if total_iters <= 0:
        raise ValueError(f"total_iters must be positive, got {total_iters}")
    schedule, warmup_iters = train_cfg["schedule"], train_cfg["warmup_iters"]
    progress = min(max(iteration / total_iters, 0.0), 1.0)
    if schedule == "poly":
        factor = (1.0 - progress) ** train_cfg["poly_power"]
    elif schedule == "cosine":
        factor = 0.5 * (1.0 + math.cos(math.pi * progress))
    elif schedule == "step":
        factor = train_cfg["step_gamma"] ** sum(progress >= m for m in train_cfg["step_milestones"])
    elif schedule == "constant":
        factor = 1.0
    else:
        raise ValueError(f"unknown schedule '{schedule}'")
    if warmup_iters > 0 and iteration < warmup_iters:
        factor *= (iteration + 1) / warmup_iters
    min_lr = train_cfg["min_lr"]
    return min_lr + (train_cfg["lr"] - min_lr) * factor
