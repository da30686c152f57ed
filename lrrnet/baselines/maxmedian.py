"""Max-Median: the background as the largest of four directional medians.

Deshpande, Er, Venkateswarlu and Chan, "Max-mean and max-median filters for detection of
small targets", Proc. SPIE 3809 (Signal and Data Processing of Small Targets), 1999.

At each pixel the filter takes the medians of the ``size`` pixels on the horizontal, the
vertical and the two diagonal lines through it, and keeps the largest of the four as the
background estimate. A bright edge or cloud border runs along at least one of these lines,
so its median stays high and the edge is kept in the background; a target narrower than
half the line is the minority on every line, so all four medians miss it. The frame minus
the background is the response.

Parameters (``--param KEY=VALUE``) and their defaults:

- ``size`` (5): the length of each line in pixels, odd, a 5×5 support (docs/baselines.md,
  "Max-Median, MPCM and PSTNN", says what the default rests on). A target up to
  ``size // 2`` pixels wide passes.
- ``gain`` (1.0) and ``k`` (None): the threshold rule of :mod:`lrrnet.baselines.threshold`.

Pixels beyond the frame are mirrored (the border pixel not repeated), so a line through a
border pixel still holds ``size`` values.
"""

from __future__ import annotations

import cv2
import numpy as np

from lrrnet.baselines.threshold import response_to_map
from lrrnet.errors import ConfigError

# The unit steps of the four lines: horizontal, vertical, diagonal, anti-diagonal.
_DIRECTIONS = ((0, 1), (1, 0), (1, 1), (1, -1))


def max_median_background(image: np.ndarray, size: int = 5) -> np.ndarray:
    """The largest of the four directional medians at each pixel.

    Args:
        image: ``H×W`` intensities.
        size: line length in pixels, odd and >= 3.

    Returns:
        ``H×W`` float32 background estimate.

    Raises:
        ConfigError: an image that is not ``H×W``, or ``size`` not an odd integer >= 3.
    """
    image = np.asarray(image, dtype=np.float32)
    if image.ndim != 2:
        raise ConfigError(f"maxmedian: expected an H×W image, got shape {image.shape}")
    if int(size) != size or size < 3 or size % 2 == 0:
        raise ConfigError(f"maxmedian: size must be an odd integer >= 3, got {size!r}")
    half = int(size) // 2
    height, width = image.shape
    padded = cv2.copyMakeBorder(image, half, half, half, half, cv2.BORDER_REFLECT_101)
    background = np.full(image.shape, -np.inf, dtype=np.float32)
    for row_step, col_step in _DIRECTIONS:
        # The size pixels of this line through every pixel, one shifted view each.
        line = np.stack(
            [
                padded[
                    half + t * row_step : half + t * row_step + height,
                    half + t * col_step : half + t * col_step + width,
                ]
                for t in range(-half, half + 1)
            ]
        )
        np.maximum(background, np.median(line, axis=0), out=background)
    return background


def max_median_response(image: np.ndarray, size: int = 5) -> np.ndarray:
    """The frame minus its Max-Median background, positive part, in intensity units.

    Args:
        image: ``H×W`` intensities in [0, 1].
        size: line length in pixels, odd and >= 3.

    Returns:
        ``H×W`` float32 response, ``>= 0``.
    """
    image = np.asarray(image, dtype=np.float32)
    return np.maximum(image - max_median_background(image, size), 0.0)


def max_median(
    image: np.ndarray, size: int = 5, gain: float = 1.0, k: float | None = None
) -> np.ndarray:
    """Target map of the Max-Median filter.

    Args:
        image: ``H×W`` intensities in [0, 1].
        size: line length in pixels, odd and >= 3.
        gain: fixed factor on the response before clipping to [0, 1].
        k: per-frame threshold ``mean + k·std``; None uses the fixed gain.

    Returns:
        ``H×W`` float32 target map in [0, 1].

    Raises:
        ConfigError: a parameter out of range.
    """
    if not gain > 0:
        raise ConfigError(f"maxmedian: gain must be > 0, got {gain!r}")
    return response_to_map(max_median_response(image, size), gain, k)
