"""Running the predictor over samples, and writing its maps: the work behind ``inference.py``.

:func:`iterate_predictions` reads the frames ahead and batches them for the predictor; the
evaluator scores what it yields, :func:`predict_to_folder` writes it, and the panels draw it.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import time
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from lrrnet.data import Sample, read_sample
from lrrnet.data.frames import VideoFrames
from lrrnet.data.io import (
    check_apart_from_inputs,
    check_prediction_folder,
    clear_predictions,
    read_image_gray,
    write_prediction,
)
from lrrnet.data.transforms import add_gaussian_noise
from lrrnet.engine.checkpoint import load_checkpoint
from lrrnet.engine.detections import DETECTIONS_FILE, detections_writer
from lrrnet.engine.forward_memory import check_forward_memory
from lrrnet.engine.predictor import Predictor, config_eval_size
from lrrnet.engine.zoo import resolve_checkpoint
from lrrnet.errors import DataError
from lrrnet.files import check_writable
from lrrnet.progress import Progress

logger = logging.getLogger(__name__)


@dataclass
class LoadedSample:
    """A sample read from disk: ``image`` ``H×W`` in [0, 1], ``mask`` ``H×W`` bool or None."""

    sample: Sample
    image: np.ndarray | None = None
    mask: np.ndarray | None = None
    error: DataError | None = None


# A change of a frame before the network sees it: ``(name, image H×W) → image H×W``.
Corruption = Callable[[str, np.ndarray], np.ndarray]


def frame_rng(seed: int, name: str) -> np.random.Generator:
    """The random source of one frame's noise, seeded by its name, so a frame gets the same
    noise whatever the order or batch."""
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def load_sample(
    sample: Sample,
    with_mask: bool,
    noise_sigma: float = 0.0,
    noise_seed: int = 0,
    corrupt: Corruption | None = None,
) -> LoadedSample:
    """Read one sample; a problem is returned in ``error``, not raised (the caller decides).

    ``corrupt`` changes the image after it is read (and after ``noise_sigma``'s noise).
    """
    # Inference reads no masks: it must not fail, or spend time, on them.
    to_read = sample if with_mask else dataclasses.replace(sample, mask=None)
    image, mask, problems = read_sample(to_read, require_mask=with_mask)
    if problems:
        return LoadedSample(sample, error=DataError("; ".join(problems)))
    image = changed_image(sample.name, image, noise_sigma, noise_seed, corrupt)
    return LoadedSample(sample, image, mask)


def changed_image(
    name: str,
    image: np.ndarray,
    noise_sigma: float = 0.0,
    noise_seed: int = 0,
    corrupt: Corruption | None = None,
) -> np.ndarray:
    """``image`` with ``noise_sigma``'s seeded noise, then ``corrupt``'s change, applied."""
    if noise_sigma > 0:
        image = add_gaussian_noise(image, noise_sigma, frame_rng(noise_seed, name))
    if corrupt is not None:
        image = corrupt(name, image)
    return image


def _loaded_chunks(
    samples: Sequence[Sample],
    chunk: int,
    pool: ThreadPoolExecutor,
    with_mask: bool,
    noise_sigma: float,
    noise_seed: int,
    corrupt: Corruption | None,
) -> Iterator[list[LoadedSample]]:
    """The samples read ``chunk`` at a time: files by the pool's threads, a video's frames
    in order from its one decoder (:meth:`VideoFrames.read`), so only a chunk is in memory."""
    if isinstance(samples, VideoFrames):
        frames = samples.read()
        while block := list(itertools.islice(frames, chunk)):
            yield [
                LoadedSample(
                    sample, changed_image(sample.name, image, noise_sigma, noise_seed, corrupt)
                )
                for sample, image in block
            ]
        return
    for start in range(0, len(samples), chunk):
        yield list(
            pool.map(
                lambda s: load_sample(s, with_mask, noise_sigma, noise_seed, corrupt),
                samples[start : start + chunk],
            )
        )


def iterate_predictions(
    predictor: Predictor,
    samples: Sequence[Sample],
    batch_size: int = 8,
    with_mask: bool = True,
    noise_sigma: float = 0.0,
    noise_seed: int = 0,
    on_error: Callable[[Sample, DataError], None] | None = None,
    progress: bool = False,
    desc: str = "predict",
    corrupt: Corruption | None = None,
    check_memory: bool = False,
) -> Iterator[tuple[LoadedSample, np.ndarray, np.ndarray]]:
    """Yield ``(loaded, target_prob H×W, reconstruction H×W)`` for every readable sample.

    Frames are read by two threads a few batches ahead; consecutive frames of equal size run
    as one batch. An unreadable sample raises its ``DataError`` unless ``on_error`` is given,
    which is then called and the sample skipped. ``progress`` shows a bar on a terminal and
    logs a line every :data:`lrrnet.progress.LOG_EVERY` frames elsewhere. ``corrupt``
    changes each frame before the predictor sees it (see :func:`load_sample`).

    ``samples`` may be :class:`~lrrnet.data.frames.VideoFrames`, streamed frame by frame.
    With ``check_memory``, a batch whose forward would not fit in the device's memory is
    refused before it runs (:func:`~lrrnet.engine.forward_memory.check_forward_memory`).
    """
    chunk = max(1, batch_size) * 4
    checked: set[tuple[int, ...]] = set()
    with (
        ThreadPoolExecutor(max_workers=2) as pool,
        Progress(len(samples), desc, enabled=progress) as bar,
    ):
        for loaded in _loaded_chunks(
            samples, chunk, pool, with_mask, noise_sigma, noise_seed, corrupt
        ):
            for item in loaded:
                if item.error is not None:
                    if on_error is None:
                        raise item.error
                    on_error(item.sample, item.error)
                    bar.update(1)
            good = [item for item in loaded if item.error is None]
            for _, group in itertools.groupby(good, key=lambda item: item.image.shape):
                group = list(group)
                for offset in range(0, len(group), batch_size):
                    batch = group[offset : offset + batch_size]
                    images = torch.from_numpy(np.stack([item.image for item in batch]))[:, None]
                    if check_memory and images.shape not in checked:
                        what = str(batch[0].sample.image)
                        check_forward_memory(predictor, len(batch), *images.shape[-2:], what)
                        checked.add(images.shape)
                    target_prob, reconstruction = predictor.predict_batch(images)
                    for index, item in enumerate(batch):
                        yield item, target_prob[index, 0].numpy(), reconstruction[index, 0].numpy()
                    bar.update(len(batch))


@dataclass
class InferenceReport:
    written: int = 0
    seconds: float = 0.0
    failures: list[tuple[str, str]] = field(default_factory=list)
    detections: int = 0

    @property
    def images_per_second(self) -> float:
        return self.written / self.seconds if self.seconds > 0 else 0.0


def at_frame_size(prob: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """``prob`` (``h×w``) at the frame's ``shape``: resized back the way the predictor does
    (bilinear, half-pixel centres) when it kept the network's size (``keep_network_size``)."""
    if prob.shape == tuple(shape):
        return prob
    resized = F.interpolate(
        torch.from_numpy(prob)[None, None], size=tuple(shape), mode="bilinear", align_corners=False
    )
    return resized[0, 0].numpy()


# The published recipe resizes every training frame to 512×512.
RECIPE_SIZE = 512


def checkpoint_default_size(path: str | Path) -> tuple[str | int, str]:
    """The size to run a checkpoint at when none is given, and why (for the log).

    A checkpoint that stores its training config runs the way that config evaluates
    (``data.eval_size``: ``base_size`` or native). A bare state dict (the released ``.pkl``
    files) says nothing, so the published recipe's 512×512 is used: running a network
    trained on frames resized to 512 natively on 256×256 frames would halve the scale of
    the targets it learnt. A zoo name runs the way its entry's config evaluates.
    """
    path, zoo_model = resolve_checkpoint(path)
    if zoo_model is not None:
        stored, source = zoo_model.config, f"zoo model '{zoo_model.name}'"
    else:
        stored, source = load_checkpoint(path).get("config"), f"the config stored in {path}"
    data = stored.get("data") if isinstance(stored, Mapping) else None
    if isinstance(data, Mapping) and {"eval_size", "base_size"} <= data.keys():
        size = config_eval_size(stored)
        return size, (
            f"from {source} (data.eval_size={data['eval_size']}, "
            f"data.base_size={data['base_size']})"
        )
    return RECIPE_SIZE, (
        f"{path} stores no training config (a bare state dict): {RECIPE_SIZE}×{RECIPE_SIZE}, "
        "the size the published recipe trains on; --size native runs frames as they are"
    )


def _check_first_frame_memory(
    predictor: Predictor, samples: Sequence[Sample], batch_size: int
) -> None:
    """Refuse, before any work, a run whose first batch would not fit in memory: a video's
    frames all have its size, and a folder's first frame is decoded to learn its own."""
    if not len(samples):
        return
    if isinstance(samples, VideoFrames):
        height, width = samples.height, samples.width
    else:
        try:
            height, width = read_image_gray(samples[0].image).shape
        except DataError:
            return  # reported by name when the run reaches it
    batch = min(batch_size, len(samples))
    check_forward_memory(predictor, batch, height, width, str(samples[0].image))


def check_output_folder(
    out_dir: str | Path,
    save_background: bool = False,
    detections: bool = False,
    flag: str = "--out",
) -> None:
    """Refuse an ``out_dir`` that cannot receive the files :func:`predict_to_folder` writes
    there (:func:`~lrrnet.files.check_writable`), before the model is loaded or a frame read:
    otherwise every frame is computed and only its write fails.

    Raises:
        DataError: one line naming ``flag`` and the folder (or file) that cannot be written.
    """
    check_prediction_folder(out_dir, flag, with_background=save_background)
    if detections:
        check_writable(Path(out_dir) / DETECTIONS_FILE, flag, file=True)


def predict_to_folder(
    predictor: Predictor,
    samples: Sequence[Sample],
    out_dir: str | Path,
    batch_size: int = 8,
    save_background: bool = False,
    noise_sigma: float = 0.0,
    noise_seed: int = 0,
    progress: bool = True,
    detections_threshold: float | None = None,
) -> InferenceReport:
    """Write ``OUT/img/<name>.png`` and ``OUT/mat/<name>.mat`` for every readable sample.

    An unreadable image is logged by name and recorded in the report; the others are still
    written. The maps an earlier run wrote in ``out_dir`` are removed first, so every map
    there belongs to this run and a failed frame has none (scoring then reports it missing).
    Files this framework did not write are never removed or overwritten, and an ``out_dir``
    that holds an input frame, or that cannot be written, is refused before any frame is read
    (:func:`~lrrnet.data.io.clear_predictions`, :func:`~lrrnet.data.io.check_apart_from_inputs`,
    :func:`check_output_folder`).

    ``samples`` may be a video's :class:`~lrrnet.data.frames.VideoFrames`, streamed. A
    forward that would not fit in memory is refused before it runs, and before anything is
    removed when the size the network sees is known up front (a video, or a size N). With
    ``detections_threshold``, ``OUT/detections.csv`` gets every frame's components of
    ``p > threshold`` at the frame's own size (:mod:`lrrnet.engine.detections`).
    """
    report = InferenceReport()
    check_output_folder(out_dir, save_background, detections_threshold is not None)
    _check_first_frame_memory(predictor, samples, batch_size)
    check_apart_from_inputs(out_dir, [sample.image for sample in samples])
    removed = clear_predictions(
        out_dir, [sample.name for sample in samples], with_background=save_background
    )
    if removed:
        logger.info("removed %d maps of an earlier run from %s", removed, out_dir)

    def record_failure(sample: Sample, error: DataError) -> None:
        logger.error("%s", error)
        report.failures.append((sample.name, str(error)))

    started = time.perf_counter()
    with (
        nullcontext()
        if detections_threshold is None
        else detections_writer(Path(out_dir) / DETECTIONS_FILE, detections_threshold)
    ) as add_detections:
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
            check_memory=True,
        ):
            background = reconstruction if save_background else None
            write_prediction(out_dir, item.sample.name, target_prob, background=background)
            report.written += 1
            if add_detections is not None:
                report.detections += add_detections(
                    item.sample.name, at_frame_size(target_prob, item.image.shape)
                )
    report.seconds = time.perf_counter() - started
    return report
