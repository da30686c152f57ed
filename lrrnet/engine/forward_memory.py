"""Refusing a forward pass that cannot fit in memory, before it runs.

A frame run natively at its own size (``--size native``) costs memory in proportion to its
pixels: a 4000×3000 frame would need tens of GiB and end in the kernel's out-of-memory kill
or a CUDA error after minutes of work. :func:`check_forward_memory` estimates the peak of
one batch's forward from the size the network sees and compares it with the memory the
device has available now; the caller refuses the batch in one line naming the estimate and
``--size``.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from lrrnet.engine.predictor import Predictor
from lrrnet.errors import UserError

# Peak bytes of the forward per pixel the network sees, per frame, for the published
# network (16 channels at full resolution). Measured on the CPU in fp32 as the growth of the
# peak resident size (``resource.getrusage(...).ru_maxrss``) across one
# ``Predictor.predict_batch`` in a process already warmed up on a 16×16 frame, at batches of
# 1–4 and 256²–1536² pixels: 1.1–1.9 KiB per pixel, rounded up here so that the estimate
# refuses only what cannot fit. The full-resolution feature maps dominate, so the cost
# scales with the first level's width (:func:`activation_bytes_per_pixel`).
ACTIVATION_BYTES_PER_PIXEL = 2048
MEASURED_WIDTH = 16
# Per pixel of the frame itself: the float32 input, its two maps and their copies.
FRAME_BYTES_PER_PIXEL = 20
GIB = 1 << 30


def activation_bytes_per_pixel(model: torch.nn.Module) -> float:
    """:data:`ACTIVATION_BYTES_PER_PIXEL` scaled to ``model``'s first width (the published
    network's when it has no ``init_conv``, as an exported runtime)."""
    width = getattr(getattr(model, "init_conv", None), "out_channels", MEASURED_WIDTH)
    return ACTIVATION_BYTES_PER_PIXEL * width / MEASURED_WIDTH


def network_shape(size: str | int, multiple: int, height: int, width: int) -> tuple[int, int]:
    """The ``(H, W)`` the network sees for an ``H×W`` frame: padded to ``multiple`` for
    ``"native"``, N×N for a size N."""
    if size == "native":
        return -(-height // multiple) * multiple, -(-width // multiple) * multiple
    return int(size), int(size)


def forward_bytes(predictor: Predictor, batch: int, height: int, width: int) -> int:
    """Estimated peak bytes of one forward of ``batch`` frames of ``height×width``."""
    net_height, net_width = network_shape(predictor.size, predictor.size_multiple, height, width)
    activations = activation_bytes_per_pixel(predictor.model) * net_height * net_width
    return int(batch * (activations + FRAME_BYTES_PER_PIXEL * height * width))


def available_bytes(device: torch.device) -> int | None:
    """Memory a forward on ``device`` can use now, or None when it cannot be told.

    CUDA: the driver's free memory plus what PyTorch's allocator holds unused. CPU:
    ``MemAvailable`` of ``/proc/meminfo`` (what can be had without swapping), else the free
    physical pages of ``os.sysconf``.
    """
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device))
    if device.type != "cpu":
        return None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        return None


def check_forward_memory(
    predictor: Predictor, batch: int, height: int, width: int, what: str = "frame"
) -> None:
    """Refuse a forward whose estimated peak exceeds the memory available on the
    predictor's device; ``what`` names the frame in the message.

    Raises:
        UserError: one line with the estimate, what is available, and the flags that help
            (``--size``, and ``--batch-size`` for a batch of several frames).
    """
    available = available_bytes(predictor.device)
    needed = forward_bytes(predictor, batch, height, width)
    if available is None or needed <= available:
        return
    size = predictor.size
    net_height, net_width = network_shape(size, predictor.size_multiple, height, width)
    frames = f"{batch} frames at once need" if batch > 1 else "one frame needs"
    example = " (e.g. --size 512, the published recipe's)" if size == "native" or size > 512 else ""
    smaller_batch = " or a smaller --batch-size" if batch > 1 else ""
    raise UserError(
        f"{what}: a {width}×{height} frame runs the network at {net_width}×{net_height} "
        f"(--size {size}); {frames} about {needed / GIB:.1f} GiB, more than the "
        f"{available / GIB:.1f} GiB available on {predictor.device}; use a smaller --size N"
        f"{example}{smaller_batch}"
    )
