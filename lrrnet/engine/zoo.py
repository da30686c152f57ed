"""The model zoo: trained weights shipped in git, described by ``checkpoints/zoo.json``.

``zoo.json`` maps a name to an entry with exactly the keys of :data:`ENTRY_KEYS`
(docs/inference.md, "The model zoo"): the weights file (a path relative to the repository
root, a bare fp16 state dict), its SHA-256, the dataset, the resolved training config, how
the weights were chosen, and their test figures in both protocols. Outside checks rely on
this contract, so reading it refuses any unknown or missing key by name.

:func:`resolve_checkpoint` is the one place where a ``--checkpoint`` value becomes a file:
an existing file stays what it is; otherwise a key of ``zoo.json`` resolves to its weights,
checked against the recorded SHA-256 first. ``$LRRNET_ZOO`` points at another zoo file
(tests use one in a temporary folder); the repository root of a zoo file is the folder
above the one that holds it (``ROOT/checkpoints/zoo.json``).

This module reads files and JSON only: the predictor imports it, and what builds entries
(inference, scoring) lives in :mod:`lrrnet.engine.zoo_builder`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lrrnet.errors import CheckpointError, summarize
from lrrnet.files import write_json_atomic

ZOO_ENV = "LRRNET_ZOO"
DEFAULT_ZOO = Path(__file__).resolve().parents[2] / "checkpoints" / "zoo.json"

ENTRY_KEYS: tuple[str, ...] = (
    "weights",
    "sha256",
    "dataset",
    "config",
    "epochs",
    "iterations",
    "selection",
    "test",
    "best_on_test",
    "training_seconds",
    "gpu",
    "machine",
    "commit",
    "recipe",
    "date",
)
PROTOCOL_KEYS = ("standard", "lrrnet")
FIGURE_KEYS = ("miou", "niou", "f1", "pd", "fa")
BEST_ON_TEST_KEYS = ("epoch", "iteration", *FIGURE_KEYS, "optimistic")
RECIPE_KEYS = ("config", "description")
# A name is what a user types after --checkpoint: no folder, and not a checkpoint file name.
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*")
CHECKPOINT_SUFFIXES = (".pth", ".pkl", ".pt")
NAME_RULE = "a name is letters, digits and _.+- (no folder, no .pth/.pkl/.pt suffix)"


@dataclass(frozen=True)
class ZooModel:
    """A zoo entry whose weights file was found and matched its SHA-256.

    Attributes:
        name: the key in ``zoo.json``.
        weights: the absolute path of the weights file.
        entry: the entry as stored (``weights`` relative to the repository root).
    """

    name: str
    weights: Path
    entry: Mapping[str, Any]

    @property
    def config(self) -> Mapping[str, Any]:
        """The resolved config the weights were trained with."""
        return self.entry["config"]


def zoo_file(path: str | os.PathLike | None = None) -> Path:
    """``path``, else ``$LRRNET_ZOO``, else the repository's ``checkpoints/zoo.json``."""
    if path is not None:
        return Path(path)
    return Path(os.environ.get(ZOO_ENV) or DEFAULT_ZOO)


def zoo_root(path: str | os.PathLike | None = None) -> Path:
    """The folder an entry's ``weights`` is relative to: the one above the zoo file's."""
    return zoo_file(path).resolve().parent.parent


def file_sha256(path: str | os.PathLike) -> str:
    """The SHA-256 of a file's bytes, as hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _exact_keys(where: str, value: Any, keys: tuple[str, ...]) -> list[str]:
    """Problems of a mapping that should hold exactly ``keys``."""
    if not isinstance(value, Mapping):
        return [f"{where} must be an object with keys {', '.join(keys)}"]
    missing = [key for key in keys if key not in value]
    unknown = sorted(str(key) for key in value if key not in keys)
    problems = []
    if missing:
        problems.append(f"{where}: missing key(s) {', '.join(missing)}")
    if unknown:
        problems.append(f"{where}: unknown key(s) {', '.join(unknown)}")
    return problems


def _figures(where: str, value: Any, keys: tuple[str, ...]) -> list[str]:
    """Problems of a mapping of ``keys`` to numbers (None: undefined, as JSON writes NaN)."""
    problems = _exact_keys(where, value, keys)
    if problems:
        return problems
    return [
        f"{where}.{key} must be a number or null, got {value[key]!r}"
        for key in keys
        if key != "optimistic"
        and value[key] is not None
        and (isinstance(value[key], bool) or not isinstance(value[key], int | float))
    ]


def entry_problems(name: str, entry: Any) -> list[str]:
    """Everything wrong with one entry's form (not its file), each naming the key."""
    where = f"zoo entry '{name}'"
    if not is_name(name):
        return [f"{where}: {NAME_RULE}"]
    problems = _exact_keys(where, entry, ENTRY_KEYS)
    if problems:
        return problems
    texts = ("weights", "dataset", "selection", "machine", "commit", "date")
    problems += [
        f"{where}.{key} must be a string" for key in texts if not isinstance(entry[key], str)
    ]
    if not re.fullmatch(r"[0-9a-f]{64}", str(entry["sha256"])):
        problems.append(f"{where}.sha256 must be 64 lowercase hex digits")
    for key in ("epochs", "iterations"):
        if isinstance(entry[key], bool) or not isinstance(entry[key], int) or entry[key] < 0:
            problems.append(f"{where}.{key} must be a whole number >= 0")
    seconds = entry["training_seconds"]
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
        problems.append(f"{where}.training_seconds must be a number >= 0")
    if entry["gpu"] is not None and not isinstance(entry["gpu"], str):
        problems.append(f"{where}.gpu must be a string, or null for a CPU run")
    config = entry["config"]
    if not isinstance(config, Mapping) or not all(
        isinstance(config.get(section), Mapping) for section in ("model", "data")
    ):
        problems.append(f"{where}.config must be a resolved config (with model and data)")
    test = entry["test"]
    problems += _exact_keys(f"{where}.test", test, PROTOCOL_KEYS)
    if isinstance(test, Mapping):
        for protocol in PROTOCOL_KEYS:
            if protocol in test:
                problems += _figures(f"{where}.test.{protocol}", test[protocol], FIGURE_KEYS)
    best = entry["best_on_test"]
    if best is not None:
        problems += _figures(f"{where}.best_on_test", best, BEST_ON_TEST_KEYS)
        if isinstance(best, Mapping) and best.get("optimistic") is not True:
            problems.append(f"{where}.best_on_test.optimistic must be true")
    problems += _exact_keys(f"{where}.recipe", entry["recipe"], RECIPE_KEYS)
    return problems


def read_zoo(path: str | os.PathLike | None = None) -> dict[str, dict[str, Any]]:
    """The entries of a zoo file by name, each checked (:func:`entry_problems`).

    Raises:
        CheckpointError: the file is missing or not JSON, or an entry is malformed; one line
            naming the file and the keys.
    """
    path = zoo_file(path)
    try:
        entries = json.loads(path.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"no model zoo at {path}") from None
    except (OSError, json.JSONDecodeError) as error:
        raise CheckpointError(f"{path}: cannot read the model zoo ({error})") from None
    if not isinstance(entries, dict):
        raise CheckpointError(f"{path}: the model zoo must be a JSON object of entries by name")
    problems = [
        problem for name, entry in entries.items() for problem in entry_problems(name, entry)
    ]
    if problems:
        raise CheckpointError(f"{path}: {summarize(problems)}")
    return entries


def write_zoo(
    entries: Mapping[str, Mapping[str, Any]], path: str | os.PathLike | None = None
) -> Path:
    """Write the entries, checked and sorted by name (keys sorted too), atomically."""
    path = zoo_file(path)
    problems = [
        problem for name, entry in entries.items() for problem in entry_problems(name, entry)
    ]
    if problems:
        raise CheckpointError(f"{path}: not written: {summarize(problems)}")
    ordered = {name: _sorted(entries[name]) for name in sorted(entries)}
    write_json_atomic(path, ordered)
    return path


def _sorted(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {key: _sorted(value[key]) for key in sorted(value)}
    return value


def resolve(name: str, path: str | os.PathLike | None = None) -> ZooModel:
    """The entry ``name`` with its absolute weights path, the file's SHA-256 checked.

    Raises:
        CheckpointError: an unknown name (the message lists the available ones), a missing
            weights file, or a file whose SHA-256 is not the recorded one (naming the file
            and both hashes).
    """
    entries = read_zoo(path)
    if name not in entries:
        available = ", ".join(sorted(entries)) or "none"
        raise CheckpointError(
            f"'{name}' is neither a checkpoint file nor a model of {zoo_file(path)} "
            f"(available: {available})"
        )
    entry = entries[name]
    weights = zoo_root(path) / entry["weights"]
    if not weights.is_file():
        raise CheckpointError(f"zoo model '{name}': weights file {weights} not found")
    actual = file_sha256(weights)
    if actual != entry["sha256"]:
        raise CheckpointError(
            f"zoo model '{name}': {weights} has SHA-256 {actual}, zoo.json records "
            f"{entry['sha256']}; the file was changed or is not the shipped one"
        )
    return ZooModel(name, weights, entry)


def is_name(checkpoint: str | os.PathLike) -> bool:
    """Whether a ``--checkpoint`` value that is not a file reads as a zoo name: no folder,
    and no checkpoint suffix (``best.pth`` that is missing stays a missing file)."""
    text = str(checkpoint)
    return bool(NAME_PATTERN.fullmatch(text)) and Path(text).suffix not in CHECKPOINT_SUFFIXES


def resolve_checkpoint(
    checkpoint: str | os.PathLike, path: str | os.PathLike | None = None
) -> tuple[Path, ZooModel | None]:
    """The file a ``--checkpoint`` value names, and its zoo entry when it is a zoo name.

    An existing file is returned as it is, without reading the zoo. A value that is not a
    file and reads as a name (:func:`is_name`) is resolved in the zoo (:func:`resolve`);
    anything else is returned as a path, for the loader to report missing.
    """
    as_path = Path(checkpoint)
    if as_path.is_file() or not is_name(checkpoint):
        return as_path, None
    model = resolve(str(checkpoint), path)
    return model.weights, model


def check_zoo(path: str | os.PathLike | None = None) -> list[str]:
    """Every entry's keys, weights file and SHA-256: the problems, one line each (none: all
    good)."""
    try:
        entries = read_zoo(path)
    except CheckpointError as error:
        return [str(error)]
    problems = []
    for name in sorted(entries):
        try:
            resolve(name, path)
        except CheckpointError as error:
            problems.append(str(error))
    return problems
