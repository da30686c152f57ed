"""NUDT-SIRST (1327 frames of 256×256, synthetic targets on real backgrounds, 663 / 664).

The published recipe resizes every dataset to 512×512, NUDT-SIRST included.
"""

from configs.base import config as base
from lrrnet.config import override

config = override(
    base,
    {
        "name": "nudt",
        "data": {"root": "datasets/NUDT-SIRST", "base_size": 512, "augment": False},
        "train": {"epochs": 400, "batch_size": 8, "lr": 1e-4, "eval_every": 100},
    },
)
