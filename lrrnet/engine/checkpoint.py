"""Checkpoint I/O: safe loading, strict weight matching, atomic saving.

Two kinds of file are accepted wherever a checkpoint is: this project's ``.pth`` (a dict
whose ``model`` entry is the state dict, beside optimizer state, iteration, config …) and
the released ``.pkl`` files (a bare state dict). Checkpoints are untrusted downloads, so
they are always read with ``torch.load(..., weights_only=True)``: tensors and plain
containers only, never arbitrary pickled objects.
"""

from __future__ import annotations

import logging
import os
import pickle
import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lrrnet.errors import CheckpointError, summarize
from lrrnet.files import atomic_path

logger = logging.getLogger(__name__)

# Added by DistributedDataParallel / DataParallel and by torch.compile, in either order.
WRAPPER_PREFIXES: tuple[str, ...] = ("module.", "_orig_mod.")


def load_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict[str, Any]:
    """Reads a checkpoint file safely (``weights_only=True``).

    Args:
        path: a ``.pth``/``.pkl`` file written by ``torch.save``.
        map_location: passed to :func:`torch.load`.

    Returns:
        The stored dict (a project checkpoint or a bare state dict).

    Raises:
        CheckpointError: the file is missing, unreadable, holds non-tensor Python objects,
            or does not hold a dict.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"cannot read checkpoint {path}: refused by the safe loader (weights_only=True, "
            f"checkpoints are untrusted files): {_unpickling_reason(exc)}"
        ) from exc
    except Exception as exc:  # zip/pickle/EOF errors all mean "not a readable checkpoint"
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise CheckpointError(
            f"cannot read checkpoint {path}: {type(exc).__name__}: {first_line}"
        ) from exc
    if not isinstance(checkpoint, dict):
        raise CheckpointError(
            f"checkpoint {path} holds a {type(checkpoint).__name__}, expected a dict "
            "(a state dict, or a checkpoint with a 'model' entry)"
        )
    return checkpoint


def _unpickling_reason(exc: Exception) -> str:
    """One line from torch's long weights_only error."""
    text = str(exc)
    found = re.search(r"GLOBAL ([\w.]+)", text)
    if found:
        return f"it holds a Python object ({found.group(1)}), not only tensors and containers"
    found = re.search(r"WeightsUnpickler error:\s*(.+)", text)
    return found.group(1).strip() if found else "not a torch checkpoint"


def strip_wrapper_prefixes(key: str) -> str:
    """Removes leading ``module.`` / ``_orig_mod.`` prefixes, repeatedly, in any order."""
    stripped = True
    while stripped:
        stripped = False
        for prefix in WRAPPER_PREFIXES:
            if key.startswith(prefix):
                key = key[len(prefix) :]
                stripped = True
    return key


def extract_model_state(
    checkpoint: dict[str, Any], source: str = "checkpoint"
) -> dict[str, torch.Tensor]:
    """Finds the model's state dict in a checkpoint and normalises its keys.

    Args:
        checkpoint: this project's checkpoint (``{"model": state_dict, ...}``) or a bare
            state dict (the released ``.pkl`` files).
        source: how error messages name the checkpoint (usually its path).

    Returns:
        The state dict with DDP / torch.compile prefixes stripped.

    Raises:
        CheckpointError: no state dict found, or two keys collide after stripping.
    """
    state = checkpoint["model"] if isinstance(checkpoint.get("model"), dict) else checkpoint
    if not isinstance(state, dict) or not all(
        isinstance(value, torch.Tensor) for value in state.values()
    ):
        raise CheckpointError(
            f"{source} holds no state dict: expected tensors or a 'model' entry of tensors, "
            f"found keys [{summarize(sorted(map(str, checkpoint)), ', ')}]"
        )
    stripped: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        name = strip_wrapper_prefixes(key)
        if name in stripped:
            raise CheckpointError(f"{source}: key {key!r} duplicates {name!r} after stripping")
        stripped[name] = value
    return stripped


def load_model_weights(
    model: nn.Module,
    path_or_checkpoint: str | os.PathLike | dict[str, Any],
    map_location: Any = "cpu",
    source: str | None = None,
) -> dict[str, Any]:
    """Loads weights strictly: every key present, none extra, every shape equal.

    Args:
        model: the network (DDP / compiled wrappers are unwrapped).
        path_or_checkpoint: a checkpoint file or an already loaded checkpoint dict.
        map_location: passed to :func:`torch.load` for files.
        source: the file name for error messages when a loaded dict is passed.

    Returns:
        The whole checkpoint dict (for the optimizer state, iteration, … of a resume).

    Raises:
        CheckpointError: unreadable file, or keys/shapes that do not fit, listed in one
            line that names the file.
    """
    if isinstance(path_or_checkpoint, dict):
        checkpoint = path_or_checkpoint
    else:
        checkpoint = load_checkpoint(path_or_checkpoint, map_location=map_location)
        source = source or str(path_or_checkpoint)
    label = f"checkpoint {source}" if source else "checkpoint"
    state = extract_model_state(checkpoint, source=label)
    target = unwrap_model(model)
    check_state_fits(target, state, source=label)
    target.load_state_dict(state, strict=True)
    logger.info("loaded %d tensors from %s", len(state), label)
    return checkpoint


def check_state_fits(
    model: nn.Module, state: dict[str, torch.Tensor], source: str = "checkpoint"
) -> None:
    """Raises CheckpointError listing missing/unexpected keys and shape mismatches."""
    expected = model.state_dict()
    missing = [key for key in expected if key not in state]
    unexpected = [key for key in state if key not in expected]
    mismatched = [
        f"{key} {tuple(state[key].shape)} in file vs {tuple(expected[key].shape)} in model"
        for key in expected
        if key in state and state[key].shape != expected[key].shape
    ]
    problems = [
        f"{label} {len(items)} key(s): [{summarize(items, ', ')}]"
        for label, items in (
            ("missing", missing),
            ("unexpected", unexpected),
            ("shape mismatch in", mismatched),
        )
        if items
    ]
    if problems:
        raise CheckpointError(f"{source} does not fit the model: " + "; ".join(problems))


def save_checkpoint(obj: dict[str, Any], path: str | os.PathLike) -> None:
    """Writes ``obj`` with ``torch.save`` atomically.

    The bytes go to a temporary file in the same folder, are flushed and fsynced, and the
    file is renamed over ``path`` (``os.replace`` is atomic on one file system), so a crash
    or a full disk never leaves a truncated checkpoint where a good one was.

    Args:
        obj: the checkpoint dict.
        path: destination; parent folders are created.
    """
    with atomic_path(path, durable=True) as temp:
        torch.save(obj, temp)


def unwrap_model(model: nn.Module) -> nn.Module:
    """The plain module under DistributedDataParallel / DataParallel / torch.compile."""
    while True:
        if isinstance(model, nn.parallel.DistributedDataParallel | nn.DataParallel):
            model = model.module
        elif hasattr(model, "_orig_mod") and isinstance(model._orig_mod, nn.Module):
            model = model._orig_mod
        else:
            return model
