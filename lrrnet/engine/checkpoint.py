"""Checkpoints: safe loading, strict weight matching, atomic saving, and what a training
checkpoint holds to resume exactly.

Two kinds of file are accepted wherever a checkpoint is: this project's ``.pth`` (a dict
whose ``model`` entry is the state dict, beside optimizer state, iteration, config …) and
the released ``.pkl`` files (a bare state dict). Checkpoints are untrusted downloads, so
they are always read with ``torch.load(..., weights_only=True)``: tensors and plain
containers only, never arbitrary pickled objects.

A training checkpoint (``latest.pth``, ``best.pth`` of a run folder) holds the model (with
``train.ema_decay``, the weight average, and the live weights in ``train_model``), the
optimizer and gradient-scaler states, every rank's RNG states, the resolved config, the
validation metrics it was saved with and the :class:`TrainState` counters. Finding a run's
checkpoints (``checkpoints/<name>/<timestamp>/``, the newest run, what ``--resume`` names) is
:mod:`lrrnet.engine.run_files`'s.
"""

from __future__ import annotations

import io
import logging
import math
import os
import pickle
import random
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from lrrnet.config_tree import to_dict
from lrrnet.engine.distributed import DistInfo, all_gather_object
from lrrnet.engine.distributed import unwrap_model as unwrap_model
from lrrnet.errors import CheckpointError, UserError, summarize
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
    if "config" in checkpoint:
        check_stored_config(checkpoint["config"], f"checkpoint {path}")
    return checkpoint


def check_stored_config(stored: Any, source: str) -> None:
    """Refuses a checkpoint's stored config that a user's config file could not hold.

    Inference builds the network and chooses its size from it, and a resume compares
    against it, so it gets the same checks (:func:`lrrnet.config.validate`) as a config
    the user gives: the stored keys over ``configs/base.py``'s defaults, as a run folder's
    ``config.yaml`` is read.

    Raises:
        CheckpointError: naming ``source`` and the key.
    """
    # lrrnet.config imports the modules that own the domains, some of which import this one.
    from lrrnet import config

    if not isinstance(stored, Mapping):
        raise CheckpointError(
            f"{source}: its stored config is a {type(stored).__name__}, expected a mapping"
        )
    try:
        config.validate(config.override(config.base_config(), to_dict(stored)))
    except UserError as error:
        raise CheckpointError(f"{source}: its stored config is refused: {error}") from None


def check_finite_weights(state: Mapping[str, torch.Tensor], source: str = "checkpoint") -> None:
    """Raises CheckpointError naming the first tensor that holds NaN or ±inf.

    Such weights turn every map into NaN, which thresholds to "no target" everywhere and is
    written as an all-zero map, so they are refused when loaded rather than discovered in
    the scores.
    """
    for key, value in state.items():
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            count = int((~torch.isfinite(value)).sum())
            raise CheckpointError(
                f"{source}: tensor {key!r} holds {count} non-finite value(s) (NaN or inf) "
                f"of {value.numel()}; the weights are broken"
            )


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
    check_finite_weights(state, source=label)
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


@dataclass
class TrainState:
    """Progress that a training checkpoint carries besides the weights."""

    iteration: int = 0  # completed optimisation steps
    epoch: int = 0  # the epoch in progress (or the next one at an epoch boundary)
    best_score: float = -math.inf
    best_iteration: int = -1
    evals_since_best: int = 0


def gather_rng_states(process: DistInfo) -> list[dict[str, Any]]:
    """Every rank's RNG states, rank order; they travel as torch.save bytes between ranks."""
    if not process.is_distributed:
        return [_rng_state()]
    buffer = io.BytesIO()
    torch.save(_rng_state(), buffer)
    blobs = all_gather_object(process, buffer.getvalue())
    return [torch.load(io.BytesIO(blob), weights_only=True) for blob in blobs]


def _rng_state() -> dict[str, Any]:
    """This process's RNG states as tensors and plain values (weights_only loads them)."""
    numpy_state = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": (numpy_state[0], torch.from_numpy(numpy_state[1].copy()), *numpy_state[2:]),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def restore_rng_state(rng: Mapping[str, Any]) -> None:
    """Set this process's RNGs to a state of :func:`gather_rng_states`."""
    random.setstate(rng["python"])
    name, keys, *rest = rng["numpy"]
    # A checkpoint loaded onto the training device has its tensors there; RNG states live
    # on the host.
    np.random.set_state((name, keys.cpu().numpy(), *rest))
    torch.set_rng_state(rng["torch"].cpu())
    if rng["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in rng["cuda"]])


def load_for_resume(
    path: Path, cfg: Mapping[str, Any], world_size: int, device: torch.device
) -> dict[str, Any]:
    """The checkpoint to resume from, refused when the run cannot continue exactly.

    A run folder belongs to one config: a config that differs in a key of
    :data:`RUN_IDENTITY` (another name, architecture or dataset) is refused in one line
    naming the keys. The position inside an epoch is counted in batches of
    ``train.batch_size`` per process, so another batch size or process count would start at
    the wrong sample (or past the end of the epoch): refused with both values. Other config
    changes (the learning rate, the length, ...) are allowed, logged, and listed in the
    returned dict's ``config_changes``.
    """
    checkpoint = load_checkpoint(path, map_location=device)
    for key in ("model", "optimizer", "iteration", "epoch", "rng"):
        if key not in checkpoint:
            raise CheckpointError(
                f"{path}: not a training checkpoint (no '{key}' entry); cannot resume"
            )
    stored = checkpoint.get("config") or {}
    other = identity_changes(to_dict(stored), to_dict(cfg)) if stored else []
    if other:
        raise UserError(
            f"{path}: its run folder belongs to another config ({'; '.join(other)}); resume it "
            "with its own config (config.yaml beside it), or start a new run without --resume"
        )
    old_batch = stored.get("train", {}).get("batch_size", cfg["train"]["batch_size"])
    old_world = checkpoint.get("world_size", len(checkpoint["rng"]))
    new_batch = cfg["train"]["batch_size"]
    if (old_batch, old_world) != (new_batch, world_size):
        raise UserError(
            f"{path}: saved with train.batch_size={old_batch} × {old_world} process(es), resuming "
            f"with train.batch_size={new_batch} × {world_size}; resume with the same values "
            "(the iteration counts batches of that size)"
        )
    changes = config_changes(to_dict(stored), to_dict(cfg)) if stored else []
    check_resumable_weights(checkpoint, path)
    if changes:
        logger.warning("resuming %s with a changed config: %s", path, "; ".join(changes))
    checkpoint["config_changes"] = changes
    return checkpoint


def check_resumable_weights(checkpoint: Mapping[str, Any], path: Path) -> None:
    """Refuses a resume whose weights are not state dicts or not finite, in one line naming
    the entry and the tensor's key, before the dataset is read. (Another architecture is
    refused before this by :data:`RUN_IDENTITY`, naming the differing ``model.*`` keys.)"""
    for key in ("model", "train_model"):
        if key not in checkpoint:
            continue
        if not isinstance(checkpoint[key], Mapping) or not all(
            isinstance(value, torch.Tensor) for value in checkpoint[key].values()
        ):
            raise CheckpointError(f"{path}: its '{key}' entry is not a state dict; cannot resume")
        check_finite_weights(checkpoint[key], source=f"{path} ('{key}')")


# The keys that make a config another one, whose run folder a resume may not continue
# (docs/training.md, "Resuming"): the run's name, the network's shape (what the weights
# fit; model.dropout, model.target_prior and model.attention_impl change no weight), and the
# dataset.
RUN_IDENTITY = (
    "name",
    "model.in_channels",
    "model.base_channels",
    "model.channel_mults",
    "model.num_res_blocks",
    "model.num_groups",
    "model.head_input",
    "model.mid_attention",
    "data.root",
    "data.layout",
    "data.dataset_name",
)


def identity_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """``key: old -> new`` for each key of :data:`RUN_IDENTITY` that differs.

    ``data.root`` counts by its folder's name, so that a dataset moved elsewhere (or named by
    another relative path) still resumes, while another dataset does not. A key that the
    stored config lacks (saved before the key existed) is not compared.
    """
    changes = []
    for key in RUN_IDENTITY:
        before, after = _dotted(old, key), _dotted(new, key)
        if before is _ABSENT or after is _ABSENT:
            continue
        if isinstance(before, list | tuple) and isinstance(after, list | tuple):
            before, after = list(before), list(after)  # YAML and Python spell a tuple apart
        if key == "data.root" and isinstance(before, str) and isinstance(after, str):
            same = Path(os.path.abspath(before)).name == Path(os.path.abspath(after)).name
        else:
            same = before == after
        if not same:
            changes.append(f"{key}: {before!r} -> {after!r}")
    return changes


_ABSENT = object()


def _dotted(tree: Mapping[str, Any], key: str) -> Any:
    for part in key.split("."):
        if not isinstance(tree, Mapping) or part not in tree:
            return _ABSENT
        tree = tree[part]
    return tree


def config_changes(old: Mapping[str, Any], new: Mapping[str, Any], prefix: str = "") -> list[str]:
    """``key: old -> new`` for every dotted key whose value differs."""
    changes = []
    for key in sorted(set(old) | set(new), key=str):
        dotted = f"{prefix}{key}"
        before, after = old.get(key, "<absent>"), new.get(key, "<absent>")
        if isinstance(before, Mapping) and isinstance(after, Mapping):
            changes += config_changes(before, after, f"{dotted}.")
        elif before != after:
            changes.append(f"{dotted}: {before!r} -> {after!r}")
    return changes


def restore_training(
    checkpoint: Mapping[str, Any],
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    rank: int,
    averaged_model: nn.Module | None = None,
) -> TrainState:
    """Load a checkpoint of :func:`load_for_resume` into the objects; returns its counters.

    ``averaged_model`` (the weight average's module, ``train.ema_decay``) gets the
    checkpoint's average; a checkpoint saved without one starts the average from its weights.
    """
    live = checkpoint.get("train_model", checkpoint["model"])
    model.load_state_dict(live)
    if averaged_model is not None:
        if "train_model" not in checkpoint:
            logger.info("the checkpoint holds no weight average; the average starts from it")
        averaged_model.load_state_dict(checkpoint["model"])
    optimizer.load_state_dict(checkpoint["optimizer"])
    if checkpoint.get("scaler"):
        scaler.load_state_dict(checkpoint["scaler"])
    # load_for_resume refused another process count, so every rank has its own state.
    restore_rng_state(checkpoint["rng"][rank])
    fields = {k: checkpoint[k] for k in TrainState.__dataclass_fields__ if k in checkpoint}
    return TrainState(**fields)
