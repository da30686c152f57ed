"""The LRRNet network, its building blocks and the pad-to-a-multiple-of-8 helpers."""

from __future__ import annotations

import inspect
from typing import Any

from lrrnet.errors import ConfigError
from lrrnet.models.blocks import AttentionBlock, Downsample, ResidualBlock, Upsample
from lrrnet.models.lrrnet import LRRNet
from lrrnet.models.padding import SIZE_MULTIPLE, crop_to, pad_to_multiple

__all__ = [
    "AttentionBlock",
    "Downsample",
    "LRRNet",
    "ResidualBlock",
    "SIZE_MULTIPLE",
    "Upsample",
    "build_model",
    "crop_to",
    "pad_to_multiple",
]


def build_model(cfg: dict[str, Any]) -> LRRNet:
    """``LRRNet(**cfg["model"])``; an unknown key in the model section is a ConfigError."""
    model_cfg = cfg["model"]
    valid = [name for name in inspect.signature(LRRNet).parameters if name != "self"]
    unknown = sorted(set(model_cfg) - set(valid))
    if unknown:
        raise ConfigError(f"unknown key(s) model.{', model.'.join(unknown)}; valid: {valid}")
    return LRRNet(**model_cfg)
