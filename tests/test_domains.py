"""The domain of a config key: bounds, ints, None, lists, finiteness, one-line messages."""

from __future__ import annotations

import numpy as np
import pytest

from lrrnet.domains import Domain
from lrrnet.errors import ConfigError

UNIT_OPEN = Domain("a.fraction", 0.0, 1.0, low_open=True, high_open=True)
COUNT = Domain("a.count", low=0, low_open=True, integer=True)


@pytest.mark.parametrize(
    ("domain", "text"),
    [
        (UNIT_OPEN, "in (0, 1)"),
        (Domain("a.p", 0.0, 1.0), "in [0, 1]"),
        (Domain("a.decay", 0.0, 1.0, high_open=True, note="0: off"), "in [0, 1) (0: off)"),
        (COUNT, "positive"),
        (Domain("a.n", low=0), ">= 0"),
        (Domain("a.x", low=2.5, low_open=True), "> 2.5"),
        (Domain("a.x", high=3), "<= 3"),
        (Domain("a.clip", low=0.0, low_open=True, nullable=True), "positive or None"),
        (Domain("a.w"), "finite"),
    ],
)
def test_a_domain_says_what_it_accepts(domain, text):
    assert domain.describe() == text


def test_values_inside_pass_and_come_back():
    assert UNIT_OPEN.check(0.5) == 0.5
    assert COUNT.check(np.int64(3)) == 3  # NumPy ints are ints
    assert UNIT_OPEN.check(np.float32(0.25)) == 0.25
    assert Domain("a.clip", low=0.0, low_open=True, nullable=True).check(None) is None
    assert Domain("a.w").check(-1e30) == -1e30


@pytest.mark.parametrize(
    ("domain", "value", "message"),
    [
        (UNIT_OPEN, 0.0, "config key 'a.fraction' = 0.0 must be in (0, 1)"),
        (UNIT_OPEN, 1, "config key 'a.fraction' = 1 must be in (0, 1)"),
        (UNIT_OPEN, float("nan"), "config key 'a.fraction' = nan must be finite"),
        (COUNT, 0, "config key 'a.count' must be positive, got 0"),
        (COUNT, 2.0, "config key 'a.count' expects an int, got float 2.0"),
        (COUNT, True, "config key 'a.count' expects an int, got bool True"),
        (COUNT, None, "config key 'a.count' expects an int, got NoneType None"),
        (Domain("a.w"), float("-inf"), "config key 'a.w' = -inf must be finite"),
        (Domain("a.w"), "1", "config key 'a.w' expects a number, got str '1'"),
    ],
)
def test_values_outside_are_refused_naming_the_key(domain, value, message):
    with pytest.raises(ConfigError) as error:
        domain.check(value)
    assert str(error.value) == message


def test_a_caller_may_name_the_value_otherwise():
    with pytest.raises(ConfigError, match="config key 'b.other' = 2 must be in"):
        UNIT_OPEN.check(2, key="b.other")


def test_a_list_domain_checks_its_length_and_each_item():
    mults = Domain("m.mults", low=0, low_open=True, integer=True, min_items=1)
    assert mults.check((1, 2, 4)) == (1, 2, 4)
    with pytest.raises(ConfigError, match=r"'m.mults' = \(\) must hold at least 1 value$"):
        mults.check(())
    with pytest.raises(ConfigError, match=r"'m.mults\[2\]' must be positive, got 0"):
        mults.check([1, 2, 0])
    with pytest.raises(ConfigError, match="'m.mults' expects a list of numbers, got int 4"):
        mults.check(4)
    assert Domain("m.any", 0.0, 1.0, min_items=0).check([]) == []
