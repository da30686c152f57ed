"""IRSTD-1k (1001 real 512×512 frames, 800 train / 201 test) with the published recipe."""

from configs.base import config as base
from lrrnet.config import override

config = override(
    base,
    {
        "name": "irstd1k",
        "data": {"root": "datasets/IRSTD-1k", "base_size": 512, "augment": False},
        "train": {"epochs": 400, "batch_size": 8, "lr": 1e-4, "eval_every": 100},
    },
)
