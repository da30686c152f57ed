"""Frames of any size for the network: pad to a multiple of 8, crop the outputs back.

LRRNet halves the resolution three times, so H and W must be multiples of 8. SIRST v1 has
many odd sizes; padding at the bottom and right keeps the crop a plain slice.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def size_multiple_for(num_levels: int) -> int:
    """What H and W must be multiples of for ``num_levels`` = ``len(channel_mults)`` levels.

    The network halves the resolution ``num_levels − 1`` times.
    """
    return 2 ** (num_levels - 1)


# The published network's (four levels, three stride-2 steps). A network with other
# ``channel_mults`` has its own, ``LRRNet.size_multiple``.
SIZE_MULTIPLE = size_multiple_for(4)
# How evaluation fits a frame to the network (data.eval_size): "resize" to data.base_size
# and the maps back, or "native": pad to the size multiple and crop back.
EVAL_SIZES = ("resize", "native")


def pad_to_multiple(
    x: torch.Tensor, multiple: int = SIZE_MULTIPLE, mode: str = "reflect"
) -> tuple[torch.Tensor, tuple[int, int]]:
    """Pads the bottom and right of ``x`` so H and W become multiples of ``multiple``.

    Reflection keeps the image statistics at the border (no artificial edge that could
    look like a target). Reflection needs the pad to be smaller than the side it mirrors,
    so a side shorter than its pad (tiny inputs, e.g. 4 px padded to 8) falls back to
    ``"replicate"`` for the whole tensor.

    Args:
        x: B×C×H×W.
        multiple: the size both sides are rounded up to a multiple of.
        mode: a :func:`torch.nn.functional.pad` mode: ``"reflect"``, ``"replicate"``,
            ``"constant"`` (zeros) or ``"circular"``.

    Returns:
        The padded B×C×H'×W' tensor and the original ``(H, W)`` for :func:`crop_to`.
    """
    height, width = x.shape[-2:]
    pad_bottom = -height % multiple
    pad_right = -width % multiple
    if pad_bottom == 0 and pad_right == 0:
        return x, (height, width)
    if mode == "reflect" and (pad_bottom >= height or pad_right >= width):
        mode = "replicate"
    return F.pad(x, (0, pad_right, 0, pad_bottom), mode=mode), (height, width)


def crop_to(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Crops the top-left ``size = (H, W)`` of ``x`` (…×H'×W'), undoing :func:`pad_to_multiple`."""
    height, width = size
    return x[..., :height, :width]
