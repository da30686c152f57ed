"""The weight average of ``train.ema_decay``: its arithmetic and what it keeps apart."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lrrnet.engine.weight_average import WeightAverage, decay_at
from lrrnet.errors import ConfigError


def _linear(value: float) -> nn.Linear:
    layer = nn.Linear(2, 1)
    with torch.no_grad():
        layer.weight.fill_(value)
        layer.bias.fill_(value)
    return layer


def test_decay_ramps_up_to_its_ceiling():
    assert decay_at(1, 0.99) == pytest.approx(2 / 11)
    assert decay_at(8, 0.99) == pytest.approx(9 / 18)
    assert decay_at(10_000, 0.99) == 0.99
    assert [decay_at(t, 0.5) for t in (1, 8, 9, 100)] == pytest.approx([2 / 11, 0.5, 0.5, 0.5])


def test_update_moves_the_copy_towards_the_live_weights_by_one_minus_decay():
    live = _linear(0.0)
    average = WeightAverage(live, decay=0.5)
    assert not average.module.training
    assert not any(p.requires_grad for p in average.module.parameters())
    with torch.no_grad():
        live.weight.fill_(4.0)
        live.bias.fill_(-2.0)
    average.update(step=100)  # decay 0.5: halfway
    assert torch.equal(average.module.weight, torch.full((1, 2), 2.0))
    assert torch.equal(average.module.bias, torch.full((1,), -1.0))
    average.update(step=101)
    assert torch.equal(average.module.weight, torch.full((1, 2), 3.0))
    # Early steps forget the starting point faster: decay 2/11 after step 1.
    start = _linear(0.0)
    early = WeightAverage(start, decay=0.99)
    with torch.no_grad():
        start.weight.fill_(4.0)
    early.update(step=1)
    assert torch.allclose(early.module.weight, torch.full((1, 2), 4.0 * 9 / 11))


def test_the_copy_is_independent_and_follows_weights_loaded_in_place():
    live = _linear(1.0)
    average = WeightAverage(live, decay=0.5)
    with torch.no_grad():
        live.weight.add_(5.0)  # an optimizer step, without an update of the average
    assert torch.equal(average.module.weight, torch.ones(1, 2))
    # A resume loads the live weights in place; the pairs made at construction see them.
    live.load_state_dict(_linear(3.0).state_dict())
    average.update(step=100)
    assert torch.equal(average.module.weight, torch.full((1, 2), 2.0))


def test_integer_buffers_are_copied_not_averaged():
    live = _linear(0.0)
    live.register_buffer("seen", torch.tensor(0))
    average = WeightAverage(live, decay=0.5)
    live.seen.fill_(7)
    average.update(step=100)
    assert average.module.seen.item() == 7


@pytest.mark.parametrize("decay", [0.0, 1.0, -0.1])
def test_a_decay_outside_the_open_interval_is_refused(decay):
    # The config's domain is [0, 1) with 0 for "off"; an average itself needs decay > 0.
    with pytest.raises(ConfigError, match=f"config key 'train.ema_decay' = {decay} must be in"):
        WeightAverage(_linear(0.0), decay=decay)
