"""Scoring the predictor on a list of samples with the shared metrics.

Used for validation during training and the final test of the selected and the last
checkpoints. Under DDP each rank scores its share of the images and the accumulators'
counts are summed, so the numbers equal a single-process run.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lrrnet.data import Sample
from lrrnet.data.transforms import resize_map
from lrrnet.engine.distributed import DistInfo, all_reduce_sum
from lrrnet.engine.inference import Corruption, iterate_predictions
from lrrnet.engine.predictor import Predictor
from lrrnet.metrics import MetricAccumulator


def evaluate_at(
    predictor: Predictor,
    samples: Sequence[Sample],
    thresholds: Sequence[float],
    protocol: str = "standard",
    batch_size: int = 8,
    process: DistInfo | None = None,
    progress: bool = False,
    desc: str = "eval",
    curve_thresholds: Sequence[float] | None = None,
    corrupt: Corruption | None = None,
) -> list[dict[str, Any]]:
    """IoU, nIoU, P, R, F1, Pd, Fa, AUC of ``predictor`` on ``samples`` (masks required) at
    each of ``thresholds``, from one pass of the predictor: one result per threshold, in
    their order.

    Each map is scored at its mask's resolution: a mask of another size than its frame
    (named once in a warning when it is read) gets the prediction resized to it, bilinearly.
    With ``curve_thresholds`` each result also holds ``pd_fa_curve`` (see
    :meth:`MetricAccumulator.compute`). Given the ``process`` of a DDP job, each rank
    scores its share of ``samples`` and the counts are summed over the ranks. ``corrupt``
    changes each frame before the predictor sees it, the masks stay as they are
    (:mod:`lrrnet.robustness`).
    """
    accumulators = [MetricAccumulator(t, protocol, curve_thresholds) for t in thresholds]
    shard = samples if process is None else samples[process.rank :: process.world_size]
    for item, prob, _ in iterate_predictions(
        predictor, shard, batch_size, progress=progress, desc=desc, corrupt=corrupt
    ):
        scored = resize_map(prob, item.mask.shape)
        for accumulator in accumulators:
            accumulator.update(scored, item.mask)
    if process is not None and process.is_distributed:
        accumulators = [
            MetricAccumulator.from_state(
                all_reduce_sum(process, accumulator.state()), t, protocol, curve_thresholds
            )
            for accumulator, t in zip(accumulators, thresholds, strict=True)
        ]
    return [accumulator.compute() for accumulator in accumulators]
