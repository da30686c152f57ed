"""``irstd1k_cpu`` in bf16 autocast for CPUs with native bf16 (``avx512_bf16`` or AMX): the
same recipe, the poly decay spread over the 1500 iterations that the faster steps fit in
about 30 minutes on two such cores, with five validations. Use ``irstd1k_cpu`` on a CPU
without native bf16. The recipe: docs/training.md, "The CPU recipe".
"""

from configs.irstd1k_cpu import config as irstd1k_cpu
from lrrnet.config import override

config = override(
    irstd1k_cpu,
    {"name": "irstd1k_cpu_bf16", "train": {"amp": "bf16", "max_iters": 1500, "eval_every": 300}},
)
