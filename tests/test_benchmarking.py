"""The measuring code (lrrnet.engine.benchmarking, backend_comparison, metrics_reference)
and the tools/benchmark.py command line, on tiny inputs."""

import importlib.util
import json
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from lrrnet.engine import benchmarking
from lrrnet.engine.backend_comparison import compare_backends, format_comparison
from lrrnet.engine.benchmarking import (
    count_flops,
    count_parameters,
    cuda_time,
    format_benchmark,
    time_forwards,
)
from lrrnet.engine.cpu_memory import default_malloc_state
from lrrnet.engine.metrics_reference import (
    compare_metrics,
    reference_metrics,
    reference_score_folder,
    synthetic_pair,
    write_synthetic_folder,
)
from lrrnet.models import LRRNet

ROOT = Path(__file__).resolve().parents[1]
TINY = {"base_channels": 8, "num_groups": 4, "channel_mults": (1, 2), "num_res_blocks": 1}

spec = importlib.util.spec_from_file_location("benchmark_tool", ROOT / "tools" / "benchmark.py")
benchmark_tool = importlib.util.module_from_spec(spec)
spec.loader.exec_module(benchmark_tool)


def test_flops_and_parameters_of_the_default_model_at_64():
    model = LRRNet().eval()
    assert count_parameters(model) == 3_454_994
    flops = count_flops(model, torch.rand(1, 1, 64, 64))
    assert flops == 1_424_883_712  # 1.42 GFLOP, multiply-add = 2
    # Linear in the batch, and the same whichever attention path the model is set to.
    assert count_flops(model, torch.rand(2, 1, 64, 64)) == 2 * flops
    assert count_flops(model.set_attention_impl("naive"), torch.rand(1, 1, 64, 64)) == flops


def test_gflops_at_512() -> None:
    """≈ 99.6 GFLOP for one 512×512 frame (multiply-add = 2)."""
    gflops = count_flops(LRRNet().eval(), torch.rand(1, 1, 512, 512)) / 1e9
    assert gflops == pytest.approx(99.6, abs=0.1)


class FakeClock:
    """``time.perf_counter`` that moves only when a runner says how long it took (ms)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def runner(self, durations_ms):
        durations = iter(durations_ms)

        def run() -> None:
            self.now += next(durations) / 1e3

        return run


def test_time_forwards_keeps_the_first_call_apart_and_times_each_call(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(benchmarking.time, "perf_counter", clock)
    # First call 50 ms, one more warm-up of 40 ms, then the timed 5, 1 and 9 ms.
    runners = {"model": clock.runner([50, 40, 5, 1, 9])}
    times = time_forwards(runners, torch.device("cpu"), warmup=2, iters=3)
    assert times["model:first"] == pytest.approx([50])
    assert times["model"] == pytest.approx([5, 1, 9])
    assert statistics.median(times["model"]) == pytest.approx(5)


def test_cuda_time_is_the_median_of_its_event_timings(monkeypatch):
    elapsed_ms = iter([3.0, 1.0, 2.0])
    calls = []

    class FakeEvent:
        def __init__(self, enable_timing: bool) -> None:
            assert enable_timing

        def record(self) -> None:
            pass

        def synchronize(self) -> None:
            pass

        def elapsed_time(self, end: "FakeEvent") -> float:
            return next(elapsed_ms)

    monkeypatch.setattr(torch.cuda, "Event", FakeEvent)
    assert cuda_time(lambda: calls.append(1), warmup=2, iters=3) == pytest.approx(2e-3)
    assert len(calls) == 5  # the warm-up runs are not timed


def test_identical_backends_differ_by_zero_and_the_table_formats_their_rows():
    torch.manual_seed(0)
    rows = (("torch", "fp32", "fast"), ("torch", "fp32", "fast"))
    results = compare_backends(LRRNet(**TINY), size=32, warmup=1, iters=2, rows=rows)
    assert [row["max_abs_diff_p"] for row in results] == [0.0, 0.0]
    assert results[1]["speedup"] > 0 and len(results[1]["times_ms"]) == 2
    table = format_comparison(results).splitlines()
    assert table[0] == (
        "backend      dtype path      runs as latency ms     FPS speed-up  max |Δp|"
    )
    assert table[1].split()[:4] == ["torch", "fp32", "fast", "fp32"]
    assert table[-1] == f"malloc {results[0]['malloc']}: torch fp32 fast, torch fp32 fast"


def test_the_backend_table_reports_skipped_rows_and_each_malloc_state():
    rows = [
        {"backend": "torch", "dtype": "fp32", "path": "original", "runs_as": "fp32",
         "latency_ms": 20.0, "fps": 50.0, "speedup": 1.0, "max_abs_diff_p": 0.0,
         "malloc": "glibc default"},
        {"backend": "openvino", "dtype": "bf16", "path": "", "runs_as": "fp32",
         "latency_ms": 10.0, "fps": 100.0, "speedup": 2.0, "max_abs_diff_p": 3.4e-2,
         "malloc": "kept"},
        {"backend": "onnxruntime", "dtype": "fp32", "path": "", "skipped": "not installed"},
    ]  # fmt: skip
    assert format_comparison(rows).splitlines()[1:] == [
        "torch        fp32  original  fp32          20.0   50.00    1.00×   0.0e+00",
        "openvino     bf16  -         fp32          10.0  100.00    2.00×   3.4e-02",
        "onnxruntime  fp32  -         skipped: not installed",
        "malloc glibc default: torch fp32 original",
        "malloc kept: openvino bf16",
    ]


def test_format_benchmark_prints_the_measured_figures():
    result = {
        "device": "cpu", "device_name": "CPU-X", "threads": 2, "torch": "2.x", "batch": 1,
        "size": 64, "dtype": "fp32", "attention": "sdpa", "channels_last": False,
        "compile": False, "params": 3_454_994, "gflops": 1.42, "latency_ms": 18.5,
        "iters": 2, "latency_ms_mean": 18.6, "first_call_ms": 31.0, "fps": 54.05,
        "peak_memory_mb": 378.0,
    }  # fmt: skip
    assert format_benchmark(result).splitlines() == [
        "device cpu (CPU-X), 2 threads, torch 2.x",
        "input 1×1×64×64 fp32, attention sdpa, channels_last False, compile False",
        "params        3,454,994",
        "GFLOPs        1.42 (per forward of the batch)",
        "latency       18.5 ms (median of 2; mean 18.6; first call 31)",
        "FPS           54.05",
        "peak memory   378 MiB",
    ]


def test_the_metric_reference_agrees_with_the_accumulator():
    result = compare_metrics(num=3, reference_num=1, size=32, seed=0)
    assert result["worst"] <= 1e-12
    assert result["num"] == 3 and result["reference_num"] == 1
    assert set(result["reference"]) == {"miou", "niou", "pd", "fa", "auc"}


def test_the_end_to_end_reference_scores_the_files_written_for_it(tmp_path: Path) -> None:
    pred_dir, mask_dir = write_synthetic_folder(tmp_path, num=2, size=32, seed=1)
    assert sorted(p.name for p in (pred_dir / "mat").iterdir()) == ["000000.mat", "000001.mat"]
    rng = np.random.default_rng(1)
    in_memory = reference_metrics([synthetic_pair(rng, 32) for _ in range(2)])
    assert reference_score_folder(pred_dir, mask_dir) == in_memory


def test_end_to_end_times_both_on_a_given_results_folder(tmp_path: Path) -> None:
    from lrrnet.engine.metrics_reference import time_end_to_end

    pred_dir, mask_dir = write_synthetic_folder(tmp_path / "maps", num=3, size=32, seed=2)
    script = Path(__file__).resolve().parents[1] / "cal_from_mask.py"
    result = time_end_to_end(
        cal_from_mask=script, folders=(pred_dir, mask_dir), script_options=["--no-plots"]
    )
    assert (result["num"], result["size"]) == (3, None)  # counted from the folder
    assert result["script_s"] > 0 and result["reference_s"] > 0
    assert not list(pred_dir.rglob("*.png"))  # nothing written among the maps


def test_benchmark_tool_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    argv = ["--size", "32", "--device", "cpu", "--warmup", "1", "--iters", "1"]
    assert benchmark_tool.main([*argv, "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["params"] == 3_454_994
    assert result["fps"] > 0 and result["latency_ms"] > 0 and result["gflops"] > 0
    compare = tmp_path / "compare.json"
    assert benchmark_tool.main(["--compare", *argv, "--json", str(compare)]) == 0
    result = json.loads(compare.read_text())
    # Plumbing only: the 1e-5 equality of the paths is tested in tests/test_model.py on
    # released-format weights.
    assert result["max_abs_diff_D"] < 1e-4 and result["max_abs_diff_T"] < 1e-4
    assert result["speedup"] > 0 and result["speedup_same_process"] > 0
    # The original ran in its own interpreter, with the malloc the process started with.
    assert len(result["original_times_ms"]) == 1
    if default_malloc_state() == "glibc default":
        assert result["original_malloc"] == "glibc default"
        assert result["malloc"] == "kept"


@pytest.mark.skipif(
    any(importlib.util.find_spec(name) is None for name in ("onnx", "onnxruntime")),
    reason="optional packages onnx and onnxruntime not installed",
)
def test_benchmark_with_a_backend_writes_fps(tmp_path, monkeypatch):
    monkeypatch.setenv("LRRNET_CACHE", str(tmp_path / "cache"))  # not the user's cache
    torch.manual_seed(0)
    checkpoint = tmp_path / "tiny.pth"
    torch.save({"model": LRRNet(**TINY).state_dict(), "config": {"model": TINY}}, checkpoint)
    out = tmp_path / "bench.json"
    command = [
        sys.executable, "tools/benchmark.py", "--size", "32", "--batch", "1", "--device", "cpu",
        "--warmup", "1", "--iters", "1", "--backend", "onnxruntime", "--checkpoint",
        str(checkpoint), "--json", str(out),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert json.loads(out.read_text())["fps"] > 0
