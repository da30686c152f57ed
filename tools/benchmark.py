"""Parameters, GFLOPs, latency, FPS and peak memory of LRRNet.

    python tools/benchmark.py --size 512 --batch 1 --device cpu --warmup 1 --iters 3
    python tools/benchmark.py --device cuda --dtype bf16 --channels-last --json bench.json
    python tools/benchmark.py --compare --device cpu --warmup 1 --iters 3
    python tools/benchmark.py --device cuda --dtype bf16 --channels-last --cuda-graph
    python tools/benchmark.py --train --size 512 --batch 8 --device cuda --dtype bf16

``--compare`` runs the fast path (what the predictor runs: sdpa attention, contiguous
tensors, and on the CPU freed memory kept for reuse) and the straightforward one (explicit
attention, contiguous) on the same weights, interleaved, and reports the speed ratio and the
largest output difference. On the CPU it also times the straightforward path in a fresh
interpreter with glibc's default malloc, as the original code runs: the speed-up over the
original is measured against that. ``--cuda-graph`` times the predictor's CUDA-graph replay
of the forward (batch-1 latency). ``--train`` times whole training steps (forward, loss,
backward, Adam) instead of forwards. ``--backend onnxruntime|openvino`` times the checked
ONNX export (CPU); ``--compare-backends`` prints one table of backend × dtype → latency, FPS
and max |Δp| against fp32 PyTorch, all measured in one run.

FLOPs count a multiply-add as 2 (convolutions and attention; not GroupNorm, ReLU or
additions); latency is the median of the timed forwards and FPS = batch / median latency.
The measuring code is :mod:`lrrnet.engine.benchmarking` and
:mod:`lrrnet.engine.backend_comparison`; docs/speed.md has the figures.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lrrnet.cli import guarded, non_negative_int, parser, positive_int, setup_logging
from lrrnet.engine.backend_comparison import COMPARED, benchmark_backends, format_backends
from lrrnet.engine.backends import BACKENDS, BackendError
from lrrnet.engine.benchmarking import (
    benchmark,
    benchmark_cuda_graph,
    benchmark_training,
    compare_paths,
    format_benchmark,
    format_cuda_graph,
    format_paths,
    format_training,
)
from lrrnet.engine.distributed import resolve_device
from lrrnet.engine.predictor import DTYPES
from lrrnet.errors import UserError
from lrrnet.files import write_json_atomic
from lrrnet.models import SIZE_MULTIPLE

# What each mode runs: the measuring function, the flags it takes (by their argparse
# names), and what it prints. The first mode whose flag is set runs; "forward" otherwise.
Measure = Callable[..., dict[str, Any]]
MODES: dict[str, tuple[Measure, tuple[str, ...], Callable[[dict[str, Any]], str]]] = {
    "train": (
        benchmark_training,
        ("size", "batch", "device", "dtype", "channels_last", "compile_model", "warmup", "iters"),
        format_training,
    ),
    "cuda_graph": (
        benchmark_cuda_graph,
        ("size", "batch", "dtype", "channels_last", "compile_model", "warmup", "iters"),
        format_cuda_graph,
    ),
    "compare": (
        compare_paths,
        ("size", "batch", "device", "dtype", "warmup", "iters"),
        format_paths,
    ),
    "forward": (
        benchmark,
        ("size", "batch", "device", "dtype", "compile_model", "channels_last", "attention")
        + ("warmup", "iters"),
        format_benchmark,
    ),
}


def build_parser() -> argparse.ArgumentParser:
    arguments = parser(__doc__, config=None)
    arguments.add_argument("--size", type=positive_int, default=512, help="input height and width")
    arguments.add_argument("--batch", type=positive_int, default=1)
    arguments.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    arguments.add_argument(
        "--dtype", choices=sorted(DTYPES), default="fp32", help="bf16/fp16 run under autocast"
    )
    arguments.add_argument(
        "--compile", dest="compile_model", action="store_true", help="torch.compile the model"
    )
    arguments.add_argument("--channels-last", action="store_true")
    arguments.add_argument("--attention", choices=("sdpa", "naive"), default="sdpa")
    arguments.add_argument("--warmup", type=non_negative_int, default=3)
    arguments.add_argument("--iters", type=positive_int, default=10)
    arguments.add_argument(
        "--compare",
        action="store_true",
        help="fast path vs straightforward path on the same weights",
    )
    arguments.add_argument(
        "--cuda-graph", action="store_true", help="time the CUDA-graph replay (CUDA only)"
    )
    arguments.add_argument(
        "--train", action="store_true", help="time training steps instead of forwards"
    )
    arguments.add_argument("--json", type=Path, help="also write the results here")
    arguments.add_argument("--backend", choices=BACKENDS, default="torch")
    arguments.add_argument("--compare-backends", action="store_true", help="one table, CPU")
    arguments.add_argument("--checkpoint", help="weights for --backend/--compare-backends")
    return arguments


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    arguments = build_parser()
    args = arguments.parse_args(argv)
    if args.size % SIZE_MULTIPLE:
        arguments.error(f"--size must be a multiple of {SIZE_MULTIPLE}, got {args.size}")
    try:
        device = resolve_device(args.device)
    except UserError as error:
        arguments.error(str(error))
    if args.dtype == "fp16" and device.type != "cuda":
        arguments.error("--dtype fp16 needs a CUDA device")
    if args.cuda_graph and (args.train or args.compare):
        arguments.error("--cuda-graph times the inference forward; leave out --train/--compare")
    if args.cuda_graph and device.type != "cuda":
        arguments.error("--cuda-graph needs a CUDA device")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging()
    return guarded(run_and_save, args)


def run_and_save(args: argparse.Namespace) -> int:
    result = run(args)
    if args.json:
        write_json_atomic(args.json, result)
    return 0


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Measures what ``args`` ask for, prints it, and returns the results for the JSON."""
    if args.compare_backends or args.backend != "torch":
        return run_backends(args)
    mode = next((name for name in MODES if getattr(args, name, False)), "forward")
    measure, flags, describe = MODES[mode]
    result = measure(**{flag: getattr(args, flag) for flag in flags})
    print(describe(result))
    return result


def run_backends(args: argparse.Namespace) -> dict[str, Any]:
    """``--backend B`` / ``--compare-backends``: prints the table, returns the JSON."""
    if resolve_device(args.device).type != "cpu":
        raise BackendError("--backend and --compare-backends measure the CPU; use --device cpu")
    rows = COMPARED if args.compare_backends else ((args.backend, args.dtype, ""),)
    result = benchmark_backends(
        rows=rows,
        size=args.size,
        batch=args.batch,
        warmup=args.warmup,
        iters=args.iters,
        checkpoint=args.checkpoint,
    )
    print(format_backends(result, warmup=args.warmup, iters=args.iters))
    if "fps" not in result:
        raise BackendError(result["rows"][0].get("skipped", "nothing could be measured"))
    return result


if __name__ == "__main__":
    sys.exit(main())
