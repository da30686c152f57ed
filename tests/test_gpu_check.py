"""The CPU-side logic of tools/gpu/gpu_check.py: sizing the real run, and the summary it prints."""

import importlib.util
import json
import sys
import time
from pathlib import Path

import pytest

from lrrnet.engine.predictor import Predictor
from lrrnet.errors import ConfigError
from lrrnet.models import LRRNet

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "tools" / "gpu" / "gpu_check.py")
gpu_check = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gpu_check)


@pytest.mark.parametrize("step_seconds", [0.005, 0.03, 0.2, 5.0])
@pytest.mark.parametrize("budget", [60, 200, 900])
def test_sirst_plan_fits_the_budget_and_validates_on_epoch_boundaries(step_seconds, budget):
    plan = gpu_check.plan_sirst_run(step_seconds, budget)
    assert plan["iters_per_epoch"] == 32  # 256 idx_427 training frames, batch 8
    assert 1 <= plan["epochs"] <= 400
    assert plan["total_iters"] == plan["epochs"] * 32
    assert plan["eval_every"] % 32 == 0 and plan["eval_every"] >= 32
    evaluations = plan["total_iters"] // plan["eval_every"]
    assert evaluations <= 2 * gpu_check.TARGET_EVALUATIONS

    def seconds(epochs):
        steps = epochs * 32 * step_seconds * gpu_check.STEP_SLACK
        return steps + gpu_check.TARGET_EVALUATIONS * gpu_check.EVAL_SECONDS

    # Within the budget, unless even one epoch is longer (then one epoch is run).
    assert seconds(plan["epochs"]) <= budget or plan["epochs"] == 1
    # Not wastefully short: one more epoch would not have fitted, unless capped at 400.
    if plan["epochs"] < 400:
        assert seconds(plan["epochs"] + 1) > budget


def test_sirst_plan_for_the_measured_h200_step_fits_its_budget():
    # The H200's step of 0.104 s (docs/speed.md, "GPU"): 150 s give about 40 epochs.
    plan = gpu_check.plan_sirst_run(0.104, 150)
    assert 30 <= plan["epochs"] <= 40


def test_summary_table_names_failures_and_survives_missing_sections():
    results = {
        "env": {"device_name": "GPU-X", "memory_gib": 80, "torch": "2.x", "cuda": "13"},
        "tests": {
            "cases": [
                {"name": "test_a", "status": "passed", "seconds": 1, "message": ""},
                {"name": "test_b", "status": "failure", "seconds": 1, "message": "boom"},
            ]
        },
        "sirst": {"_status": "killed at its time limit"},
        "bench": {
            "results": [
                {
                    "batch": 1,
                    "dtype": "bf16",
                    "channels_last": True,
                    "mode": "graph",
                    "latency_ms": 1.5,
                    "fps": 666.7,
                    "peak_memory_mb": 300,
                }
            ],
            "skipped": [{"batch": 32, "mode": "compile", "reason": "out of time"}],
        },
    }
    results["cpu"] = {
        "cpu": "CPU-Y",
        "cores": 16,
        "native_bf16_flags": ["amx_bf16"],
        "compare_backends": {
            "rows": [
                {"backend": "openvino", "dtype": "bf16", "path": "", "runs_as": "bf16",
                 "latency_ms": 185.1, "speedup": 5.02, "max_abs_diff_p": 8e-6},
                {"backend": "openvino", "dtype": "fp16", "path": "", "skipped": "no fp16"},
            ]
        },
        "accuracy": [
            {"backend": "openvino", "dtype": "bf16", "infer_s": 10.3, "n_images": 200,
             "metrics": {"miou": 0.479, "niou": 0.5586, "pd": 0.9187, "fa": 3.66e-4}},
            {"backend": "torch", "dtype": "bf16", "infer": {"tail": ["error: boom"]}},
        ],
    }  # fmt: skip
    table = gpu_check.summary_table(results)
    assert "CPU-Y, 16 cores; native bf16: ['amx_bf16']" in table
    assert "openvino    bf16 -        runs as bf16:    185.1 ms  5.02×" in table
    assert "on 200 frames: IoU 47.90 nIoU 55.86 Pd 91.87 Fa 366.00e-6" in table
    assert "torch bf16: ['error: boom']" in table
    assert "2 threads openvino fp16: no fp16" in table
    assert "GPU-X" in table
    assert "'passed': 1" in table and "'failure': 1" in table
    assert "failure: test_b: boom" in table
    assert "SIRST v1: killed at its time limit" in table
    assert "graph" in table and "666.7 FPS" in table
    assert "out of time" in table


def test_cpu_section_needs_all_three_inputs(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        gpu_check.main(["--out", str(tmp_path), "--cpu-weights", str(tmp_path / "w.pth")])
    assert exit_info.value.code == 2
    assert "--cpu-weights, --cpu-images and --cpu-masks" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie waiting for its parent counts as gone)."""
    status = Path(f"/proc/{pid}/status")
    try:
        state = next(line for line in status.read_text().splitlines() if line.startswith("State"))
    except (FileNotFoundError, ProcessLookupError):
        return False
    return "Z" not in state.split()[1]


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc to see the processes")
def test_a_section_killed_at_its_limit_takes_its_children_along(tmp_path):
    # The section starts a child (as section_tests starts pytest) and outlives its limit.
    pid_file = tmp_path / "child.pid"
    section = (
        "import subprocess, sys, time; "
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
        f"open({str(pid_file)!r}, 'w').write(str(child.pid)); time.sleep(60)"
    )
    started = time.time()
    status = gpu_check.run_process_group([sys.executable, "-c", section], 2.0)
    assert status == "killed at its time limit"
    assert time.time() - started < 30
    child = int(pid_file.read_text())
    for _ in range(50):  # the kill is asynchronous
        if not _alive(child):
            break
        time.sleep(0.1)
    assert not _alive(child), "the section's child ran on after the section was killed"


def test_a_section_that_ends_reports_its_exit_status():
    command = [sys.executable, "-c", "import sys; sys.exit(3)"]
    assert gpu_check.run_process_group(command, 30.0) == "exit 3"


def test_cuda_graph_needs_a_cuda_device():
    with pytest.raises(ConfigError, match="cuda_graph needs a CUDA device"):
        Predictor(LRRNet(base_channels=8, num_groups=4), device="cpu", cuda_graph=True)


def test_skipped_sections_are_reported_and_not_run(tmp_path):
    others = sorted(set(gpu_check.SECTIONS) - {"env"})
    code = gpu_check.main(
        [
            "--out",
            str(tmp_path / "out"),
            "--quick",
            "--work",
            str(tmp_path / "work"),
            "--skip",
            *others,
        ]
    )
    assert code == 0
    results = json.loads((tmp_path / "out" / "gpu_check.json").read_text())
    for name in others:
        assert results[name] == {"_status": "skipped (--skip)"}, name
    assert results["env"]["_status"] == "exit 0"
    assert not (tmp_path / "work" / "tests.json").exists()


def test_skip_names_only_known_sections(tmp_path, capsys):
    with pytest.raises(SystemExit) as error:
        gpu_check.main(["--out", str(tmp_path), "--quick", "--skip", "bench", "speed"])
    assert error.value.code == 2
    assert "speed" in capsys.readouterr().err
