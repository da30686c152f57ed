"""SIRST-V2 (open-sirst-v2 devkit: 1024 real frames, 510 of them target-free backgrounds).

Trains on the devkit's `splits/train_full.txt` (512) and selects on its own `val_full.txt`
(256); `test_full.txt` (256) is scored once at the end. Half of the test frames hold no
target: they count for Fa and nIoU only. The `_v1` lists: `--set data.dataset_name=v1`.
Recipe as for SIRST v1: 512 resize, flips and transposes.
"""

from configs.base import config as base
from lrrnet.config import override

config = override(
    base,
    {
        "name": "sirst_v2",
        "data": {
            "root": "datasets/SIRST-V2",
            "layout": "sirst_v2",
            "dataset_name": "full",
            "base_size": 512,
            "augment": True,
            "val_split": "val",
        },
        "train": {"epochs": 400, "batch_size": 8, "lr": 1e-4, "eval_every": 100},
    },
)
