"""Running the predictor over a list of samples, and scoring it with the shared metrics.

Used for validation during training, the final test of the selected and the last
checkpoints, inference and the visual tools. Under DDP each rank scores its share of the
images and the accumulators' counts are summed, so the numbers equal a single-process run.
"""

from __future__ import annotations

import dataclasses
import itertools
import zlib
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from lrrnet.data import Sample, read_sample
from lrrnet.data.transforms import add_gaussian_noise, resize_map
from lrrnet.engine.distributed import DistInfo, all_reduce_sum
from lrrnet.engine.predictor import Predictor
from lrrnet.errors import DataError
from lrrnet.metrics import MetricAccumulator
from lrrnet.progress import Progress


@dataclass
class Loaded:
    """A sample read from disk: ``image`` ``H×W`` in [0, 1], ``mask`` ``H×W`` bool or None."""

    sample: Sample
    image: np.ndarray | None = None
    mask: np.ndarray | None = None
    error: DataError | None = None


def load_sample(
    sample: Sample, with_mask: bool, noise_sigma: float = 0.0, noise_seed: int = 0
) -> Loaded:
    """Read one sample; a problem is returned in ``error``, not raised (the caller decides)."""
    # Inference reads no masks: it must not fail, or spend time, on them.
    to_read = sample if with_mask else dataclasses.replace(sample, mask=None)
    image, mask, problems = read_sample(to_read, require_mask=with_mask)
    if problems:
        return Loaded(sample, error=DataError("; ".join(problems)))
    if noise_sigma > 0:
        # Seeded by name, so a frame gets the same noise whatever the order or batch.
        rng = np.random.default_rng([noise_seed, zlib.crc32(sample.name.encode())])
        image = add_gaussian_noise(image, noise_sigma, rng)
    return Loaded(sample, image, mask)


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
) -> Iterator[tuple[Loaded, np.ndarray, np.ndarray]]:
    """Yield ``(loaded, target_prob H×W, reconstruction H×W)`` for every readable sample.

    Frames are read by two threads a few batches ahead; consecutive frames of equal size run
    as one batch. An unreadable sample raises its ``DataError`` unless ``on_error`` is given,
    which is then called and the sample skipped. ``progress`` shows a bar on a terminal and
    logs a line every :data:`lrrnet.progress.LOG_EVERY` frames elsewhere.
    """
    chunk = max(1, batch_size) * 4
    with (
        ThreadPoolExecutor(max_workers=2) as pool,
        Progress(len(samples), desc, enabled=progress) as bar,
    ):
        for start in range(0, len(samples), chunk):
            loaded = list(
                pool.map(
                    lambda s: load_sample(s, with_mask, noise_sigma, noise_seed),
                    samples[start : start + chunk],
                )
            )
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
                    target_prob, reconstruction = predictor.predict_batch(images)
                    for index, item in enumerate(batch):
                        yield item, target_prob[index, 0].numpy(), reconstruction[index, 0].numpy()
                    bar.update(len(batch))


def evaluate(
    predictor: Predictor,
    samples: Sequence[Sample],
    threshold: float = 0.5,
    protocol: str = "standard",
    batch_size: int = 8,
    dist_info: DistInfo | None = None,
    progress: bool = False,
    desc: str = "eval",
    curve_thresholds: Sequence[float] | None = None,
) -> dict[str, Any]:
    """IoU, nIoU, P, R, F1, Pd, Fa, AUC of ``predictor`` on ``samples`` (masks required).

    Each map is scored at its mask's resolution: a mask of another size than its frame
    (named once in a warning when it is read) gets the prediction resized to it, bilinearly.
    With ``curve_thresholds`` the result also holds ``pd_fa_curve`` (see
    :meth:`MetricAccumulator.compute`).
    """
    accumulator = MetricAccumulator(threshold, protocol, curve_thresholds)
    shard = samples if dist_info is None else samples[dist_info.rank :: dist_info.world_size]
    for item, prob, _ in iterate_predictions(
        predictor, shard, batch_size, progress=progress, desc=desc
    ):
        accumulator.update(resize_map(prob, item.mask.shape), item.mask)
    if dist_info is not None and dist_info.is_distributed:
        accumulator = MetricAccumulator.from_state(
            all_reduce_sum(dist_info, accumulator.state()), threshold, protocol, curve_thresholds
        )
    return accumulator.compute()
