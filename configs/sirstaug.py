"""SIRST-Aug (~8.5k augmented 256×256 frames); the recipe adds flips and transposes here."""

from configs.base import config as base
from lrrnet.config import override

config = override(
    base,
    {
        "name": "sirstaug",
        "data": {"root": "datasets/SIRST-Aug", "base_size": 512, "augment": True},
        "train": {"epochs": 400, "batch_size": 8, "lr": 1e-4, "eval_every": 500},
    },
)
