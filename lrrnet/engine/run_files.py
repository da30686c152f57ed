"""Run folders: finding them, and the files they hold besides the checkpoints.

A run of a config is the folder ``checkpoints/<name>/<timestamp>/`` (:func:`new_run_dir`;
a ``-N`` suffix for runs started in the same second). :func:`run_checkpoints` lists a
config's runs that hold a file, oldest first; :func:`newest_run_checkpoint` is the
checkpoint inference uses by default and :func:`resolve_resume` the one ``--resume`` names.

Beside ``latest.pth`` and ``best.pth`` (what they hold and how they are read and written is
:mod:`lrrnet.engine.checkpoint`'s), rank 0 writes:

- ``train.lock``: held by the one live process that trains in the folder, with its
  process id (:func:`run_lock`);
- ``log.txt``: the run's log lines at INFO and above (:func:`log_file`);
- ``config.yaml``: the resolved config; a resume with a changed config keeps the one it
  replaces as ``config.until-iter<N>.yaml`` (:func:`write_config`);
- ``metrics.csv``: one row per evaluation (:func:`append_metrics_csv`), cut back to the
  checkpoint resumed from (:func:`truncate_metrics_csv`);
- ``events.out.tfevents.*``: TensorBoard losses, LR, validation metrics and detection
  panels (:func:`open_tensorboard`, :func:`tensorboard_losses`,
  :func:`tensorboard_validation`);
- ``test_metrics.json``: the test metrics of the selected and the last checkpoint, with
  what identifies the split (:func:`write_test_report`);
- ``compile_cache.bin``: under ``train.compile``, what torch.compile made (graphs and
  kernels, torch.compiler's portable artifacts), written when ``train.time_limit`` stops
  the run and loaded by its resume, which then compiles from a warm cache; removed when the
  run finishes (:func:`save_compile_cache`, :func:`load_compile_cache`).

The trainer calls each of these at the point where it writes; nothing here runs by itself.
"""

from __future__ import annotations

import csv
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import torch

from lrrnet.config_tree import dump_yaml
from lrrnet.data import Sample
from lrrnet.data.io import read_image, read_mask
from lrrnet.data.transforms import resize_mask
from lrrnet.engine import distributed
from lrrnet.engine.checkpoint import TrainState
from lrrnet.engine.predictor import Predictor
from lrrnet.errors import CheckpointError, UserError
from lrrnet.files import atomic_path, write_json_atomic
from lrrnet.metrics import METRIC_KEYS
from lrrnet.visualize import detection_panel

try:
    import fcntl
except ImportError:  # not on Windows: runs there go unlocked
    fcntl = None

logger = logging.getLogger(__name__)

METRICS_CSV = "metrics.csv"
COMPILE_CACHE = "compile_cache.bin"
LOCK_FILE = "train.lock"


def new_run_dir(cfg: Mapping[str, Any]) -> Path:
    """``checkpoints/<name>/<timestamp>``, with a ``-N`` suffix when that folder exists (runs
    started within the same second, e.g. short runs of several seeds)."""
    folder = Path(cfg["paths"]["checkpoints"], cfg["name"])
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    run_dir, suffix = folder / stamp, 1
    while run_dir.exists():
        run_dir, suffix = folder / f"{stamp}-{suffix}", suffix + 1
    return run_dir


def run_checkpoints(cfg: Mapping[str, Any], filename: str) -> list[Path]:
    """``checkpoints/<name>/*/<filename>`` of a config, oldest run first (folders are timestamps)."""
    return sorted(
        Path(cfg["paths"]["checkpoints"], cfg["name"]).glob(f"*/{filename}"), key=_run_order
    )


def _run_order(path: Path) -> tuple[str, int, str]:
    """A run folder's timestamp, then the number of its ``-N`` suffix (runs started in the
    same second), so that ``…-10`` comes after ``…-2``."""
    name = path.parent.name
    stamp, _, suffix = name.rpartition("-")
    if stamp.count("-") == 1 and suffix.isdigit():
        return stamp, int(suffix), name
    return name, 0, name


def newest_run_checkpoint(cfg: Mapping[str, Any], filename: str = "best.pth") -> Path:
    """``checkpoints/<name>/<newest timestamp>/best.pth`` of a config."""
    runs = run_checkpoints(cfg, filename)
    if not runs:
        folder = Path(cfg["paths"]["checkpoints"], cfg["name"])
        raise CheckpointError(f"{folder}: no run with {filename}; train first or pass --checkpoint")
    return runs[-1]


def resolve_resume(cfg: Mapping[str, Any], resume: str | None) -> Path | None:
    """The checkpoint ``--resume`` names: a file, a run folder's ``latest.pth``, or for
    ``auto`` the ``latest.pth`` of the newest run of this config (None when there is none)."""
    if resume is None:
        return None
    if resume != "auto":
        path = Path(resume)
        path = path / "latest.pth" if path.is_dir() else path
        if not path.is_file():
            raise CheckpointError(f"{path}: checkpoint to resume from not found")
        return path
    runs = run_checkpoints(cfg, "latest.pth")
    if not runs:
        logger.info("--resume auto: no earlier run of '%s', starting a new one", cfg["name"])
        return None
    return runs[-1]


@contextmanager
def run_lock(run_dir: Path, process: distributed.DistInfo) -> Iterator[None]:
    """Hold ``run_dir``'s lock while the block runs; refuse a folder another process holds.

    An OS file lock (``flock`` on ``train.lock``), taken by rank 0 for the whole job: the
    kernel releases it when the process ends in any way, ``kill -9`` included, so a killed
    run never leaves it stuck and ``--resume auto`` continues it. The file stays, holding the
    id of the last process that trained there.

    Raises:
        UserError: on every rank, when a live process holds the lock: one line naming the
            folder and that process.
    """
    handle, refused = None, None
    if process.is_main and fcntl is not None:
        run_dir.mkdir(parents=True, exist_ok=True)
        handle = (run_dir / LOCK_FILE).open("a+")  # not "w": the holder's id stays readable
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            handle = None
            refused = (
                f"{run_dir}: in use by another training (process {holder} holds "
                f"{LOCK_FILE}); wait for it to end, or start a new run without --resume"
            )
        else:
            handle.seek(0)
            handle.truncate()
            handle.write(f"{os.getpid()}\n")
            handle.flush()
    refused = distributed.broadcast_object(process, refused)
    if refused:
        raise UserError(refused)
    try:
        yield
    finally:
        if handle is not None:
            handle.close()  # closing the file releases the lock


@contextmanager
def log_file(run_dir: Path | None) -> Iterator[None]:
    """Copy the ``lrrnet`` log lines to ``run_dir/log.txt`` while the block runs.

    ``None`` (the other ranks) writes nothing. log.txt keeps INFO whatever the console shows.
    """
    if run_dir is None:
        yield
        return
    package_logger = logging.getLogger("lrrnet")
    previous_level = package_logger.level
    run_dir.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(run_dir / "log.txt")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.setLevel(logging.INFO)
    package_logger.addHandler(handler)
    if package_logger.getEffectiveLevel() > logging.INFO:
        package_logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        package_logger.removeHandler(handler)
        package_logger.setLevel(previous_level)
        handler.close()


def write_config(cfg: Mapping[str, Any], run_dir: Path, resumed: Mapping[str, Any] | None) -> None:
    """Write ``config.yaml``; on a resume with changes, keep the one it replaces.

    The replaced file becomes ``config.until-iter<N>.yaml`` (N: the iteration resumed from),
    so the run folder holds every config the run was trained with, in order.

    Args:
        resumed: the checkpoint of :func:`lrrnet.engine.checkpoint.load_for_resume`, or None
            for a new run.
    """
    path = run_dir / "config.yaml"
    if resumed is not None and path.exists():
        if not resumed["config_changes"]:
            return
        kept = run_dir / f"config.until-iter{resumed['iteration']}.yaml"
        path.replace(kept)
        logger.info("config changed on resume: the previous one is kept as %s", kept.name)
    dump_yaml(cfg, path)


def open_tensorboard(run_dir: Path, iteration: int):
    """A ``SummaryWriter`` on the run folder that continues after ``iteration``."""
    # Imported here: TensorBoard takes seconds to import, and only training needs it.
    from torch.utils.tensorboard import SummaryWriter

    # purge_step drops events an interrupted run wrote after its last checkpoint.
    return SummaryWriter(str(run_dir), purge_step=iteration + 1 if iteration else None)


def tensorboard_losses(
    writer, terms: Mapping[str, torch.Tensor], lr: float, iteration: int
) -> None:
    """TensorBoard scalars of a training step: every loss term (``loss/<name>``) and ``lr``."""
    for name, value in terms.items():
        writer.add_scalar(f"loss/{name}", value.item(), iteration)
    writer.add_scalar("lr", lr, iteration)


def tensorboard_validation(
    writer,
    metrics: Mapping[str, Any],
    predictor: Predictor,
    samples: Sequence[Sample],
    iteration: int,
    threshold: float,
) -> None:
    """TensorBoard scalars of a validation (``val/<metric>``), and a detection panel per
    sample in ``samples``: input, background D, probability, detection, marked ground truth."""
    for key in METRIC_KEYS:
        writer.add_scalar(f"val/{key}", metrics[key], iteration)
    for index, sample in enumerate(samples):
        image = read_image(sample.image)
        prediction = predictor.predict(image)
        panel = detection_panel(
            image,
            prediction.reconstruction,
            prediction.target_prob,
            resize_mask(read_mask(sample.mask), image.shape),
            threshold=threshold,
            name=sample.name,
        )
        writer.add_image(f"val/{index}_{sample.name}", panel, iteration, dataformats="HWC")


def append_metrics_csv(
    run_dir: Path, state: TrainState, lr: float, train_loss: float, metrics: Mapping[str, Any]
) -> None:
    """One ``metrics.csv`` row: iteration, epoch, LR, mean training loss, val metrics, best."""
    path = run_dir / METRICS_CSV
    new = not path.exists()
    with path.open("a", newline="") as handle:
        writer = csv.writer(handle)
        if new:
            writer.writerow(
                ["iteration", "epoch", "lr", "train_loss", *METRIC_KEYS, "best_iteration"]
            )
        values = [metrics.get(k, "") for k in METRIC_KEYS]
        writer.writerow(
            [
                state.iteration,
                state.epoch,
                f"{lr:.6g}",
                f"{train_loss:.6f}",
                *values,
                state.best_iteration,
            ]
        )


def truncate_metrics_csv(run_dir: Path, iteration: int) -> None:
    """On resume, drop rows an interrupted run wrote after the checkpoint it resumes from.

    A row cut short by a kill during its append (fewer fields than the header) goes too.
    The rewrite is atomic: a kill during it leaves the old file.
    """
    path = run_dir / METRICS_CSV
    if not path.exists():
        return
    with path.open(newline="") as handle:
        rows = list(csv.reader(handle))
    if not rows:
        return
    header = rows[0]
    kept = [header] + [
        row
        for row in rows[1:]
        if len(row) == len(header) and row[0].isdigit() and int(row[0]) <= iteration
    ]
    with atomic_path(path) as temp, temp.open("w", newline="") as handle:
        csv.writer(handle).writerows(kept)


def write_test_report(run_dir: Path, report: Mapping[str, Any]) -> None:
    """Write ``test_metrics.json`` (strict JSON: undefined metrics as null)."""
    write_json_atomic(run_dir / "test_metrics.json", report)


def save_compile_cache(run_dir: Path) -> Path | None:
    """Write what torch.compile made in this process to ``run_dir/compile_cache.bin``.

    Returns the file, or None when nothing was compiled or the artifacts cannot be saved (a
    warning): the cache only saves time; without it the resume compiles afresh. The
    published model on a 2-core CPU compiled in about 10 s from it instead of 120 s.
    """
    try:
        saved = torch.compiler.save_cache_artifacts()
    except Exception as error:  # an optimisation: a failure must not lose the stopped run
        logger.warning("torch.compile's cache not saved (%s)", error)
        return None
    if not saved:
        return None
    path = run_dir / COMPILE_CACHE
    with atomic_path(path) as temp:
        temp.write_bytes(saved[0])
    logger.info("saved torch.compile's cache for the resume (%d bytes)", len(saved[0]))
    return path


def load_compile_cache(run_dir: Path) -> bool | None:
    """Give torch.compile the artifacts a stopped run left in ``run_dir``, before it compiles.

    Returns None when there are none, False (and a warning) when they do not load (another
    torch or GPU, a damaged file): the model then compiles afresh.
    """
    path = run_dir / COMPILE_CACHE
    if not path.is_file():
        return None
    try:
        torch.compiler.load_cache_artifacts(path.read_bytes())
    except Exception as error:  # as in save_compile_cache
        logger.warning("%s: torch.compile's cache not loaded (%s)", path, error)
        return False
    logger.info("loaded torch.compile's cache of the stopped run (%d bytes)", path.stat().st_size)
    return True
