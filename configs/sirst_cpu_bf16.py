"""``sirst_cpu`` in bf16 autocast for CPUs with native bf16, as ``nudt_cpu_bf16`` is for
``nudt_cpu``: the same recipe (flips and transposes, selection on the release's own val
list), the poly decay spread over 1500 iterations with five validations, what fits in 30
minutes on two cores with native bf16. Use ``sirst_cpu`` on a CPU without native bf16. The
run: docs/training.md, "The CPU recipe"; the test figures: docs/results.md, "SIRST v1".
"""

from configs.sirst_cpu import config as sirst_cpu
from lrrnet.config import override

BF16_RUN = {
    "name": "sirst_cpu_bf16",
    "train": {"amp": "bf16", "max_iters": 1500, "eval_every": 300},
}
config = override(sirst_cpu, BF16_RUN)
