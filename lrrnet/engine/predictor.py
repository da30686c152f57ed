"""Running a trained LRRNet on frames of any size.

The predictor is separate from the ``nn.Module``: it owns the device, the precision and the
geometry (native size with padding, or resizing to N×N and back), so training evaluation,
``inference.py`` and the visual tools all map pixels the same way.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from lrrnet.engine.checkpoint import load_checkpoint, load_model_weights
from lrrnet.engine.distributed import resolve_device
from lrrnet.errors import ConfigError
from lrrnet.models import LRRNet, crop_to, pad_to_multiple

logger = logging.getLogger(__name__)

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def parse_size(value: str | int) -> str | int:
    """``"native"`` or a positive multiple of 8 (``"512"`` → 512)."""
    if value == "native":
        return "native"
    try:
        size = int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"size must be 'native' or a number, got {value!r}") from None
    if size <= 0 or size % 8:
        raise ConfigError(f"size {size} must be a positive multiple of 8")
    return size


def config_eval_size(cfg: Mapping[str, Any]) -> str | int:
    """The evaluation geometry a config asks for: ``base_size`` or ``"native"``."""
    return cfg["data"]["base_size"] if cfg["data"]["eval_size"] == "resize" else "native"


def autocast_context(device: torch.device, dtype: str):
    """Autocast for bf16/fp16; fp16 needs CUDA (the CPU has no fast fp16 kernels)."""
    if dtype == "fp32":
        return nullcontext()
    if dtype not in DTYPES:
        raise ConfigError(f"unknown dtype '{dtype}' (use fp32, bf16 or fp16)")
    if dtype == "fp16" and device.type != "cuda":
        raise ConfigError("dtype fp16 needs a CUDA device; use fp32 or bf16 on the CPU")
    return torch.autocast(device_type=device.type, dtype=DTYPES[dtype])


def model_from_checkpoint(
    path: str | Path, model_config: Mapping[str, Any] | None = None
) -> LRRNet:
    """An LRRNet with the weights of a ``.pth`` checkpoint or a released ``.pkl`` state dict.

    The architecture comes from ``model_config``, else from the config stored in the
    checkpoint, else the paper's defaults (the released weights).
    """
    checkpoint = load_checkpoint(path)
    if model_config is None and isinstance(checkpoint.get("config"), Mapping):
        model_config = checkpoint["config"].get("model")
    model = LRRNet(**dict(model_config or {}))
    load_model_weights(model, checkpoint, source=str(path))
    return model


@dataclass
class Prediction:
    """Maps at the input's own size: ``target_prob`` = sigmoid(T), ``reconstruction`` = D."""

    target_prob: np.ndarray
    reconstruction: np.ndarray


class Predictor:
    """Wraps an LRRNet for inference.

    Args:
        model: the network (any device; moved to ``device``).
        device: ``auto``, ``cpu``, ``cuda`` or a ``torch.device``.
        dtype: ``fp32``, ``bf16`` or ``fp16`` (autocast; maps are returned as float32).
        size: ``"native"`` (pad to a multiple of 8 with reflection and crop the maps back) or
            N (resize to N×N bilinearly and the maps back to the input size).
        channels_last: use the channels-last memory format (faster convolutions).
    """

    def __init__(
        self,
        model: LRRNet,
        device: str | torch.device = "auto",
        dtype: str = "fp32",
        size: str | int = "native",
        channels_last: bool = True,
    ) -> None:
        self.device = device if isinstance(device, torch.device) else resolve_device(device)
        self.dtype = dtype
        autocast_context(self.device, dtype)  # reject an impossible dtype now, not mid-run
        self.size = parse_size(size)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.model = model.to(self.device, memory_format=self.memory_format)

    @classmethod
    def from_checkpoint(
        cls,
        path: str | Path,
        model_config: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> Predictor:
        """Build from this project's ``.pth`` or a released ``.pkl`` state dict
        (see :func:`model_from_checkpoint`)."""
        return cls(model_from_checkpoint(path, model_config), **kwargs)

    @torch.inference_mode()
    def predict_batch(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Target probabilities and reconstructions for a batch of same-size frames.

        Args:
            images: ``B×1×H×W`` intensities in [0, 1], any H and W.

        Returns:
            ``(target_prob, reconstruction)``, each ``B×1×H×W`` float32 on the CPU.
        """
        height, width = images.shape[-2:]
        batch = images.to(self.device, non_blocking=True).float()
        if self.size == "native":
            batch, _ = pad_to_multiple(batch, 8)
        else:
            batch = F.interpolate(
                batch, size=(self.size, self.size), mode="bilinear", align_corners=False
            )
        batch = batch.contiguous(memory_format=self.memory_format)
        # The trainer shares its model with the predictor: evaluate without dropout, then hand
        # the model back in the mode it came in (and without touching the RNG).
        was_training = self.model.training
        self.model.eval()
        try:
            with autocast_context(self.device, self.dtype):
                reconstruction, target_logits = self.model(batch)
        finally:
            self.model.train(was_training)
        target_prob = torch.sigmoid(target_logits.float())
        reconstruction = reconstruction.float()
        if self.size == "native":
            target_prob = crop_to(target_prob, (height, width))
            reconstruction = crop_to(reconstruction, (height, width))
        else:
            target_prob = F.interpolate(
                target_prob, size=(height, width), mode="bilinear", align_corners=False
            )
            reconstruction = F.interpolate(
                reconstruction, size=(height, width), mode="bilinear", align_corners=False
            )
        return target_prob.cpu().contiguous(), reconstruction.cpu().contiguous()

    def predict(self, image: np.ndarray) -> Prediction:
        """One ``H×W`` frame in [0, 1] → maps at ``H×W``."""
        tensor = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None, None]
        target_prob, reconstruction = self.predict_batch(tensor)
        return Prediction(target_prob[0, 0].numpy(), reconstruction[0, 0].numpy())
