"""Checkpoint I/O: atomic saves, strict loading with readable errors, weights_only."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch
from torch import nn

from lrrnet.engine.checkpoint import (
    extract_model_state,
    load_checkpoint,
    load_model_weights,
    save_checkpoint,
    unwrap_model,
)
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
