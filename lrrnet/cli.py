"""What every command-line script shares: the parser's CONFIG and ``--set``, one log
format, and the wrapper that turns a user's mistake into one line and a non-zero exit.

A script builds its parser with :func:`parser`, adds its own flags, and ends with::

    def main(argv=None) -> int:
        args = build_parser().parse_args(argv)
        setup_logging()
        return guarded(run, args)

so that a :class:`~lrrnet.errors.UserError` (a missing file, a bad key, a value out of its
domain) prints ``error: <message>`` on stderr and returns its exit code, while anything
else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from typing import Any

from lrrnet.domains import Domain
from lrrnet.errors import ConfigError, UserError

LOG_FORMAT = "%(asctime)s %(label)s%(message)s"
LOG_DATE_FORMAT = "%H:%M:%S"


def _label(record: logging.LogRecord) -> bool:
    """Give a warning or an error a ``warning: `` / ``error: `` label before its message."""
    record.label = f"{record.levelname.lower()}: " if record.levelno >= logging.WARNING else ""
    return True


def setup_logging(level: int = logging.INFO) -> None:
    """One log format for every script: the time, then the message (warnings labelled).

    ``level`` applies to the project's own loggers (``lrrnet.*``); other libraries show
    their warnings only, since some (the ONNX exporter's graph optimiser) report every step
    at INFO.
    """
    handler = logging.StreamHandler()
    handler.addFilter(_label)
    handler.setFormatter(logging.Formatter(LOG_FORMAT, LOG_DATE_FORMAT))
    logging.basicConfig(level=logging.WARNING, handlers=[handler], force=True)
    logging.getLogger("lrrnet").setLevel(level)


def parser(description: str | None, *, config: str | None = "?") -> argparse.ArgumentParser:
    """An argument parser whose help is the script's docstring.

    Args:
        description: the script's ``__doc__``, shown as written.
        config: ``"?"`` for one optional CONFIG, ``"*"`` for any number, ``None`` for a
            script that takes no config; CONFIG scripts also get ``--set KEY=VALUE``.
    """
    result = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    if config is not None:
        what = "config names or paths" if config == "*" else "config name or path"
        result.add_argument(
            "configs" if config == "*" else "config",
            nargs=config,
            help=f"{what} (a name from configs/, a .py file or a run's config.yaml)",
        )
        result.add_argument(
            "--set",
            dest="overrides",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="override a config key (Python/YAML literal); repeatable",
        )
    return result


def guarded(run: Callable[..., int], *args: Any, **kwargs: Any) -> int:
    """``run(*args, **kwargs)``; a :class:`UserError` becomes one line on stderr and its
    exit code."""
    try:
        return run(*args, **kwargs)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code


def positive_int(text: str) -> int:
    """argparse type: an int > 0."""
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return value


def non_negative_int(text: str) -> int:
    """argparse type: an int >= 0 (a seed, a count where 0 means none)."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def non_negative_float(text: str) -> float:
    """argparse type: a finite float >= 0."""
    value = float(text)
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def positive_float(text: str) -> float:
    """argparse type: a finite float > 0."""
    value = float(text)
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return value


def in_domain(domain: Domain) -> Callable[[str], int | float]:
    """argparse type for a flag that means what a config key means: its values are the
    key's :class:`~lrrnet.domains.Domain` (``--threshold`` is ``eval.threshold``), so the
    rule is written once, in the module that owns the key."""

    def parse(text: str) -> int | float:
        try:
            value = int(text) if domain.integer else float(text)
            domain.check(value)
        except (ValueError, ConfigError):
            raise argparse.ArgumentTypeError(
                f"must be {'an int' if domain.integer else 'a number'} {domain.describe()}, "
                f"got {text}"
            ) from None
        return value

    return parse
