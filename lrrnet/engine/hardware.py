"""Facts about the machine that decide how to run: the CPU's model and flags, and whether
bf16 arithmetic is native on it.

Training, inference, deployment and benchmarks all ask these questions, so they live here
rather than in any one of them.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

# CPU flags of native bf16 arithmetic (AMX tiles, or AVX-512 BF16 dot products).
BF16_FLAGS: tuple[str, ...] = ("amx_bf16", "avx512_bf16")


def cpu_flags(cpuinfo: str | os.PathLike = "/proc/cpuinfo") -> set[str]:
    """The CPU's feature flags (empty when ``/proc/cpuinfo`` cannot be read)."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def bf16_is_emulated(flags: set[str] | None = None) -> bool:
    """Whether this CPU lacks native bf16 arithmetic (:data:`BF16_FLAGS`), so that bf16
    autocast runs emulated and far slower than fp32."""
    return not ((cpu_flags() if flags is None else flags) & set(BF16_FLAGS))


EMULATED_BF16 = (
    f"bf16 on this CPU is emulated and slow: it has neither {' nor '.join(BF16_FLAGS)} "
    "(see the flags in /proc/cpuinfo); fp32 is faster here"
)


def warn_if_bf16_is_emulated(dtype: str, flags: set[str] | None = None) -> bool:
    """Warns when bf16 is asked for on a CPU without native bf16; returns whether it warned."""
    if dtype != "bf16" or not bf16_is_emulated(flags):
        return False
    warnings.warn(EMULATED_BF16, RuntimeWarning, stacklevel=2)
    return True


def cpu_model_name(cpuinfo: str | os.PathLike = "/proc/cpuinfo") -> str | None:
    """``model name`` from ``/proc/cpuinfo`` (``None`` when it cannot be read)."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return None


def cpu_description(cpuinfo: str | os.PathLike = "/proc/cpuinfo") -> str:
    """``model name`` from ``/proc/cpuinfo`` and whether it has native bf16."""
    name = cpu_model_name(cpuinfo)
    native = sorted(cpu_flags(cpuinfo) & set(BF16_FLAGS))
    return (
        f"{name or 'unknown CPU'}, {os.cpu_count()} CPUs visible, "
        f"native bf16: {', '.join(native) if native else 'no (' + ', '.join(BF16_FLAGS) + ' absent)'}"
    )
