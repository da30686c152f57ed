"""``nudt_cpu`` for CPUs with native bf16 (``avx512_bf16`` or AMX): bf16 autocast, 1600 iterations.

The same recipe as ``nudt_cpu`` (128×128 crops, 60 % around a target, lr 5e-4 with warm-up,
``model.target_prior`` 0.1, native evaluation, selection on the seeded 10 % holdout, test
also at the threshold with the best val IoU), with the forward passes in bf16 autocast
(``train.amp``; the weights, the optimizer and the loss stay float32) and the poly decay
spread over the 1600 iterations that the faster steps fit in 30 minutes on a 2-core AMD
EPYC (Zen 4, ``avx512_bf16``): 0.97 s an iteration in the trainer against 1.39 s in float32
there (40 iterations each; the 1600 took 1542.5 s with five validations).

On a CPU without native bf16 the autocast is emulated and many times slower than float32
(the run warns at its start): use ``nudt_cpu`` there. The README's "Real data" section
gives the measured time and test figures.
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
