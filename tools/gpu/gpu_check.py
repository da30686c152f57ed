"""One command that checks and measures everything CUDA, for a lent GPU's short lease.

    python tools/gpu/gpu_check.py --out DIR --sirst PATH/TO/SIRST [--budget-s 480]
        [--cpu-weights W --cpu-images DIR --cpu-masks DIR] [--skip SECTION ...]
    python tools/gpu/gpu_check.py --out DIR --sirst ../shared/datasets/SIRST --quick  # CPU dry run

On a lent machine where nothing can be installed, run it from the repository's root with
``PYTHONPATH=.`` so that ``lrrnet`` imports (tools/gpu/README.md).

Sections, each in its own process with its own time limit, so that one crash or hang
cannot take the others down (the result of each is kept even when a later one fails):

1. ``env``: the card, driver, CUDA/cuDNN, torch, and two measured ceilings (a bf16 matrix
   product's TFLOP/s and a device-to-device copy's GB/s).
2. ``tests``: ``tests/test_cuda.py``, streamed into the log.
3. ``probe``: the time of one published-recipe training step (512², batch 8, bf16,
   channels_last), which sizes the real training run below.
4. ``sirst``: the published SIRST v1 recipe (512 resize, batch 8, Adam 1e-4, poly, flips)
   for as many of its 400 epochs as fit the time given, the poly decay spread over them,
   selecting on the idx_427 val list; the selected and the last checkpoint scored on test.
5. ``profile``: the CUDA kernels that take a forward's time (torch.profiler tables).
6. ``bench``: inference at 512×512, batch 1 and 32, fp32/bf16/fp16, channels_last on/off,
   eager, CUDA graphs, ``torch.compile`` and both together.
7. ``cpu`` (with ``--cpu-*``): the lent machine's own processor, often one with AMX: the
   CPU backends at batch 1 with 2 threads, and each backend × dtype scored on real frames.
8. ``train_speed``: training iterations/s at 512², batch 8.

Sections run one after another: the tests' cold compiles are slow next to other work
(docs/gpu_runs/gpu_check_notes.md has the times). ``--skip`` leaves sections out: the
timing sections while other work shares the GPU, say, then those alone in a second call
that skips the rest.

Writes to DIR: ``gpu_check.json`` (every section's results), ``gpu_check.log`` (all
output), ``sirst_run.tar.gz`` (the run folder without checkpoints) and
``sirst_best_model.pth`` (the selected weights, a plain state dict).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]

SIRST_TRAIN_IMAGES = 256  # idx_427 train list
RECIPE_EPOCHS = 400
RECIPE_BATCH = 8
# The probe's step time leaves out the loader's slack, and a validation costs its 85 frames,
# checkpoint writes and TensorBoard panels; both sized on a real run
# (docs/gpu_runs/gpu_check_notes.md, "Sizing the SIRST run").
STEP_SLACK = 1.05
EVAL_SECONDS = 3.0
TARGET_EVALUATIONS = 10

# (batch, dtype, channels_last, mode) for the inference benchmark, cheapest first: the
# compiles at the end are dropped when the time runs out. Modes: "eager", "graph" (the
# predictor's CUDA-graph replay), "compile" and "compile_graph" (the compiled forward
# captured in a CUDA graph).
BENCH_CASES: tuple[tuple[int, str, bool, str], ...] = (
    (1, "fp32", False, "eager"),
    (1, "bf16", True, "eager"),
    (1, "bf16", True, "graph"),
    (32, "fp32", False, "eager"),
    (32, "bf16", False, "eager"),
    (32, "bf16", True, "eager"),
    (32, "bf16", True, "compile"),
    (1, "bf16", True, "compile_graph"),
    (32, "bf16", False, "compile"),
    (32, "fp16", True, "compile"),
)
# (dtype, channels_last, compile) for the training-speed benchmark.
TRAIN_CASES: tuple[tuple[str, bool, bool], ...] = (
    ("fp32", False, False),
    ("bf16", False, False),
    ("bf16", True, False),
    ("bf16", True, True),
)
# The CPU checks run on the GPU machine's own processor (an AMX CPU is otherwise not at
# hand): (backend, dtype) pairs whose maps are scored on real frames.
CPU_ACCURACY_CASES: tuple[tuple[str, str], ...] = (
    ("torch", "fp32"),
    ("torch", "bf16"),
    ("openvino", "bf16"),
    ("openvino", "fp32"),
)


def plan_sirst_run(step_seconds: float, budget_seconds: float) -> dict[str, int]:
    """Epochs of the SIRST v1 recipe that fit ``budget_seconds``, and how often to validate.

    Args:
        step_seconds: measured time of one training step at 512², batch 8.
        budget_seconds: time for training, validation included.

    Returns:
        ``epochs`` (1 to 400), ``iters_per_epoch``, ``total_iters`` and ``eval_every``
        (a whole number of epochs, about ``TARGET_EVALUATIONS`` validations in all).
    """
    iters_per_epoch = SIRST_TRAIN_IMAGES // RECIPE_BATCH
    epoch_seconds = iters_per_epoch * step_seconds * STEP_SLACK
    training_seconds = budget_seconds - TARGET_EVALUATIONS * EVAL_SECONDS
    epochs = max(1, min(RECIPE_EPOCHS, int(training_seconds // epoch_seconds)))
    eval_epochs = max(1, round(epochs / TARGET_EVALUATIONS))
    return {
        "epochs": epochs,
        "iters_per_epoch": iters_per_epoch,
        "total_iters": epochs * iters_per_epoch,
        "eval_every": eval_epochs * iters_per_epoch,
    }


# ---------------------------------------------------------------- sections (child processes)


def section_env(args) -> dict[str, Any]:
    import torch

    from lrrnet.engine.benchmarking import cuda_time
    from lrrnet.engine.hardware import cpu_model_name

    info: dict[str, Any] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda_available": torch.cuda.is_available(),
        "cpu_count": os.cpu_count(),
        "cpu": cpu_model_name() or platform.processor(),
    }
    try:
        info["nvidia_smi"] = subprocess.run(
            ["nvidia-smi"], capture_output=True, text=True, timeout=30
        ).stdout
    except (OSError, subprocess.TimeoutExpired) as error:
        info["nvidia_smi"] = f"unavailable: {error}"
    if not torch.cuda.is_available():
        return info
    props = torch.cuda.get_device_properties(0)
    info.update(
        device_name=props.name,
        capability=f"{props.major}.{props.minor}",
        multiprocessors=props.multi_processor_count,
        memory_gib=props.total_memory / 2**30,
        cuda=torch.version.cuda,
        cudnn=torch.backends.cudnn.version(),
        tf32_conv_default=torch.backends.cudnn.allow_tf32,
        tf32_matmul_default=torch.backends.cuda.matmul.allow_tf32,
    )
    # The card's ceilings: random data, timed with CUDA events after a warm-up.
    a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    info["bf16_matmul_tflops"] = 2 * 8192**3 / cuda_time(lambda: a @ b, 3, 10) / 1e12
    source = torch.randn(2**30 // 4, device="cuda")  # 1 GiB
    target = torch.empty_like(source)
    seconds = cuda_time(lambda: target.copy_(source), 3, 10)
    info["copy_gb_per_s"] = 2 * source.numel() * 4 / seconds / 1e9  # read + write
    return info


def section_probe(args) -> dict[str, Any]:
    from lrrnet.engine.benchmarking import benchmark_training

    return benchmark_training(
        size=args.size,
        batch=RECIPE_BATCH,
        device=args.device,
        dtype=args.train_dtype,
        channels_last=True,
        warmup=_count(args, 3),
        iters=_count(args, 10),
    )


def section_bench(args) -> dict[str, Any]:
    from lrrnet.engine.benchmarking import benchmark, benchmark_cuda_graph

    deadline = time.time() + args.section_budget
    results, skipped = [], []
    # A CPU dry run (--quick) checks the plumbing with the cases that need no CUDA.
    cases = (
        BENCH_CASES if args.device == "cuda" else [c for c in BENCH_CASES if "graph" not in c[3]]
    )
    for batch, dtype, channels_last, mode in cases:
        case = {"batch": batch, "dtype": dtype, "channels_last": channels_last, "mode": mode}
        if args.quick and (mode.startswith("compile") or dtype == "fp16"):
            continue
        # A compile is by far the slowest case: only start one with the time for it left.
        needed = 75 if mode.startswith("compile") else 10
        if time.time() + needed > deadline:
            skipped.append({**case, "reason": "out of time"})
            continue
        batch = min(batch, args.max_batch)
        iters = _count(args, 100 if batch == 1 else 20)
        print(f"bench {case}", flush=True)
        settings = {
            "size": args.size,
            "batch": batch,
            "dtype": dtype,
            "channels_last": channels_last,
        }
        compiled = mode.startswith("compile")
        try:
            if mode.endswith("graph"):
                result = benchmark_cuda_graph(
                    **settings, compile_model=compiled, warmup=_count(args, 10), iters=iters
                )
            else:
                result = benchmark(
                    **settings,
                    device=args.device,
                    compile_model=compiled,
                    warmup=_count(args, 10 if batch == 1 else 3),
                    iters=iters,
                )
            results.append({**case, **result})
        except Exception as error:  # one failing configuration must not lose the others
            skipped.append({**case, "reason": f"{type(error).__name__}: {error}"})
        _reset_cuda()
        # Written after every case: a section killed at its limit keeps what it measured.
        _write_partial(args, {"results": results, "skipped": skipped})
    return {"results": results, "skipped": skipped}


def section_train_speed(args) -> dict[str, Any]:
    from lrrnet.engine.benchmarking import benchmark_training

    deadline = time.time() + args.section_budget
    results, skipped = [], []
    for dtype, channels_last, compile_model in TRAIN_CASES:
        case = {"dtype": dtype, "channels_last": channels_last, "compile": compile_model}
        if args.device != "cuda" and compile_model:
            continue
        needed = 100 if compile_model else 15
        if time.time() + needed > deadline:
            skipped.append({**case, "reason": "out of time"})
            continue
        print(f"train_speed {case}", flush=True)
        try:
            result = benchmark_training(
                size=args.size,
                batch=RECIPE_BATCH,
                device=args.device,
                dtype=dtype,
                channels_last=channels_last,
                compile_model=compile_model,
                warmup=_count(args, 5),
                iters=_count(args, 20),
            )
            results.append({**case, **result})
        except Exception as error:
            skipped.append({**case, "reason": f"{type(error).__name__}: {error}"})
        _reset_cuda()
    return {"results": results, "skipped": skipped}


def section_sirst(args) -> dict[str, Any]:
    """The published recipe on SIRST v1 through the real command line, sized to the budget."""
    probe = json.loads((args.work / "probe.json").read_text())
    step_seconds = probe["step_ms"] / 1e3
    plan = plan_sirst_run(step_seconds, args.sirst_budget_s)
    checkpoints = args.work / "checkpoints"
    overrides = {
        "data.root": str(args.sirst),
        "data.base_size": args.size,
        "data.num_workers": min(8, os.cpu_count() or 1),
        "train.epochs": plan["epochs"],
        "train.eval_every": plan["eval_every"],
        "train.eval_epoch_end": False,
        "train.amp": args.train_dtype if args.device == "cuda" else "off",
        "train.device": args.device,
        "train.num_log_images": 2,
        "paths.checkpoints": str(checkpoints),
    }
    if args.quick:
        overrides["train.max_iters"] = 4
    command = [sys.executable, str(ROOT / "run_configs.py"), "sirst"]
    for key, value in overrides.items():
        # Strings quoted: a bare `off` or `2024` would be read as a YAML bool or number.
        command += ["--set", f"{key}={value!r}" if isinstance(value, str) else f"{key}={value}"]
    print(" ".join(command), flush=True)
    started = time.time()
    completed = subprocess.run(command, cwd=ROOT, text=True)
    wall = time.time() - started
    result: dict[str, Any] = {
        "plan": plan,
        "probe_step_ms": probe["step_ms"],
        "command": command,
        "returncode": completed.returncode,
        "wall_s": wall,
    }
    runs = sorted(checkpoints.glob("sirst/*"))
    if runs:
        result.update(collect_run(runs[-1], args.out))
    return result


def collect_run(run_dir: Path, out: Path) -> dict[str, Any]:
    """A training run's results: its test metrics and log tail; archives the folder without
    checkpoints as ``out/sirst_run.tar.gz`` and the selected weights as a plain state dict."""
    result: dict[str, Any] = {"run_dir": str(run_dir)}
    summary = run_dir / "test_metrics.json"
    if summary.is_file():
        result["test_metrics"] = json.loads(summary.read_text())
    log = (run_dir / "log.txt").read_text() if (run_dir / "log.txt").is_file() else ""
    result["log_tail"] = log.splitlines()[-30:]
    for line in log.splitlines():
        if "trained " in line and " iterations in " in line:
            result["trained_line"] = line
    with tarfile.open(out / "sirst_run.tar.gz", "w:gz") as archive:
        for path in run_dir.iterdir():
            if path.suffix != ".pth":
                archive.add(path, arcname=f"{run_dir.name}/{path.name}")
    best = run_dir / "best.pth"
    if best.is_file():
        import torch

        weights = torch.load(best, map_location="cpu", weights_only=True)["model"]
        torch.save(weights, out / "sirst_best_model.pth")
    return result


def section_tests(args) -> dict[str, Any]:
    junit = args.work / "pytest_cuda.xml"
    command = [
        sys.executable,
        "-m",
        "pytest",
        "tests/test_cuda.py",
        "-v",
        "-rA",
        "-p",
        "no:cacheprovider",
        "-o",
        "log_level=WARNING",
        f"--junitxml={junit}",
    ]
    # Streamed into the log, so a run cut at its time limit still shows what passed.
    completed = subprocess.run(command, cwd=ROOT, text=True)
    outcome: dict[str, Any] = {"returncode": completed.returncode, "cases": []}
    if junit.is_file():
        import xml.etree.ElementTree as ElementTree

        for case in ElementTree.parse(junit).getroot().iter("testcase"):
            status, message = "passed", ""
            for tag in ("failure", "error", "skipped"):
                element = case.find(tag)
                if element is not None:
                    status, message = tag, (element.get("message") or "")[:500]
            outcome["cases"].append(
                {
                    "name": case.get("name"),
                    "status": status,
                    "seconds": float(case.get("time", 0)),
                    "message": message,
                }
            )
    return outcome


def section_profile(args) -> dict[str, Any]:
    """The CUDA kernels that take the time of one forward: batch 32 in bf16 with and without
    channels_last, and batch 1."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    from lrrnet.engine.benchmarking import prepare_model
    from lrrnet.engine.predictor import autocast_context
    from lrrnet.models import LRRNet

    device = torch.device(args.device)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if args.device == "cuda" else [])
    tables = {}
    big = min(32, args.max_batch)
    for batch, dtype, channels_last in (
        (big, args.train_dtype, True),
        (big, args.train_dtype, False),
        (1, args.train_dtype, True),
    ):
        model, memory_format = prepare_model(LRRNet(), device, channels_last=channels_last)
        image = torch.rand(batch, 1, args.size, args.size, device=device)
        image = image.contiguous(memory_format=memory_format)
        with torch.inference_mode(), autocast_context(device, dtype):
            for _ in range(3):
                model(image)
            if args.device == "cuda":
                torch.cuda.synchronize()
            with profile(activities=activities) as profiler:
                model(image)
                if args.device == "cuda":
                    torch.cuda.synchronize()
        sort_by = "cuda_time_total" if args.device == "cuda" else "cpu_time_total"
        events = sorted(
            profiler.key_averages(),
            key=lambda event: getattr(event, "device_time_total", 0) or event.cpu_time_total,
            reverse=True,
        )
        name = f"b{batch}_{dtype}_{'cl' if channels_last else 'nchw'}"
        tables[name] = {
            "table": profiler.key_averages().table(sort_by=sort_by, row_limit=25),
            "top": [
                {
                    "name": event.key,
                    "count": event.count,
                    "device_us": getattr(event, "device_time_total", 0),
                    "cpu_us": event.cpu_time_total,
                }
                for event in events[:25]
            ],
        }
        print(name, tables[name]["table"], sep="\n", flush=True)
        _reset_cuda()
    return tables


def section_cpu(args) -> dict[str, Any]:
    """This machine's CPU: native bf16 or not, the backends at batch 1 with 2 threads (as on
    a small box; ``tools/benchmark.py --compare-backends``), and each backend × dtype's maps
    of real frames (``--cpu-images``/``--cpu-masks``, weights ``--cpu-weights``) scored
    against their masks, all threads."""
    from lrrnet.engine.hardware import cpu_description, cpu_flags

    flags = cpu_flags()
    result: dict[str, Any] = {
        "cpu": cpu_description(),
        "cores": os.cpu_count(),
        "native_bf16_flags": sorted(flags & {"amx_bf16", "amx_tile", "avx512_bf16"}),
        "accuracy": [],
    }
    weights = str(args.cpu_weights.resolve())
    compare_json = args.work / "cpu_compare_backends.json"
    command = [
        sys.executable, "tools/benchmark.py", "--compare-backends", "--device", "cpu",
        "--size", str(args.size), "--batch", "1", "--warmup", "1",
        "--iters", str(_count(args, 5)), "--checkpoint", weights, "--json", str(compare_json),
    ]  # fmt: skip
    result["compare_backends"] = _run_logged(command, {"OMP_NUM_THREADS": "2"})
    if compare_json.is_file():
        result["compare_backends"]["rows"] = json.loads(compare_json.read_text())["rows"]
    _write_partial(args, result)
    images = args.cpu_images
    if args.quick:  # four frames are enough to check the plumbing
        images = args.work / "cpu_quick_images"
        images.mkdir(exist_ok=True)
        for path in sorted(args.cpu_images.iterdir())[:4]:
            (images / path.name).write_bytes(path.read_bytes())
    for backend, dtype in CPU_ACCURACY_CASES:
        out = args.work / f"cpu_{backend}_{dtype}"
        infer = [
            sys.executable, "inference.py", "--checkpoint", weights, "--images", str(images),
            "--out", str(out), "--device", "cpu", "--backend", backend, "--dtype", dtype,
            "--size", "native", "--batch-size", "8",
        ]  # fmt: skip
        score = [
            sys.executable, "cal_from_mask.py", "--pred", str(out), "--masks",
            str(args.cpu_masks), "--json", str(out / "metrics.json"),
        ]  # fmt: skip
        started = time.time()
        row: dict[str, Any] = {"backend": backend, "dtype": dtype, "infer": _run_logged(infer)}
        row["infer_s"] = time.time() - started
        row["score"] = _run_logged(score)
        if (out / "metrics.json").is_file():
            metrics = json.loads((out / "metrics.json").read_text())
            row["metrics"] = {key: metrics.get(key) for key in ("miou", "niou", "f1", "pd", "fa")}
            row["n_images"] = metrics.get("n_images")
        result["accuracy"].append(row)
        _write_partial(args, result)
    return result


def _run_logged(command: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    """Runs a command of this repository, its output into the log; returns its exit status
    and last lines."""
    print(" ".join(command), flush=True)
    completed = subprocess.run(
        command, cwd=ROOT, env={**os.environ, **(env or {})}, text=True, capture_output=True
    )
    print(completed.stdout + completed.stderr, flush=True)
    return {
        "returncode": completed.returncode,
        "tail": (completed.stdout + completed.stderr).splitlines()[-15:],
    }


SECTIONS = {
    "env": section_env,
    "probe": section_probe,
    "sirst": section_sirst,
    "tests": section_tests,
    "bench": section_bench,
    "train_speed": section_train_speed,
    "profile": section_profile,
    "cpu": section_cpu,
}


# ---------------------------------------------------------------- orchestration


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for everything written")
    parser.add_argument("--sirst", type=Path, help="SIRST v1 as released (skip its run if absent)")
    parser.add_argument("--budget-s", type=float, default=540, help="whole run, seconds")
    parser.add_argument("--sirst-budget-s", type=float, default=150, help="SIRST training")
    parser.add_argument("--quick", action="store_true", help="CPU dry run of the plumbing")
    parser.add_argument("--cpu-weights", type=Path, help="trained weights for the CPU section")
    parser.add_argument("--cpu-images", type=Path, help="real frames for the CPU section")
    parser.add_argument("--cpu-masks", type=Path, help="their masks")
    parser.add_argument(
        "--skip",
        nargs="+",
        default=[],
        choices=sorted(SECTIONS),
        metavar="SECTION",
        help="sections to leave out, e.g. the timings while other work shares the GPU, "
        f"or the tests when another call ran them ({', '.join(sorted(SECTIONS))})",
    )
    parser.add_argument("--section", choices=sorted(SECTIONS), help=argparse.SUPPRESS)
    parser.add_argument("--section-budget", type=float, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    cpu_inputs = (args.cpu_weights, args.cpu_images, args.cpu_masks)
    if any(cpu_inputs) and not all(cpu_inputs):
        parser.error("the CPU section needs all of --cpu-weights, --cpu-images and --cpu-masks")
    args.out = args.out.resolve()
    # Scratch (checkpoints, per-section JSON) outside OUT, which keeps only what is worth
    # fetching from a lent machine.
    args.work = (args.work or Path(tempfile.gettempdir()) / "lrrnet_gpu_check").resolve()
    args.device = "cpu" if args.quick else "cuda"
    args.size = 64 if args.quick else 512
    args.max_batch = 2 if args.quick else 32
    args.train_dtype = "fp32" if args.quick else "bf16"
    if args.section:
        return _run_section(args)
    return _orchestrate(args, argv or sys.argv[1:])


def _run_section(args) -> int:
    result = SECTIONS[args.section](args)
    (args.work / f"{args.section}.json").write_text(json.dumps(result, indent=2, default=str))
    return 0


def _orchestrate(args, argv: list[str]) -> int:
    args.out.mkdir(parents=True, exist_ok=True)
    args.work.mkdir(parents=True, exist_ok=True)
    log = (args.out / "gpu_check.log").open("a")
    deadline = time.time() + args.budget_s
    results: dict[str, Any] = {"started": time.strftime("%Y-%m-%d %H:%M:%S"), "argv": argv}

    def run_section(name: str, budget: float) -> None:
        command = [
            sys.executable,
            str(Path(__file__).resolve()),
            *argv,
            "--section",
            name,
            "--section-budget",
            str(budget),
            "--work",
            str(args.work),
        ]
        _say(log, f"== {name} (limit {budget:.0f} s)")
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "CUBLAS_WORKSPACE_CONFIG": ":4096:8"}
        status = run_process_group(
            command, budget, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env
        )
        path = args.work / f"{name}.json"
        results[name] = json.loads(path.read_text()) if path.is_file() else {"error": status}
        results[name]["_status"] = status
        _say(log, f"== {name}: {status}")
        (args.out / "gpu_check.json").write_text(json.dumps(results, indent=2, default=str))

    def not_run(name: str, why: str) -> None:
        results[name] = {"_status": "skipped (--skip)" if name in args.skip else why}

    def run(name: str, budget: float) -> None:
        budget = min(budget, deadline - time.time())
        if name in args.skip or budget < 5:
            not_run(name, "not run: out of time")
            return
        run_section(name, budget)

    run("env", 60)
    # Alone: cold torch.compile runs are slow next to other work, and a fresh machine's
    # first compiles are slow even alone (docs/gpu_runs/gpu_check_notes.md, "The tests").
    run("tests", 330)
    run("probe", 600 if args.quick else 60)
    if args.sirst and (args.work / "probe.json").is_file():
        # Startup, the final test of two checkpoints and the archive come on top of training.
        run("sirst", args.sirst_budget_s + 60)
    else:
        not_run("sirst", "not run: no --sirst folder or no probe result")
    run("profile", 60)
    cpu_inputs = (args.cpu_weights, args.cpu_images, args.cpu_masks)
    cpu_budget = 150 if all(cpu_inputs) and "cpu" not in args.skip else 0
    run("bench", (deadline - time.time() - cpu_budget) * 0.85)
    if all(cpu_inputs):
        run("cpu", cpu_budget)
    else:
        not_run("cpu", "not run: give --cpu-weights, --cpu-images and --cpu-masks")
    run("train_speed", deadline - time.time())
    results["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
    (args.out / "gpu_check.json").write_text(json.dumps(results, indent=2, default=str))
    table = summary_table(results)
    _say(log, table)
    log.close()
    return 0


def run_process_group(command: list[str], limit: float, **popen_kwargs: Any) -> str:
    """Runs ``command`` in a process group of its own for at most ``limit`` seconds.

    At the limit the whole group is killed: a section's children too (its pytest, its
    ``run_configs.py``, their loader workers), which would otherwise run on beside the next
    sections and slow them down. Returns ``"exit N"`` or ``"killed at its time
    limit"``.
    """
    process = subprocess.Popen(command, start_new_session=True, **popen_kwargs)
    try:
        process.wait(timeout=max(1.0, limit))
        status = f"exit {process.returncode}"
    except subprocess.TimeoutExpired:
        status = "killed at its time limit"
    with contextlib.suppress(ProcessLookupError):  # after a normal exit too: no leftovers
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    return status


def summary_table(results: dict[str, Any]) -> str:
    """The lines worth reading first: tests, the SIRST run, inference and training speed."""
    lines = []
    env = results.get("env", {})
    lines.append(
        f"device {env.get('device_name', '?')} ({env.get('memory_gib', 0):.0f} GiB), torch "
        f"{env.get('torch', '?')}, CUDA {env.get('cuda', '?')}; bf16 matmul "
        f"{env.get('bf16_matmul_tflops', math.nan):.0f} TFLOP/s, copy "
        f"{env.get('copy_gb_per_s', math.nan):.0f} GB/s"
    )
    cases = results.get("tests", {}).get("cases", [])
    counts: dict[str, int] = {}
    for case in cases:
        counts[case["status"]] = counts.get(case["status"], 0) + 1
    lines.append(f"tests/test_cuda.py: {counts or results.get('tests', {}).get('_status')}")
    for case in cases:
        if case["status"] not in ("passed", "skipped"):
            lines.append(f"  {case['status']}: {case['name']}: {case['message'][:200]}")
    sirst = results.get("sirst", {})
    if "test_metrics" in sirst:
        metrics = sirst["test_metrics"]
        plan = sirst["plan"]
        lines.append(
            f"SIRST v1: {plan['epochs']} epochs ({plan['total_iters']} iterations), "
            f"wall {sirst['wall_s']:.0f} s; {sirst.get('trained_line', '').split(': ')[-1]}"
        )
        for which in ("best", "last"):
            test = metrics[which]["test"]
            lines.append(
                f"  {which:4s} (iter {metrics[which]['iteration']}): test IoU "
                f"{100 * test['miou']:.2f} nIoU {100 * test['niou']:.2f} Pd "
                f"{100 * test['pd']:.2f} Fa {1e6 * test['fa']:.2f}e-6"
            )
        val = metrics["best"].get("val", {})
        if val:
            lines.append(f"  selected on val: IoU {100 * val.get('miou', math.nan):.2f}")
    else:
        lines.append(f"SIRST v1: {sirst.get('_status', 'not run')}")
    for item in results.get("bench", {}).get("results", []):
        lines.append(
            f"infer b{item['batch']:<3d} {item['dtype']} cl={int(item['channels_last'])} "
            f"{item['mode']:8s} {item['latency_ms']:8.3f} ms  {item['fps']:9.1f} FPS  "
            f"{item.get('peak_memory_mb', 0):7.0f} MiB"
        )
    for item in results.get("bench", {}).get("skipped", []):
        lines.append(f"infer skipped {item}")
    cpu = results.get("cpu", {})
    if "cpu" in cpu:
        lines.append(
            f"CPU {cpu['cpu']}, {cpu['cores']} cores; native bf16: {cpu['native_bf16_flags']}"
        )
        for row in cpu.get("compare_backends", {}).get("rows", []):
            if "skipped" in row:
                lines.append(f"  2 threads {row['backend']} {row['dtype']}: {row['skipped']}")
            elif "latency_ms" in row:
                lines.append(
                    f"  2 threads {row['backend']:<11} {row['dtype']} {row['path'] or '-':<8} "
                    f"runs as {row['runs_as']}: {row['latency_ms']:8.1f} ms "
                    f"{row['speedup']:5.2f}× max |Δp| {row['max_abs_diff_p']:.1e}"
                )
        for row in cpu.get("accuracy", []):
            metrics = row.get("metrics") or {}
            if metrics:
                lines.append(
                    f"  {row['backend']:<11} {row['dtype']} on {row.get('n_images')} frames: "
                    f"IoU {100 * metrics['miou']:.2f} nIoU {100 * metrics['niou']:.2f} "
                    f"Pd {100 * metrics['pd']:.2f} Fa {1e6 * metrics['fa']:.2f}e-6 "
                    f"({row['infer_s']:.0f} s)"
                )
            else:
                lines.append(f"  {row['backend']} {row['dtype']}: {row['infer']['tail'][-1:]}")
    else:
        lines.append(f"CPU section: {cpu.get('_status', 'not run')}")
    for item in results.get("train_speed", {}).get("results", []):
        lines.append(
            f"train b8 {item['dtype']} cl={int(item['channels_last'])} "
            f"compile={int(item['compile'])}: {item['step_ms']:.1f} ms/step "
            f"{item['iters_per_s']:.2f} it/s (first {item['first_step_ms']:.0f} ms), "
            f"{item['peak_memory_mb']:.0f} MiB"
        )
    for item in results.get("train_speed", {}).get("skipped", []):
        lines.append(f"train skipped {item}")
    return "\n".join(lines)


def _write_partial(args, result: dict[str, Any]) -> None:
    """The section's results so far, where the orchestrator reads them even if it is killed."""
    (args.work / f"{args.section}.json").write_text(json.dumps(result, indent=2, default=str))


def _count(args, n: int) -> int:
    """``n`` warm-up or timed runs, cut to one in a ``--quick`` dry run."""
    return 1 if args.quick else n


def _say(log, text: str) -> None:
    print(text, flush=True)
    log.write(text + "\n")
    log.flush()


def _reset_cuda() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


if __name__ == "__main__":
    sys.exit(main())
