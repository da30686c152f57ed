"""Writing prediction maps for a split or a folder: the work behind ``inference.py``."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lrrnet.data import Sample, find_splits
from lrrnet.data.io import clear_predictions, write_prediction
from lrrnet.engine.checkpoint import load_checkpoint
from lrrnet.engine.evaluator import iterate_predictions
from lrrnet.engine.predictor import Predictor, config_eval_size
from lrrnet.errors import CheckpointError, DataError

logger = logging.getLogger(__name__)


@dataclass
class InferenceReport:
    written: int = 0
    seconds: float = 0.0
    failures: list[tuple[str, str]] = field(default_factory=list)

    @property
    def images_per_second(self) -> float:
        return self.written / self.seconds if self.seconds > 0 else 0.0


def newest_run_checkpoint(cfg: Mapping[str, Any], filename: str = "best.pth") -> Path:
    """``checkpoints/<name>/<newest timestamp>/best.pth`` of a config."""
    runs = sorted(Path(cfg["paths"]["checkpoints"], cfg["name"]).glob(f"*/{filename}"))
    if not runs:
        folder = Path(cfg["paths"]["checkpoints"], cfg["name"])
        raise CheckpointError(f"{folder}: no run with {filename}; train first or pass --checkpoint")
    return runs[-1]


# The published recipe resizes every training frame to 512×512 (SPEC §3).
RECIPE_SIZE = 512


def checkpoint_default_size(path: str | Path) -> tuple[str | int, str]:
    """The size to run a checkpoint at when none is given, and why (for the log).

    A checkpoint that stores its training config runs the way that config evaluates
    (``data.eval_size``: ``base_size`` or native). A bare state dict (the released ``.pkl``
    files) says nothing, so the published recipe's 512×512 is used: running a network
    trained on frames resized to 512 natively on 256×256 frames would halve the scale of
    the targets it learnt.
    """
    stored = load_checkpoint(path).get("config")
    data = stored.get("data") if isinstance(stored, Mapping) else None
    if isinstance(data, Mapping) and {"eval_size", "base_size"} <= data.keys():
        size = config_eval_size(stored)
        return size, (
            f"from the config stored in {path} (data.eval_size={data['eval_size']}, "
            f"data.base_size={data['base_size']})"
        )
    return RECIPE_SIZE, (
        f"{path} stores no training config (a bare state dict): {RECIPE_SIZE}×{RECIPE_SIZE}, "
        "the size the published recipe trains on; --size native runs frames as they are"
    )


def folder_samples(folder: str | Path) -> list[Sample]:
    """The frames of a plain folder (``DIR`` or ``DIR/images``), as the ``folder`` layout finds them."""
    return find_splits(folder, layout="folder")["test"]


def predict_to_folder(
    predictor: Predictor,
    samples: Sequence[Sample],
    out_dir: str | Path,
    batch_size: int = 8,
    save_background: bool = False,
    noise_sigma: float = 0.0,
    noise_seed: int = 0,
    progress: bool = True,
) -> InferenceReport:
    """Write ``OUT/img/<name>.png`` and ``OUT/mat/<name>.mat`` for every readable sample.

    An unreadable image is logged by name and recorded in the report; the others are still
    written. The maps of an earlier run in ``out_dir`` are removed first, so every map there
    belongs to this run and a failed frame has none (scoring then reports it missing).
    """
    report = InferenceReport()
    removed = clear_predictions(out_dir)
    if removed:
        logger.info("removed %d maps of an earlier run from %s", removed, out_dir)

    def record_failure(sample: Sample, error: DataError) -> None:
        logger.error("%s", error)
        report.failures.append((sample.name, str(error)))

    started = time.perf_counter()
    for item, target_prob, reconstruction in iterate_predictions(
        predictor,
        samples,
        batch_size,
        with_mask=False,
        noise_sigma=noise_sigma,
        noise_seed=noise_seed,
        on_error=record_failure,
        progress=progress,
        desc="inference",
    ):
        background = reconstruction if save_background else None
        write_prediction(out_dir, item.sample.name, target_prob, background=background)
        report.written += 1
    report.seconds = time.perf_counter() - started
    return report
