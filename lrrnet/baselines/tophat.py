"""White top-hat: the classical single-frame small-target filter.

The top-hat keeps what a morphological opening removes: bright structures narrower than
the structuring element. A small target survives, a wide bright plateau (a cloud, a
building face) is rebuilt by the opening and cancels out.
"""

from __future__ import annotations

import cv2
import numpy as np

from lrrnet.baselines.threshold import response_to_map
from lrrnet.errors import ConfigError

_SHAPES = {"disc": cv2.MORPH_ELLIPSE, "square": cv2.MORPH_RECT}


def tophat_response(image: np.ndarray, size: int = 9, shape: str = "disc") -> np.ndarray:
    """Image minus its morphological opening, in the image's intensity units.

    Args:
        image: ``H×W`` intensities in [0, 1].
        size: structuring element width in pixels; structures narrower than this pass.
        shape: ``"disc"`` (elliptical element, isotropic) or ``"square"``.

    Returns:
        ``H×W`` float32 response, ``>= 0``.

    Raises:
        ConfigError: a parameter out of range or an unknown shape.
    """
    image = np.asarray(image)
    if image.ndim != 2:
        raise ConfigError(f"tophat: expected an H×W image, got shape {image.shape}")
    if int(size) != size or size < 1:
        raise ConfigError(f"tophat: size must be a positive integer, got {size!r}")
    if shape not in _SHAPES:
        raise ConfigError(f"tophat: shape must be one of {sorted(_SHAPES)}, got {shape!r}")
    element = cv2.getStructuringElement(_SHAPES[shape], (int(size), int(size)))
    # OpenCV pads erosion with +inf and dilation with -inf by default, so the image border
    # is not mistaken for a dark background around bright edge pixels.
    return cv2.morphologyEx(image.astype(np.float32), cv2.MORPH_TOPHAT, element)


def white_tophat(
    image: np.ndarray,
    size: int = 9,
    shape: str = "disc",
    gain: float = 1.0,
    k: float | None = None,
) -> np.ndarray:
    """Image minus its morphological opening, as a target map in [0, 1].

    Scaling: the response is kept in the image's own intensity units (``image`` in [0, 1]
    and ``opening <= image`` put it in [0, 1] already), multiplied by the fixed ``gain``
    and clipped. A fixed gain, not the image's own maximum, keeps a threshold meaningful
    across images: ``t`` always means "at least ``t / gain`` brighter than the local
    background", and a frame without a target stays dark instead of having its strongest
    clutter stretched to 1. With ``gain=1`` the default threshold 0.5 asks for a contrast
    of 128 grey levels; ``gain=4`` lowers that to 32. With ``k``, the threshold is the
    frame's own ``mean + k·std`` of the response instead (see
    :mod:`lrrnet.baselines.threshold`).

    Args:
        image: ``H×W`` intensities in [0, 1].
        size: structuring element width in pixels; structures narrower than this pass.
        shape: ``"disc"`` (elliptical element, isotropic) or ``"square"``.
        gain: fixed factor applied to the response before clipping to [0, 1].
        k: per-frame threshold ``mean + k·std``; None uses the fixed gain.

    Returns:
        ``H×W`` float32 target map in [0, 1].

    Raises:
        ConfigError: a parameter out of range or an unknown shape.
    """
    if not gain > 0:
        raise ConfigError(f"tophat: gain must be > 0, got {gain!r}")
    return response_to_map(tophat_response(image, size, shape), gain, k)
