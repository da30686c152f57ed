"""The scripts' shared command line: CONFIG and --set, the error wrapper, the log format
and the argparse types."""

import argparse
import importlib
import logging
import re

import pytest
from conftest import load_tool

from lrrnet import cli
from lrrnet.domains import Domain
from lrrnet.errors import ConfigError, UserError

STAMP = r"\d\d:\d\d:\d\d"


def test_one_optional_config_and_repeated_set_accumulate_in_order():
    parser = cli.parser("Does a thing.\n\n    python thing.py CONFIG")
    args = parser.parse_args([])
    assert args.config is None and args.overrides == []
    args = parser.parse_args(["sirst", "--set", "train.lr=1e-3", "--set", "data.root='x'"])
    assert args.config == "sirst"
    assert args.overrides == ["train.lr=1e-3", "data.root='x'"]
    assert "    python thing.py CONFIG" in parser.format_help()  # the docstring as written


def test_many_configs_go_to_configs():
    parser = cli.parser(None, config="*")
    assert parser.parse_args([]).configs == []
    args = parser.parse_args(["a", "b.py", "--set", "seed=1"])
    assert args.configs == ["a", "b.py"] and args.overrides == ["seed=1"]
    assert not hasattr(args, "config")


def test_a_script_without_config_takes_neither_config_nor_set(capsys):
    parser = cli.parser(None, config=None)
    args = parser.parse_args([])
    assert not hasattr(args, "config") and not hasattr(args, "overrides")
    for argv in (["sirst"], ["--set", "seed=1"]):
        with pytest.raises(SystemExit) as stop:
            parser.parse_args(argv)
        assert stop.value.code == 2
    capsys.readouterr()


def test_guarded_passes_the_arguments_and_returns_the_exit_code():
    assert cli.guarded(lambda a, b=0: a + b, 3, b=4) == 7


def test_guarded_turns_a_user_error_into_one_line_and_its_exit_code(capsys):
    class Unusable(UserError):
        exit_code = 3

    def fails(error):
        raise error

    assert cli.guarded(fails, ConfigError("unknown config key 'trian'")) == 2
    assert capsys.readouterr().err == "error: unknown config key 'trian'\n"
    assert cli.guarded(fails, Unusable("no such folder")) == 3
    captured = capsys.readouterr()
    assert captured.err == "error: no such folder\n" and captured.out == ""


def test_guarded_lets_any_other_exception_through(capsys):
    def bug():
        raise KeyError("a bug keeps its traceback")

    with pytest.raises(KeyError):
        cli.guarded(bug)
    assert capsys.readouterr().err == ""


def test_log_lines_are_time_and_message_with_warnings_labelled(capsys, script_logging):
    cli.setup_logging()
    logger = logging.getLogger("lrrnet.test_cli")
    logger.info("trained %d iterations in %.1f s", 2, 0.4)
    logger.warning("mask is 12x12")
    logger.debug("not shown at INFO")
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2
    assert re.fullmatch(rf"{STAMP} trained 2 iterations in 0\.4 s", lines[0])
    assert re.fullmatch(rf"{STAMP} warning: mask is 12x12", lines[1])


def test_other_libraries_show_only_their_warnings(capsys, script_logging):
    cli.setup_logging()
    other = logging.getLogger("some_library.optimizer")
    other.info("removed 37 unused nodes")
    other.warning("a real problem")
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and re.fullmatch(rf"{STAMP} warning: a real problem", lines[0])


@pytest.mark.parametrize("text", ["0", "-3", "inf", "nan", "2.5", "many"])
def test_positive_int_refuses_zero_negatives_and_non_integers(text, capsys):
    parser = cli.parser(None, config=None)
    parser.add_argument("--batch-size", type=cli.positive_int)
    assert parser.parse_args(["--batch-size", "5"]).batch_size == 5
    with pytest.raises(SystemExit) as stop:
        parser.parse_args(["--batch-size", text])
    assert stop.value.code == 2 and "--batch-size" in capsys.readouterr().err


@pytest.mark.parametrize("text", ["-1", "-0.5", "inf", "-inf", "nan", "much"])
def test_non_negative_float_refuses_negatives_inf_and_nan(text, capsys):
    parser = cli.parser(None, config=None)
    parser.add_argument("--noise-sigma", type=cli.non_negative_float)
    assert parser.parse_args(["--noise-sigma", "0"]).noise_sigma == 0.0
    assert parser.parse_args(["--noise-sigma", "2.5"]).noise_sigma == 2.5
    with pytest.raises(SystemExit) as stop:
        parser.parse_args(["--noise-sigma", text])
    assert stop.value.code == 2 and "--noise-sigma" in capsys.readouterr().err


def test_the_types_say_what_they_refused():
    with pytest.raises(argparse.ArgumentTypeError, match="must be positive, got 0"):
        cli.positive_int("0")
    with pytest.raises(argparse.ArgumentTypeError, match="must be a finite number >= 0, got inf"):
        cli.non_negative_float("inf")


@pytest.mark.parametrize("text", ["-1", "1.5", "seven"])
def test_non_negative_int_refuses_negatives_and_non_integers(text):
    assert cli.non_negative_int("0") == 0
    with pytest.raises((argparse.ArgumentTypeError, ValueError)):
        cli.non_negative_int(text)


@pytest.mark.parametrize("text", ["0", "-1e-3", "inf", "nan", "tiny"])
def test_positive_float_refuses_zero_negatives_inf_and_nan(text):
    assert cli.positive_float("1e-3") == 1e-3
    with pytest.raises((argparse.ArgumentTypeError, ValueError)):
        cli.positive_float(text)


def test_in_domain_takes_a_config_keys_rule_for_a_flag():
    threshold = cli.in_domain(Domain("eval.threshold", 0.0, 1.0, low_open=True, high_open=True))
    assert threshold("0.25") == 0.25
    for text in ("0", "1", "nan", "inf", "-0.5", "half"):
        with pytest.raises(argparse.ArgumentTypeError, match=rf"in \(0, 1\), got {text}"):
            threshold(text)
    count = cli.in_domain(Domain("train.epochs", low=1, integer=True))
    assert count("3") == 3
    with pytest.raises(argparse.ArgumentTypeError, match="an int >= 1, got 2.5"):
        count("2.5")


# Every numeric flag of every script, with values outside its domain: refused by argparse,
# before any work, in one line that names the flag.
SCRIPT_FLAGS = [
    ("run_configs", "--seeds", ["-1", "1.5"]),
    ("inference", "--batch-size", ["0", "-2"]),
    ("inference", "--noise-sigma", ["inf", "nan", "-1"]),
    ("inference", "--noise-seed", ["-1", "0.5"]),
    ("cal_from_mask", "--threshold", ["nan", "inf", "-1", "0", "1", "2"]),
    ("tools/benchmark", "--size", ["0", "-8"]),
    ("tools/benchmark", "--batch", ["0"]),
    ("tools/benchmark", "--warmup", ["-1"]),
    ("tools/benchmark", "--iters", ["0"]),
    ("tools/benchmark_metrics", "--num", ["0"]),
    ("tools/benchmark_metrics", "--reference-num", ["-1"]),
    ("tools/benchmark_metrics", "--size", ["0"]),
    ("tools/benchmark_metrics", "--seed", ["-1"]),
    ("tools/export", "--tolerance", ["0", "-1", "nan", "inf"]),
    ("tools/lowrank", "--limit", ["0", "-3"]),
    ("tools/make_synthetic_dataset", "--num-train", ["0", "-5"]),
    ("tools/make_synthetic_dataset", "--num-test", ["0"]),
    ("tools/make_synthetic_dataset", "--seed", ["-1"]),
    ("tools/visualize", "--threshold", ["nan", "1.5"]),
    ("tools/visualize", "--limit", ["0"]),
    ("tools/visualize", "--worst", ["-1"]),
]


@pytest.mark.parametrize(("script", "flag", "values"), SCRIPT_FLAGS)
def test_every_scripts_numeric_flags_refuse_values_outside_their_domain(
    script, flag, values, capsys
):
    if script.startswith("tools/"):
        module = load_tool(script.removeprefix("tools/"))
    else:
        module = importlib.import_module(script)
    for value in values:
        with pytest.raises(SystemExit) as stop:
            module.main([flag, value])
        err = capsys.readouterr().err.strip().splitlines()
        assert stop.value.code == 2 and f"argument {flag}: " in err[-1], (flag, value, err)
