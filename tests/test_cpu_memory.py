"""keep_freed_memory: big tensors come from the heap once it is applied, and users' own
malloc settings win. Each case runs in a fresh interpreter (the setting is process-wide)."""

import ctypes
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
    reason="keep_freed_memory acts on glibc's malloc only",
)

# Prints what keep_freed_memory() reported, then by how many bytes glibc's mmapped blocks
# (mallinfo2's hblkhd) grow while a 64 MiB tensor is alive.
PROBE = """
import ctypes, sys, torch
from lrrnet.engine.cpu_memory import keep_freed_memory
if sys.argv[1] == "predictor":
    from lrrnet.engine.predictor import Predictor
    from lrrnet.models import LRRNet
    predictor = Predictor(LRRNet(base_channels=8, num_groups=4, channel_mults=(1, 2)), "cpu")
    print("layout", predictor.memory_format)
result = keep_freed_memory()
class Info(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]
mallinfo2 = ctypes.CDLL(None).mallinfo2
mallinfo2.restype = Info
before = mallinfo2().hblkhd
block = torch.empty(16 * 2**20)  # 64 MiB, above glibc's largest automatic mmap threshold
block.fill_(1.0)
print("result", result)
print("mmapped", mallinfo2().hblkhd - before)
"""


def probe(mode="plain", **env_changes):
    if not hasattr(ctypes.CDLL(None), "mallinfo2"):
        pytest.skip("this glibc has no mallinfo2 (before 2.33)")
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("MALLOC_")
        and key not in ("GLIBC_TUNABLES", "LRRNET_KEEP_FREED_MEMORY")
    }
    env.update(env_changes)
    done = subprocess.run(
        [sys.executable, "-c", PROBE, mode], capture_output=True, text=True, cwd=ROOT, env=env
    )
    assert done.returncode == 0, done.stderr
    return dict(line.split(" ", 1) for line in done.stdout.splitlines())


def test_kept_memory_serves_big_tensors_from_the_heap():
    report = probe()
    assert report["result"] == "kept"
    assert int(report["mmapped"]) == 0


def test_opting_out_leaves_glibcs_default():
    report = probe(LRRNET_KEEP_FREED_MEMORY="0")
    assert report["result"] == "disabled by LRRNET_KEEP_FREED_MEMORY=0"
    assert int(report["mmapped"]) >= 64 * 2**20


def test_a_users_own_malloc_setting_is_not_overridden():
    report = probe(MALLOC_MMAP_THRESHOLD_="131072")
    assert report["result"] == "set by the user (MALLOC_MMAP_THRESHOLD_)"
    assert int(report["mmapped"]) >= 64 * 2**20
    report = probe(GLIBC_TUNABLES="glibc.malloc.trim_threshold=131072")
    assert report["result"] == "set by the user (GLIBC_TUNABLES)"


def test_the_cpu_predictor_applies_it_and_runs_contiguous():
    report = probe("predictor")
    assert report["result"] == "kept"
    assert int(report["mmapped"]) == 0
    assert report["layout"] == "torch.contiguous_format"
