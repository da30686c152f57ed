"""Keeps freed memory in the process for reuse, which makes CPU inference much faster.

glibc's ``malloc`` serves every block above its mmap threshold (at most 32 MiB, adjusted as
the program runs) with a fresh ``mmap`` and gives it back with ``munmap`` when freed; the
top of the heap is also trimmed back to the OS once 128 KiB or more is free there. One
512×512 LRRNet forward allocates dozens of 16–48 MiB feature maps, so every forward maps
them anew and the kernel zeroes each page on first touch, a large share of the forward's
time on a small CPU (docs/speed.md, "CPU"). With both thresholds raised
(:data:`KEEP_BYTES`), freed maps stay in the heap and the next forward reuses them.
The numbers do not change, only where the memory comes from; the cost is that the process
keeps its peak size (about 0.9 GiB for a 512×512 frame instead of 0.7–0.8 GiB).

:func:`keep_freed_memory` is called once the CPU predictor is built (``inference.py``, the
trainer's evaluation, ``tools/benchmark.py``). It applies only to glibc (Linux), and never
overrides what the user chose: nothing is changed when ``MALLOC_MMAP_THRESHOLD_``,
``MALLOC_TRIM_THRESHOLD_`` or a ``glibc.malloc`` tunable is set in the environment, or when
``LRRNET_KEEP_FREED_MEMORY=0``.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import os
import platform

log = logging.getLogger(__name__)

# mallopt(3) parameter numbers (glibc's malloc.h).
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
KEEP_BYTES = 1 << 30  # blocks up to 1 GiB come from the heap; up to 1 GiB free stays there
OPT_OUT_VARIABLE = "LRRNET_KEEP_FREED_MEMORY"
USER_MALLOC_VARIABLES = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")


@functools.cache
def keep_freed_memory() -> str:
    """Raises glibc's mmap and trim thresholds to :data:`KEEP_BYTES`, once per process.

    Returns:
        What happened, for logs and benchmark records: ``"kept"`` (applied now or before),
        or why it was not applied (``"not glibc"``, ``"disabled by
        LRRNET_KEEP_FREED_MEMORY=0"``, ``"set by the user (MALLOC_MMAP_THRESHOLD_)"``,
        ``"mallopt refused"``).
    """
    result = _apply()
    log.debug("malloc thresholds: %s", result)
    return result


def default_malloc_state() -> str:
    """How this process's malloc was set up before any :func:`keep_freed_memory`:
    ``"glibc default"``, ``"not glibc"`` or ``"set by the user (NAME)"``."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return "not glibc"
    for name in USER_MALLOC_VARIABLES:
        if name in os.environ:
            return f"set by the user ({name})"
    if "glibc.malloc" in os.environ.get("GLIBC_TUNABLES", ""):
        return "set by the user (GLIBC_TUNABLES)"
    return "glibc default"


def _apply() -> str:
    if os.environ.get(OPT_OUT_VARIABLE, "1") == "0":
        return f"disabled by {OPT_OUT_VARIABLE}=0"
    state = default_malloc_state()
    if state != "glibc default":
        return state
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return "not glibc"
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    # mallopt returns 1 on success. Both are needed: with only the mmap threshold raised the
    # heap's free top is still trimmed and faulted in anew, and setting only the trim
    # threshold stops glibc's adjustment of the mmap threshold, which then stays at its
    # 128 KiB start and maps every feature map anew.
    if not mallopt(M_MMAP_THRESHOLD, KEEP_BYTES) or not mallopt(M_TRIM_THRESHOLD, KEEP_BYTES):
        return "mallopt refused"
    return "kept"
