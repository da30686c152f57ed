"""Frames in parallel: the classical baselines are single-threaded NumPy per frame.

IPI spends seconds a frame in small SVDs that one BLAS thread runs best (``tools/baselines.py``
sets ``OPENBLAS_NUM_THREADS=1``), so the way to use a second core is a second frame.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from typing import TypeVar

from lrrnet.errors import ConfigError

Item = TypeVar("Item")
Result = TypeVar("Result")


def check_workers(workers: int) -> int:
    """Returns ``workers`` when it is a positive integer, raises ConfigError otherwise."""
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"workers must be a positive integer, got {workers!r}")
    return workers


def ordered_map(
    function: Callable[[Item], Result], items: Iterable[Item], workers: int = 1
) -> Iterator[Result]:
    """``function`` over ``items``, results in the order of the items, as they come.

    With one worker everything runs in this process. With more, ``workers`` fresh
    processes (spawned, so no thread pool or lock of this one is inherited; they inherit the
    environment, BLAS thread settings included) take one item at a time; ``function`` must
    be a module-level function and the items picklable. An exception raised for an item is
    raised here when that item's turn comes.
    """
    check_workers(workers)
    if workers == 1:
        yield from map(function, items)
        return
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        yield from pool.map(function, items)
