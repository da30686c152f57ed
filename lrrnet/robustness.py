"""Robustness sweeps: a detector's metrics on its test frames under sensor corruptions.

Each condition is a corruption kind at one level (:data:`CORRUPTIONS`, with the unit of each
level). The frames are corrupted as they are read and scored by
:func:`lrrnet.engine.evaluator.evaluate_at`, the evaluation the trainer runs, so a row is
what ``inference.py`` maps scored by ``cal_from_mask.py`` would give on the corrupted frames,
and the clean row (level 0 of any kind) is exactly that on the frames as they are. The
clean pass runs once, whatever the number of kinds that list level 0: a sweep costs one pass
over the frames per distinct corrupted condition, plus one.

The noise of a frame is drawn from :func:`lrrnet.engine.inference.frame_rng` (the seed and
the frame's name), the same stream at every level: a sweep is reproducible whatever the
order or batch, ``gaussian`` at σ is ``inference.py --noise-sigma σ --noise-seed SEED``, and
the levels of one kind differ only by their scale, which keeps a curve free of the jitter
of fresh draws. What ``tools/robustness.py`` runs; usage in docs/robustness.md,
"Running a sweep". :func:`read_csv`, :func:`plot_comparison` and :func:`format_comparison`
draw finished sweeps of several detectors together (``--compare``, "Comparing detectors").
"""

from __future__ import annotations

import csv
import dataclasses
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from lrrnet.baselines import BASELINES
from lrrnet.baselines.runner import _check_params
from lrrnet.data import Sample, folder_samples
from lrrnet.data.layouts import mask_index
from lrrnet.data.transforms import add_gaussian_noise, resize_map
from lrrnet.engine.evaluator import evaluate_at
from lrrnet.engine.inference import Corruption, frame_rng
from lrrnet.errors import ConfigError, DataError, summarize
from lrrnet.files import atomic_path
from lrrnet.visualize import save_figure

logger = logging.getLogger(__name__)

# What a sweep writes into its --out folder.
CSV_FILE, FIGURE_FILE = "robustness.csv", "robustness.png"
# The metrics of robustness.csv (fractions), after its noise and level columns.
CSV_METRICS = ("miou", "niou", "f1", "pd", "fa")


def _gaussian(image: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    return add_gaussian_noise(image, sigma, rng)


def _poisson(image: np.ndarray, sigma_at_white: float, rng: np.random.Generator) -> np.ndarray:
    # A white pixel collects (255 / σ)² photons, so its shot noise has σ grey levels; a
    # darker pixel collects proportionally fewer and its noise shrinks as √intensity.
    photons = (255.0 / sigma_at_white) ** 2
    counts = rng.poisson(image.astype(np.float64) * photons)
    return np.clip(counts / photons, 0.0, 1.0).astype(np.float32)


def _stripe(image: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    offsets = rng.standard_normal(image.shape[1], dtype=np.float32) * np.float32(sigma / 255.0)
    return np.clip(image + offsets[None, :], 0.0, 1.0).astype(np.float32)


def _deadpixels(image: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    stuck = rng.random(image.shape) < fraction
    hot = rng.random(image.shape) < 0.5
    out = image.astype(np.float32, copy=True)
    out[stuck] = hot[stuck].astype(np.float32)
    return out


def _blur(image: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    del rng  # defocus is deterministic
    return cv2.GaussianBlur(
        image.astype(np.float32), (0, 0), sigmaX=sigma, borderType=cv2.BORDER_REFLECT_101
    )


def _contrast(image: np.ndarray, loss: float, rng: np.random.Generator) -> np.ndarray:
    del rng
    mean = np.float32(image.mean())
    return np.clip(mean + np.float32(1.0 - loss) * (image - mean), 0.0, 1.0).astype(np.float32)


@dataclass(frozen=True)
class CorruptionKind:
    """One corruption: what its level means, the levels it takes, and the function.

    Attributes:
        scale: what a level means, for the help.
        unit: the level's unit, short, for the plot's axis.
        low: the smallest level (0, the clean frame, always included).
        high: the largest level, or None for none.
        apply: ``(image H×W in [0, 1], level > 0, rng) → image H×W float32 in [0, 1]``.
    """

    scale: str
    unit: str
    low: float
    high: float | None
    apply: Callable[[np.ndarray, float, np.random.Generator], np.ndarray]


CORRUPTIONS: dict[str, CorruptionKind] = {
    "gaussian": CorruptionKind(
        "σ of additive noise, grey levels (of 255)", "σ, grey levels", 0.0, None, _gaussian
    ),
    "poisson": CorruptionKind(
        "shot noise: σ at white, grey levels (white collects (255/level)² photons)",
        "σ at white, grey levels",
        0.0,
        None,
        _poisson,
    ),
    "stripe": CorruptionKind(
        "column fixed-pattern noise: σ of each column's offset, grey levels",
        "σ of the column offsets, grey levels",
        0.0,
        None,
        _stripe,
    ),
    "deadpixels": CorruptionKind(
        "fraction of pixels stuck, half at black and half at white",
        "fraction stuck",
        0.0,
        1.0,
        _deadpixels,
    ),
    "blur": CorruptionKind("Gaussian defocus, σ in pixels", "σ, px", 0.0, None, _blur),
    "contrast": CorruptionKind(
        "gain 1 − level around the frame mean (0.5 halves the contrast, < 0 raises it)",
        "contrast loss, 1 − gain",
        -math.inf,
        1.0,
        _contrast,
    ),
}


@dataclass(frozen=True)
class Condition:
    """One row of a sweep: a corruption kind at one level (0: the clean frame)."""

    noise: str
    level: float

    @property
    def label(self) -> str:
        return f"{self.noise}={self.level:g}"

    def corruption(self, seed: int) -> Corruption | None:
        """The change of each frame, or None for the clean frame."""
        if self.level == 0:
            return None
        apply, level = CORRUPTIONS[self.noise].apply, self.level
        return lambda name, image: apply(image, level, frame_rng(seed, name))


def parse_noise(items: Sequence[str]) -> list[Condition]:
    """``KIND=L1,L2,…`` items (``--noise``) as conditions, in the order given.

    Raises:
        ConfigError: an unknown kind, a level that is not a finite number in the kind's
            range, a kind given twice or a level repeated.
    """
    conditions: list[Condition] = []
    for item in items:
        kind, sep, levels = item.partition("=")
        kind = kind.strip()
        if not sep or not levels.strip():
            raise ConfigError(f"--noise {item!r}: expected KIND=LEVEL[,LEVEL…]")
        if kind not in CORRUPTIONS:
            raise ConfigError(f"--noise {item!r}: unknown kind; choose from {list(CORRUPTIONS)}")
        if any(c.noise == kind for c in conditions):
            raise ConfigError(f"--noise: {kind} given twice; list all its levels in one item")
        spec = CORRUPTIONS[kind]
        seen: set[float] = set()
        for text in levels.split(","):
            try:
                level = float(text)
            except ValueError:
                raise ConfigError(f"--noise {item!r}: {text!r} is not a number") from None
            too_high = spec.high is not None and level > spec.high
            if not math.isfinite(level) or level < spec.low or too_high:
                bounds = f"[{spec.low:g}, {'∞' if spec.high is None else f'{spec.high:g}'}]"
                raise ConfigError(f"--noise {item!r}: level {text} outside {bounds}")
            if level in seen:
                raise ConfigError(f"--noise {item!r}: level {text} repeated")
            seen.add(level)
            conditions.append(Condition(kind, level + 0.0))  # -0.0 is the clean 0 too
    if not conditions:
        raise ConfigError("no --noise KIND=LEVELS given")
    return conditions


def samples_with_masks(images: str | Path, masks: str | Path | None = None) -> list[Sample]:
    """The frames of ``images`` (``DIR`` or ``DIR/images``), each with its mask from
    ``masks`` (``<name>.png`` or ``<name>_pixels0.png``), by default the masks found beside
    the frames (``DIR/masks``).

    Raises:
        DataError: a frame without a mask (all of them named in one line).
    """
    samples = folder_samples(images)
    if masks is not None:
        index = mask_index(masks)
        samples = [dataclasses.replace(s, mask=index.get(s.name)) for s in samples]
    unmasked = [s.name for s in samples if s.mask is None]
    if unmasked:
        where = masks if masks is not None else f"{images} (give --masks DIR)"
        raise DataError(
            f"{len(unmasked)} frame(s) without a mask in {where}: {summarize(unmasked)}"
        )
    return samples


class BaselineMaps:
    """A classical baseline in a predictor's place: :func:`evaluate_at` runs it frame by frame.

    Args:
        method: a key of :data:`lrrnet.baselines.BASELINES`.
        params: the method's keyword arguments (e.g. those ``tools/baselines.py --tune``
            chose on val).
        size: None runs each frame at its own size; N at N×N, the map resized back
            bilinearly, as ``tools/baselines.py --size N`` does.
    """

    def __init__(
        self, method: str, params: dict[str, Any] | None = None, size: int | None = None
    ) -> None:
        self.params = dict(params or {})
        _check_params(method, self.params)  # an unknown method or parameter, before any work
        self.method, self.size = method, size
        self.function = BASELINES[method]

    def predict_frame(self, image: np.ndarray) -> np.ndarray:
        """``H×W`` frame in [0, 1] → ``H×W`` target map in [0, 1]."""
        if self.size is None:
            return self.function(image, **self.params)
        resized = resize_map(image, (self.size, self.size))
        return resize_map(self.function(resized, **self.params), image.shape)

    def predict_batch(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``B×1×H×W`` frames → ``(target maps, the frames)``, each ``B×1×H×W``; a baseline
        models no background, so the frames stand in for the reconstruction."""
        maps = [self.predict_frame(frame) for frame in images[:, 0].numpy()]
        return torch.from_numpy(np.stack(maps).astype(np.float32))[:, None], images


def sweep(
    detector: Any,
    samples: Sequence[Sample],
    conditions: Sequence[Condition],
    seed: int = 0,
    batch_size: int = 8,
    threshold: float = 0.5,
    protocol: str = "standard",
    progress: bool = True,
) -> list[tuple[Condition, dict]]:
    """Score ``detector`` on ``samples`` (masks required) under each condition.

    Args:
        detector: a :class:`~lrrnet.engine.predictor.Predictor` or a :class:`BaselineMaps`.
        samples: the frames and their masks.
        conditions: from :func:`parse_noise`.
        seed: the noise seed (see the module docstring).
        batch_size: frames per forward pass.
        threshold: a pixel is positive when ``p > threshold``.
        protocol: ``"standard"`` or ``"lrrnet"`` (see :mod:`lrrnet.metrics`).
        progress: a bar (a log line off a terminal) per condition.

    Returns:
        ``(condition, metrics of MetricAccumulator.compute)`` per condition, in order; every
        clean condition holds the one clean pass's metrics.
    """
    scored: dict[tuple[str, float] | None, dict] = {}
    rows = []
    for condition in conditions:
        key = None if condition.level == 0 else (condition.noise, condition.level)
        if key not in scored:
            scored[key] = evaluate_at(
                detector,
                samples,
                [threshold],
                protocol,
                batch_size,
                progress=progress,
                desc="clean" if key is None else condition.label,
                corrupt=condition.corruption(seed),
            )[0]
        rows.append((condition, scored[key]))
    logger.info(
        "%d conditions in %d passes over %d frames", len(conditions), len(scored), len(samples)
    )
    return rows


def write_csv(rows: Sequence[tuple[Condition, dict]], path: str | Path) -> Path:
    """``noise, level`` and :data:`CSV_METRICS` (fractions, full precision), one row per
    condition; an undefined metric (Pd without targets) is left empty."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as temp, temp.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["noise", "level", *CSV_METRICS])
        for condition, metrics in rows:
            values = [float(metrics[key]) for key in CSV_METRICS]
            writer.writerow(
                [condition.noise, f"{condition.level:g}"]
                + ["" if math.isnan(v) else repr(v) for v in values]
            )
    return path


def read_csv(path: str | Path) -> list[tuple[Condition, dict]]:
    """The rows :func:`write_csv` wrote to ``path``, as :func:`plot` takes them: ``(condition,
    {metric of CSV_METRICS: fraction, NaN where empty})`` in the file's order.

    Raises:
        DataError: one line naming ``path``: no such file, not a robustness.csv (a header
            without ``noise``, ``level`` and every metric, an unknown kind), a row of the
            wrong length, a value that is not a number, a kind and level given twice.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: {'a folder' if path.is_dir() else 'no such file'}, not a CSV")
    required = ("noise", "level", *CSV_METRICS)
    rows: list[tuple[Condition, dict]] = []
    try:
        with path.open(newline="") as handle:
            reader = csv.reader(handle)
            header = next(reader, [])
            missing = [column for column in required if column not in header]
            if missing:
                raise DataError(
                    f"{path}: not a robustness.csv: no column {', '.join(missing)} "
                    f"(header: {', '.join(header) or 'none'})"
                )
            index = {column: header.index(column) for column in required}
            for number, values in enumerate(reader, start=2):
                where = f"{path}, line {number}"
                if len(values) != len(header):
                    raise DataError(f"{where}: {len(values)} values for {len(header)} columns")
                noise = values[index["noise"]]
                if noise not in CORRUPTIONS:
                    raise DataError(f"{where}: unknown noise {noise!r}; kinds: {list(CORRUPTIONS)}")
                numbers = {}
                for column in ("level", *CSV_METRICS):
                    text = values[index[column]].strip()
                    try:
                        value = math.nan if text == "" and column != "level" else float(text)
                    except ValueError:
                        raise DataError(f"{where}: {column} {text!r} is not a number") from None
                    if math.isinf(value) or (column == "level" and math.isnan(value)):
                        raise DataError(f"{where}: {column} {text!r} is not a finite number")
                    numbers[column] = value
                condition = Condition(noise, numbers.pop("level") + 0.0)
                if any(seen == condition for seen, _ in rows):
                    raise DataError(f"{where}: {condition.label} given twice")
                rows.append((condition, numbers))
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a text CSV") from None
    if not rows:
        raise DataError(f"{path}: no rows under the header")
    return rows


# What --metric may draw, and its name on the axis and in the table.
COMPARE_METRICS = {"miou": "IoU", "niou": "nIoU", "f1": "F1", "pd": "Pd"}


def parse_compare(items: Sequence[str]) -> list[tuple[str, Path]]:
    """``NAME=CSV`` items (``--compare``) as ``(name, path)``; a plain ``CSV`` (or one whose
    whole text is an existing file, e.g. ``runs/lr=0.1/robustness.csv``) is named by its
    folder.

    Raises:
        ConfigError: an empty name or path, or a name given twice.
    """
    named: list[tuple[str, Path]] = []
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or Path(item).is_file():
            name, path = Path(item).resolve().parent.name, item
        if not name.strip() or not path.strip():
            raise ConfigError(f"--compare {item!r}: expected NAME=CSV or CSV")
        if any(name == seen for seen, _ in named):
            raise ConfigError(f"--compare: two sweeps named {name!r}; give NAME=CSV")
        named.append((name, Path(path)))
    return named


def _curve(rows: Sequence[tuple[Condition, dict]], kind: str) -> dict[float, dict]:
    """``{level: metrics}`` of ``kind``, from the clean frames at level 0 when the sweep
    scored them; empty when the sweep has no ``kind``."""
    points = {c.level: m for c, m in rows if c.noise == kind}
    clean = next((metrics for condition, metrics in rows if condition.level == 0), None)
    if points and clean is not None:
        points.setdefault(0.0, clean)
    return dict(sorted(points.items()))


def _panels(
    kinds: Sequence[str],
    draw: Callable[[Any, str], None],
    path: str | Path,
    ylabel: str,
    title: str = "",
) -> Path:
    """One panel per kind, in order, ``draw(axes, kind)`` drawing its labelled lines, saved
    to ``path``: the layout of every robustness plot."""
    from matplotlib.figure import Figure

    columns = min(3, len(kinds))
    lines = math.ceil(len(kinds) / columns)
    figure = Figure(figsize=(3.8 * columns, 3.3 * lines + 0.3), dpi=120)
    panels = np.atleast_1d(figure.subplots(lines, columns, sharey=True, squeeze=False)).ravel()
    for axes, kind in zip(panels, kinds, strict=False):
        draw(axes, kind)
        axes.set_title(kind, fontsize=10)
        axes.set_xlabel(CORRUPTIONS[kind].unit, fontsize=8)
        axes.set_ylim(-2, 102)
        axes.grid(alpha=0.3, which="both")
        axes.legend(loc="best", fontsize=8)
    for index, axes in enumerate(panels):
        if index >= len(kinds):
            axes.set_visible(False)
        elif index % columns == 0:
            axes.set_ylabel(ylabel)
    if title:
        figure.suptitle(title, fontsize=10)
    return save_figure(figure, path)


def plot(rows: Sequence[tuple[Condition, dict]], path: str | Path, title: str = "") -> Path:
    """IoU and Pd (%) against level, one panel per corruption kind, in the order given.

    When the sweep scored the clean frames, every panel starts from them at level 0.
    """

    def draw(axes: Any, kind: str) -> None:
        points = _curve(rows, kind)
        for key, label in (("miou", "IoU"), ("pd", "Pd")):
            values = [100 * metrics[key] for metrics in points.values()]
            axes.plot(list(points), values, marker="o", label=label)

    kinds = list(dict.fromkeys(condition.noise for condition, _ in rows))
    return _panels(kinds, draw, path, "%", title)


def _kinds(sweeps: Sequence[tuple[str, Sequence[tuple[Condition, dict]]]]) -> list[str]:
    return list(dict.fromkeys(c.noise for _, rows in sweeps for c, _ in rows))


def plot_comparison(
    sweeps: Sequence[tuple[str, Sequence[tuple[Condition, dict]]]],
    path: str | Path,
    metric: str = "miou",
    title: str = "",
) -> Path:
    """Several sweeps on one figure: ``metric`` (%) against level, one panel per kind (in
    the order first seen), one line per sweep, each from its own clean row at level 0 as
    :func:`plot` draws it; a sweep without a kind has no line in its panel. A sweep has one
    colour throughout (matplotlib's ten, in the order given).

    Args:
        sweeps: ``(name, rows of read_csv or sweep)`` each.
        path: the figure file; its suffix picks the format.
        metric: a key of :data:`COMPARE_METRICS`.
        title: above the panels.
    """

    def draw(axes: Any, kind: str) -> None:
        # By index, not by the panel's own cycle: a sweep keeps its colour where others lack
        # the kind.
        for index, (name, rows) in enumerate(sweeps):
            points = _curve(rows, kind)
            if points:
                values = [100 * metrics[metric] for metrics in points.values()]
                axes.plot(list(points), values, marker="o", label=name, color=f"C{index % 10}")

    return _panels(_kinds(sweeps), draw, path, f"{COMPARE_METRICS[metric]}, %", title)


def format_comparison(
    sweeps: Sequence[tuple[str, Sequence[tuple[Condition, dict]]]], metric: str = "miou"
) -> str:
    """The points of :func:`plot_comparison` as text: a row per kind and level, a column per
    sweep, ``metric`` in % (``-`` where undefined, empty where the sweep lacks the row)."""
    header = ["noise", "level", *(name for name, _ in sweeps)]
    body = []
    for kind in _kinds(sweeps):
        curves = [_curve(rows, kind) for _, rows in sweeps]
        for level in sorted({level for points in curves for level in points}):
            cells = [
                "" if level not in points else _percent(points[level][metric]) for points in curves
            ]
            body.append([kind, f"{level:g}", *cells])
    widths = [max(len(row[j]) for row in [header, *body]) for j in range(len(header))]
    lines = [f"{COMPARE_METRICS[metric]} (%)"]
    for row in [header, *body]:
        cells = [cell.rjust(width) for cell, width in zip(row, widths, strict=True)]
        cells[0] = row[0].ljust(widths[0])  # the kind reads from the left
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def _percent(value: float) -> str:
    return "-" if math.isnan(value) else f"{100 * value:.2f}"
