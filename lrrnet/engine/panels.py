"""Panels of what a model sees: run it on a config's test split, or read saved maps, and draw.

What ``tools/visualize.py`` runs in its two panel modes: :func:`predict_test_split` (the
model on a config's test split) or :func:`read_saved_predictions` (maps written by
``inference.py`` or another framework) give the frames, and :func:`write_panels` draws one
panel per frame and the worst-images sheet with :mod:`lrrnet.visualize`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.io

from lrrnet.data import folder_samples, splits_from_config
from lrrnet.data.io import named_file, read_image, read_mask, read_prediction
from lrrnet.data.transforms import resize_mask
from lrrnet.data.validation import warn_size_mismatch
from lrrnet.engine.inference import iterate_predictions
from lrrnet.engine.predictor import Predictor, config_eval_size
from lrrnet.engine.run_files import newest_run_checkpoint
from lrrnet.engine.scoring import pair_predictions, prediction_files
from lrrnet.engine.zoo import resolve_checkpoint
from lrrnet.errors import DataError, UserError, summarize
from lrrnet.metrics import check_threshold
from lrrnet.progress import Progress
from lrrnet.visualize import (
    SheetEntry,
    detection_panel,
    save_png,
    sheet_entry,
    worst_entries,
    worst_images_sheet,
)

logger = logging.getLogger(__name__)


@dataclass
class VisualItem:
    """One frame to draw: maps ``H×W``; ``reconstruction`` and ``mask`` may be missing."""

    name: str
    image: np.ndarray
    target_prob: np.ndarray
    reconstruction: np.ndarray | None = None
    mask: np.ndarray | None = None


@dataclass
class VisualReport:
    written: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)
    worst: list[SheetEntry] = field(default_factory=list)
    sheet_path: Path | None = None


def write_panels(
    items: Iterable[VisualItem],
    out_dir: str | Path,
    threshold: float = 0.5,
    num_worst: int = 16,
    total: int | None = None,
    progress: bool = True,
    report: VisualReport | None = None,
) -> VisualReport:
    """Write ``OUT/<name>.png`` for every item and ``OUT/worst.png`` when masks exist.

    Args:
        items: the frames, e.g. from :func:`predict_test_split` or
            :func:`read_saved_predictions`.
        out_dir: created when missing; panels of the same names are overwritten.
        threshold: detection threshold of the panels and the IoUs.
        num_worst: images on the worst sheet; 0 writes none.
        total: number of items, for the progress bar.
        progress: show progress (a bar on a terminal, log lines elsewhere).
        report: where to record (the item sources record their failures in it too).

    Returns:
        The report: panels written, failures, the worst entries and the sheet's path.
    """
    check_threshold(threshold)  # before any panel is drawn
    report = report if report is not None else VisualReport()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    entries: list[SheetEntry] = []
    bar = Progress(total or 0, "visualize", enabled=progress)
    for item in items:
        panel = detection_panel(
            item.image, item.reconstruction, item.target_prob, item.mask, threshold, name=item.name
        )
        save_png(named_file(out_dir, item.name, ".png"), panel)
        report.written += 1
        if item.mask is not None and num_worst > 0:
            entries.append(
                sheet_entry(item.name, item.image, item.target_prob, item.mask, threshold)
            )
            if len(entries) > 4 * num_worst:  # keep memory bounded on large test sets
                entries = worst_entries(entries, num_worst)
        bar.update()
    bar.close()
    if entries:
        report.worst = worst_entries(entries, num_worst)
        report.sheet_path = save_png(out_dir / "worst.png", worst_images_sheet(entries, num_worst))
    return report


def predict_test_split(
    cfg: Mapping[str, Any],
    checkpoint: str | Path | None = None,
    limit: int | None = None,
    report: VisualReport | None = None,
) -> tuple[Iterator[VisualItem], int]:
    """Run the model on a config's test split.

    Args:
        cfg: a resolved config (:func:`lrrnet.config.load_config`).
        checkpoint: ``.pth``, released ``.pkl`` or a zoo name (built and sized as its
            entry's config says); default ``best.pth`` of the newest run.
        limit: only the first ``limit`` test images.
        report: unreadable images are recorded in its ``failures`` (and skipped).

    Returns:
        The items (lazily: the model runs as they are consumed) and their number.
    """
    splits = splits_from_config(cfg)
    samples = splits.test[:limit] if limit is not None else splits.test
    checkpoint, zoo_model = (
        resolve_checkpoint(checkpoint) if checkpoint else (newest_run_checkpoint(cfg), None)
    )
    trained = zoo_model.config if zoo_model is not None else cfg
    logger.info("checkpoint %s", checkpoint)
    predictor = Predictor.from_checkpoint(
        checkpoint,
        model_config=trained["model"],
        device=cfg["train"]["device"],
        size=config_eval_size(trained),
    )
    on_error = None if report is None else _failure_recorder(report)

    def generate() -> Iterator[VisualItem]:
        for loaded, target_prob, reconstruction in iterate_predictions(
            predictor,
            samples,
            batch_size=cfg["eval"]["batch_size"],
            with_mask=all(sample.mask is not None for sample in samples),
            on_error=on_error,
        ):
            # Panels are drawn at the frame's size; a mask drawn at another size is fitted.
            mask = None if loaded.mask is None else resize_mask(loaded.mask, loaded.image.shape)
            yield VisualItem(loaded.sample.name, loaded.image, target_prob, reconstruction, mask)

    return generate(), len(samples)


def read_saved_predictions(
    pred_dir: str | Path,
    images_dir: str | Path,
    masks_dir: str | Path | None = None,
    limit: int | None = None,
    report: VisualReport | None = None,
) -> tuple[Iterator[VisualItem], int]:
    """Saved prediction maps with their input frames (and masks).

    ``pred_dir`` is read as ``cal_from_mask.py`` reads it (a results folder with ``mat/`` or
    ``img/``, or a folder of maps). The background D comes from
    ``pred_dir/background/<name>.png`` or else the ``.mat`` variable ``D``, when present.

    Args:
        pred_dir: the predictions.
        images_dir: input frames ``<name>.<image suffix>``, in the folder or its ``images/``.
        masks_dir: masks ``<name>.png`` or ``<name>_pixels0.png``; every prediction needs one.
        limit: only the first ``limit`` predictions by name.
        report: unreadable files and size mismatches are recorded in its ``failures``
            (and skipped); without a report they raise.

    Raises:
        DataError: a folder is missing, a prediction has no frame or no mask.
    """
    pred_dir = Path(pred_dir)
    if masks_dir is not None:
        pairs, _ = pair_predictions(pred_dir, masks_dir)
        files = [(pair.name, pair.prediction, pair.mask) for pair in pairs]
    else:
        files = [(path.stem, path, None) for path in prediction_files(pred_dir)]
    files = files[:limit] if limit is not None else files
    frames = {sample.name: sample.image for sample in folder_samples(images_dir)}
    unpaired = [name for name, _, _ in files if name not in frames]
    if unpaired:
        raise DataError(
            f"{images_dir}: no input frame for prediction(s) {summarize(unpaired, ', ')}"
        )
    on_error = None if report is None else _failure_recorder(report)

    def generate() -> Iterator[VisualItem]:
        for name, prediction, mask_path in files:
            try:
                yield _load_saved(name, prediction, frames[name], mask_path, pred_dir)
            except DataError as error:
                if on_error is None:
                    raise
                on_error(name, error)

    return generate(), len(files)


def _load_saved(
    name: str, prediction: Path, frame: Path, mask_path: Path | None, pred_dir: Path
) -> VisualItem:
    image = read_image(frame)
    target_prob = read_prediction(prediction)
    mask = read_mask(mask_path) if mask_path is not None else None
    if mask is not None and mask.shape != image.shape:
        warn_size_mismatch(mask_path, mask.shape, f"frame {frame}", image.shape)
        mask = resize_mask(mask, image.shape)
    background_png = named_file(pred_dir / "background", name, ".png")
    reconstruction = None
    if background_png.is_file():
        reconstruction = read_image(background_png)
    elif prediction.suffix.lower() == ".mat":
        content = scipy.io.loadmat(str(prediction), variable_names=["D"])
        if "D" in content:
            reconstruction = np.asarray(content["D"], dtype=np.float32)
    for what, path, array in (
        ("prediction", prediction, target_prob),
        ("background", background_png, reconstruction),
    ):
        if array is not None and array.shape != image.shape:
            raise DataError(
                f"{path}: {what} is {array.shape[1]}×{array.shape[0]} but frame {frame} is "
                f"{image.shape[1]}×{image.shape[0]}"
            )
    return VisualItem(name, image, target_prob, reconstruction, mask)


def _failure_recorder(report: VisualReport) -> Callable[[Any, UserError], None]:
    def record(sample: Any, error: UserError) -> None:
        name = getattr(sample, "name", sample)
        logger.error("%s", error)
        report.failures.append((str(name), str(error)))

    return record
