"""Running a trained LRRNet on frames of any size.

The predictor is separate from the ``nn.Module``: it owns the device, the precision and the
geometry (native size with padding, or resizing to N×N and back), so training evaluation,
``inference.py`` and the visual tools all map pixels the same way.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from lrrnet.engine.checkpoint import load_checkpoint, load_model_weights
from lrrnet.engine.cpu_memory import keep_freed_memory
from lrrnet.engine.distributed import PRECISIONS, resolve_device
from lrrnet.engine.zoo import resolve_checkpoint
from lrrnet.errors import ConfigError
from lrrnet.models import SIZE_MULTIPLE, LRRNet, crop_to, pad_to_multiple

logger = logging.getLogger(__name__)

DTYPES = dict(zip(PRECISIONS, (torch.float32, torch.bfloat16, torch.float16), strict=True))


def parse_size(value: str | int, multiple: int = SIZE_MULTIPLE) -> str | int:
    """``"native"`` or a positive multiple of ``multiple`` (``"512"`` → 512)."""
    if value == "native":
        return "native"
    try:
        size = int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"size must be 'native' or a number, got {value!r}") from None
    if size <= 0 or size % multiple:
        raise ConfigError(f"size {size} must be a positive multiple of {multiple}")
    return size


def config_eval_size(cfg: Mapping[str, Any]) -> str | int:
    """The evaluation geometry a config asks for: ``base_size`` or ``"native"``."""
    return cfg["data"]["base_size"] if cfg["data"]["eval_size"] == "resize" else "native"


def autocast_context(device: torch.device, dtype: str, cache_enabled: bool = True):
    """Autocast for bf16/fp16; fp16 needs CUDA (the CPU has no fast fp16 kernels).

    ``cache_enabled=False`` for CUDA-graph capture: autocast's cache of cast weights would
    otherwise be captured as memory the graph does not own.
    """
    if dtype == "fp32":
        return nullcontext()
    if dtype not in DTYPES:
        raise ConfigError(f"unknown dtype '{dtype}' (use fp32, bf16 or fp16)")
    if dtype == "fp16" and device.type != "cuda":
        raise ConfigError("dtype fp16 needs a CUDA device; use fp32 or bf16 on the CPU")
    return torch.autocast(device_type=device.type, dtype=DTYPES[dtype], cache_enabled=cache_enabled)


def model_from_checkpoint(
    path: str | Path, model_config: Mapping[str, Any] | None = None
) -> LRRNet:
    """An LRRNet with the weights of a ``.pth`` checkpoint, a released ``.pkl`` state dict
    or a zoo model by name (:func:`lrrnet.engine.zoo.resolve_checkpoint`).

    The architecture comes from ``model_config``, else from the config stored in the
    checkpoint or the zoo entry, else the paper's defaults (the released weights).
    """
    path, zoo_model = resolve_checkpoint(path)
    if model_config is None and zoo_model is not None:
        model_config = zoo_model.config["model"]
    checkpoint = load_checkpoint(path)
    if model_config is None and isinstance(checkpoint.get("config"), Mapping):
        model_config = checkpoint["config"].get("model")
    model = LRRNet(**dict(model_config or {}))
    load_model_weights(model, checkpoint, source=str(path))
    return model


@dataclass
class PredictedMaps:
    """The maps of one frame, in memory, at its own size.

    ``target_prob`` = sigmoid(T), ``reconstruction`` = D. Maps saved on disk are paired with
    their masks as :class:`lrrnet.engine.scoring.PredictionFilePair`.
    """

    target_prob: np.ndarray
    reconstruction: np.ndarray


class Predictor:
    """Wraps an LRRNet for inference.

    Args:
        model: the network (any device; moved to ``device``).
        device: ``auto``, ``cpu``, ``cuda`` or a ``torch.device``.
        dtype: ``fp32``, ``bf16`` or ``fp16`` (autocast; maps are returned as float32).
        size: ``"native"`` (pad to the model's size multiple, 8 for the published network,
            with reflection and crop the maps back) or N (resize to N×N bilinearly and the
            maps back to the input size).
        channels_last: use the channels-last memory format. ``None`` (the default) chooses
            what measured fastest: channels_last with ``compile_model``, contiguous for an
            eager forward. On CUDA PyTorch's GroupNorm makes every channels_last input
            contiguous and back; on the CPU its channels_last GroupNorm is inaccurate and
            the accurate replacement (:class:`lrrnet.models.blocks.GroupNorm`) costs more
            than the convolutions gain at 512×512 (docs/speed.md, "CPU"). On the CPU
            the predictor also keeps freed memory for reuse
            (:func:`lrrnet.engine.cpu_memory.keep_freed_memory`).
        cuda_graph: CUDA only. Capture the network's forward once per input shape (after
            padding or resizing) and replay it: one launch instead of a few hundred kernel
            launches (docs/speed.md, "GPU", gives what it saves). Graphs keep the weights'
            memory, so in-place weight updates are seen; at most ``MAX_CUDA_GRAPHS`` shapes
            are kept (the oldest is dropped).
        compile_model: run the forward through ``torch.compile`` (Inductor fuses the
            GroupNorm, ReLU and elementwise passes around the convolutions). The first
            call of each new input shape compiles (tens of seconds); after a second shape
            the compiled code is made shape-generic. With ``cuda_graph``, the compiled
            forward is what is captured.
        keep_network_size: with ``size`` N, return the maps at N×N instead of resizing them
            back (what the original repository saves: 512×512 maps for every dataset).
    """

    MAX_CUDA_GRAPHS = 4

    def __init__(
        self,
        model: LRRNet,
        device: str | torch.device = "auto",
        dtype: str = "fp32",
        size: str | int = "native",
        channels_last: bool | None = None,
        cuda_graph: bool = False,
        keep_network_size: bool = False,
        compile_model: bool = False,
    ) -> None:
        self.device = device if isinstance(device, torch.device) else resolve_device(device)
        self.dtype = dtype
        autocast_context(self.device, dtype)  # reject an impossible dtype now, not mid-run
        if cuda_graph and self.device.type != "cuda":
            raise ConfigError(f"cuda_graph needs a CUDA device, got '{self.device}'")
        self.cuda_graph = cuda_graph
        self._graphs: dict[tuple[int, ...], CapturedForward] = {}
        # The model's own multiple: 2 ** (levels − 1), 8 for the published network.
        self.size_multiple = getattr(model, "size_multiple", SIZE_MULTIPLE)
        self.size = parse_size(size, self.size_multiple)
        if keep_network_size and self.size == "native":
            raise ConfigError("maps at the network's size need a size N (resize), not 'native'")
        self.keep_network_size = keep_network_size
        if channels_last is None:
            channels_last = compile_model
        if self.device.type == "cpu":
            keep_freed_memory()
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.model = model.to(self.device, memory_format=self.memory_format)
        # The compiled wrapper shares the model's parameters and train/eval mode.
        self._forward = torch.compile(self.model) if compile_model else self.model

    @classmethod
    def from_checkpoint(
        cls,
        path: str | Path,
        model_config: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> Predictor:
        """Build from this project's ``.pth``, a released ``.pkl`` state dict or a zoo name
        (see :func:`model_from_checkpoint`). A zoo model runs at the size its config
        evaluated at (:func:`config_eval_size`) unless ``size`` is given."""
        path, zoo_model = resolve_checkpoint(path)
        if zoo_model is not None:
            kwargs.setdefault("size", config_eval_size(zoo_model.config))
            if model_config is None:
                model_config = zoo_model.config["model"]
        return cls(model_from_checkpoint(path, model_config), **kwargs)

    @torch.inference_mode()
    def predict_batch(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Target probabilities and reconstructions for a batch of same-size frames.

        Args:
            images: ``B×1×H×W`` intensities in [0, 1], any H and W.

        Returns:
            ``(target_prob, reconstruction)``, each ``B×1×H×W`` float32 on the CPU
            (``B×1×N×N`` with ``keep_network_size``).
        """
        height, width = images.shape[-2:]
        batch = images.to(self.device, non_blocking=True).float()
        if self.size == "native":
            batch, _ = pad_to_multiple(batch, self.size_multiple)
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
            if self.cuda_graph:
                reconstruction, target_logits = self._graphed_forward(batch)
            else:
                with autocast_context(self.device, self.dtype):
                    reconstruction, target_logits = self._forward(batch)
        finally:
            self.model.train(was_training)
        target_prob = torch.sigmoid(target_logits.float())
        reconstruction = reconstruction.float()
        if self.size == "native":
            target_prob = crop_to(target_prob, (height, width))
            reconstruction = crop_to(reconstruction, (height, width))
        elif not self.keep_network_size:
            target_prob = F.interpolate(
                target_prob, size=(height, width), mode="bilinear", align_corners=False
            )
            reconstruction = F.interpolate(
                reconstruction, size=(height, width), mode="bilinear", align_corners=False
            )
        return target_prob.cpu().contiguous(), reconstruction.cpu().contiguous()

    def _graphed_forward(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The model's ``(D, T)`` for ``batch`` (B×1×H×W) by replaying a captured graph."""
        # The batch is float32 in the predictor's memory format: its shape is the key.
        key = tuple(batch.shape)
        captured = self._graphs.get(key)
        if captured is None:
            if len(self._graphs) >= self.MAX_CUDA_GRAPHS:
                self._graphs.pop(next(iter(self._graphs)))
            captured = CapturedForward(self._forward, batch, self.device, self.dtype)
            self._graphs[key] = captured
        return captured(batch)

    def predict(self, image: np.ndarray) -> PredictedMaps:
        """One ``H×W`` frame in [0, 1] → maps at ``H×W``."""
        tensor = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None, None]
        target_prob, reconstruction = self.predict_batch(tensor)
        return PredictedMaps(target_prob[0, 0].numpy(), reconstruction[0, 0].numpy())


class CapturedForward:
    """One CUDA graph of the model's forward for one input shape, dtype and precision."""

    WARMUP_RUNS = 2

    def __init__(
        self,
        model: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
        example: torch.Tensor,
        device: torch.device,
        dtype: str,
    ):
        """``model``: the network or its ``torch.compile`` wrapper, in eval mode."""
        self.static_input = example.clone()  # keeps the example's memory format
        # Warm up on a side stream, as graph capture requires: cuDNN picks its algorithms
        # and the allocator settles before anything is recorded.
        side = torch.cuda.Stream(device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side), autocast_context(device, dtype, cache_enabled=False):
            for _ in range(self.WARMUP_RUNS):
                model(self.static_input)
        torch.cuda.current_stream(device).wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with (
            torch.cuda.graph(self.graph),
            autocast_context(device, dtype, cache_enabled=False),
        ):
            self.static_output = model(self.static_input)

    def __call__(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.static_input.copy_(batch)
        self.graph.replay()
        # Copies: the next replay overwrites the static outputs.
        return tuple(output.clone() for output in self.static_output)
