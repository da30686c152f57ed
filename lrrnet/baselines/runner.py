"""Running a classical baseline over many frames and writing its maps as inference does.

The maps go to ``OUT/img/<name>.png`` and ``OUT/mat/<name>.mat``, so ``cal_from_mask.py``
scores them unchanged. What ``tools/baselines.py`` runs.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from lrrnet.baselines.ipi import ipi
from lrrnet.baselines.maxmedian import max_median
from lrrnet.baselines.mpcm import mpcm
from lrrnet.baselines.pool import check_workers, ordered_map
from lrrnet.baselines.pstnn import pstnn
from lrrnet.baselines.tophat import white_tophat
from lrrnet.config import parse_override
from lrrnet.data import folder_samples, splits_from_config
from lrrnet.data.io import (
    check_apart_from_inputs,
    check_prediction_folder,
    clear_predictions,
    read_image,
    write_prediction,
)
from lrrnet.errors import ConfigError, DataError
from lrrnet.progress import Progress

logger = logging.getLogger(__name__)

# Every entry maps an H×W frame in [0, 1] (and keyword parameters) to an H×W map in [0, 1].
BASELINES: dict[str, Callable[..., np.ndarray]] = {
    "tophat": white_tophat,
    "maxmedian": max_median,
    "ipi": ipi,
    "mpcm": mpcm,
    "pstnn": pstnn,
}


def _method(method: str) -> Callable[..., np.ndarray]:
    if method not in BASELINES:
        raise ConfigError(f"unknown baseline {method!r}; choose one of {sorted(BASELINES)}")
    return BASELINES[method]


def _check_params(method: str, params: dict[str, Any]) -> None:
    """Reject parameter names the method does not take, listing the ones it does."""
    accepted = list(inspect.signature(_method(method)).parameters)[1:]  # all but the image
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise ConfigError(f"{method}: unknown parameter(s) {unknown}; valid: {accepted}")


def parse_params(items: Sequence[str]) -> dict[str, Any]:
    """``KEY=VALUE`` method parameters, values parsed as ``--set`` overrides are
    (:func:`lrrnet.config.parse_override`): literals, else plain words such as ``square``."""
    return dict(parse_override(item) for item in items)


@dataclass
class BaselineRun:
    """What a run over many images did.

    Attributes:
        out_dir: results folder.
        written: names of the maps written.
        failures: one message per image that could not be read or written.
        wall_seconds: time of the whole loop, reading and writing included.
        method_seconds: time spent in the baseline itself, summed over the workers.
        workers: processes that computed the maps.
    """

    out_dir: Path
    written: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    wall_seconds: float = 0.0
    method_seconds: float = 0.0
    workers: int = 1

    def summary(self, method: str) -> str:
        """One line: images, time and images/s (end to end, and for the method alone, which
        is per worker when there are several)."""
        count = len(self.written)
        overall = count / self.wall_seconds if self.wall_seconds > 0 else float("nan")
        method_only = count / self.method_seconds if self.method_seconds > 0 else float("nan")
        per_worker = f" per worker, {self.workers} workers" if self.workers > 1 else ""
        return (
            f"{method}: {count} images in {self.wall_seconds:.2f} s, {overall:.2f} images/s "
            f"({method_only:.2f} images/s in the method alone{per_worker}), "
            f"{len(self.failures)} failed -> {self.out_dir}"
        )


def _run_at_size(method: str, image: np.ndarray, size: int | None, params: dict) -> np.ndarray:
    """Run on the image as it is, or resized to ``size×size`` with the map resized back.

    ``params`` were checked once by the caller, not again for every image.
    """
    if size is None:
        return _method(method)(image, **params)
    height, width = image.shape
    resized = cv2.resize(image, (size, size), interpolation=cv2.INTER_LINEAR)
    target = _method(method)(resized, **params)
    return cv2.resize(target, (width, height), interpolation=cv2.INTER_LINEAR)


def _map_of_file(job: tuple[str, Path, str, int | None, dict[str, Any]]) -> tuple:
    """One frame of :func:`run_baseline_on_files` (module level, so a worker process can run
    it): ``(name, map or None, seconds in the method, error message or None)``."""
    name, path, method, size, params = job
    try:
        image = read_image(path)
        start = time.perf_counter()
        target = _run_at_size(method, image, size, params)
    except DataError as error:
        return name, None, 0.0, str(error)
    return name, target, time.perf_counter() - start, None


def run_baseline_on_files(
    images: Sequence[tuple[str, Path]],
    method: str,
    out_dir: str | Path,
    params: dict[str, Any] | None = None,
    size: int | None = None,
    workers: int = 1,
) -> BaselineRun:
    """Run a baseline over named image files and write ``OUT/img`` and ``OUT/mat`` maps.

    An image that cannot be read (or a map that cannot be written) is recorded in
    ``failures`` with its name and the loop goes on, so one bad file costs one map. Maps an
    earlier run left in ``out_dir`` are removed first, so an old map is never scored as new.

    Args:
        images: ``(name, path)`` pairs; ``name`` becomes ``<name>.png`` / ``<name>.mat``.
        method: a key of :data:`BASELINES`.
        out_dir: results folder.
        params: keyword arguments of the method.
        size: None to run at the image's own size, N to run at N×N (like inference).
        workers: frames computed at once, each in its own process (1: in this one). The
            maps are the same for any number; this process writes them, in order.

    Returns:
        The :class:`BaselineRun` record.

    Raises:
        ConfigError: an unknown method or parameter, or ``workers`` < 1, before any image
            is read.
        DataError: an ``out_dir`` that cannot be written or holds an input, before any
            image is read.
    """
    params = dict(params or {})
    _check_params(method, params)
    check_workers(workers)
    if size is not None and size < 1:
        raise ConfigError(f"size must be a positive integer or native, got {size}")
    run = BaselineRun(out_dir=Path(out_dir), workers=workers)
    # As inference does: every map in OUT belongs to this run, a failed frame has none.
    check_prediction_folder(run.out_dir)
    check_apart_from_inputs(run.out_dir, [path for _, path in images])
    removed = clear_predictions(run.out_dir, [name for name, _ in images])
    if removed:
        logger.info("removed %d maps of an earlier run from %s", removed, run.out_dir)
    start = time.perf_counter()
    progress = Progress(len(images), method)
    jobs = [(name, Path(path), method, size, params) for name, path in images]
    for name, target, seconds, problem in ordered_map(_map_of_file, jobs, workers):
        if problem is None:
            try:
                write_prediction(run.out_dir, name, target)
            except DataError as error:
                problem = str(error)
        if problem is not None:
            run.failures.append(f"{name}: {problem}")
            logger.error("%s: %s", name, problem)
            progress.update()
            continue
        run.method_seconds += seconds
        run.written.append(name)
        progress.set_postfix(f"{1000 * seconds:.0f} ms/img")
        progress.update()
        logger.debug("%s: %s in %.3f s", method, name, seconds)
    progress.close()
    run.wall_seconds = time.perf_counter() - start
    return run


def run_baseline_on_folder(
    folder: str | Path,
    method: str,
    out_dir: str | Path,
    params: dict[str, Any] | None = None,
    size: int | None = None,
    workers: int = 1,
) -> BaselineRun:
    """Run a baseline on the frames of ``folder`` (``DIR`` or ``DIR/images``), as inference
    does; arguments as for :func:`run_baseline_on_files`."""
    samples = folder_samples(folder)
    return run_baseline_on_files(
        [(s.name, s.image) for s in samples], method, out_dir, params, size, workers
    )


def run_baseline_on_config(
    cfg: dict,
    method: str,
    out_dir: str | Path | None = None,
    params: dict[str, Any] | None = None,
    size: int | None = None,
    workers: int = 1,
) -> BaselineRun:
    """Run a baseline on the test split of a config's dataset.

    Args:
        cfg: a resolved config (as from ``lrrnet.config.load_config``).
        method: a key of :data:`BASELINES`.
        out_dir: results folder; ``<paths.results>/<name>_<method>`` when None.
        params: keyword arguments of the method.
        size: None to run at the image's own size, N to run at N×N.
        workers: frames computed at once, each in its own process.
    """
    splits = splits_from_config(cfg)
    if out_dir is None:
        out_dir = Path(cfg["paths"]["results"]) / f"{cfg['name']}_{method}"
    images = [(sample.name, sample.image) for sample in splits.test]
    return run_baseline_on_files(images, method, out_dir, params, size, workers)
