"""SIRST v1 trained from scratch on a 2-core CPU, 30 minutes of training (the CPU recipe).

``nudt_cpu``'s ``CPU_RECIPE`` (128×128 crops of the native frames, 80 % around a target;
lr 1e-3 with warm-up; ``model.target_prior`` 0.1; native evaluation) with the flips and
transposes of the ``sirst`` recipe, and checkpoints selected on the release's own val list
(idx_427: 256 train, 85 val, 86 test frames). Its val frames are larger than NUDT-SIRST's,
so it trains fewer iterations in the same time: 620 with five validations.

The run: docs/training.md, "The CPU recipe"; the test figures: docs/results.md, "SIRST v1".
"""

from configs.nudt_cpu import CPU_RECIPE
from configs.sirst import config as sirst
from lrrnet.config import override

config = override(
    override(sirst, CPU_RECIPE),
    {"name": "sirst_cpu", "train": {"max_iters": 620, "eval_every": 124}},
)
