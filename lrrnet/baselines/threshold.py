"""From a classical detector's response to a target map: fixed gain or per-frame threshold.

A response ``r`` (top-hat residue, IPI sparse part) is in image intensity units. Two ways
to decide what is a target, both written as a map in [0, 1] whose 0.5 threshold is the
decision, so ``cal_from_mask.py`` scores them like a network's output:

- fixed gain: ``p = clip(gain · r)``; a target is ``r > 0.5 / gain`` on every frame;
- adaptive (the field's per-frame rule): ``T = mean(r) + k · std(r)`` of the frame's own
  response, ``p = clip(0.5 · r / T)``; a target is ``r > T``. Real frames differ in
  contrast from one to the next, which a single gain cannot follow.
"""

from __future__ import annotations

import numpy as np

from lrrnet.errors import ConfigError


def adaptive_threshold(response: np.ndarray, k: float) -> float:
    """``mean + k · std`` of a frame's response."""
    return float(response.mean() + k * response.std())


def response_to_map(response: np.ndarray, gain: float = 1.0, k: float | None = None) -> np.ndarray:
    """The target map of a response, by fixed gain or, when ``k`` is given, adaptively.

    Args:
        response: ``H×W`` non-negative response in intensity units.
        gain: fixed factor (used when ``k`` is None).
        k: std multiplier of the per-frame threshold; None uses the fixed gain.

    Returns:
        ``H×W`` float32 map in [0, 1]; ``> 0.5`` exactly where the rule detects.

    Raises:
        ConfigError: ``gain`` or ``k`` out of range.
    """
    response = np.asarray(response, dtype=np.float32)
    if k is None:
        if not gain > 0:
            raise ConfigError(f"gain must be > 0, got {gain!r}")
        return np.clip(response * np.float32(gain), 0.0, 1.0).astype(np.float32)
    if not k >= 0:
        raise ConfigError(f"k must be >= 0, got {k!r}")
    threshold = adaptive_threshold(response, k)
    if threshold <= 0:  # a flat, empty response: nothing stands out
        return np.zeros_like(response)
    return np.clip(response * np.float32(0.5 / threshold), 0.0, 1.0).astype(np.float32)


def counts_above(
    response: np.ndarray, mask: np.ndarray, thresholds: np.ndarray
) -> tuple[np.ndarray, np.ndarray, int]:
    """Pixels above each threshold: all of them, and those on target; for sweeping fast.

    Args:
        response: ``H×W`` response.
        mask: ``H×W`` bool ground truth.
        thresholds: ``N`` thresholds in the response's units; a pixel counts when ``r > t``.

    Returns:
        ``(positives N, true positives N, target pixels)`` as int64 / int.
    """
    values = np.sort(response, axis=None)
    on_target = np.sort(response[mask], axis=None)
    positives = values.size - np.searchsorted(values, thresholds, side="right")
    true_positives = on_target.size - np.searchsorted(on_target, thresholds, side="right")
    return positives.astype(np.int64), true_positives.astype(np.int64), int(on_target.size)
