"""The built-in synthetic SIRST dataset (generated at datasets/SIRST-Synth on first use).

128×128 frames keep a CPU epoch short; the recipe otherwise follows the paper's loss, with
a higher learning rate because the run is short.
"""

from configs.base import config as base
from lrrnet.config import override

config = override(
    base,
    {
        "name": "synthetic",
        "data": {
            "root": "datasets/SIRST-Synth",
            "generate": True,
            "synthetic": {"num_train": 800, "num_test": 200, "size": 128},
            "base_size": 128,
            "augment": True,
            "eval_size": "native",
            "num_workers": 1,
        },
        "train": {"epochs": 40, "batch_size": 8, "lr": 1e-3, "log_every": 10},
    },
)
