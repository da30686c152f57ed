"""Pictures of what the model sees: per-image panels, a sheet of the worst images, ROC plots.

A panel is one row of five tiles, each under its title::

    input | background D | target probability | detection p > t | ground truth

The ground-truth tile is the input in grey with the outcome of the Pd/Fa matching of
:func:`lrrnet.metrics.match_components` painted on it: matched targets GREEN, missed targets
RED, false-alarm components YELLOW, each filled and boxed so a 1-pixel target still shows.
Small frames are enlarged by an integer factor with nearest-neighbour sampling, so every
source pixel is a visible block. A legend line under the tiles gives the counts and the
image's IoU.

Drawing only: the frames come from :mod:`lrrnet.engine.panels` (a model run or saved maps),
the ROC curves from :func:`lrrnet.engine.scoring.read_roc` (folders scored by
``cal_from_mask.py``).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np

from lrrnet.charts import Axis, Chart, Series, fit_text, line_chart
from lrrnet.data.io import IMAGE_SUFFIXES
from lrrnet.errors import DataError
from lrrnet.files import atomic_path
from lrrnet.metrics import ImageMatch, match_components

# RGB colours of the matching outcome.
GREEN = (40, 220, 40)  # matched target
RED = (235, 30, 30)  # missed target
YELLOW = (255, 225, 0)  # false-alarm component
NA_GREY = (96, 96, 96)  # tile without data
BACKGROUND = (24, 24, 24)  # canvas between tiles
TEXT = (235, 235, 235)

TILE_TITLES = ("input", "background D", "target probability 0-1", "detection", "ground truth")
MIN_TILE = 256  # frames smaller than this (longer side, px) are enlarged by an integer factor
GAP = 6  # px between tiles and around the row
TITLE_HEIGHT = 24  # px of the title strip above the tiles
LEGEND_HEIGHT = 26  # px of the legend strip under the tiles
THUMB = 160  # px, longer side of a worst-sheet thumbnail
CAPTION_HEIGHT = 34  # px of the two caption lines under a thumbnail
BOX_PAD = 3  # px between a component and its box
# Beyond this many false alarms their boxes would hide the frame; the fill still shows them.
MAX_FALSE_ALARM_BOXES = 32

# The figures are written by OpenCV (save_png), in the formats it reads back as frames.
FIGURE_SUFFIXES = IMAGE_SUFFIXES

_FONT = cv2.FONT_HERSHEY_SIMPLEX
_FONT_SCALE = 0.45
_CODE_MATCHED, _CODE_MISSED, _CODE_FALSE_ALARM = 1, 2, 3
_PALETTE = np.array([(0, 0, 0), GREEN, RED, YELLOW], dtype=np.uint8)  # indexed by the codes


@dataclass(frozen=True)
class PanelLayout:
    """Where the tiles of a panel lie, for an ``H×W`` frame.

    Attributes:
        scale: integer enlargement, ``max(1, ceil(min_tile / max(H, W)))``.
        tile_height: ``H·scale``.
        tile_width: ``W·scale``.
    """

    scale: int
    tile_height: int
    tile_width: int

    @classmethod
    def for_frame(cls, height: int, width: int, min_tile: int = MIN_TILE) -> PanelLayout:
        scale = max(1, math.ceil(min_tile / max(height, width)))
        return cls(scale=scale, tile_height=height * scale, tile_width=width * scale)

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(TITLE_HEIGHT + tile_height + LEGEND_HEIGHT, 5·tile_width + 6·GAP, 3)``."""
        count = len(TILE_TITLES)
        return (
            TITLE_HEIGHT + self.tile_height + LEGEND_HEIGHT,
            count * self.tile_width + (count + 1) * GAP,
            3,
        )

    def tile_box(self, index: int) -> tuple[int, int, int, int]:
        """``(top, left, bottom, right)`` of tile ``index`` (0 = input … 4 = ground truth)."""
        left = GAP + index * (self.tile_width + GAP)
        return TITLE_HEIGHT, left, TITLE_HEIGHT + self.tile_height, left + self.tile_width


def detection_panel(
    image: np.ndarray,
    reconstruction: np.ndarray | None,
    target_prob: np.ndarray,
    mask: np.ndarray | None,
    threshold: float = 0.5,
    *,
    name: str | None = None,
    min_tile: int = MIN_TILE,
) -> np.ndarray:
    """Draw the five tiles of one frame (see the module docstring and :class:`PanelLayout`).

    Input and background share one grey scale, the input's minimum to maximum, so the two
    compare directly and dim infrared frames are readable.

    Args:
        image: ``H×W`` input in [0, 1].
        reconstruction: ``H×W`` background D, or None (a grey "n/a" tile).
        target_prob: ``H×W`` target probabilities in [0, 1].
        mask: ``H×W`` ground truth (non-zero is target), or None (a grey "n/a" tile).
        threshold: a pixel is detected when ``p > threshold`` (as in the metrics).
        name: shown at the start of the legend line.
        min_tile: frames whose longer side is below this are enlarged.

    Returns:
        ``PanelLayout.for_frame(H, W, min_tile).shape`` uint8 RGB.
    """
    image = np.asarray(image, dtype=np.float32)
    _check_same_shape(image, target_prob=target_prob, reconstruction=reconstruction, mask=mask)
    layout = PanelLayout.for_frame(*image.shape, min_tile=min_tile)
    target_prob = _clean_prob(target_prob)
    detection = target_prob > threshold
    match = match_components(detection, mask) if mask is not None else None
    gray = _display_gray(image, image)

    panel = np.empty(layout.shape, dtype=np.uint8)
    panel[:] = BACKGROUND
    tiles = [
        _enlarge(_rgb(gray), layout.scale),
        _enlarge(_rgb(_display_gray(reconstruction, image)), layout.scale)
        if reconstruction is not None
        else None,
        _enlarge(probability_colors(target_prob), layout.scale),
        _enlarge(_rgb(detection.astype(np.uint8) * 255), layout.scale),
        _overlay(gray, match, (layout.tile_height, layout.tile_width))
        if match is not None
        else None,
    ]
    titles = list(TILE_TITLES)
    titles[3] = f"detection p > {threshold:g}"
    for index, (tile, title) in enumerate(zip(tiles, titles, strict=True)):
        top, left, bottom, right = layout.tile_box(index)
        if tile is None:
            panel[top:bottom, left:right] = NA_GREY
            _put_text(panel, "n/a", (left + 8, top + 22), TEXT, right - left - 16)
            title += " (n/a)"
        else:
            panel[top:bottom, left:right] = tile
        _put_text(panel, title, (left + 2, TITLE_HEIGHT - 8), TEXT, right - left - 4)
    _draw_legend(panel, layout, match, name)
    return panel


def probability_colors(target_prob: np.ndarray) -> np.ndarray:
    """``H×W`` probabilities in [0, 1] → ``H×W×3`` uint8 RGB with matplotlib's 'inferno'."""
    levels = np.round(_clean_prob(target_prob) * 255).astype(np.uint8)
    return _inferno_table()[levels]


@dataclass(frozen=True)
class SheetEntry:
    """One image on the worst-images sheet.

    Attributes:
        name: image name.
        iou: the image's TP / (TP + FP + FN) (1 when target and prediction are both empty).
        thumbnail: ``h×w×3`` uint8 RGB, longer side :data:`THUMB`: the ground-truth tile.
    """

    name: str
    iou: float
    thumbnail: np.ndarray = field(repr=False)


def sheet_entry(
    name: str,
    image: np.ndarray,
    target_prob: np.ndarray,
    mask: np.ndarray,
    threshold: float = 0.5,
) -> SheetEntry:
    """The IoU and ground-truth thumbnail of one image (arguments as :func:`detection_panel`)."""
    image = np.asarray(image, dtype=np.float32)
    _check_same_shape(image, target_prob=target_prob, mask=mask)
    match = match_components(_clean_prob(target_prob) > threshold, mask)
    height, width = image.shape
    factor = THUMB / max(height, width)
    size = (max(1, round(height * factor)), max(1, round(width * factor)))
    return SheetEntry(name, match.iou, _overlay(_display_gray(image, image), match, size))


def worst_entries(entries: Iterable[SheetEntry], n: int = 16) -> list[SheetEntry]:
    """The ``n`` entries of lowest IoU, lowest first (equal IoUs by name)."""
    return sorted(entries, key=lambda entry: (entry.iou, entry.name))[:n]


def worst_images_sheet(entries: Iterable[SheetEntry], n: int = 16) -> np.ndarray:
    """A grid of the ``n`` lowest-IoU thumbnails, worst first, each captioned name and IoU.

    Returns:
        uint8 RGB; ``ceil(√k)`` columns of :data:`THUMB`-px cells for the ``k ≤ n`` shown.

    Raises:
        ValueError: no entries.
    """
    chosen = worst_entries(entries, n)
    if not chosen:
        raise ValueError("no images for the worst-images sheet")
    columns = math.ceil(math.sqrt(len(chosen)))
    rows = math.ceil(len(chosen) / columns)
    cell_height, cell_width = THUMB + CAPTION_HEIGHT, THUMB
    sheet = np.empty(
        (
            TITLE_HEIGHT + rows * cell_height + (rows + 1) * GAP,
            columns * cell_width + (columns + 1) * GAP,
            3,
        ),
        dtype=np.uint8,
    )
    sheet[:] = BACKGROUND
    _put_text(
        sheet,
        f"{len(chosen)} lowest per-image IoU (green matched, red missed, yellow false alarm)",
        (GAP, TITLE_HEIGHT - 6),
        TEXT,
        sheet.shape[1] - 2 * GAP,
    )
    for index, entry in enumerate(chosen):
        row, column = divmod(index, columns)
        top = TITLE_HEIGHT + GAP + row * (cell_height + GAP)
        left = GAP + column * (cell_width + GAP)
        thumb_height, thumb_width = entry.thumbnail.shape[:2]
        # Frames need not be square: centred across the cell, captioned right under.
        x0 = left + (THUMB - thumb_width) // 2
        sheet[top : top + thumb_height, x0 : x0 + thumb_width] = entry.thumbnail
        caption = top + thumb_height
        _put_text(sheet, entry.name, (left, caption + 14), TEXT, cell_width)
        _put_text(sheet, f"IoU {entry.iou:.3f}", (left, caption + 30), TEXT, cell_width)
    return sheet


class RocCurve(NamedTuple):
    """One ROC curve: FPR and TPR at the 201 thresholds, and its AUC."""

    label: str
    fpr: np.ndarray
    tpr: np.ndarray
    auc: float


def roc_plot(
    curves: Sequence[RocCurve | tuple[str, np.ndarray, np.ndarray, float]],
    path: str | Path,
    *,
    log_fpr: bool = False,
) -> Path:
    """Plot several ROC curves on one pair of axes and save the figure.

    Args:
        curves: ``(label, fpr, tpr, auc)`` each; the AUC goes into the legend.
        path: the PNG file to write.
        log_fpr: logarithmic FPR axis, which shows the low false-alarm end where detectors
            differ; points at FPR 0 cannot be drawn on it and are left out.

    Returns:
        ``path``.
    """
    return save_png(path, roc_chart(curves, log_fpr).image)


def roc_chart(
    curves: Sequence[RocCurve | tuple[str, np.ndarray, np.ndarray, float]], log_fpr: bool = False
) -> Chart:
    """The chart of :func:`roc_plot`."""
    series = []
    for label, fpr, tpr, auc in curves:
        fpr, tpr = np.asarray(fpr, dtype=np.float64), np.asarray(tpr, dtype=np.float64)
        order = np.lexsort((tpr, fpr))  # the walk of decreasing threshold, as the AUC takes it
        legend = f"{label} (AUC {auc:.4f})" if not math.isnan(auc) else label
        series.append(Series(legend, fpr[order], tpr[order]))
    fpr_label = "false positive rate (pixels)" + (", log scale" if log_fpr else "")
    return line_chart(
        series,
        Axis(fpr_label, log=log_fpr),
        Axis("true positive rate (targets)", limits=(-0.02, 1.02)),
    )


def pd_fa_plot(
    curves: Sequence[tuple[str, Sequence[Mapping[str, float]]]], path: str | Path
) -> Path:
    """Plot Pd against Fa (log scale) over thresholds, one line per result, and save it.

    Args:
        curves: ``(label, rows)`` each; rows are a ``pd_fa_curve`` (``threshold``, ``pd``,
            ``fa`` …). Points with Fa = 0 cannot be drawn on the log axis and are left out;
            the thresholds 0.1, 0.5 and 0.9 are labelled.
        path: the PNG file to write.

    Returns:
        ``path``.
    """
    return save_png(path, pd_fa_chart(curves).image)


def pd_fa_chart(curves: Sequence[tuple[str, Sequence[Mapping[str, float]]]]) -> Chart:
    """The chart of :func:`pd_fa_plot`: Fa in units of 10⁻⁶, Pd in percent."""
    series = []
    for label, rows in curves:
        fa = np.array([row["fa"] * 1e6 for row in rows], dtype=np.float64)
        pd = np.array([row["pd"] * 100 for row in rows], dtype=np.float64)
        notes = tuple(
            (fa[index], pd[index], f"{row['threshold']:g}")
            for index, row in enumerate(rows)
            if any(math.isclose(row["threshold"], t) for t in (0.1, 0.5, 0.9))
        )
        series.append(Series(label, fa, pd, notes))
    return line_chart(series, Axis("Fa (x 1e-6), log scale", log=True), Axis("Pd (%)"))


def roc_and_pd_fa_plot(
    roc_curves: Sequence[RocCurve | tuple[str, np.ndarray, np.ndarray, float]],
    pd_fa_curves: Sequence[tuple[str, Sequence[Mapping[str, float]]]],
    path: str | Path,
) -> Path:
    """The ROC curves (:func:`roc_plot`) and the Pd–Fa curves (:func:`pd_fa_plot`) of
    several results side by side in one figure, saved to ``path``."""
    pair = (roc_chart(roc_curves).image, pd_fa_chart(pd_fa_curves).image)
    return save_png(path, np.hstack(pair))


def save_figure(figure, path: str | Path) -> Path:
    """Lay out a Matplotlib ``Figure`` (``tight_layout``) and write it to ``path``.

    Args:
        figure: the figure.
        path: the file; its suffix picks the format.
    """
    figure.tight_layout()
    path = Path(path)
    with atomic_path(path) as temp:
        figure.savefig(temp, format=path.suffix.lstrip(".") or None)
    return path


def save_png(path: str | Path, rgb: np.ndarray) -> Path:
    """Write an ``H×W×3`` uint8 RGB array as a PNG; a failure names the file."""
    path = Path(path)
    with atomic_path(path) as temp:
        if not cv2.imwrite(str(temp), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
            raise DataError(f"{path}: cannot write image")
    return path


def _check_same_shape(image: np.ndarray, **maps: np.ndarray | None) -> None:
    if image.ndim != 2:
        raise ValueError(f"image must be H×W, got shape {image.shape}")
    for what, array in maps.items():
        if array is not None and np.shape(array) != image.shape:
            raise ValueError(f"{what} shape {np.shape(array)} != image shape {image.shape}")


def _clean_prob(target_prob: np.ndarray) -> np.ndarray:
    return np.clip(np.nan_to_num(np.asarray(target_prob, dtype=np.float32)), 0.0, 1.0)


def _display_gray(values: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """``values`` as uint8 grey, stretched from ``reference``'s minimum to its maximum."""
    low, high = float(np.min(reference)), float(np.max(reference))
    if high - low < 1e-6:  # a flat frame: show the values as they are
        low, high = 0.0, 1.0
    scaled = (np.asarray(values, dtype=np.float32) - low) / (high - low)
    return np.round(np.clip(scaled, 0.0, 1.0) * 255).astype(np.uint8)


def _rgb(gray: np.ndarray) -> np.ndarray:
    return np.repeat(gray[:, :, None], 3, axis=2)


def _enlarge(tile: np.ndarray, scale: int) -> np.ndarray:
    return tile if scale == 1 else np.repeat(np.repeat(tile, scale, axis=0), scale, axis=1)


@functools.cache
def _inferno_table() -> np.ndarray:
    from matplotlib import colormaps

    return np.round(colormaps["inferno"](np.linspace(0.0, 1.0, 256))[:, :3] * 255).astype(np.uint8)


def _overlay(gray: np.ndarray, match: ImageMatch, size: tuple[int, int]) -> np.ndarray:
    """The grey frame at ``size`` (h, w) with targets and false alarms filled and boxed.

    Fills are drawn at the frame's pixels (nearest-neighbour, so at a reduced size a tiny
    component may lose its fill); boxes are drawn at least a few pixels wide, so every
    component stays visible at any size (false alarms only up to
    :data:`MAX_FALSE_ALARM_BOXES`).
    """
    height, width = gray.shape
    codes = np.zeros(gray.shape, dtype=np.uint8)
    # False alarms first: where one overlaps a target pixel, the target's colour wins.
    codes[np.isin(match.predicted.labels, match.false_alarms) & (match.predicted.labels > 0)] = (
        _CODE_FALSE_ALARM
    )
    matched_ids = [target_id for target_id, _ in match.matched]
    target_labels = match.targets.labels
    codes[np.isin(target_labels, matched_ids) & (target_labels > 0)] = _CODE_MATCHED
    codes[np.isin(target_labels, match.missed_targets) & (target_labels > 0)] = _CODE_MISSED

    out_height, out_width = size
    shrink = out_height < height or out_width < width
    gray = cv2.resize(
        gray,
        (out_width, out_height),
        interpolation=cv2.INTER_AREA if shrink else cv2.INTER_NEAREST,
    )
    codes = cv2.resize(codes, (out_width, out_height), interpolation=cv2.INTER_NEAREST)
    tile = _rgb(gray)
    tile[codes > 0] = _PALETTE[codes[codes > 0]]

    scale_y, scale_x = out_height / height, out_width / width
    thickness = 1 if min(scale_x, scale_y) < 2 else 2
    boxes = [(match.targets.labels, target_id, GREEN) for target_id in matched_ids]
    boxes += [(match.targets.labels, target_id, RED) for target_id in match.missed_targets]
    if len(match.false_alarms) <= MAX_FALSE_ALARM_BOXES:
        boxes += [(match.predicted.labels, pred_id, YELLOW) for pred_id in match.false_alarms]
    import scipy.ndimage  # here: the report plots, which scoring imports this module for, need none

    objects = {
        id(match.targets.labels): scipy.ndimage.find_objects(match.targets.labels),
        id(match.predicted.labels): scipy.ndimage.find_objects(match.predicted.labels),
    }
    for labels, label_id, color in boxes:
        rows, cols = objects[id(labels)][label_id - 1]
        top_left = (
            math.floor(cols.start * scale_x) - BOX_PAD - thickness,
            math.floor(rows.start * scale_y) - BOX_PAD - thickness,
        )
        bottom_right = (
            math.ceil(cols.stop * scale_x) - 1 + BOX_PAD + thickness,
            math.ceil(rows.stop * scale_y) - 1 + BOX_PAD + thickness,
        )
        cv2.rectangle(tile, top_left, bottom_right, color, thickness)
    return tile


def _put_text(
    canvas: np.ndarray,
    text: str,
    origin: tuple[int, int],
    color: tuple[int, int, int],
    max_width: int,
) -> int:
    """Write ``text`` with its baseline at ``origin`` (x, y), cut to ``max_width`` px.

    Returns:
        The x just after the text.
    """
    text = fit_text(text, max_width, _FONT_SCALE)
    width = cv2.getTextSize(text, _FONT, _FONT_SCALE, 1)[0][0] if text else 0
    if text:
        cv2.putText(canvas, text, origin, _FONT, _FONT_SCALE, color, 1, cv2.LINE_AA)
    return origin[0] + width


def _draw_legend(
    panel: np.ndarray, layout: PanelLayout, match: ImageMatch | None, name: str | None
) -> None:
    """Name, then coloured counts of matched / missed / false alarms, and the image's IoU."""
    baseline = layout.shape[0] - 8
    right = layout.shape[1] - GAP
    x = GAP
    if name:
        x = _put_text(panel, name, (x, baseline), TEXT, (right - x) // 3) + 16
    if match is None:
        _put_text(panel, "no ground truth", (x, baseline), TEXT, right - x)
        return
    for color, text in (
        (GREEN, f"matched {len(match.matched)}/{match.targets.count}"),
        (RED, f"missed {len(match.missed_targets)}"),
        (YELLOW, f"false alarms {len(match.false_alarms)} ({match.fa_pixels} px)"),
    ):
        if right - x < 40:
            return
        cv2.rectangle(panel, (x, baseline - 10), (x + 10, baseline), color, cv2.FILLED)
        x = _put_text(panel, text, (x + 15, baseline), TEXT, right - x - 15) + 16
    _put_text(panel, f"IoU {match.iou:.3f}", (x, baseline), TEXT, right - x)
