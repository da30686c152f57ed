"""A synthetic single-frame infrared small-target dataset (SIRST-Synth).

Each frame is rendered in grey levels (0–255) in layers:

1. background: a sky level with a smooth gradient and vignetting, multi-scale 1/f cloud
   texture with soft cloud edges, and optionally a horizon (with an irregular, sometimes
   bright rim) above a textured ground or a sea with horizontal streak texture;
2. hard negatives: bright *non-target* structures a local-contrast detector confuses with
   targets but that differ from them in shape or size: line segments (edges), corners,
   elongated blobs, large blobs, buildings (bright rectangles, on ground), glints (short
   one-pixel-high streaks, on sea) and hot pixels;
3. targets: Gaussian point-spread blobs and small flat-topped ellipses, whose counts and
   mask areas follow those of the 427 real SIRST v1 masks and whose peak is a drawn
   signal-to-clutter ratio (SCR) times the local background standard deviation;
4. sensor: Gaussian noise, column (and weaker row) fixed-pattern noise, 8-bit quantisation.

The mask holds the pixels where a target's own signal exceeds half its peak. Targets do not
touch each other, the clutter or the frame border, so each is one 8-connected component.

Every frame draws from ``np.random.default_rng([seed, split, index])``, so a dataset is
byte-identical for a seed whatever order or subset of frames is generated.

:class:`Difficulty` is calibrated so that a tuned white top-hat, with the best global or
per-frame ``mean + k·std`` threshold, stays far below what LRRNet learns in a short CPU run
(the ``demo`` config); the top-hat does worse on larger frames, because clutter scales with
the frame area and targets do not. The scores: docs/baselines.md, "Top-hat and IPI".
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from lrrnet.errors import DataError
from lrrnet.progress import Progress

logger = logging.getLogger(__name__)

GENERATOR_VERSION = 1
SPLITS = ("trainval", "test")
# Fixed PNG settings: the same pixels always give the same bytes.
PNG_PARAMS = [cv2.IMWRITE_PNG_COMPRESSION, 3]

# Targets per frame, as in the 427 SIRST v1 masks (8-connected components): 1 → 84 %,
# 2 → 11 %, 3 → 3 %, 4–7 → 2 %.
TARGET_COUNTS = np.array([1, 2, 3, 4, 5, 6, 7])
TARGET_COUNT_PROBS = np.array([0.84, 0.11, 0.03, 0.005, 0.005, 0.005, 0.005])
# Mask-area quantile function, interpolated in log-area: the 533 targets of the 427 SIRST v1
# masks have area percentiles 5/25/50/75/95 % = 7/14/20/39/107 px, max 330.
AREA_QUANTILES = np.array([0.0, 0.05, 0.25, 0.50, 0.75, 0.95, 1.0])
AREA_PIXELS = np.array([3.0, 7.0, 14.0, 20.0, 39.0, 107.0, 330.0])
# Clutter objects per 256×256 frame (Poisson means), scaled with the frame area.
REFERENCE_AREA = 256 * 256


@dataclass(frozen=True)
class Difficulty:
    """The knobs that set how hard the frames are; the defaults are the calibrated ones.

    Ranges are ``(low, high)``; SCRs are a peak amplitude over the local background
    standard deviation (sensor noise included); clutter rates are Poisson means per
    256×256 frame, scaled with the frame area.
    """

    target_scr: tuple[float, float] = (3.0, 10.0)  # log-uniform, most targets
    faint_fraction: float = 0.12
    faint_scr: tuple[float, float] = (2.0, 3.0)
    min_target_peak: float = 25.0  # grey levels; IR targets are hot in absolute terms too
    clutter_scr: tuple[float, float] = (2.0, 7.0)  # log-uniform
    edges: float = 0.5
    corners: float = 0.3
    elongated_blobs: float = 0.5
    large_blobs: float = 0.3
    hot_pixels: float = 0.2
    glints: float = 3.0  # on sea only
    buildings: float = 1.0  # on ground only
    cloud_contrast: tuple[float, float] = (3.0, 35.0)
    cloud_beta: tuple[float, float] = (3.0, 3.6)
    cloud_sharpness: tuple[float, float] = (0.5, 2.0)
    texture_contrast: tuple[float, float] = (0.3, 2.0)
    texture_beta: tuple[float, float] = (2.2, 2.8)
    horizon_prob: float = 0.4
    ridge_beta: tuple[float, float] = (2.2, 3.0)  # irregularity of the horizon line
    rim_prob: float = 0.3
    rim_contrast: tuple[float, float] = (5.0, 15.0)
    sea_prob: float = 0.5
    ground_contrast: tuple[float, float] = (2.0, 5.0)
    ground_beta: tuple[float, float] = (1.6, 2.2)
    sea_contrast: tuple[float, float] = (1.5, 5.0)
    noise_sigma: tuple[float, float] = (0.8, 2.5)


DEFAULT_DIFFICULTY = Difficulty()


@dataclass(frozen=True)
class _Box:
    """A window of the frame and the object's profile (values in [0, 1]) inside it."""

    rows: slice
    cols: slice
    profile: np.ndarray


def power_law_noise(
    rng: np.random.Generator, shape: tuple[int, int], beta: float, stretch: float = 1.0
) -> np.ndarray:
    """Zero-mean, unit-variance noise with power spectrum ``1 / f**beta``.

    Args:
        rng: source of the noise.
        shape: ``(height, width)``.
        beta: spectral exponent; about 2–3 for clouds, 1–1.5 for rough ground.
        stretch: >1 elongates structures horizontally (sea swell).
    """
    height, width = shape
    freq_y = np.fft.fftfreq(height)[:, None]
    freq_x = np.fft.rfftfreq(width)[None, :] * stretch
    radius = np.sqrt(freq_x**2 + freq_y**2)
    radius[0, 0] = np.inf  # no DC component: the mean is set by the caller
    amplitude = radius ** (-beta / 2.0)
    spectrum_shape = (height, width // 2 + 1)
    spectrum = amplitude * (
        rng.standard_normal(spectrum_shape) + 1j * rng.standard_normal(spectrum_shape)
    )
    field = np.fft.irfft2(spectrum, s=shape)
    return ((field - field.mean()) / (field.std() + 1e-12)).astype(np.float32)


def _window(shape: tuple[int, int], center_y: float, center_x: float, extent: float):
    top = max(0, int(math.floor(center_y - extent)))
    bottom = min(shape[0], int(math.ceil(center_y + extent)) + 1)
    left = max(0, int(math.floor(center_x - extent)))
    right = min(shape[1], int(math.ceil(center_x + extent)) + 1)
    rows, cols = np.mgrid[top:bottom, left:right].astype(np.float32)
    return slice(top, bottom), slice(left, right), rows - center_y, cols - center_x


def ellipse_profile(
    shape: tuple[int, int],
    center: tuple[float, float],
    semi_major: float,
    semi_minor: float,
    angle: float,
    power: float = 1.0,
) -> _Box:
    """A blob ``2 ** -(rho ** (2 * power))``, rho the elliptic radius in half-max units.

    ``power = 1`` is a Gaussian point-spread function; larger powers flatten the top (an
    extended target). The profile is exactly 0.5 on the ellipse with the given semi-axes,
    so the half-peak mask is that ellipse whatever the power.
    """
    extent = semi_major * (3.0 if power < 1.5 else 2.0) + 1.5
    rows, cols, dy, dx = _window(shape, center[0], center[1], extent)
    cos, sin = math.cos(angle), math.sin(angle)
    along = (dx * cos + dy * sin) / semi_major
    across = (-dx * sin + dy * cos) / semi_minor
    rho2 = along**2 + across**2
    return _Box(rows, cols, np.exp2(-(rho2**power)).astype(np.float32))


def segment_profile(
    shape: tuple[int, int], start: tuple[float, float], end: tuple[float, float], width: float
) -> _Box:
    """A line segment with a Gaussian cross-section of standard deviation ``width``."""
    (y0, x0), (y1, x1) = start, end
    center_y, center_x = (y0 + y1) / 2, (x0 + x1) / 2
    extent = math.hypot(y1 - y0, x1 - x0) / 2 + 3 * width + 1
    rows, cols, dy, dx = _window(shape, center_y, center_x, extent)
    dir_y, dir_x = y1 - center_y, x1 - center_x
    half_length2 = dir_y**2 + dir_x**2 + 1e-12
    # Position along the segment, clamped to it, gives the nearest point of the segment.
    t = np.clip((dy * dir_y + dx * dir_x) / half_length2, -1.0, 1.0)
    distance2 = (dy - t * dir_y) ** 2 + (dx - t * dir_x) ** 2
    return _Box(rows, cols, np.exp(-distance2 / (2 * width**2)).astype(np.float32))


def rectangle_profile(
    shape: tuple[int, int], center: tuple[float, float], height: float, width: float
) -> _Box:
    """A filled axis-aligned rectangle with soft edges (a building)."""
    rows, cols, dy, dx = _window(shape, center[0], center[1], max(height, width) / 2 + 2)
    # Logistic edges about half a pixel wide: the rectangle is 0.5 on its outline.
    inside_y = 1 / (1 + np.exp(-(height / 2 - np.abs(dy)) / 0.4))
    inside_x = 1 / (1 + np.exp(-(width / 2 - np.abs(dx)) / 0.4))
    return _Box(rows, cols, (inside_y * inside_x).astype(np.float32))


def _add(canvas: np.ndarray, occupied: np.ndarray, box: _Box, amplitude: float) -> None:
    """Add an object to the canvas and mark where it is visible."""
    canvas[box.rows, box.cols] += amplitude * box.profile
    occupied[box.rows, box.cols] |= box.profile > 0.05


def _local_std(background: np.ndarray, center: tuple[float, float], radius: float) -> float:
    y, x = int(center[0]), int(center[1])
    r = int(max(8.0, radius))
    window = background[max(0, y - r) : y + r + 1, max(0, x - r) : x + r + 1]
    return float(window.std())


def _draw_area(rng: np.random.Generator) -> float:
    return float(np.exp(np.interp(rng.random(), AREA_QUANTILES, np.log(AREA_PIXELS))))


def _log_uniform(rng: np.random.Generator, low_high: tuple[float, float]) -> float:
    return float(np.exp(rng.uniform(math.log(low_high[0]), math.log(low_high[1]))))


def _draw_scr(rng: np.random.Generator, difficulty: Difficulty) -> float:
    # Most targets clearly visible in their neighbourhood, some faint.
    if rng.random() < difficulty.faint_fraction:
        return float(rng.uniform(*difficulty.faint_scr))
    return _log_uniform(rng, difficulty.target_scr)


def _render_background(
    rng: np.random.Generator, shape: tuple[int, int], difficulty: Difficulty
) -> tuple[np.ndarray, np.ndarray, bool]:
    """Sky, clouds and an optional horizon with ground or sea, in grey levels.

    Returns:
        ``(background, surface, is_sea)``: the ``H×W`` background, the ``H×W`` bool map
        of the ground or sea below the horizon, and whether that surface is sea.
    """
    height, width = shape
    rows = np.linspace(-0.5, 0.5, height, dtype=np.float32)[:, None]
    cols = np.linspace(-0.5, 0.5, width, dtype=np.float32)[None, :]
    sky = (
        rng.uniform(50, 120)
        + rng.uniform(-30, 30) * rows
        + rng.uniform(-12, 12) * cols
        - rng.uniform(0, 15) * (rows**2 + cols**2) * 2  # vignetting
    )
    cover = power_law_noise(rng, shape, beta=rng.uniform(*difficulty.cloud_beta))
    sharpness = rng.uniform(*difficulty.cloud_sharpness)
    threshold = rng.uniform(-0.6, 1.2)
    clouds = rng.uniform(*difficulty.cloud_contrast) / (
        1 + np.exp(-sharpness * (cover - threshold))
    )
    texture = rng.uniform(*difficulty.texture_contrast) * power_law_noise(
        rng, shape, beta=rng.uniform(*difficulty.texture_beta)
    )
    background = sky + clouds + texture

    if rng.random() < difficulty.horizon_prob:
        # Horizon: a tilted, irregular line; everything below it is ground or sea.
        horizon_row = rng.uniform(0.55, 0.9) * height
        tilt = rng.uniform(-0.08, 0.08)
        ridge = (
            rng.uniform(0, 0.03 * height)
            * power_law_noise(rng, (1, width), beta=rng.uniform(*difficulty.ridge_beta))[0]
        )
        boundary = horizon_row + tilt * (np.arange(width) - width / 2) + ridge
        depth = np.arange(height, dtype=np.float32)[:, None] - boundary[None, :]
        below = 1 / (1 + np.exp(-np.clip(depth / 0.7, -50, 50)))
        is_sea = rng.random() < difficulty.sea_prob
        if is_sea:
            surface = rng.uniform(-15, 20) + rng.uniform(
                *difficulty.sea_contrast
            ) * power_law_noise(rng, shape, beta=1.6, stretch=rng.uniform(3, 6))
        else:
            surface = rng.uniform(-10, 45) + rng.uniform(
                *difficulty.ground_contrast
            ) * power_law_noise(rng, shape, beta=rng.uniform(*difficulty.ground_beta))
        background = background + below * (surface + (sky.mean() - background))
        if rng.random() < difficulty.rim_prob:
            # A warm rim along the horizon: a thin bright line over the whole width.
            rim = np.exp(-(depth**2) / (2 * rng.uniform(0.6, 1.4) ** 2))
            background = background + rng.uniform(*difficulty.rim_contrast) * rim
        return background.astype(np.float32), below > 0.5, is_sea
    return background.astype(np.float32), np.zeros(shape, bool), False


def _random_point(rng: np.random.Generator, shape: tuple[int, int], margin: float):
    return (
        rng.uniform(margin, shape[0] - margin),
        rng.uniform(margin, shape[1] - margin),
    )


def _render_clutter(
    rng: np.random.Generator,
    background: np.ndarray,
    surface: np.ndarray,
    is_sea: bool,
    noise_sigma: float,
    difficulty: Difficulty,
) -> tuple[np.ndarray, np.ndarray]:
    """Bright non-target structures; returns the clutter layer and where it is visible."""
    shape = background.shape
    scale = shape[0] * shape[1] / REFERENCE_AREA
    clutter = np.zeros(shape, np.float32)
    occupied = np.zeros(shape, bool)

    def amplitude(center: tuple[float, float], radius: float) -> float:
        local = math.hypot(_local_std(background, center, 3 * radius), noise_sigma)
        return _log_uniform(rng, difficulty.clutter_scr) * local

    # Edges: thin bright segments.
    for _ in range(rng.poisson(difficulty.edges * scale)):
        length, angle = rng.uniform(10, 45), rng.uniform(0, math.pi)
        center = _random_point(rng, shape, 0)
        offset = (length / 2 * math.sin(angle), length / 2 * math.cos(angle))
        start = (center[0] - offset[0], center[1] - offset[1])
        end = (center[0] + offset[0], center[1] + offset[1])
        box = segment_profile(shape, start, end, rng.uniform(0.5, 1.3))
        _add(clutter, occupied, box, amplitude(center, length / 2))
    # Corners: two edges meeting at about 90°.
    for _ in range(rng.poisson(difficulty.corners * scale)):
        corner = _random_point(rng, shape, 0)
        angle = rng.uniform(0, 2 * math.pi)
        width, level = rng.uniform(0.5, 1.2), amplitude(corner, 10)
        for turn in (0.0, rng.uniform(0.4, 0.6) * math.pi):
            length = rng.uniform(7, 20)
            end = (
                corner[0] + length * math.sin(angle + turn),
                corner[1] + length * math.cos(angle + turn),
            )
            _add(clutter, occupied, segment_profile(shape, corner, end, width), level)
    # Elongated blobs (aspect 3.5–8), unlike the rounder targets (aspect <= 2.5).
    for _ in range(rng.poisson(difficulty.elongated_blobs * scale)):
        semi_major = rng.uniform(4, 12)
        center = _random_point(rng, shape, 0)
        box = ellipse_profile(
            shape,
            center,
            semi_major,
            semi_major / rng.uniform(3.5, 8),
            rng.uniform(0, math.pi),
            power=rng.uniform(1.0, 2.0),
        )
        _add(clutter, occupied, box, amplitude(center, semi_major))
    # Large blobs, bigger than most targets (warm patches, sunlit cloud fragments).
    for _ in range(rng.poisson(difficulty.large_blobs * scale)):
        radius = rng.uniform(8, 16)
        center = _random_point(rng, shape, 0)
        box = ellipse_profile(
            shape, center, radius, radius / rng.uniform(1, 1.6), rng.uniform(0, math.pi)
        )
        _add(clutter, occupied, box, 0.6 * amplitude(center, radius))
    # Hot pixels: single defective sensor elements.
    for _ in range(rng.poisson(difficulty.hot_pixels * scale)):
        row, col = rng.integers(0, shape[0]), rng.integers(0, shape[1])
        clutter[row, col] += rng.uniform(20, 80)
        occupied[row, col] = True

    surface_rows, surface_cols = np.nonzero(surface)
    if surface_rows.size:
        if is_sea:
            # Glints: one-pixel-high horizontal streaks on the water.
            for _ in range(rng.poisson(difficulty.glints * scale)):
                pick = rng.integers(surface_rows.size)
                center = (float(surface_rows[pick]), float(surface_cols[pick]))
                half = rng.uniform(2.5, 7)
                box = segment_profile(
                    shape, (center[0], center[1] - half), (center[0], center[1] + half), 0.45
                )
                _add(clutter, occupied, box, amplitude(center, half))
        else:
            # Buildings: bright rectangles on the ground.
            for _ in range(rng.poisson(difficulty.buildings * scale)):
                pick = rng.integers(surface_rows.size)
                rect_h, rect_w = rng.uniform(5, 22, size=2)
                # Standing on the picked ground point.
                center = (float(surface_rows[pick]) - rect_h / 2, float(surface_cols[pick]))
                box = rectangle_profile(shape, center, rect_h, rect_w)
                _add(clutter, occupied, box, 0.7 * amplitude(center, 8))
    return clutter, occupied


def _target_count(rng: np.random.Generator) -> int:
    return int(rng.choice(TARGET_COUNTS, p=TARGET_COUNT_PROBS))


def _render_targets(
    rng: np.random.Generator,
    scene: np.ndarray,
    occupied: np.ndarray,
    noise_sigma: float,
    difficulty: Difficulty,
) -> tuple[np.ndarray, np.ndarray]:
    """Targets placed away from clutter, borders and each other; returns (signal, mask)."""
    shape = scene.shape
    signal = np.zeros(shape, np.float32)
    mask = np.zeros(shape, bool)
    blocked = occupied.copy()
    for _ in range(_target_count(rng)):
        area = _draw_area(rng)
        extended = rng.random() < 0.4
        aspect = rng.uniform(1.0, 2.5) if extended else rng.uniform(1.0, 1.4)
        radius = math.sqrt(area / math.pi)
        semi_major, semi_minor = radius * math.sqrt(aspect), radius / math.sqrt(aspect)
        power = rng.uniform(1.5, 3.0) if extended else 1.0
        # A small frame shrinks the largest targets instead of dropping them.
        shrink = min(1.0, (min(shape) / 2 - 4) / (2 * semi_major))
        semi_major, semi_minor = semi_major * shrink, semi_minor * shrink
        margin = 2 * semi_major + 3
        # Distance from every free pixel to the nearest blocked one: a centre is allowed
        # where the target's tails stay clear of clutter and earlier targets.
        free = cv2.distanceTransform((~blocked).astype(np.uint8), cv2.DIST_L2, 3)
        center = None
        for _ in range(60):
            candidate = _random_point(rng, shape, margin)
            if free[int(candidate[0]), int(candidate[1])] > margin:
                center = candidate
                break
        if center is None:
            continue
        box = ellipse_profile(shape, center, semi_major, semi_minor, rng.uniform(0, math.pi), power)
        local = math.hypot(_local_std(scene, center, 3 * semi_major), noise_sigma)
        headroom = 250.0 - float(scene[box.rows, box.cols].max())
        contrast = max(_draw_scr(rng, difficulty) * local, difficulty.min_target_peak)
        peak = min(contrast, max(headroom, 3 * noise_sigma))
        signal[box.rows, box.cols] += peak * box.profile
        mask[box.rows, box.cols] |= box.profile > 0.5
        # Later targets keep clear of this one's tails too, so masks never merge.
        blocked[box.rows, box.cols] |= box.profile > 0.02
    return signal, mask


def generate_frame(
    rng: np.random.Generator,
    height: int,
    width: int,
    difficulty: Difficulty = DEFAULT_DIFFICULTY,
) -> tuple[np.ndarray, np.ndarray]:
    """Render one synthetic infrared frame and its target mask.

    Args:
        rng: the frame's random generator (everything is drawn from it).
        height: frame height in pixels (at least 32).
        width: frame width in pixels (at least 32).
        difficulty: contrast and clutter settings.

    Returns:
        ``(image, mask)``: ``H×W`` uint8 frame and ``H×W`` uint8 mask with values 0 / 255.
    """
    check_frame_size(height, width)
    shape = (height, width)
    noise_sigma = float(rng.uniform(*difficulty.noise_sigma))
    background, surface, is_sea = _render_background(rng, shape, difficulty)
    clutter, occupied = _render_clutter(rng, background, surface, is_sea, noise_sigma, difficulty)
    scene = background + clutter
    signal, mask = _render_targets(rng, scene, occupied, noise_sigma, difficulty)
    sensor = (
        noise_sigma * rng.standard_normal(shape, dtype=np.float32)
        + rng.uniform(0, 1.2) * rng.standard_normal((1, width), dtype=np.float32)
        + rng.uniform(0, 0.5) * rng.standard_normal((height, 1), dtype=np.float32)
    )
    image = np.clip(np.rint(scene + signal + sensor), 0, 255).astype(np.uint8)
    return image, mask.astype(np.uint8) * 255


def parse_frame_size(size: int | tuple[int, int] | str) -> tuple[int, int]:
    if isinstance(size, str):
        parts = size.lower().split("x")
        try:
            values = [int(p) for p in parts]
        except ValueError:
            raise DataError(f"synthetic size {size!r}: expected S or HxW") from None
        size = values[0] if len(values) == 1 else tuple(values)
    if isinstance(size, int | np.integer):
        return int(size), int(size)
    if len(size) != 2:
        raise DataError(f"synthetic size {size!r}: expected S or (H, W)")
    return int(size[0]), int(size[1])


def check_frame_size(height: int, width: int) -> None:
    """Refuse a frame the generator cannot draw (targets, clutter and margins need 32 px)."""
    if height < 32 or width < 32:
        raise DataError(f"synthetic frame size {height}x{width}: both sides must be >= 32")


def frame_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The generator of frame ``index`` of ``split`` (``"trainval"`` or ``"test"``)."""
    return np.random.default_rng([seed, SPLITS.index(split), index])


def _entries(folder: Path) -> list[Path]:
    return list(folder.iterdir()) if folder.is_dir() and not folder.is_symlink() else [folder]


_FRAME_NAME = re.compile(r"[0-9]{6}\.png")


def not_a_synthetic_dataset(folder: str | Path) -> str | None:
    """None when ``folder`` is recognisably a dataset :func:`generate_dataset` wrote, else
    what says otherwise (for a message).

    It must hold this generator's ``synthetic.json`` and nothing else than
    ``{trainval,test}/{images,masks}/NNNNNN.png``: the only folders ``--overwrite`` may
    delete, so a user's folder given as ``--out`` by mistake is never removed.
    """
    folder = Path(folder)
    if folder.is_symlink() or not folder.is_dir():
        return "it is not a folder"
    record = folder / "synthetic.json"
    try:
        generator = json.loads(record.read_text()).get("generator")
    except (OSError, ValueError, AttributeError):
        generator = None
    if record.is_symlink() or generator != "lrrnet.data.synthetic":
        return f"{record} is missing or not this generator's"
    for entry in folder.iterdir():
        if entry.name == "synthetic.json":
            continue
        if entry.name not in SPLITS or entry.is_symlink() or not entry.is_dir():
            return f"it holds {entry}, which the generator does not write"
        for sub in entry.iterdir():
            if sub.name not in ("images", "masks") or sub.is_symlink() or not sub.is_dir():
                return f"it holds {sub}, which the generator does not write"
            for file in sub.iterdir():
                if not _FRAME_NAME.fullmatch(file.name) or file.is_symlink() or not file.is_file():
                    return f"it holds {file}, which the generator does not write"
    return None


def generate_dataset(
    out_dir: str | Path,
    num_train: int = 800,
    num_test: int = 200,
    size: int | tuple[int, int] | str = 256,
    seed: int = 0,
    progress: bool = True,
    overwrite: bool = False,
) -> Path:
    """Write a synthetic dataset in the split-folders layout.

    Writes ``OUT/{trainval,test}/{images,masks}/NNNNNN.png`` (test frames numbered after the
    training frames, so names are unique) and ``OUT/synthetic.json``
    (the parameters). Frames are written to ``OUT.partial`` and moved into place at the
    end, so an interrupted run never leaves a half dataset at ``OUT``.

    Args:
        out_dir: dataset folder to create.
        num_train: frames in ``trainval``.
        num_test: frames in ``test``.
        size: frame side, ``(height, width)`` or ``"HxW"``.
        seed: dataset seed; the same seed writes byte-identical files.
        progress: show progress (a bar on a terminal, a log line every 100 frames elsewhere).
        overwrite: replace an existing non-empty ``out_dir``, which must be a synthetic
            dataset of this generator (:func:`not_a_synthetic_dataset`); it is removed only
            once every argument is checked and the new frames are written.

    Returns:
        ``out_dir``.
    """
    out_dir = Path(out_dir)
    height, width = parse_frame_size(size)
    check_frame_size(height, width)
    for what, value in (("num_train", num_train), ("num_test", num_test), ("seed", seed)):
        if not isinstance(value, int | np.integer) or isinstance(value, bool):
            raise DataError(f"synthetic {what}={value!r}: expected an integer")
    if num_train < 1 or num_test < 1:
        raise DataError(f"{out_dir}: need at least one train and one test frame")
    if seed < 0:
        raise DataError(f"synthetic seed={seed}: expected an integer >= 0")
    replace = out_dir.is_symlink() or (out_dir.exists() and any(_entries(out_dir)))
    if replace:
        if not overwrite:
            raise DataError(f"{out_dir}: folder exists and is not empty")
        problem = not_a_synthetic_dataset(out_dir)
        if problem:
            raise DataError(
                f"{out_dir}: --overwrite replaces only a synthetic dataset of this project, and "
                f"{problem}; remove it yourself or choose another --out"
            )
    staging = out_dir.with_name(out_dir.name + ".partial")
    if staging.exists() or staging.is_symlink():
        problem = not_a_synthetic_dataset(staging) if any(_entries(staging)) else None
        if problem:
            raise DataError(
                f"{staging}: the staging folder of {out_dir} exists, and {problem}; "
                "remove it yourself or choose another --out"
            )
        shutil.rmtree(staging)
    counts = {"trainval": num_train, "test": num_test}
    logger.info(
        "generating %d + %d synthetic %dx%d frames (seed %d) in %s",
        num_train,
        num_test,
        height,
        width,
        seed,
        out_dir,
    )
    parameters = {
        "generator": "lrrnet.data.synthetic",
        "version": GENERATOR_VERSION,
        "seed": seed,
        "height": height,
        "width": width,
        "num_train": num_train,
        "num_test": num_test,
        "layout": "split_folders",
        "mask": "pixels where a target's signal exceeds half its peak (0/255)",
    }
    # First, so that an interrupted staging folder is recognisably this generator's.
    staging.mkdir(parents=True)
    (staging / "synthetic.json").write_text(json.dumps(parameters, indent=2) + "\n")
    bar = Progress(
        num_train + num_test, f"SIRST-Synth {height}x{width}", enabled=progress, unit="frame"
    )
    # Test frames are numbered after the training frames: a name identifies one frame.
    first_number = {"trainval": 0, "test": num_train}
    for split, count in counts.items():
        image_dir, mask_dir = staging / split / "images", staging / split / "masks"
        image_dir.mkdir(parents=True)
        mask_dir.mkdir(parents=True)
        for index in range(count):
            image, mask = generate_frame(frame_rng(seed, split, index), height, width)
            name = f"{first_number[split] + index:06d}.png"
            for folder, array in ((image_dir, image), (mask_dir, mask)):
                if not cv2.imwrite(str(folder / name), array, PNG_PARAMS):
                    raise DataError(f"{folder / name}: cannot write file")
            bar.update()
    bar.close()
    if replace:
        shutil.rmtree(out_dir)  # checked above to be an earlier synthetic dataset
    elif out_dir.exists():
        out_dir.rmdir()
    os.replace(staging, out_dir)
    logger.info("wrote %d + %d synthetic frames to %s", num_train, num_test, out_dir)
    return out_dir
