import math
import re
from types import MappingProxyType

import pytest

from lrrnet.config import (
    DOMAINS,
    NULLABLE_TYPES,
    available_configs,
    base_config,
    load_config,
    parse_override,
    to_dict,
)
from lrrnet.data.layouts import LAYOUTS
from lrrnet.errors import ConfigError
from lrrnet.models import build_model


def test_named_config_inherits_base_and_overrides_fields():
    cfg = load_config("irstd1k")
    assert cfg["name"] == "irstd1k"
    assert cfg["data"]["root"] == "datasets/IRSTD-1k"
    # untouched fields come from the base
    assert cfg["train"]["lr"] == base_config()["train"]["lr"] == 1e-4
    assert cfg["loss"]["mse"] == 0.1


@pytest.mark.parametrize(
    ("item", "key", "value"),
    [
        ("train.lr=1e-4", "train.lr", 1e-4),
        ("train.max_iters=None", "train.max_iters", None),
        ("train.max_iters=null", "train.max_iters", None),
        ("train.device=cpu", "train.device", "cpu"),
        ("data.augment=true", "data.augment", True),
        ("model.channel_mults=(1, 2)", "model.channel_mults", (1, 2)),
        ("data.root=/data/a=b", "data.root", "/data/a=b"),
    ],
)
def test_parse_override_literals(item, key, value):
    assert parse_override(item) == (key, value)


def test_overrides_apply_and_int_is_accepted_for_float():
    cfg = load_config("irstd1k", ["train.lr=1", "train.epochs=3", "data.base_size=256"])
    assert (
        cfg["train"]["lr"] == 1 and cfg["train"]["epochs"] == 3 and cfg["data"]["base_size"] == 256
    )


def test_resolved_config_is_frozen():
    cfg = load_config("irstd1k")
    assert isinstance(cfg, MappingProxyType)
    with pytest.raises(TypeError):
        cfg["train"]["lr"] = 1.0


def test_unknown_key_suggests_the_close_one_and_lists_valid_keys():
    with pytest.raises(ConfigError) as error:
        load_config("irstd1k", ["train.lrr=0.1"])
    message = str(error.value)
    assert "train.lrr" in message and "did you mean 'train.lr'" in message
    assert "batch_size" in message  # the valid keys of the section are listed
    assert "\n" not in message


@pytest.mark.parametrize(
    ("item", "pattern"),
    [
        ("train.epochs=ten", "train.epochs' expects int, got str"),
        ("train.epochs=True", "train.epochs' expects int, got bool"),
        ("train.lr=fast", "train.lr' expects float"),
        ("train.max_iters=1.5", "train.max_iters' expects int or None"),
        ("train.amp=fp8", "train.amp' = 'fp8' is not one of"),
        ("data.base_size=100", "multiple of 8"),
        ("train", "KEY=VALUE"),
    ],
)
def test_type_and_choice_errors_name_the_key(item, pattern):
    with pytest.raises(ConfigError, match=pattern):
        load_config("irstd1k", [item])


def test_unknown_config_name_suggests():
    with pytest.raises(ConfigError, match="did you mean 'irstd1k'"):
        load_config("irstd1")


def test_yaml_with_unknown_key_fails(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("train:\n  epoch: 3\n")
    with pytest.raises(ConfigError, match="did you mean 'train.epochs'"):
        load_config(path)


def test_python_config_file_inherits_by_import(tmp_path):
    path = tmp_path / "mine.py"
    path.write_text(
        "from configs.irstd1k import config as parent\n"
        "from lrrnet.config import override\n"
        "config = override(parent, {'name': 'mine', 'train': {'epochs': 2}})\n"
    )
    cfg = load_config(path)
    assert cfg["name"] == "mine" and cfg["train"]["epochs"] == 2
    assert cfg["data"]["root"] == "datasets/IRSTD-1k"
    assert math.isclose(cfg["train"]["lr"], 1e-4)


def test_missing_config_file():
    with pytest.raises(ConfigError, match="nope.py: config file not found"):
        load_config("nope.py")


def test_config_file_that_does_not_inherit_names_its_own_bad_key(tmp_path):
    path = tmp_path / "standalone.py"
    path.write_text("config = {'name': 'mine', 'trian': {'epochs': 2}}\n")
    with pytest.raises(
        ConfigError, match="unknown config key 'trian' \\(did you mean 'train'\\?\\)"
    ):
        load_config(path)
    path.write_text("config = {'name': 'mine', 'train': {'epochs': 2}}\n")
    cfg = load_config(path)  # the rest comes from the base
    assert cfg["train"]["epochs"] == 2 and cfg["train"]["lr"] == 1e-4


@pytest.mark.parametrize(
    ("item", "key", "value"),
    [
        ("train.amp=off", "amp", "off"),  # YAML alone reads False
        ("data.root=2024", "root", "2024"),  # a folder named by a year, not an int
        ("data.root='my data'", "root", "my data"),  # quotes still strip
        ("data.dataset_name=None", "dataset_name", None),  # nullable text keeps None
        ("data.dataset_name=1024", "dataset_name", "1024"),
        ("train.device=cpu", "device", "cpu"),
    ],
)
def test_set_keeps_the_text_where_the_default_is_a_string(item, key, value):
    cfg = load_config("irstd1k", [item])
    section = item.split(".")[0]
    assert cfg[section][key] == value


@pytest.mark.parametrize(
    ("item", "pattern"),
    [
        ("train.log_every=0", "'train.log_every' must be positive"),
        ("model.num_groups=12", "'model.num_groups' = 12 must divide every width"),
        ("train.lr=-1e-4", "'train.lr' must be >= 0"),
        ("data.num_workers=-1", "'data.num_workers' must be >= 0"),
        ("eval.threshold=1.0", "'eval.threshold' = 1.0 must be in \\(0, 1\\)"),
        ("eval.threshold=0", "'eval.threshold' = 0 must be in \\(0, 1\\)"),
        ("train.eval_every=0", "'train.eval_every' must be positive"),
        ("train.max_iters=0", "'train.max_iters' must be positive"),
        ("train.eval_every=-5", "'train.eval_every' must be positive"),
        ("train.ema_decay=1.0", "'train.ema_decay' = 1.0 must be in \\[0, 1\\)"),
        ("train.ema_decay=-0.5", "'train.ema_decay' = -0.5 must be in \\[0, 1\\)"),
        ("data.edge_prob=1.5", "'data.edge_prob' = 1.5 must be in \\[0, 1\\]"),
        ("model.attention_impl=fast", "'model.attention_impl' = 'fast' is not one of"),
        ("model.channel_mults=()", "'model.channel_mults'"),
        # five levels: four halvings, so 8 is no longer enough
        ("model.channel_mults=(1,2,4,8,8)", "'data.base_size' = 264 must be a multiple of 16"),
    ],
)
def test_values_are_checked_before_any_work(item, pattern):
    overrides = [item]
    if "channel_mults=(1,2,4,8,8)" in item:
        overrides.append("data.base_size=264")
    with pytest.raises(ConfigError, match=pattern) as error:
        load_config("irstd1k", overrides)
    assert "\n" not in str(error.value)


def test_attention_impl_is_a_config_key_the_model_takes():
    cfg = load_config("irstd1k", ["model.attention_impl=naive"])
    assert build_model(cfg).attention_impl == "naive"


def test_every_layout_the_data_package_knows_is_a_valid_choice():
    for layout in LAYOUTS:  # sirst_v2 and irstd1k were missing from a hand-kept copy once
        assert load_config("synthetic", [f"data.layout={layout!r}"])["data"]["layout"] == layout
    with pytest.raises(ConfigError, match="data.layout"):
        load_config("synthetic", ["data.layout='sirst_v9'"])


@pytest.mark.parametrize(
    ("name", "val_split"),
    [
        ("nudt_cpu", "holdout"),
        ("nudt_cpu_bf16", "holdout"),
        ("sirst_cpu", "val"),
        ("sirst_cpu_bf16", "val"),
    ],
)
def test_cpu_recipes_select_on_validation_and_keep_the_published_network(name, val_split):
    cfg = load_config(name)
    published = load_config(name.split("_cpu")[0])
    assert cfg["data"]["val_split"] == val_split  # never the test split
    assert cfg["model"] == {**published["model"], "target_prior": 0.1}
    assert cfg["loss"] == published["loss"]
    assert cfg["data"]["root"] == published["data"]["root"]
    assert cfg["data"]["augment"] == published["data"]["augment"]


@pytest.mark.parametrize("name", ["nudt_cpu", "sirst_cpu"])
def test_the_bf16_cpu_recipes_differ_from_fp32_only_in_precision_and_length(name):
    fp32, bf16 = to_dict(load_config(name)), to_dict(load_config(f"{name}_bf16"))
    assert (fp32["train"]["amp"], bf16["train"]["amp"]) == ("off", "bf16")
    for cfg in (fp32, bf16):
        del cfg["name"]
        for key in ("amp", "max_iters", "eval_every"):
            del cfg["train"][key]
    assert bf16 == fp32


@pytest.mark.parametrize("name", ["base", *available_configs()])
def test_every_shipped_config_passes_its_checks(name):
    assert load_config(name)["name"]


def _numeric_keys() -> list[str]:
    """Dotted keys of configs/base.py that hold a number or a list of numbers."""
    keys = []

    def walk(node, prefix):
        for key, value in node.items():
            dotted = f"{prefix}{key}"
            if isinstance(value, dict):
                walk(value, f"{dotted}.")
            elif (
                isinstance(value, (list, tuple))
                or (isinstance(value, (int, float)) and not isinstance(value, bool))
                or value is None
                and {int, float} & set(NULLABLE_TYPES.get(dotted, ()))
            ):
                keys.append(dotted)

    walk(base_config(), "")
    return keys


def test_every_number_of_the_base_config_has_one_domain():
    declared = [domain.key for domain in DOMAINS]
    assert len(declared) == len(set(declared))  # each rule written once
    # The generator checks the synthetic dataset's sizes when it runs.
    numeric = {key for key in _numeric_keys() if not key.startswith("data.synthetic.")}
    assert numeric == set(declared)


def _float_keys() -> list[str]:
    floats = []

    def walk(node, prefix):
        for key, value in node.items():
            dotted = f"{prefix}{key}"
            if isinstance(value, dict):
                walk(value, f"{dotted}.")
            elif isinstance(value, float) or float in NULLABLE_TYPES.get(dotted, ()):
                floats.append(dotted)

    walk(base_config(), "")
    return floats


@pytest.mark.parametrize("value", [".nan", ".inf", "-.inf"])
@pytest.mark.parametrize("key", _float_keys())
def test_every_float_key_refuses_nan_and_infinity(key, value):
    with pytest.raises(ConfigError, match=f"config key '{re.escape(key)}'") as error:
        load_config("irstd1k", [f"{key}={value}"])
    assert "\n" not in str(error.value)


def test_the_float_keys_are_the_expected_ones():
    assert {"model.target_prior", "train.grad_clip", "eval.threshold"} <= set(_float_keys())


@pytest.mark.parametrize(
    ("item", "pattern"),
    [
        ("train.grad_clip=0", "'train.grad_clip' must be positive or None"),
        ("train.grad_clip=-1.0", "'train.grad_clip' must be positive or None"),
        ("train.grad_clip=.inf", "'train.grad_clip' = inf must be finite"),
        ("data.noise_sigma=-1", "'data.noise_sigma' must be >= 0"),
        ("data.noise_sigma=.inf", "'data.noise_sigma' = inf must be finite"),
        ("train.min_lr=1e-3", "'train.min_lr' = 0.001 must be <= train.lr = 0.0001"),
        ("train.step_milestones=(0.5, 1.5)", "'train.step_milestones\\[1\\]' = 1.5 must be in"),
        ("train.step_milestones=[0.5, .nan]", "'train.step_milestones\\[1\\]' = nan must be"),
        ("train.poly_power=-0.9", "'train.poly_power' must be >= 0"),
        ("train.step_gamma=-0.1", "'train.step_gamma' must be >= 0"),
        ("loss.mse=-0.1", "'loss.mse' must be >= 0"),
        ("seed=-1", "'seed' must be >= 0"),
        ("data.split_seed=-1", "'data.split_seed' must be >= 0"),
        ("model.channel_mults=(1, 0, 2)", "'model.channel_mults\\[1\\]' must be positive"),
        ("model.dropout=1.5", "'model.dropout' = 1.5 must be in \\[0, 1\\]"),
        ("data.val_fraction=1", "'data.val_fraction' = 1 must be in \\(0, 1\\)"),
    ],
)
def test_domains_added_with_the_tables(item, pattern):
    with pytest.raises(ConfigError, match=pattern) as error:
        load_config("irstd1k", [item])
    assert "\n" not in str(error.value)


def test_the_bounds_themselves_pass():
    cfg = load_config(
        "irstd1k",
        [
            "train.grad_clip=1",
            "train.min_lr=1e-4",  # equal to train.lr
            "train.step_milestones=(0.0, 1.0)",
            "data.noise_sigma=0",
            "model.dropout=1.0",
            "seed=0",
        ],
    )
    assert cfg["train"]["grad_clip"] == 1 and cfg["train"]["min_lr"] == cfg["train"]["lr"]


@pytest.mark.parametrize(
    "name", ["", "   ", "../x", "..", "a/b", "/tmp/run", "a\\b", "C:" + "\\runs\\x", "x..y", "a\0b"]
)
def test_a_run_name_that_is_not_one_folder_name_is_refused(name):
    # The name becomes checkpoints/<name>/ and results/<name>/: none may leave those roots.
    with pytest.raises(ConfigError, match=r"config key 'name' = .* must be one folder name"):
        load_config("demo", [f"name={name!r}"])


def test_ordinary_run_names_pass():
    for name in ("irstd1k", "sirst_cpu-bf16.v2", "run 3"):
        assert load_config("demo", [f"name={name!r}"])["name"] == name
