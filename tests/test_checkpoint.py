"""Checkpoint I/O: atomic saves, strict loading with readable errors, weights_only."""

from __future__ import annotations

import pickle
import random
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from lrrnet.config import load_config
from lrrnet.engine.checkpoint import (
    TrainState,
    config_changes,
    extract_model_state,
    gather_rng_states,
    load_checkpoint,
    load_for_resume,
    load_model_weights,
    restore_training,
    save_checkpoint,
    unwrap_model,
)
from lrrnet.engine.distributed import init_distributed
from lrrnet.engine.training_run import TrainingRun, training_checkpoint
from lrrnet.errors import CheckpointError, UserError

SENTINEL: list[str] = []


def record_unpickling() -> str:
    """Would run if a loader unpickled the object below."""
    SENTINEL.append("executed")
    return "executed"


class Payload:
    """Unpickles by calling record_unpickling: what a hostile checkpoint could do."""

    def __reduce__(self):
        return (record_unpickling, ())


def small_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 2, 3), nn.GroupNorm(1, 2), nn.Conv2d(2, 1, 1))


def test_save_is_atomic_and_round_trips(tmp_path: Path) -> None:
    model = small_model()
    path = tmp_path / "run" / "nested" / "latest.pth"
    save_checkpoint({"model": model.state_dict(), "iteration": 3}, path)
    assert sorted(p.name for p in path.parent.iterdir()) == ["latest.pth"]  # no temp left
    other = small_model()
    nn.init.zeros_(other[0].weight)
    checkpoint = load_model_weights(other, path)
    assert checkpoint["iteration"] == 3
    assert torch.equal(other[0].weight, model[0].weight)


def test_failed_save_keeps_the_old_file_and_no_temp(tmp_path: Path) -> None:
    path = tmp_path / "best.pth"
    save_checkpoint({"iteration": 1}, path)
    with pytest.raises(Exception):  # noqa: B017 - pickling a lambda fails mid-write
        save_checkpoint({"iteration": 2, "bad": lambda: None}, path)
    assert [p.name for p in tmp_path.iterdir()] == ["best.pth"]
    assert load_checkpoint(path) == {"iteration": 1}


def test_missing_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.pth"
    with pytest.raises(CheckpointError, match="nowhere.pth"):
        load_checkpoint(missing)
    with pytest.raises(UserError, match="nowhere.pth"):
        load_model_weights(small_model(), missing)


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"not a zip nor a pickle", "cannot read"), (None, "holds a list")],
)
def test_unreadable_or_non_dict_file_is_named(
    tmp_path: Path, content: bytes | None, message: str
) -> None:
    path = tmp_path / "broken.pkl"
    if content is None:
        torch.save([1, 2], path)
    else:
        path.write_bytes(content)
    with pytest.raises(CheckpointError, match=message) as error:
        load_checkpoint(path)
    assert str(path) in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize("writer", ["torch", "pickle"])
def test_arbitrary_objects_are_refused(tmp_path: Path, writer: str) -> None:
    path = tmp_path / "hostile.pth"
    payload = {"model": {}, "extra": Payload()}
    if writer == "torch":
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload))
    SENTINEL.clear()
    with pytest.raises(CheckpointError, match="hostile.pth.*weights_only") as error:
        load_checkpoint(path)
    if writer == "torch":  # protocol 2 names the global; protocol 4 fails on the opcode
        assert "record_unpickling" in str(error.value)
    assert SENTINEL == []  # nothing ran
    assert "\n" not in str(error.value)


def test_missing_unexpected_and_mismatched_keys_are_listed(tmp_path: Path) -> None:
    state = small_model().state_dict()
    del state["0.bias"]
    state["3.weight"] = torch.zeros(1)
    state["2.weight"] = torch.zeros(1, 3, 1, 1)
    path = tmp_path / "other.pkl"
    torch.save(state, path)
    with pytest.raises(CheckpointError) as error:
        load_model_weights(small_model(), path)
    message = str(error.value)
    assert "\n" not in message and str(path) in message
    assert "missing 1 key(s): [0.bias]" in message
    assert "unexpected 1 key(s): [3.weight]" in message
    assert "2.weight (1, 3, 1, 1) in file vs (1, 2, 1, 1) in model" in message


def test_long_key_lists_are_truncated_with_a_count(tmp_path: Path) -> None:
    state = {f"extra.{i}": torch.zeros(1) for i in range(9)} | small_model().state_dict()
    expected = r"given.pkl.*unexpected 9 key\(s\): \[.*, and 4 more\]"
    with pytest.raises(CheckpointError, match=expected):
        load_model_weights(small_model(), state, source="given.pkl")


def test_prefixes_are_stripped_in_any_order() -> None:
    weight = torch.ones(2)
    state = extract_model_state(
        {"model": {"module._orig_mod.a": weight, "_orig_mod.module.b": weight, "c": weight}}
    )
    assert sorted(state) == ["a", "b", "c"]
    assert sorted(extract_model_state({"module.module.x": weight})) == ["x"]
    with pytest.raises(CheckpointError, match="no state dict"):
        extract_model_state({"optimizer": {"lr": 1e-3}})


def test_unwrap_model_removes_wrappers() -> None:
    model = small_model()
    assert unwrap_model(model) is model
    assert unwrap_model(nn.DataParallel(model)) is model
    compiled = torch.compile(model)  # wraps lazily: nothing is compiled until called
    assert unwrap_model(compiled) is model
    assert unwrap_model(nn.DataParallel(compiled)) is model
    # A compiled model's state dict has "_orig_mod." keys; they load into a plain model.
    plain = small_model()
    nn.init.zeros_(plain[2].weight)
    load_model_weights(plain, {"model": compiled.state_dict()})
    assert torch.equal(plain[2].weight, model[2].weight)


def training_run(
    cfg, model: nn.Module, optimizer, scaler, state=None, averaged_model=None, iters_per_epoch=3
) -> TrainingRun:
    """A one-process run of what training_checkpoint reads (no predictor, folder or writer)."""
    return TrainingRun(
        cfg=cfg,
        process=init_distributed("cpu"),
        state=state or TrainState(),
        model=model,
        averaged_model=averaged_model,
        optimizer=optimizer,
        scaler=scaler,
        predictor=None,
        iters_per_epoch=iters_per_epoch,
        run_dir=Path(),
        writer=None,
    )


def _draws() -> tuple:
    return random.random(), float(np.random.random()), float(torch.rand(1))


def test_training_checkpoint_restores_weights_optimizer_counters_and_rng(tmp_path: Path) -> None:
    cfg = load_config("synthetic")
    process = init_distributed("cpu")
    model = small_model()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(torch.ones(1, 1, 5, 5)).sum().backward()
    optimizer.step()
    scaler = torch.amp.GradScaler("cuda", enabled=False)
    state = TrainState(iteration=6, epoch=1, best_score=0.5, best_iteration=4)
    run = training_run(cfg, model, optimizer, scaler, state, iters_per_epoch=6)
    checkpoint = training_checkpoint(run, {"miou": 0.5}, gather_rng_states(process))
    save_checkpoint(checkpoint, tmp_path / "latest.pth")
    expected = _draws()

    _draws()  # move every RNG on
    fresh = small_model()
    nn.init.zeros_(fresh[0].weight)
    fresh_optimizer = torch.optim.Adam(fresh.parameters(), lr=1e-3)
    loaded = load_for_resume(tmp_path / "latest.pth", cfg, 1, torch.device("cpu"))
    restored = restore_training(loaded, fresh, fresh_optimizer, scaler, rank=0)
    assert restored == state and loaded["config_changes"] == []
    assert (loaded["iters_per_epoch"], loaded["world_size"]) == (6, 1)
    assert torch.equal(fresh[0].weight, model[0].weight)
    assert fresh_optimizer.state_dict()["state"][0]["step"] == 1
    assert _draws() == expected  # python, NumPy and torch RNGs where the checkpoint left them


def test_resume_refuses_another_process_count_and_lists_config_changes(tmp_path: Path) -> None:
    cfg = load_config("synthetic", ["train.batch_size=4"])
    model = small_model()
    optimizer = torch.optim.Adam(model.parameters())
    scaler = torch.amp.GradScaler("cuda", enabled=False)
    rng = gather_rng_states(init_distributed("cpu"))
    checkpoint = training_checkpoint(training_run(cfg, model, optimizer, scaler), {}, rng)
    save_checkpoint(checkpoint, tmp_path / "latest.pth")
    with pytest.raises(UserError, match=r"batch_size=4 × 1 process\(es\), resuming with .*4 × 2"):
        load_for_resume(tmp_path / "latest.pth", cfg, 2, torch.device("cpu"))
    changed = load_config("synthetic", ["train.batch_size=4", "train.lr=0.5"])
    loaded = load_for_resume(tmp_path / "latest.pth", changed, 1, torch.device("cpu"))
    assert loaded["config_changes"] == ["train.lr: 0.001 -> 0.5"]
    save_checkpoint(model.state_dict(), tmp_path / "weights.pth")
    with pytest.raises(CheckpointError, match="not a training checkpoint"):
        load_for_resume(tmp_path / "weights.pth", cfg, 1, torch.device("cpu"))


def test_config_changes_name_every_dotted_key() -> None:
    old = {"train": {"lr": 0.1, "milestones": [1, 2]}, "name": "a"}
    new = {"train": {"lr": 0.2, "milestones": [1, 2], "extra": 1}, "name": "a"}
    assert config_changes(old, new) == ["train.extra: '<absent>' -> 1", "train.lr: 0.1 -> 0.2"]


def test_a_weight_average_is_saved_as_the_model_and_restored_beside_the_live_weights() -> None:
    cfg, process = load_config("synthetic"), init_distributed("cpu")
    live, average = small_model(), small_model()
    nn.init.constant_(average[0].weight, 0.25)
    optimizer = torch.optim.Adam(live.parameters(), lr=1e-3)
    scaler = torch.amp.GradScaler("cuda", enabled=False)
    rng = gather_rng_states(process)
    run = training_run(cfg, live, optimizer, scaler, averaged_model=average)
    checkpoint = training_checkpoint(run, {}, rng)
    # Inference reads "model": the average; training continues from "train_model".
    assert torch.equal(checkpoint["model"]["0.weight"], average[0].weight)
    assert torch.equal(checkpoint["train_model"]["0.weight"], live[0].weight)
    fresh, fresh_average = small_model(), small_model()
    nn.init.zeros_(fresh[0].weight)
    restore_training(checkpoint, fresh, optimizer, scaler, rank=0, averaged_model=fresh_average)
    assert torch.equal(fresh[0].weight, live[0].weight)
    assert torch.equal(fresh_average[0].weight, average[0].weight)

    # A checkpoint saved without an average: the average starts from its weights.
    plain = training_checkpoint(training_run(cfg, live, optimizer, scaler), {}, rng)
    assert "train_model" not in plain
    restore_training(plain, fresh, optimizer, scaler, rank=0, averaged_model=fresh_average)
    assert torch.equal(fresh_average[0].weight, live[0].weight)


TINY_NET = {"base_channels": 8, "num_groups": 4, "channel_mults": (1, 2), "num_res_blocks": 1}


def _tiny_training_checkpoint(tmp_path: Path, overrides: list[str]) -> tuple[Path, dict]:
    """A latest.pth of an LRRNet trained under ``synthetic`` with ``overrides``."""
    from lrrnet.models import LRRNet

    cfg = load_config("synthetic", overrides)
    model = LRRNet(**cfg["model"])
    optimizer = torch.optim.Adam(model.parameters())
    scaler = torch.amp.GradScaler("cuda", enabled=False)
    rng = gather_rng_states(init_distributed("cpu"))
    checkpoint = training_checkpoint(training_run(cfg, model, optimizer, scaler), {}, rng)
    save_checkpoint(checkpoint, tmp_path / "latest.pth")
    return tmp_path / "latest.pth", checkpoint


def _tiny_sets(**changes) -> list[str]:
    model = {**TINY_NET, **changes}
    return [f"model.{key}={value!r}" for key, value in model.items()]


def test_resume_with_another_architecture_is_one_line_naming_the_model_keys(tmp_path):
    path, _ = _tiny_training_checkpoint(tmp_path, _tiny_sets())
    wider = load_config("synthetic", _tiny_sets(base_channels=16))
    with pytest.raises(UserError) as refused:
        load_for_resume(path, wider, 1, torch.device("cpu"))
    message = str(refused.value)
    assert "\n" not in message and "model.base_channels: 8 -> 16" in message
    # A model.* change that changes no weight still resumes.
    dropout = load_config("synthetic", _tiny_sets(dropout=0.5))
    loaded = load_for_resume(path, dropout, 1, torch.device("cpu"))
    assert loaded["config_changes"] == ["model.dropout: 0.2 -> 0.5"]


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_weights_are_refused_by_the_tensors_key(tmp_path, bad):
    from lrrnet.engine.predictor import model_from_checkpoint

    path, checkpoint = _tiny_training_checkpoint(tmp_path, _tiny_sets())
    key = sorted(checkpoint["model"])[3]
    checkpoint["model"][key].view(-1)[0] = bad
    save_checkpoint(checkpoint, path)
    for load in (
        lambda: model_from_checkpoint(path),
        lambda: load_for_resume(path, load_config("synthetic", _tiny_sets()), 1, "cpu"),
    ):
        with pytest.raises(CheckpointError, match=rf"tensor '{re.escape(key)}' holds 1 non-finite"):
            load()
    # A bare state dict (the released .pkl form) too.
    save_checkpoint(checkpoint["model"], tmp_path / "bare.pkl")
    with pytest.raises(CheckpointError, match=re.escape(key)):
        model_from_checkpoint(tmp_path / "bare.pkl", TINY_NET)


@pytest.mark.parametrize(
    ("stored", "pattern"),
    [
        ({"train": {"grad_clip": -1.0}}, "'train.grad_clip' must be positive"),
        ({"data": {"noise_sigma": float("inf")}}, "'data.noise_sigma' = inf must be finite"),
        ({"model": {"dropout": 3.0}}, "'model.dropout' = 3.0 must be in"),
        ({"model": {"base_channels": "8; rm -rf"}}, "'model.base_channels' expects int"),
        ({"model": {"bogus": 1}}, "unknown config key 'model.bogus'"),
        ({"name": "../../elsewhere"}, "config key 'name' = '../../elsewhere'"),
        ({"data": {"base_size": -512}}, "'data.base_size' must be positive"),
        (["not", "a", "mapping"], "stored config is a list"),
    ],
)
def test_a_checkpoints_stored_config_gets_a_users_configs_checks(tmp_path, stored, pattern):
    from lrrnet.engine.predictor import model_from_checkpoint
    from lrrnet.models import LRRNet

    path = tmp_path / "hostile.pth"
    save_checkpoint({"model": LRRNet(**TINY_NET).state_dict(), "config": stored}, path)
    with pytest.raises(CheckpointError, match=rf"checkpoint {re.escape(str(path))}: .*{pattern}"):
        model_from_checkpoint(path)
