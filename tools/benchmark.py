"""Parameters, GFLOPs, latency, FPS and peak memory of LRRNet.

    python tools/benchmark.py --size 512 --batch 1 --device cpu --warmup 1 --iters 3
    python tools/benchmark.py --device cuda --dtype bf16 --channels-last --json bench.json
    python tools/benchmark.py --compare --device cpu --warmup 1 --iters 3

``--compare`` runs the fast path (sdpa attention + channels_last) and the straightforward
one (explicit attention, contiguous) on the same weights, interleaved, and reports the
speed ratio and the largest output difference. ``--backend onnxruntime|openvino`` times the
checked ONNX export (CPU); ``--compare-backends`` prints one table of backend × dtype →
latency, FPS and max |Δp| against fp32 PyTorch, all measured in one run.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lrrnet.engine import backends  # noqa: E402
from lrrnet.errors import UserError  # noqa: E402
from lrrnet.models.benchmark import DTYPES, benchmark, compare_paths  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512, help="input height and width")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    parser.add_argument(
        "--dtype", choices=sorted(DTYPES), default="fp32", help="bf16/fp16 run under autocast"
    )
    parser.add_argument("--compile", action="store_true", help="torch.compile the model")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--attention", choices=("sdpa", "naive"), default="sdpa")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument(
        "--compare",
        action="store_true",
        help="fast path vs straightforward path on the same weights",
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--backend", choices=backends.BACKENDS, default="torch")
    parser.add_argument("--compare-backends", action="store_true", help="one table, CPU")
    parser.add_argument("--checkpoint", help="weights for --backend/--compare-backends")
    args = parser.parse_args(argv)
    if args.size % 8:
        parser.error(f"--size must be a multiple of 8, got {args.size}")

    if args.compare_backends or args.backend != "torch":
        try:
            result = backends.benchmark_cli(args)
        except UserError as error:
            print(f"error: {error}", file=sys.stderr)
            return error.exit_code
    elif args.compare:
        result = compare_paths(
            size=args.size,
            batch=args.batch,
            device=args.device,
            dtype=args.dtype,
            warmup=args.warmup,
            iters=args.iters,
        )
        print(
            f"device {result['device']} ({result['device_name']}), {result['threads']} "
            f"threads, torch {result['torch']}, {args.batch}×1×{args.size}×{args.size} "
            f"{args.dtype}, warmup {args.warmup}, iters {args.iters}"
        )
        print(
            f"fast (sdpa + channels_last):           {result['fast_latency_ms']:9.1f} ms  "
            f"{result['fast_fps']:7.2f} FPS"
        )
        print(
            f"straightforward (naive + contiguous):  "
            f"{result['straightforward_latency_ms']:9.1f} ms  "
            f"{result['straightforward_fps']:7.2f} FPS"
        )
        print(
            f"speed-up: {result['speedup']:.2f}×; max |ΔD| = {result['max_abs_diff_D']:.2e} "
            f"(|D| ≤ {result['max_abs_D']:.2f}), max |ΔT| = {result['max_abs_diff_T']:.2e} "
            f"(|T| ≤ {result['max_abs_T']:.2f})"
        )
        print(
            "max error against a float64 run: "
            f"fast {result['max_abs_err_fp64_fast']:.2e}, "
            f"straightforward {result['max_abs_err_fp64_straightforward']:.2e}"
        )
    else:
        result = benchmark(
            size=args.size,
            batch=args.batch,
            device=args.device,
            dtype=args.dtype,
            compile_model=args.compile,
            channels_last=args.channels_last,
            attention=args.attention,
            warmup=args.warmup,
            iters=args.iters,
        )
        print(
            f"device {result['device']} ({result['device_name']}), {result['threads']} "
            f"threads, torch {result['torch']}"
        )
        print(
            f"input {args.batch}×1×{args.size}×{args.size} {args.dtype}, attention "
            f"{args.attention}, channels_last {args.channels_last}, compile {args.compile}"
        )
        print(f"params        {result['params']:,}")
        print(f"GFLOPs        {result['gflops']:.2f} (per forward of the batch)")
        print(
            f"latency       {result['latency_ms']:.1f} ms (median of {args.iters}; "
            f"mean {result['latency_ms_mean']:.1f}; first call {result['first_call_ms']:.0f})"
        )
        print(f"FPS           {result['fps']:.2f}")
        print(f"peak memory   {result['peak_memory_mb']:.0f} MiB")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
