"""SIRST v1 trained from scratch on a 2-core CPU, 30 minutes of training (the CPU recipe).

The same choices as ``nudt_cpu`` (128×128 crops of the native frames, 80 % around a
target; lr 1e-3 with warm-up; ``model.target_prior`` 0.01; native evaluation), with the
flips and transposes of the ``sirst`` recipe, and checkpoints selected on the release's own
val list (idx_427: 256 train, 85 val, 86 test frames). Its val frames are larger than
NUDT-SIRST's, so it trains fewer iterations in the same time.

The README's "Real data" section gives the measured time and test figures.
"""

from configs.sirst import config as sirst
from lrrnet.config import override

config = override(
    sirst,
    {
        "name": "sirst_cpu",
        "model": {"target_prior": 0.01},
        "data": {
            "train_mode": "crop",
            "crop_size": 128,
            "pos_prob": 0.8,
            "eval_size": "native",
        },
        "train": {
            "epochs": 100,
            "max_iters": 420,
            "lr": 1e-3,
            "warmup_iters": 20,
            "eval_every": 70,
            "eval_epoch_end": False,
            "num_log_images": 0,
        },
    },
)
