"""``nudt_cpu`` for CPUs with native bf16 (``avx512_bf16`` or AMX): bf16 autocast, 1600 iterations.

The same recipe as ``nudt_cpu`` (128×128 crops, 60 % around a target, lr 5e-4 with warm-up,
``model.target_prior`` 0.1, native evaluation, selection on the seeded 10 % holdout, test
also at the threshold with the best val IoU), with the forward passes in bf16 autocast
(``train.amp``; the weights, the optimizer and the loss stay float32) and the poly decay
spread over 1600 iterations with five validations: the bf16 steps are faster where bf16 is
native, and 1600 is what they fit in 30 minutes on two such cores.

On a CPU without native bf16 the autocast is emulated and many times slower than float32
(the run warns at its start): use ``nudt_cpu`` there. The step times: docs/speed.md, "CPU";
the runs: docs/training.md, "The CPU recipe"; the test figures: docs/results.md,
"NUDT-SIRST".
"""

from configs.nudt_cpu import config as nudt_cpu
from lrrnet.config import override

config = override(
    nudt_cpu,
    {
        "name": "nudt_cpu_bf16",
        "train": {"amp": "bf16", "max_iters": 1600, "eval_every": 320},
    },
)
