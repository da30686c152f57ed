"""A config as a tree of plain nested dicts: merge, look up, freeze, copy back, write.

These helpers know nothing of the config's keys or values, so the layers that only carry a
resolved config (``engine/``, ``data/``) import them from here; :mod:`lrrnet.config`, which
loads and checks configs against the modules that own each value, re-exports them, so a
config file still writes ``from lrrnet.config import override``.
"""

from __future__ import annotations

import copy
import difflib
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from lrrnet.errors import ConfigError
from lrrnet.files import write_text_atomic


def override(base: Mapping[str, Any], changes: Mapping[str, Any], *, _prefix: str = "") -> dict:
    """Return a deep copy of ``base`` with ``changes`` merged in; unknown keys fail.

    Args:
        base: the parent config (its keys are the valid ones).
        changes: nested dict of the fields to change.
    """
    merged = to_dict(base)
    for key, value in changes.items():
        dotted = f"{_prefix}{key}"
        if key not in merged:
            raise ConfigError(unknown_key_message(dotted, merged.keys(), _prefix))
        if isinstance(merged[key], dict):
            if not isinstance(value, Mapping):
                raise ConfigError(
                    f"config key '{dotted}' is a section; expected a dict, got {value!r}"
                )
            merged[key] = override(merged[key], value, _prefix=f"{dotted}.")
        else:
            merged[key] = copy.deepcopy(to_dict(value))
    return merged


def unknown_key_message(dotted: str, valid: Iterable[str], prefix: str) -> str:
    """The error for a key that is not in its section: the valid keys and a "did you mean"."""
    valid = sorted(valid)
    leaf = dotted[len(prefix) :]
    hint = difflib.get_close_matches(leaf, valid, n=1)
    suggestion = f" (did you mean '{prefix}{hint[0]}'?)" if hint else ""
    where = f"in '{prefix[:-1]}'" if prefix else "at the top level"
    return f"unknown config key '{dotted}'{suggestion}; valid keys {where}: {', '.join(valid)}"


def get(config: Mapping[str, Any], dotted: str) -> Any:
    """``get(cfg, "train.lr")`` is ``cfg["train"]["lr"]``."""
    node: Any = config
    for part in dotted.split("."):
        node = node[part]
    return node


def freeze(value: Any) -> Any:
    """Read-only view of a nested config: mappings become ``MappingProxyType``, lists tuples."""
    if isinstance(value, Mapping):
        return MappingProxyType({k: freeze(v) for k, v in value.items()})
    if isinstance(value, (list, tuple)):
        return tuple(freeze(v) for v in value)
    return value


def to_dict(value: Any) -> Any:
    """A plain, mutable deep copy of a (frozen) config: dicts and lists, as YAML holds it.

    The inverse of :func:`freeze`; what ``config.yaml`` and a checkpoint's ``config`` hold,
    and what two configs are compared as (a tuple and a list of the same items are equal).
    """
    if isinstance(value, Mapping):
        return {k: to_dict(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_dict(v) for v in value]
    return value


def dump_yaml(config: Mapping[str, Any], path: str | Path) -> None:
    """Write the resolved config as YAML (tuples as lists); ``load_config`` reads it back."""
    write_text_atomic(path, yaml.safe_dump(to_dict(config), sort_keys=False))
