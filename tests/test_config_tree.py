"""The plain nested-dict helpers of a config: override, get, freeze, to_dict, dump_yaml."""

import ast
import subprocess
import sys
from types import MappingProxyType

import pytest
import yaml

from lrrnet import config, config_tree
from lrrnet.config import base_config, load_config
from lrrnet.config_tree import dump_yaml, freeze, get, override, to_dict
from lrrnet.errors import ConfigError


def test_override_merges_a_deep_copy_and_leaves_the_base():
    base = {"train": {"lr": 0.1, "milestones": [1, 2]}, "name": "a"}
    merged = override(base, {"train": {"lr": 0.2}})
    assert merged == {"train": {"lr": 0.2, "milestones": [1, 2]}, "name": "a"}
    merged["train"]["milestones"].append(3)
    assert base == {"train": {"lr": 0.1, "milestones": [1, 2]}, "name": "a"}
    with pytest.raises(ConfigError, match="'train' is a section; expected a dict"):
        override(base, {"train": 1})


def test_unknown_top_level_key_in_override():
    with pytest.raises(ConfigError, match="unknown config key 'trian'.*did you mean 'train'"):
        override(base_config(), {"trian": {}})


def test_get_follows_a_dotted_key_and_freeze_makes_it_read_only():
    frozen = freeze({"train": {"lr": 0.1, "milestones": [1, 2]}})
    assert get(frozen, "train.lr") == 0.1
    assert get(frozen, "train.milestones") == (1, 2)
    with pytest.raises(TypeError):
        frozen["train"]["lr"] = 1.0
    assert isinstance(frozen["train"], MappingProxyType)


def test_yaml_round_trip(tmp_path):
    cfg = load_config("sirst", ["train.epochs=7", "train.grad_clip=1.5"])
    path = tmp_path / "config.yaml"
    dump_yaml(cfg, path)
    assert yaml.safe_load(path.read_text())["train"]["epochs"] == 7
    again = load_config(path)
    assert again == cfg


def test_to_dict_is_the_plain_copy_that_yaml_and_checkpoints_hold():
    cfg = load_config("irstd1k")
    plain = to_dict(cfg)
    assert type(plain) is dict and type(plain["train"]) is dict
    assert plain["model"]["channel_mults"] == [1, 2, 4, 8]  # tuples as lists, as in YAML
    plain["train"]["lr"] = 1.0
    assert cfg["train"]["lr"] == 1e-4  # a copy
    assert freeze(to_dict(cfg)) == cfg


def test_config_re_exports_the_helpers_that_config_files_import():
    for name in ("override", "get", "freeze", "to_dict", "dump_yaml"):
        assert getattr(config, name) is getattr(config_tree, name)


def test_the_helpers_import_no_other_layer_of_the_package():
    code = (
        "import sys, lrrnet.config_tree; "
        "print(sorted(m for m in sys.modules if m.startswith('lrrnet')))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert ast.literal_eval(loaded) == [
        "lrrnet",
        "lrrnet.config_tree",
        "lrrnet.errors",
        "lrrnet.files",
        "lrrnet.lazy",  # the package's own lazy exports
    ]
