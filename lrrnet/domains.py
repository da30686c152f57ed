"""The numbers a config key accepts, and the one check that refuses the others.

Each module that takes a number from the config declares the key's :class:`Domain` beside
the code that uses it, in a tuple ``DOMAINS``: lrrnet/data/layouts.py (the holdout),
lrrnet/data/dataset.py (training geometry, crops, noise, workers, the seed),
lrrnet/models/lrrnet.py (widths, groups, dropout, target prior), lrrnet/losses.py (the
weights), lrrnet/engine/schedule.py (learning rates, warm-up, schedule),
lrrnet/engine/weight_average.py (the decay), lrrnet/metrics.py (the threshold), and
lrrnet/config.py for the counts that only the training loop reads. The function or
constructor that takes the value checks it against that domain, and
:func:`lrrnet.config.validate` checks every table when a config loads, so a bad value is
refused before any work, in the same words either way. Relations between keys (a size that
the network can halve, groups that divide every width, ``train.min_lr <= train.lr``) are
functions of the module that owns them.

Every domain is finite: NaN and infinity are refused. A bound includes its value unless it
is marked open; an integer domain refuses floats and bools.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any

from lrrnet.errors import ConfigError


@dataclass(frozen=True)
class Domain:
    """The values of one config key.

    Attributes:
        key: the dotted config key that messages name (``"data.val_fraction"``).
        low: the lower bound, or None for none.
        high: the upper bound, or None for none.
        low_open: ``low`` itself is refused.
        high_open: ``high`` itself is refused.
        integer: ints only.
        nullable: None is accepted too (the key's "off").
        min_items: None for a number; for a sequence of numbers, how many it needs at
            least, each item then in the domain.
        note: what a special value means (``"0: off"``), shown in the message.
    """

    key: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    integer: bool = False
    nullable: bool = False
    min_items: int | None = None
    note: str = ""

    def describe(self) -> str:
        """The domain in words: ``positive``, ``>= 0``, ``in (0, 1)``, ``finite``."""
        if self.low is not None and self.high is not None:
            opening, closing = "(" if self.low_open else "[", ")" if self.high_open else "]"
            text = f"in {opening}{self.low:g}, {self.high:g}{closing}"
        elif self.low is not None:
            if self.low == 0 and self.low_open:
                text = "positive"
            else:
                text = f"{'>' if self.low_open else '>='} {self.low:g}"
        elif self.high is not None:
            text = f"{'<' if self.high_open else '<='} {self.high:g}"
        else:
            text = "finite"
        if self.nullable:
            text += " or None"
        if self.note:
            text += f" ({self.note})"
        return text

    def check(self, value: Any, key: str | None = None) -> Any:
        """Returns ``value`` when it is in the domain; raises ConfigError naming the key.

        Args:
            value: the value to check.
            key: the name the message gives, when it is not :attr:`key`.
        """
        key = key or self.key
        if value is None and self.nullable:
            return value
        if self.min_items is None:
            self._check_number(value, key)
            return value
        if isinstance(value, str) or not isinstance(value, Sequence):
            raise ConfigError(
                f"config key '{key}' expects a list of numbers, got {type(value).__name__} "
                f"{value!r}"
            )
        if len(value) < self.min_items:
            plural = "s" if self.min_items > 1 else ""
            raise ConfigError(
                f"config key '{key}' = {value!r} must hold at least {self.min_items} value{plural}"
            )
        for index, item in enumerate(value):
            self._check_number(item, f"{key}[{index}]")
        return value

    def _check_number(self, value: Any, key: str) -> None:
        kind, expected = (Integral, "an int") if self.integer else (Real, "a number")
        # bool is an int subclass, but `train.epochs=True` is a mistake, not a number.
        if isinstance(value, bool) or not isinstance(value, kind):
            raise ConfigError(
                f"config key '{key}' expects {expected}, got {type(value).__name__} {value!r}"
            )
        if not math.isfinite(value):
            raise ConfigError(f"config key '{key}' = {value} must be finite")
        too_low = self.low is not None and (
            value < self.low or (self.low_open and value == self.low)
        )
        too_high = self.high is not None and (
            value > self.high or (self.high_open and value == self.high)
        )
        if not (too_low or too_high):
            return
        if self.low is not None and self.high is not None:
            raise ConfigError(f"config key '{key}' = {value} must be {self.describe()}")
        raise ConfigError(f"config key '{key}' must be {self.describe()}, got {value}")
