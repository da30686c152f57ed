"""Where a run computes: the device, the precision names, and the process group under
`torchrun` (everything degrades to no-ops in a single process)."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from lrrnet.errors import ConfigError

logger = logging.getLogger(__name__)

# What forward passes can compute in: float32, or autocast to one of the half types
# (train.amp names the half types, "off" meaning fp32).
PRECISIONS = ("fp32", "bf16", "fp16")


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the job: rank 0 of 1 without torchrun."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def is_distributed(self) -> bool:
        """More than one process: the collectives below talk to the other ranks."""
        return self.world_size > 1


def resolve_device(name: str, local_rank: int = 0, world_size: int = 1) -> torch.device:
    """``auto`` is CUDA when present, else CPU; ``cuda`` picks the local rank's GPU.

    Under DDP (``world_size > 1``) every rank takes its own GPU, ``cuda:LOCAL_RANK``, even
    when a config names ``cuda:N``: one fixed index would put every rank on the same GPU.
    """
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"device '{name}' requested but CUDA is not available")
        if ":" in name and world_size > 1:
            if name != f"cuda:{local_rank}":
                logger.warning(
                    "train.device=%s under DDP: rank with LOCAL_RANK=%d uses cuda:%d",
                    name,
                    local_rank,
                    local_rank,
                )
            name = "cuda"
        return torch.device(name if ":" in name else f"cuda:{local_rank}")
    if name != "cpu":
        raise ConfigError(f"unknown device '{name}' (use auto, cpu, cuda or cuda:N)")
    return torch.device("cpu")


def init_distributed(device_name: str) -> DistInfo:
    """Join the process group when launched by torchrun (NCCL on CUDA, Gloo on the CPU)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_name, local_rank, world_size)
    if world_size > 1 and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return DistInfo(rank=rank, world_size=world_size, local_rank=local_rank, device=device)


def is_main_process() -> bool:
    """Rank 0 of a torchrun job, or a plain process (before or without init_distributed)."""
    return os.environ.get("RANK", "0") == "0"


def barrier(process: DistInfo) -> None:
    if process.is_distributed:
        dist.barrier()


def broadcast_object(process: DistInfo, value: Any) -> Any:
    """Rank 0's ``value`` on every rank."""
    if not process.is_distributed:
        return value
    holder = [value]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]


def all_gather_object(process: DistInfo, value: Any) -> list[Any]:
    """Every rank's ``value``, in rank order, on every rank (``[value]`` in one process)."""
    if not process.is_distributed:
        return [value]
    gathered: list[Any] = [None] * process.world_size
    dist.all_gather_object(gathered, value)
    return gathered


def all_reduce_sum(process: DistInfo, values: np.ndarray) -> np.ndarray:
    """Element-wise sum of a float64 vector over ranks (evaluation counts)."""
    if not process.is_distributed:
        return values
    # float64 keeps pixel counts exact; Gloo and NCCL both reduce doubles.
    tensor = torch.as_tensor(values, dtype=torch.float64, device=_comm_device(process))
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor.cpu().numpy()


def any_true(process: DistInfo, flag: bool) -> bool:
    """True on every rank when ``flag`` is true on any rank."""
    if not process.is_distributed:
        return flag
    tensor = torch.tensor([1.0 if flag else 0.0], device=_comm_device(process))
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return bool(tensor.item())


def cleanup(process: DistInfo) -> None:
    if process.is_distributed and dist.is_initialized():
        dist.destroy_process_group()


def _comm_device(process: DistInfo) -> torch.device:
    return process.device if process.device.type == "cuda" else torch.device("cpu")


def unwrap_model(model: nn.Module) -> nn.Module:
    """The plain module under DistributedDataParallel / DataParallel / torch.compile."""
    while True:
        if isinstance(model, nn.parallel.DistributedDataParallel | nn.DataParallel):
            model = model.module
        elif hasattr(model, "_orig_mod") and isinstance(model._orig_mod, nn.Module):
            model = model._orig_mod
        else:
            return model
