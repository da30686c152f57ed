"""SIRST v1 / NUAA-SIRST (427 real frames of varied size) with the published recipe.

The idx_427 release has its own val list, used for checkpoint selection. With the BasicIRSTD
213 / 214 split (no val list) use `--set data.val_split=holdout`.
"""

from configs.base import config as base
from lrrnet.config import override

config = override(
    base,
    {
        "name": "sirst",
        "data": {"root": "datasets/SIRST", "base_size": 512, "augment": True, "val_split": "val"},
        "train": {"epochs": 400, "batch_size": 8, "lr": 1e-4, "eval_every": 100},
    },
)
