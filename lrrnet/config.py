"""Python-dict configs: load, inherit by import, override from the command line, check.

``configs/base.py`` holds every key with its default and a comment; it is also the schema:
a key that is not in it is an error, and a value must have the type of the default (ints
are accepted where floats are expected; lists and tuples are interchangeable). A dataset
config inherits by importing the base and overriding a few fields::

    from configs.base import config as base
    from lrrnet.config import override

    config = override(base, {"name": "irstd1k", "data": {"root": "datasets/IRSTD-1k"}})

``load_config`` resolves a config name (``configs/<name>.py``), a ``.py`` path or a
``config.yaml`` written into a run folder, applies ``--set a.b=value`` overrides, checks
every value and returns the resolved config frozen (read-only mappings). The helpers on
plain nested dicts (:func:`override`, :func:`get`, :func:`freeze`, :func:`to_dict`,
:func:`dump_yaml`) are :mod:`lrrnet.config_tree`'s, re-exported here.
"""

from __future__ import annotations

import ast
import difflib
import importlib.util
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from lrrnet import losses, metrics

# The nested-dict helpers live in a leaf module that engine/ and data/ import; the `as`
# names re-export them, so config files keep `from lrrnet.config import override`.
from lrrnet.config_tree import dump_yaml as dump_yaml
from lrrnet.config_tree import freeze as freeze
from lrrnet.config_tree import get as get
from lrrnet.config_tree import override as override
from lrrnet.config_tree import to_dict as to_dict
from lrrnet.config_tree import unknown_key_message as _unknown_key_message
from lrrnet.data import dataset, layouts
from lrrnet.data.dataset import TRAIN_MODES
from lrrnet.data.layouts import LAYOUTS, VAL_SPLITS
from lrrnet.domains import Domain
from lrrnet.engine import schedule, weight_average
from lrrnet.engine.distributed import PRECISIONS
from lrrnet.engine.schedule import OPTIMIZERS, SCHEDULES
from lrrnet.errors import ConfigError
from lrrnet.losses import L1_MODES
from lrrnet.metrics import PROTOCOLS, SELECT_METRICS, THRESHOLD_METRICS
from lrrnet.models import lrrnet as network
from lrrnet.models.blocks import ATTENTION_IMPLS
from lrrnet.models.lrrnet import HEAD_INPUTS
from lrrnet.models.padding import EVAL_SIZES, size_multiple_for

PROJECT_ROOT = Path(__file__).resolve().parents[1]
CONFIG_DIR = PROJECT_ROOT / "configs"

# Keys whose default is None: the type a non-None value must have.
NULLABLE_TYPES: dict[str, tuple[type, ...]] = {
    "data.dataset_name": (str,),
    "model.target_prior": (float,),
    "train.max_iters": (int,),
    "train.time_limit": (float, int),
    "train.grad_clip": (float, int),
    "train.eval_every": (int,),
    "train.early_stop_patience": (int,),
    "train.channels_last": (bool,),
}

# The counts that only the training loop reads (lrrnet/engine/trainer.py and selection.py take
# them from the config as they are), so their domains live here.
LOOP_DOMAINS = (
    Domain("train.epochs", low=0, low_open=True, integer=True),
    Domain("train.max_iters", low=0, low_open=True, integer=True, nullable=True),
    # Seconds of wall time; the loop compares the elapsed time and its step time with it.
    Domain("train.time_limit", low=0.0, low_open=True, nullable=True, note="None: no limit"),
    Domain("train.batch_size", low=0, low_open=True, integer=True),
    # The largest gradient norm; 0 would zero every step.
    Domain("train.grad_clip", low=0.0, low_open=True, nullable=True, note="None: off"),
    Domain("train.eval_every", low=0, low_open=True, integer=True, nullable=True),
    Domain("train.early_stop_patience", low=0, low_open=True, integer=True, nullable=True),
    Domain("train.log_every", low=0, low_open=True, integer=True),
    Domain("train.num_log_images", low=0, integer=True),
    Domain("eval.batch_size", low=0, low_open=True, integer=True),
)
# Every number of the config (a bool is a switch, not a number) but the synthetic dataset's
# sizes, which the generator checks when it runs (lrrnet/data/synthetic.py): each key's
# domain, from the module that uses the value.
DOMAINS: tuple[Domain, ...] = (
    *layouts.DOMAINS,
    *dataset.DOMAINS,
    *network.DOMAINS,
    *losses.DOMAINS,
    *schedule.DOMAINS,
    *weight_average.DOMAINS,
    *metrics.DOMAINS,
    *LOOP_DOMAINS,
)

# Keys with a closed set of values, each from the module that owns the idea.
CHOICES: dict[str, tuple[Any, ...]] = {
    "data.layout": ("auto", *LAYOUTS),
    "data.val_split": VAL_SPLITS,
    "data.train_mode": TRAIN_MODES,
    "data.eval_size": EVAL_SIZES,
    "loss.l1_mode": L1_MODES,
    "train.optimizer": tuple(OPTIMIZERS),
    "train.schedule": SCHEDULES,
    "train.select_metric": SELECT_METRICS,
    "train.amp": ("off", *(p for p in PRECISIONS if p != "fp32")),
    "model.attention_impl": ATTENTION_IMPLS,
    "model.head_input": HEAD_INPUTS,
    "eval.protocol": PROTOCOLS,
    "eval.val_threshold": ("off", *THRESHOLD_METRICS),
}


def load_config(name_or_path: str | Path, overrides: Iterable[str] = ()) -> Mapping[str, Any]:
    """Resolve a config and its ``KEY=VALUE`` overrides into a checked, frozen mapping.

    Args:
        name_or_path: a name from ``configs/`` (``irstd1k``, ``demo``, …), a path to a
            ``.py`` config (defining ``config``) or a ``.yaml`` written by a training run.
        overrides: strings ``a.b=value``; values are parsed as Python literals, then YAML,
            else kept as strings.
    """
    # Merged onto the base: a file may set only some keys, and its unknown keys are named.
    config = override(base_config(), _read_config_file(_resolve_path(name_or_path)))
    text_keys = _text_keys()
    for item in overrides:
        key, value = parse_override(item, text_keys=text_keys)
        config = override(config, _nest(key.split("."), value))
    validate(config)
    return freeze(config)


def parse_override(item: str, text_keys: Iterable[str] = ()) -> tuple[str, Any]:
    """Split ``a.b=value`` and parse the value (``1e-4``, ``None``, ``(1, 2)``, ``true``, ``cpu``).

    Args:
        item: ``KEY=VALUE``.
        text_keys: keys whose value is text (their default is a string): a value that parses
            to something else keeps its text, so ``train.amp=off`` stays ``"off"`` (YAML reads
            False) and ``data.root=2024`` stays ``"2024"``. ``None``/``null`` still mean None
            for the keys that allow it.
    """
    if "=" not in item:
        raise ConfigError(f"override '{item}' is not of the form KEY=VALUE")
    key, text = item.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"override '{item}' has an empty key")
    value = _parse_literal(text)
    if key in set(text_keys) and not isinstance(value, str):
        if value is None and key in NULLABLE_TYPES:
            return key, None
        return key, text
    return key, value


def _parse_literal(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        pass
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def _text_keys() -> set[str]:
    """Dotted keys whose values are text: a string default, or None that allows only str."""
    keys = {dotted for dotted, types in NULLABLE_TYPES.items() if types == (str,)}

    def walk(node: Mapping[str, Any], prefix: str) -> None:
        for key, value in node.items():
            if isinstance(value, Mapping):
                walk(value, f"{prefix}{key}.")
            elif isinstance(value, str):
                keys.add(f"{prefix}{key}")

    walk(base_config(), "")
    return keys


def validate(config: Mapping[str, Any]) -> None:
    """Check every key and value of a resolved config against ``configs/base.py``.

    Types come from the base's defaults (and :data:`NULLABLE_TYPES`), closed sets from
    :data:`CHOICES`, numbers from :data:`DOMAINS`, then the relations between keys; the
    domains and relations are those of the modules that use the values, which check them
    with the same functions.
    """
    _check_against(config, base_config(), "")
    check_run_name(config["name"])
    for dotted, choices in CHOICES.items():
        value = get(config, dotted)
        if value not in choices:
            raise ConfigError(
                f"config key '{dotted}' = {value!r} is not one of: {', '.join(map(str, choices))}"
            )
    for domain in DOMAINS:
        domain.check(get(config, domain.key))
    model = config["model"]
    network.check_widths(model["base_channels"], model["channel_mults"], model["num_groups"])
    multiple = size_multiple(config)
    for domain in (dataset.BASE_SIZE, dataset.CROP_SIZE):
        dataset.check_size(domain, get(config, domain.key), multiple)
    schedule.check_min_lr(get(config, "train.lr"), get(config, "train.min_lr"))


def check_run_name(name: str) -> str:
    """Returns ``name`` when it is one folder name: it becomes ``checkpoints/<name>/`` and
    ``results/<name>/``, so a separator, ``..``, an absolute path or an empty name would put
    those files outside their roots (or on top of them)."""
    # Both separators on every system: a config written on one runs on the other.
    if not name.strip() or ".." in name or "\0" in name or "/" in name or "\\" in name:
        raise ConfigError(
            f"config key 'name' = {name!r} must be one folder name (not empty, no path "
            "separator, no '..'): it names checkpoints/<name>/ and results/<name>/"
        )
    return name


def size_multiple(config: Mapping[str, Any]) -> int:
    """What H and W must be multiples of: the network halves them ``len(channel_mults) − 1`` times."""
    return size_multiple_for(len(get(config, "model.channel_mults")))


def base_config() -> dict:
    """The defaults of ``configs/base.py`` as a fresh plain dict."""
    return _read_config_file(CONFIG_DIR / "base.py")


def available_configs() -> list[str]:
    """Names of the configs in ``configs/`` (without ``base``)."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.py") if p.stem not in ("base", "__init__"))


def _resolve_path(name_or_path: str | Path) -> Path:
    text = str(name_or_path)
    path = Path(text)
    if path.suffix in (".py", ".yaml", ".yml"):
        if not path.is_file():
            raise ConfigError(f"{path}: config file not found")
        return path
    candidate = CONFIG_DIR / f"{text}.py"
    if "/" not in text and candidate.is_file():
        return candidate
    names = available_configs()
    hint = difflib.get_close_matches(text, names, n=1)
    suggestion = f" (did you mean '{hint[0]}'?)" if hint else ""
    raise ConfigError(f"unknown config '{text}'{suggestion}; available: {', '.join(names)}")


def _read_config_file(path: Path) -> dict:
    if path.suffix in (".yaml", ".yml"):
        try:
            loaded = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError) as error:
            raise ConfigError(f"{path}: cannot read YAML config ({error})") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: YAML config must be a mapping")
        return loaded
    # Configs import each other as the `configs` package, so the project root must be importable.
    if str(PROJECT_ROOT) not in sys.path:
        sys.path.insert(0, str(PROJECT_ROOT))
    spec = importlib.util.spec_from_file_location(f"_lrrnet_config_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except ConfigError:
        raise
    except Exception as error:
        raise ConfigError(f"{path}: cannot load config ({type(error).__name__}: {error})") from None
    if not isinstance(getattr(module, "config", None), Mapping):
        raise ConfigError(f"{path}: defines no dict named 'config'")
    return to_dict(module.config)


def _check_against(config: Mapping[str, Any], schema: Mapping[str, Any], prefix: str) -> None:
    for key in config:
        if key not in schema:
            raise ConfigError(_unknown_key_message(f"{prefix}{key}", schema.keys(), prefix))
    for key, default in schema.items():
        dotted = f"{prefix}{key}"
        if key not in config:
            raise ConfigError(f"config key '{dotted}' is missing")
        value = config[key]
        if isinstance(default, Mapping):
            if not isinstance(value, Mapping):
                raise ConfigError(f"config key '{dotted}' must be a section (dict), got {value!r}")
            _check_against(value, default, f"{dotted}.")
        else:
            _check_type(dotted, value, default)


def _check_type(dotted: str, value: Any, default: Any) -> None:
    if default is None:
        allowed = NULLABLE_TYPES.get(dotted)
        if value is None or allowed is None or _is_instance(value, allowed):
            return
        expected = " or ".join(t.__name__ for t in allowed) + " or None"
    elif _is_instance(value, _accepted_types(default)):
        return
    else:
        expected = type(default).__name__
        if dotted in NULLABLE_TYPES:
            expected += " or None"
    raise ConfigError(
        f"config key '{dotted}' expects {expected}, got {type(value).__name__} {value!r}"
    )


def _accepted_types(default: Any) -> tuple[type, ...]:
    if isinstance(default, bool):
        return (bool,)
    if isinstance(default, float):
        return (float, int)
    if isinstance(default, (list, tuple)):
        return (list, tuple)
    return (type(default),)


def _is_instance(value: Any, types: tuple[type, ...]) -> bool:
    # bool is an int subclass, but `train.epochs=True` is a mistake, not a number.
    if isinstance(value, bool) and bool not in types:
        return False
    return isinstance(value, types)


def _nest(parts: list[str], value: Any) -> dict:
    node: Any = value
    for part in reversed(parts):
        node = {part: node}
    return node
