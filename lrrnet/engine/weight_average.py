"""An exponential moving average of the weights (``train.ema_decay``), evaluated and saved
in place of the live weights.

Short runs validate while the learning rate is still high, and the live weights swing from
one evaluation to the next; the average of the last few hundred steps moves slowly, so
validation, checkpoint selection and the test score it instead. On NUDT-SIRST it steadied
the first validation but not the later widening of the maps, and its best val IoU was
lower, so the recipes leave it off (docs/training.md, "Weight average").

After step ``t`` (1-based) the average moves towards the live weights by ``1 − d`` with
``d = min(decay, (1 + t) / (10 + t))``: the ramp lets early averages forget the random
initialisation, and ``d`` depends only on the step, so a resumed run continues the same
sequence. Every rank holds the same average, since every rank steps the same weights.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from lrrnet.domains import Domain
from lrrnet.engine.distributed import unwrap_model
from lrrnet.errors import ConfigError

# The largest averaging factor; at 1 the average would stop following the live weights.
EMA_DECAY = Domain("train.ema_decay", 0.0, 1.0, high_open=True, note="0: off")
DOMAINS = (EMA_DECAY,)


def decay_at(step: int, decay: float) -> float:
    """The averaging factor after ``step`` (1-based) optimisation steps."""
    return min(decay, (1.0 + step) / (10.0 + step))


class WeightAverage:
    """An exponential moving average of ``model``'s weights, kept in a frozen copy.

    Args:
        model: the network being trained (DDP / compiled wrappers are unwrapped); the copy
            starts from its current weights, on its device and memory format. Its
            parameters and buffers are paired with the copy's once, here: optimizer steps
            and ``load_state_dict`` change them in place.
        decay: the largest averaging factor, in (0, 1); e.g. 0.99 averages over roughly the
            last 100 steps.

    Raises:
        ConfigError: ``decay`` outside :data:`EMA_DECAY`, or 0 (off: keep no average).
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        EMA_DECAY.check(decay)
        if decay == 0:
            raise ConfigError(
                f"config key '{EMA_DECAY.key}' = {decay} must be in (0, 1) for an average "
                "(0 is off: build none)"
            )
        self.decay = decay
        live = unwrap_model(model)
        self.module = copy.deepcopy(live).eval()
        for parameter in self.module.parameters():
            parameter.requires_grad_(False)
        # Floating-point tensors are averaged; integer buffers (none in LRRNet) are copied.
        self._averaged, self._live, self._copied = [], [], []
        pairs = zip(
            self.module.state_dict(keep_vars=True).values(),
            live.state_dict(keep_vars=True).values(),
            strict=True,
        )
        for averaged, source in pairs:
            if averaged.is_floating_point():
                self._averaged.append(averaged)
                self._live.append(source)
            else:
                self._copied.append((averaged, source))

    @torch.no_grad()
    def update(self, step: int) -> None:
        """Move the average towards the live weights after optimisation step ``step``."""
        torch._foreach_lerp_(self._averaged, self._live, 1.0 - decay_at(step, self.decay))
        for averaged, source in self._copied:
            averaged.copy_(source)
