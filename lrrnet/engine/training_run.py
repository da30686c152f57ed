"""One training run's live objects, and the checkpoint that resumes it.

The trainer builds a :class:`TrainingRun` once before its loop and hands it to validation,
checkpointing and the final test (:mod:`lrrnet.engine.selection`), so that they share one
object instead of long argument lists. It sits above :mod:`lrrnet.engine.checkpoint`
(what a checkpoint file is, how it is read and written) and
:mod:`lrrnet.engine.predictor` (which reads checkpoints), so neither imports the other.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lrrnet.config_tree import to_dict
from lrrnet.engine.checkpoint import TrainState, unwrap_model
from lrrnet.engine.distributed import DistInfo
from lrrnet.engine.predictor import Predictor


@dataclass
class TrainingRun:
    """What validation, the checkpoints and the final test of one training run share; the
    trainer builds it once before its loop. ``state``, the models, the optimizer and the
    scaler are the live objects that the loop steps."""

    cfg: Mapping[str, Any]
    process: DistInfo
    state: TrainState
    model: nn.Module  # the live network, unwrapped (no DDP or torch.compile wrapper)
    # The weight average's module under train.ema_decay, None without one.
    averaged_model: nn.Module | None
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    # Runs the network that is validated and tested: averaged_model when there is one.
    predictor: Predictor
    iters_per_epoch: int
    run_dir: Path
    writer: Any  # TensorBoard's SummaryWriter on rank 0, None on the other ranks


def training_checkpoint(
    run: TrainingRun, metrics: Mapping[str, Any], rng_states: list[dict[str, Any]]
) -> dict[str, Any]:
    """Everything to resume ``run`` exactly, with the validation ``metrics`` it is saved with
    and the RNG states of every rank (a list, rank order).

    ``iters_per_epoch`` and ``world_size`` (the length of ``rng_states``) let a resume refuse
    a changed training split or process count instead of starting at the wrong sample. With
    a weight average (``train.ema_decay``), ``model`` holds the averaged weights, the ones
    that were validated and that inference loads, and ``train_model`` the live weights that
    training continues from.
    """
    weights = {"model": unwrap_model(run.model).state_dict()}
    if run.averaged_model is not None:
        weights = {"model": run.averaged_model.state_dict(), "train_model": weights["model"]}
    return {
        **weights,
        "optimizer": run.optimizer.state_dict(),
        "scaler": run.scaler.state_dict(),
        "rng": rng_states,
        "config": to_dict(run.cfg),
        "metrics": dict(metrics),
        **asdict(run.state),
        "iters_per_epoch": run.iters_per_epoch,
        "world_size": len(rng_states),
    }
