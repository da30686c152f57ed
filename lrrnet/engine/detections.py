"""Targets as a tracker wants them: one row per detected component of each frame.

``inference.py --detections`` writes ``OUT/detections.csv`` with :data:`FIELDS`: the frame's
name, the target's id within the frame (1…n, scikit-image's order), its centroid (row ``y``,
column ``x``, in the frame's own pixels), its area in pixels and the peak and mean
probability of its pixels. The targets are the metrics' predicted components
(:func:`lrrnet.metrics.label_components`): the 8-connected components of ``p > threshold``,
so a row here is a component that Pd and Fa count (docs/metrics.md, "Definitions").
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import astuple, dataclass
from pathlib import Path

import numpy as np

from lrrnet.files import atomic_path
from lrrnet.metrics import label_components

DETECTIONS_FILE = "detections.csv"
FIELDS = ("frame", "target", "y", "x", "area", "peak", "mean")


@dataclass(frozen=True)
class Detection:
    """One target of one frame (see the module docstring for the fields)."""

    frame: str
    target: int
    y: float
    x: float
    area: int
    peak: float
    mean: float


def frame_detections(frame: str, prob: np.ndarray, threshold: float) -> list[Detection]:
    """The components of ``prob > threshold`` (``prob`` ``H×W`` in [0, 1]), in label order.

    The comparison is in float64, as the metrics compare a probability with a threshold.
    """
    prob = np.asarray(prob)
    binary = prob.astype(np.float64) > threshold
    components = label_components(binary)
    if not components.count:
        return []
    pixels = np.flatnonzero(binary)
    index = components.labels.ravel()[pixels] - 1
    values = prob.ravel()[pixels].astype(np.float64)
    sums = np.bincount(index, weights=values, minlength=components.count)
    peaks = np.full(components.count, -np.inf)
    np.maximum.at(peaks, index, values)
    return [
        Detection(
            frame=frame,
            target=k + 1,
            y=float(components.centroids[k, 0]),
            x=float(components.centroids[k, 1]),
            area=int(components.areas[k]),
            peak=float(peaks[k]),
            mean=float(sums[k] / components.areas[k]),
        )
        for k in range(components.count)
    ]


def _row(detection: Detection) -> list[str]:
    frame, target, y, x, area, peak, mean = astuple(detection)
    return [frame, str(target), f"{y:.3f}", f"{x:.3f}", str(area), f"{peak:.6f}", f"{mean:.6f}"]


@contextmanager
def detections_writer(
    path: str | Path, threshold: float
) -> Iterator[Callable[[str, np.ndarray], int]]:
    """Write ``path`` (:data:`FIELDS`) frame by frame: yields ``add(frame, prob)``, which
    appends that frame's rows and returns how many.

    The rows go to a temporary file renamed over ``path`` when the block ends without an
    error (:func:`lrrnet.files.atomic_path`): a kill or a failed run leaves the old file
    or none, never half of one.
    """
    with atomic_path(path) as temp, temp.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(FIELDS)

        def add(frame: str, prob: np.ndarray) -> int:
            detections = frame_detections(frame, prob, threshold)
            writer.writerows(_row(detection) for detection in detections)
            return len(detections)

        yield add


def read_detections(path: str | Path) -> list[Detection]:
    """The rows of a ``detections.csv`` written by :func:`detections_writer`."""
    with Path(path).open(newline="") as handle:
        return [
            Detection(
                frame=row["frame"],
                target=int(row["target"]),
                y=float(row["y"]),
                x=float(row["x"]),
                area=int(row["area"]),
                peak=float(row["peak"]),
                mean=float(row["mean"]),
            )
            for row in csv.DictReader(handle)
        ]
