"""Training transforms: pure functions of NumPy arrays and an explicit random generator.

Images are ``H×W`` float32 in [0, 1]; masks are ``H×W`` arrays of any dtype (bool, uint8,
float) and come back in their own dtype. Every random choice is drawn from the ``rng``
argument, so a transform is reproducible from the generator's seed alone.
"""

from __future__ import annotations

import cv2
import numpy as np


def _as_hw(size: int | tuple[int, int]) -> tuple[int, int]:
    return (size, size) if isinstance(size, int | np.integer) else (int(size[0]), int(size[1]))


def resize_mask(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Resize a mask by nearest neighbour, so it stays binary and keeps its dtype.

    Args:
        mask: ``H×W`` mask.
        shape: ``(height, width)`` of the output.
    """
    if mask.shape == tuple(shape):
        return mask
    # cv2.resize has no bool support; uint8 round-trips a bool mask exactly.
    source = mask.astype(np.uint8) if mask.dtype == bool else mask
    resized = cv2.resize(source, (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST)
    return resized.astype(mask.dtype, copy=False)


def resize_map(prob: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Resize a probability map (or image) bilinearly to ``shape`` = ``(height, width)``.

    Returns:
        ``shape`` float32 array.
    """
    prob = np.asarray(prob, dtype=np.float32)
    if prob.shape == tuple(shape):
        return prob
    return cv2.resize(prob, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)


def resize_pair(
    image: np.ndarray, mask: np.ndarray, size: int | tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Resize an image bilinearly and its mask by nearest neighbour (the published recipe).

    The image is resized in its own type: an 8-bit frame as uint8, as the original does
    (OpenCV rounds each interpolated value to a grey level), before any scale to [0, 1].

    Args:
        image: ``H×W`` image (uint8, uint16 or float).
        mask: ``H×W`` mask, of the image's size or not (it is resized to ``size`` either way).
        size: output side, or ``(height, width)``.

    Returns:
        ``(image, mask)`` of the new size.
    """
    height, width = _as_hw(size)
    if image.shape != (height, width):
        image = cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)
    # Nearest neighbour copies values, so a mask keeps its levels in its own dtype.
    return image, resize_mask(mask, (height, width))


def pad_to_size(
    array: np.ndarray, min_height: int, min_width: int, mode: str = "constant"
) -> np.ndarray:
    """Pad ``array`` evenly on both sides up to at least ``min_height × min_width``.

    Args:
        array: ``H×W`` array.
        min_height: smallest output height.
        min_width: smallest output width.
        mode: ``"constant"`` (zeros) or ``"reflect"``.
    """
    pad_h = max(0, min_height - array.shape[0])
    pad_w = max(0, min_width - array.shape[1])
    if pad_h == 0 and pad_w == 0:
        return array
    pad = ((pad_h // 2, pad_h - pad_h // 2), (pad_w // 2, pad_w - pad_w // 2))
    return np.pad(array, pad, mode=mode)


def random_crop_pair(
    image: np.ndarray,
    mask: np.ndarray,
    crop_size: int | tuple[int, int],
    pos_prob: float,
    rng: np.random.Generator,
    pad_mode: str = "constant",
    edge_prob: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """A random crop of an image and its mask, biased towards crops that contain a target.

    Frames smaller than the crop are padded first (zeros, or ``pad_mode="reflect"``). With
    probability ``pos_prob``, when the mask has a target pixel, the crop is placed uniformly
    among the positions that contain a randomly chosen target pixel; otherwise uniformly.

    With ``edge_prob`` > 0, each axis of the crop is then, with that probability, moved
    against a frame edge among the positions allowed (the crop keeps its target): the top or
    bottom edge for the rows, the left or right one for the columns, each with half of the
    chance when both are allowed. Uniform placement puts a frame's border rows into a crop
    rarely (a 128² crop of a 256² frame starts at row 0 once in 129 draws), while every
    full frame that the evaluation sees has all four; frames whose borders differ from
    their inside (NUDT-SIRST's first row and column are darker) then draw false alarms
    there. The uniform draws of the edge choice are only made when ``edge_prob`` > 0, so
    the default leaves the random stream as it was.

    Args:
        image: ``H×W`` image.
        mask: ``H×W`` mask.
        crop_size: crop side, or ``(height, width)``.
        pos_prob: chance of a crop forced to contain a target pixel.
        rng: source of every random choice.
        pad_mode: ``"constant"`` or ``"reflect"``.
        edge_prob: chance, per axis, of a crop placed against a frame edge.

    Returns:
        ``(image, mask)`` of the crop size.
    """
    crop_h, crop_w = _as_hw(crop_size)
    image = pad_to_size(image, crop_h, crop_w, pad_mode)
    mask = pad_to_size(mask, crop_h, crop_w, pad_mode)
    height, width = image.shape
    # Draw the same number of values on every path so later draws do not depend on it.
    want_target, pick, u_top, u_left = rng.random(4)
    target_rows, target_cols = np.nonzero(mask)
    if want_target < pos_prob and target_rows.size:
        index = min(int(pick * target_rows.size), target_rows.size - 1)
        row, col = int(target_rows[index]), int(target_cols[index])
        top_lo, top_hi = max(0, row - crop_h + 1), min(row, height - crop_h)
        left_lo, left_hi = max(0, col - crop_w + 1), min(col, width - crop_w)
    else:
        top_lo, top_hi, left_lo, left_hi = 0, height - crop_h, 0, width - crop_w
    top = top_lo + min(int(u_top * (top_hi - top_lo + 1)), top_hi - top_lo)
    left = left_lo + min(int(u_left * (left_hi - left_lo + 1)), left_hi - left_lo)
    if edge_prob > 0:
        u_rows, u_cols = rng.random(2)
        top = _against_edge(top, top_lo, top_hi, height - crop_h, u_rows, edge_prob)
        left = _against_edge(left, left_lo, left_hi, width - crop_w, u_cols, edge_prob)
    window = (slice(top, top + crop_h), slice(left, left + crop_w))
    return image[window], mask[window]


def _against_edge(start: int, low: int, high: int, last: int, u: float, edge_prob: float) -> int:
    """``start``, or with chance ``edge_prob`` (``u`` uniform) the frame edge among the
    allowed starts ``low`` … ``high``: 0 (the first edge) or ``last`` (the far one)."""
    edges = [edge for edge, allowed in ((0, low == 0), (last, high == last)) if allowed]
    if not edges or u >= edge_prob:
        return start
    return edges[min(int(u / edge_prob * len(edges)), len(edges) - 1)]


def random_flip_transpose(
    image: np.ndarray, mask: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Vertical flip, horizontal flip and transpose, each with probability 0.5.

    The transpose is applied only to square arrays, so the output keeps the input's shape
    (a batch of crops keeps stacking); its draw is made either way.

    Returns:
        ``(image, mask)``, contiguous.
    """
    vflip, hflip, transpose = rng.random(3) < 0.5
    if vflip:
        image, mask = image[::-1, :], mask[::-1, :]
    if hflip:
        image, mask = image[:, ::-1], mask[:, ::-1]
    if transpose and image.shape[0] == image.shape[1]:
        image, mask = image.T, mask.T
    return np.ascontiguousarray(image), np.ascontiguousarray(mask)


def add_gaussian_noise(
    image: np.ndarray, sigma_grey_levels: float, rng: np.random.Generator
) -> np.ndarray:
    """Add Gaussian sensor noise of standard deviation ``sigma_grey_levels / 255``.

    Args:
        image: ``H×W`` image in [0, 1].
        sigma_grey_levels: noise std in 8-bit grey levels (0–255); 0 returns ``image``.
        rng: source of the noise.

    Returns:
        ``H×W`` float32 image clipped to [0, 1].
    """
    if sigma_grey_levels <= 0:
        return image
    noise = rng.standard_normal(image.shape, dtype=np.float32) * np.float32(
        sigma_grey_levels / 255.0
    )
    return np.clip(image + noise, 0.0, 1.0).astype(np.float32)
