"""Line charts drawn with OpenCV: the ROC and Pd–Fa figures of every scoring.

Every ``cal_from_mask.py`` run draws two small line charts. Importing Matplotlib alone
costs more than scoring a hundred 512×512 frames, so these charts are drawn here with the
OpenCV that reading the frames needs anyway: axes with round-number ticks (linear, or
logarithmic by decades), a light grid, one antialiased line with dot markers per series,
labelled points and a legend. Text is OpenCV's Hershey font, which draws ASCII only: any
other character becomes ``?``.

:func:`line_chart` returns a :class:`Chart`: the RGB image and the mapping from data to
pixels (what tests check the drawing against). The figures themselves are made in
:mod:`lrrnet.visualize`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

# Series colours, RGB, in order: the ten of Matplotlib's default cycle, so a chart here and
# a Matplotlib figure of the same curves colour them alike.
PALETTE = (
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
)
WHITE = (255, 255, 255)
INK = (30, 30, 30)  # frame, ticks, text
GRID = (222, 222, 222)
MINOR_GRID = (240, 240, 240)
LEGEND_BORDER = (200, 200, 200)

_FONT = cv2.FONT_HERSHEY_SIMPLEX
_TICK_SCALE = 0.42  # tick labels, notes and the legend
_LABEL_SCALE = 0.48  # axis labels
_SHIFT = 4  # fractional bits of the drawing coordinates: lines land to 1/16 px
_MARGIN = 0.05  # each side of the data range, as a fraction of it (Matplotlib's default)
_PAD = 8  # px between the canvas edge, the labels and the frame


@dataclass(frozen=True)
class Axis:
    """One axis: its label, linear or logarithmic, and its range (the data's when None)."""

    label: str
    log: bool = False
    limits: tuple[float, float] | None = None


@dataclass(frozen=True)
class Series:
    """One line: ``x`` and ``y`` of equal length, and points labelled with a short text.

    Points that an axis cannot show (not finite, or not positive on a log axis) are left
    out, and the line breaks there.
    """

    label: str
    x: np.ndarray
    y: np.ndarray
    notes: tuple[tuple[float, float, str], ...] = ()


@dataclass(frozen=True)
class Chart:
    """A drawn chart: ``image`` (``H×W×3`` uint8 RGB) and where its plot area lies.

    Attributes:
        box: ``(left, top, right, bottom)`` pixel edges of the plot area.
        x_limits: the data range across the plot area, in data units.
        y_limits: the same, bottom to top.
    """

    image: np.ndarray
    box: tuple[int, int, int, int]
    x_axis: Axis
    y_axis: Axis
    x_limits: tuple[float, float]
    y_limits: tuple[float, float]

    def to_pixel(self, x: np.ndarray | float, y: np.ndarray | float) -> np.ndarray:
        """``(..., 2)`` float (column, row) pixel positions of data points."""
        left, top, right, bottom = self.box
        column = left + _fraction(x, self.x_limits, self.x_axis.log) * (right - left)
        row = bottom - _fraction(y, self.y_limits, self.y_axis.log) * (bottom - top)
        return np.stack(np.broadcast_arrays(column, row), axis=-1)


def line_chart(
    series: Sequence[Series],
    x_axis: Axis,
    y_axis: Axis,
    size: tuple[int, int] = (660, 540),
) -> Chart:
    """Draw ``series`` on one pair of axes.

    Args:
        series: the lines, coloured from :data:`PALETTE` in order.
        x_axis: the horizontal axis.
        y_axis: the vertical axis.
        size: ``(width, height)`` of the image in pixels.

    Returns:
        The chart.
    """
    width, height = size
    shown = [_shown(one, x_axis, y_axis) for one in series]
    x_limits = _limits(x_axis, [x for x, _ in shown])
    y_limits = _limits(y_axis, [y for _, y in shown])
    x_ticks, x_minor = _ticks(x_limits, x_axis.log)
    y_ticks, y_minor = _ticks(y_limits, y_axis.log)
    x_labels = _tick_labels(x_ticks, x_axis.log)
    y_labels = _tick_labels(y_ticks, y_axis.log)

    text_height = _text_size("0", _TICK_SCALE)[1]
    label_height = _text_size("Ag", _LABEL_SCALE)[1]
    widest = max((_text_size(text, _TICK_SCALE)[0] for text in y_labels), default=0)
    left = _PAD + label_height + 2 * _PAD + widest
    bottom = height - (_PAD + label_height + 2 * _PAD + text_height)
    top = _PAD + text_height // 2
    right = width - _PAD - (_text_size(x_labels[-1], _TICK_SCALE)[0] // 2 if x_labels else 0)
    if right - left < 40 or bottom - top < 40:
        raise ValueError(f"a chart of {width}×{height} px has no room for its plot area")

    image = np.full((height, width, 3), WHITE, np.uint8)
    chart = Chart(image, (left, top, right, bottom), x_axis, y_axis, x_limits, y_limits)
    # The plot area is drawn on its own canvas, whose edges clip the lines.
    plot = np.full((bottom - top + 1, right - left + 1, 3), WHITE, np.uint8)
    origin = np.array([left, top])
    _draw_grid(plot, chart.to_pixel(x_minor, y_limits[0])[:, 0] - left, None, MINOR_GRID)
    _draw_grid(plot, None, chart.to_pixel(x_limits[0], y_minor)[:, 1] - top, MINOR_GRID)
    _draw_grid(plot, chart.to_pixel(x_ticks, y_limits[0])[:, 0] - left, None, GRID)
    _draw_grid(plot, None, chart.to_pixel(x_limits[0], y_ticks)[:, 1] - top, GRID)
    for index, (one, (x, y)) in enumerate(zip(series, shown, strict=True)):
        _draw_line(plot, chart.to_pixel(x, y) - origin, PALETTE[index % len(PALETTE)])
        for x_note, y_note, text in one.notes:
            if _usable(np.array([x_note, y_note]), np.array([x_axis.log, y_axis.log])).all():
                column, row = chart.to_pixel(x_note, y_note) - origin
                _text(plot, text, (round(column) + 4, round(row) + 12), _TICK_SCALE)
    _draw_legend(plot, [one.label for one in series])
    image[top : bottom + 1, left : right + 1] = plot
    cv2.rectangle(image, (left, top), (right, bottom), INK, 1)

    for tick, text in zip(chart.to_pixel(x_ticks, y_limits[0])[:, 0], x_labels, strict=True):
        column = round(tick)
        cv2.line(image, (column, bottom), (column, bottom + 4), INK, 1)
        text_width = _text_size(text, _TICK_SCALE)[0]
        _text(image, text, (column - text_width // 2, bottom + _PAD + text_height), _TICK_SCALE)
    for tick, text in zip(chart.to_pixel(x_limits[0], y_ticks)[:, 1], y_labels, strict=True):
        row = round(tick)
        cv2.line(image, (left - 4, row), (left, row), INK, 1)
        text_width = _text_size(text, _TICK_SCALE)[0]
        _text(image, text, (left - _PAD - text_width, row + text_height // 2), _TICK_SCALE)
    label_width = _text_size(x_axis.label, _LABEL_SCALE)[0]
    _text(image, x_axis.label, ((left + right - label_width) // 2, height - _PAD), _LABEL_SCALE)
    _vertical_text(image, y_axis.label, _PAD, (top + bottom) // 2)
    return chart


def _fraction(values: np.ndarray | float, limits: tuple[float, float], log: bool) -> np.ndarray:
    """Where ``values`` lie between ``limits``: 0 at the first, 1 at the second."""
    values = np.asarray(values, dtype=np.float64)
    low, high = limits
    if log:
        with np.errstate(divide="ignore", invalid="ignore"):
            return (np.log10(values) - math.log10(low)) / (math.log10(high) - math.log10(low))
    return (values - low) / (high - low)


def _usable(values: np.ndarray, log: bool | np.ndarray) -> np.ndarray:
    """Where ``values`` can be drawn: finite, and positive on a log axis."""
    return np.isfinite(values) & ((values > 0) | ~np.asarray(log))


def _shown(one: Series, x_axis: Axis, y_axis: Axis) -> tuple[np.ndarray, np.ndarray]:
    """The series' coordinates, NaN where an axis cannot show the point."""
    x = np.asarray(one.x, dtype=np.float64).ravel()
    y = np.asarray(one.y, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"series {one.label!r}: {x.size} x values but {y.size} y values")
    usable = _usable(x, x_axis.log) & _usable(y, y_axis.log)
    return np.where(usable, x, np.nan), np.where(usable, y, np.nan)


def _limits(axis: Axis, columns: list[np.ndarray]) -> tuple[float, float]:
    """The axis range: as given, or the data's with a margin each side."""
    if axis.limits is not None:
        low, high = (float(value) for value in axis.limits)
        if not (math.isfinite(low) and math.isfinite(high) and low < high):
            raise ValueError(f"axis {axis.label!r}: limits {axis.limits} are not increasing")
        if axis.log and low <= 0:
            raise ValueError(f"axis {axis.label!r}: a log axis needs positive limits")
        return low, high
    values = np.concatenate([column[np.isfinite(column)] for column in columns] + [np.zeros(0)])
    if not len(values):
        return (1.0, 10.0) if axis.log else (0.0, 1.0)
    low, high = float(values.min()), float(values.max())
    if axis.log:
        low, high = math.log10(low), math.log10(high)
    if high > low:
        low, high = low - _MARGIN * (high - low), high + _MARGIN * (high - low)
    else:  # one value: a decade each side, or a tenth of it (at least 1)
        half = 1.0 if axis.log else max(abs(low) / 10, 1.0)
        low, high = low - half, high + half
    return (10.0**low, 10.0**high) if axis.log else (low, high)


def _ticks(limits: tuple[float, float], log: bool) -> tuple[np.ndarray, np.ndarray]:
    """Major ticks (labelled) and minor ticks (grid only) inside ``limits``."""
    low, high = limits
    if log:
        first, last = math.floor(math.log10(low)), math.ceil(math.log10(high))
        decades = 10.0 ** np.arange(first, last + 1)
        every = (decades[:, None] * np.arange(1, 10)).ravel()
        # Decades labelled; within about one decade 2 and 5 of each too, then every digit.
        for digits in ((1,), (1, 2, 5), tuple(range(1, 10))):
            major = _inside((decades[:, None] * np.array(digits)).ravel(), limits)
            if len(major) >= 2:
                return major, _inside(every[~np.isin(every, major)], limits)
    step = nice_step((high - low) / 7)  # 5 to 8 labelled ticks
    first = math.ceil(low / step - 1e-9)
    major = step * np.arange(first, math.floor(high / step + 1e-9) + 1)
    return major, np.zeros(0)


def _inside(ticks: np.ndarray, limits: tuple[float, float]) -> np.ndarray:
    low, high = limits
    return ticks[(ticks >= low * (1 - 1e-9)) & (ticks <= high * (1 + 1e-9))]


def nice_step(raw: float) -> float:
    """The smallest round number (1, 2, 2.5 or 5 times a power of ten) at or above ``raw`` > 0."""
    power = 10.0 ** math.floor(math.log10(raw))
    for factor in (1.0, 2.0, 2.5, 5.0):
        if raw <= factor * power * (1 + 1e-9):
            return factor * power
    return 10.0 * power


def _tick_labels(ticks: np.ndarray, log: bool) -> list[str]:
    if log or len(ticks) < 2:
        return [f"{tick:g}" for tick in ticks]
    decimals = max(0, -math.floor(math.log10(ticks[1] - ticks[0]) + 1e-9))
    decimals += any(round(tick, decimals) != round(tick, decimals + 1) for tick in ticks)
    return [f"{tick:.{decimals}f}" for tick in ticks]


def _draw_grid(
    plot: np.ndarray,
    columns: np.ndarray | None,
    rows: np.ndarray | None,
    color: tuple[int, int, int],
) -> None:
    """Vertical lines at ``columns`` or horizontal lines at ``rows`` across the plot."""
    height, width = plot.shape[:2]
    for column in () if columns is None else np.round(columns).astype(int):
        cv2.line(plot, (int(column), 0), (int(column), height), color, 1)
    for row in () if rows is None else np.round(rows).astype(int):
        cv2.line(plot, (0, int(row)), (width, int(row)), color, 1)


def _draw_line(plot: np.ndarray, points: np.ndarray, color: tuple[int, int, int]) -> None:
    """Runs of consecutive drawable points as one antialiased line each, and a dot at each."""
    finite = np.isfinite(points).all(axis=1)
    fixed = np.zeros(points.shape, np.int64)
    # Far-off points (a range set narrower than the data) are clamped so their integers
    # stay small; the plot's own edges then clip the line.
    fixed[finite] = np.round(np.clip(points[finite], -1e4, 1e4) * (1 << _SHIFT))
    breaks = np.flatnonzero(~finite)
    for run in np.split(np.arange(len(points)), breaks):
        run = run[finite[run]]
        if len(run) > 1:
            cv2.polylines(plot, [fixed[run].astype(np.int32)], False, color, 2, cv2.LINE_AA, _SHIFT)
    for point in fixed[finite].astype(np.int32):
        cv2.circle(plot, tuple(int(v) for v in point), 2 << _SHIFT, color, -1, cv2.LINE_AA, _SHIFT)


def _draw_legend(plot: np.ndarray, labels: list[str]) -> None:
    """A box with a line sample and the label of each series, in the corner of the plot
    where the lines leave the most room (the lower right one when several are empty)."""
    labels = [_ascii(label) for label in labels if label]
    if not labels:
        return
    row_height = _text_size("Ag", _TICK_SCALE)[1] + 8
    sample = 24
    widest = max(_text_size(label, _TICK_SCALE)[0] for label in labels)
    width = min(sample + 14 + widest + 8, plot.shape[1] - 2 * _PAD)
    height = row_height * len(labels) + 6
    corners = [
        (plot.shape[1] - _PAD - width, plot.shape[0] - _PAD - height),
        (plot.shape[1] - _PAD - width, _PAD),
        (_PAD, plot.shape[0] - _PAD - height),
        (_PAD, _PAD),
    ]
    drawn = (plot < min(GRID)).any(axis=2)  # lines and notes, not the grid
    left, top = min(
        corners,
        key=lambda corner: np.count_nonzero(
            drawn[corner[1] : corner[1] + height + 1, corner[0] : corner[0] + width + 1]
        ),
    )
    right, bottom = left + width, top + height
    cv2.rectangle(plot, (left, top), (right, bottom), WHITE, -1)
    cv2.rectangle(plot, (left, top), (right, bottom), LEGEND_BORDER, 1)
    for index, label in enumerate(labels):
        color = PALETTE[index % len(PALETTE)]
        middle = top + 3 + row_height * index + row_height // 2
        cv2.line(plot, (left + 6, middle), (left + 6 + sample, middle), color, 2, cv2.LINE_AA)
        cv2.circle(plot, (left + 6 + sample // 2, middle), 3, color, -1, cv2.LINE_AA)
        room = right - (left + sample + 14) - 4
        _text(plot, fit_text(label, room), (left + sample + 14, middle + 5), _TICK_SCALE)


def _ascii(text: str) -> str:
    return text.encode("ascii", "replace").decode()


def _text_size(text: str, scale: float) -> tuple[int, int]:
    (width, height), _ = cv2.getTextSize(_ascii(text), _FONT, scale, 1)
    return width, height


def fit_text(text: str, width: int, scale: float = _TICK_SCALE) -> str:
    """``text`` in ASCII (the Hershey fonts draw nothing else; other characters become
    ``?``), shortened with a trailing ``~`` until it is at most ``width`` px wide at
    ``scale``; empty when not even one character fits."""
    text = _ascii(text)
    while text and _text_size(text, scale)[0] > width:
        text = text[:-2] + "~" if len(text) > 1 else ""
    return text


def _text(canvas: np.ndarray, text: str, origin: tuple[int, int], scale: float) -> None:
    """``text`` with its baseline's left end at ``origin`` (x, y)."""
    cv2.putText(canvas, _ascii(text), origin, _FONT, scale, INK, 1, cv2.LINE_AA)


def _vertical_text(canvas: np.ndarray, text: str, left: int, middle: int) -> None:
    """``text`` read from bottom to top, its top at column ``left``, centred on row ``middle``."""
    width, height = _text_size(text, _LABEL_SCALE)
    strip = np.full((height + 6, width, 3), WHITE, np.uint8)
    _text(strip, text, (0, height), _LABEL_SCALE)
    turned = np.rot90(strip)  # a quarter turn anticlockwise: the text runs upwards
    top = max(0, middle - turned.shape[0] // 2)
    turned = turned[: canvas.shape[0] - top, : canvas.shape[1] - left]
    canvas[top : top + turned.shape[0], left : left + turned.shape[1]] = turned
