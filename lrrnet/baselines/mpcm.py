"""MPCM: the multiscale patch-based contrast measure.

Wei, You and Li, "Multiscale patch-based contrast measure for small infrared target
detection", Pattern Recognition 58, 2016.

At one scale ``L`` the window around a pixel is a 3×3 grid of ``L×L`` patches: the central
patch ``T`` and eight surrounding patches ``B_1 … B_8``, ``B_i`` and ``B_{i+4}`` opposite.
With ``m`` a patch's mean, the dissimilarities ``d_i = m_T - m_{B_i}`` are combined per
direction as ``d̃_i = d_i · d_{i+4}``, positive only when the centre stands out on both
sides of that direction; the contrast at that scale is the weakest direction,
``C_L = min_i d̃_i``, and the MPCM is the largest over scales, ``max_L C_L``. A target
beats its surroundings in every direction; an edge or a ramp has one side brighter and one
darker in some direction, whose product is negative.

The product is also positive for a centre *darker* on both sides. The masks of this field
mark bright targets, so with ``polarity="bright"`` (the default) a direction counts only
when both its differences are positive, ``d̃_i = max(d_i, 0) · max(d_{i+4}, 0)``;
``polarity="both"`` keeps the plain product, bright and dark targets alike.

Parameters (``--param KEY=VALUE``) and their defaults:

- ``scales`` ((3, 5, 7, 9)): the patch sizes ``L``, the paper's.
- ``mean_size`` (3): the mean filter the frame is smoothed with first, as the paper does
  against single-pixel noise; 1 switches it off.
- ``polarity`` (``"bright"``): see above.
- ``gain`` (1.0) and ``k`` (None): the threshold rule of :mod:`lrrnet.baselines.threshold`.
  The response is a product of two contrasts (intensity²): a fixed gain of 1 asks for a
  contrast of about 0.7, so the per-frame ``k`` is the rule to use, as in the paper, which
  thresholds the map at its mean plus a multiple of its standard deviation.

Patch means near the border use mirrored pixels (the border pixel not repeated).
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from lrrnet.baselines.threshold import response_to_map
from lrrnet.errors import ConfigError

# The four directions as the offsets (in patches) of one of their two opposite patches.
_DIRECTIONS = ((0, 1), (1, 0), (1, 1), (1, -1))
_POLARITIES = ("bright", "both")


def _shifted(values: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """``values[y + rows, x + cols]`` at every pixel, mirrored beyond the border."""
    pad = max(abs(rows), abs(cols))
    padded = cv2.copyMakeBorder(values, pad, pad, pad, pad, cv2.BORDER_REFLECT_101)
    height, width = values.shape
    return padded[pad + rows : pad + rows + height, pad + cols : pad + cols + width]


def patch_contrast(image: np.ndarray, scale: int, polarity: str = "bright") -> np.ndarray:
    """The patch-based contrast ``C_L`` at one scale.

    Args:
        image: ``H×W`` intensities (already smoothed, if at all).
        scale: patch size ``L`` in pixels, odd.
        polarity: ``"bright"`` or ``"both"``, as in the module docstring.

    Returns:
        ``H×W`` contrast in intensity², in the image's float type.
    """
    means = cv2.blur(image, (scale, scale), borderType=cv2.BORDER_REFLECT_101)
    contrast = np.full(image.shape, np.inf)
    for row_step, col_step in _DIRECTIONS:
        ahead = means - _shifted(means, row_step * scale, col_step * scale)
        behind = means - _shifted(means, -row_step * scale, -col_step * scale)
        if polarity == "bright":
            ahead, behind = np.maximum(ahead, 0.0), np.maximum(behind, 0.0)
        np.minimum(contrast, ahead * behind, out=contrast)
    return contrast


def _check(image: np.ndarray, scales: Sequence[int], mean_size: int, polarity: str) -> None:
    if image.ndim != 2:
        raise ConfigError(f"mpcm: expected an H×W image, got shape {image.shape}")
    if isinstance(scales, (int, float)) or len(scales) == 0:
        raise ConfigError(f"mpcm: scales must be a non-empty list of sizes, got {scales!r}")
    for scale in scales:
        if int(scale) != scale or scale < 1 or scale % 2 == 0:
            raise ConfigError(f"mpcm: each scale must be an odd integer >= 1, got {scale!r}")
    if int(mean_size) != mean_size or mean_size < 1:
        raise ConfigError(f"mpcm: mean_size must be a positive integer, got {mean_size!r}")
    if polarity not in _POLARITIES:
        raise ConfigError(f"mpcm: polarity must be one of {_POLARITIES}, got {polarity!r}")


def mpcm_response(
    image: np.ndarray,
    scales: Sequence[int] = (3, 5, 7, 9),
    mean_size: int = 3,
    polarity: str = "bright",
) -> np.ndarray:
    """The MPCM map, the largest patch contrast over the scales, negative values cut to 0.

    Args:
        image: ``H×W`` intensities in [0, 1].
        scales: patch sizes ``L``, odd.
        mean_size: width of the mean filter applied first (1: none).
        polarity: ``"bright"`` or ``"both"``, as in the module docstring.

    Returns:
        ``H×W`` float32 response, ``>= 0``, in intensity².

    Raises:
        ConfigError: a parameter out of range.
    """
    # float64: the products of small mean differences would carry float32's running-sum
    # error of the box filter, which depends on where in the frame a pixel lies.
    image = np.asarray(image, dtype=np.float64)
    _check(image, scales, mean_size, polarity)
    if mean_size > 1:
        image = cv2.blur(image, (int(mean_size),) * 2, borderType=cv2.BORDER_REFLECT_101)
    response = np.zeros(image.shape)
    for scale in scales:
        np.maximum(response, patch_contrast(image, int(scale), polarity), out=response)
    return response.astype(np.float32)


def mpcm(
    image: np.ndarray,
    scales: Sequence[int] = (3, 5, 7, 9),
    mean_size: int = 3,
    polarity: str = "bright",
    gain: float = 1.0,
    k: float | None = None,
) -> np.ndarray:
    """Target map of the multiscale patch-based contrast measure.

    Args:
        image: ``H×W`` intensities in [0, 1].
        scales: patch sizes ``L`` (the paper's 3, 5, 7, 9).
        mean_size: width of the mean filter applied first (the paper's 3).
        polarity: ``"bright"`` (default) or ``"both"``.
        gain: fixed factor on the response before clipping to [0, 1].
        k: per-frame threshold ``mean + k·std``; None uses the fixed gain.

    Returns:
        ``H×W`` float32 target map in [0, 1].

    Raises:
        ConfigError: a parameter out of range.
    """
    if not gain > 0:
        raise ConfigError(f"mpcm: gain must be > 0, got {gain!r}")
    return response_to_map(mpcm_response(image, scales, mean_size, polarity), gain, k)
