"""Parameters, GFLOPs, latency, FPS and peak memory of LRRNet.

    python tools/benchmark.py --size 512 --batch 1 --device cpu --warmup 1 --iters 3
    python tools/benchmark.py --device cuda --dtype bf16 --channels-last --json bench.json
    python tools/benchmark.py --compare --device cpu --warmup 1 --iters 3
    python tools/benchmark.py --device cuda --dtype bf16 --channels-last --cuda-graph
    python tools/benchmark.py --train --size 512 --batch 8 --device cuda --dtype bf16

``--compare`` runs the fast path (sdpa attention + channels_last) and the straightforward
one (explicit attention, contiguous) on the same weights, interleaved, and reports the
speed ratio and the largest output difference. ``--cuda-graph`` times the predictor's
CUDA-graph replay of the forward (batch-1 latency). ``--train`` times whole training steps
(forward, loss, backward, Adam) instead of forwards. ``--backend onnxruntime|openvino``
times the checked ONNX export (CPU); ``--compare-backends`` prints one table of backend ×
dtype → latency, FPS and max |Δp| against fp32 PyTorch, all measured in one run.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import statistics  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

import torch  # noqa: E402

from lrrnet.engine import backends  # noqa: E402
from lrrnet.engine.predictor import CapturedForward, autocast_context  # noqa: E402
from lrrnet.errors import UserError  # noqa: E402
from lrrnet.files import write_json_atomic  # noqa: E402
from lrrnet.losses import LRRNetLoss  # noqa: E402
from lrrnet.models import SIZE_MULTIPLE, LRRNet  # noqa: E402
from lrrnet.models.benchmark import (  # noqa: E402
    DTYPES,
    benchmark,
    compare_paths,
    device_name,
    peak_memory_mb,
    prepare_model,
    resolve_device,
    synchronize,
    time_forwards,
)


def benchmark_cuda_graph(
    *,
    size: int = 512,
    batch: int = 1,
    dtype: str = "fp32",
    channels_last: bool = True,
    warmup: int = 3,
    iters: int = 50,
    seed: int = 0,
) -> dict[str, Any]:
    """Latency of the CUDA-graph replay of the forward (the predictor's path) on one GPU.

    Returns:
        ``latency_ms`` (median), ``fps``, ``capture_ms`` (warm-up runs plus capture),
        ``max_abs_diff_T`` between the replay and an eager forward, and the settings.
    """
    device = resolve_device("cuda")
    torch.manual_seed(seed)
    model, memory_format = prepare_model(LRRNet(), device, channels_last=channels_last)
    image = torch.rand(batch, 1, size, size, device=device).contiguous(memory_format=memory_format)
    torch.cuda.reset_peak_memory_stats(device)
    with torch.inference_mode():
        start = time.perf_counter()
        captured = CapturedForward(model, image, device, dtype)
        synchronize(device)
        capture_ms = 1e3 * (time.perf_counter() - start)
        with autocast_context(device, dtype):
            eager = model(image)
        replayed = captured(image)
    times = time_forwards({"graph": lambda: captured(image)}, device, warmup, iters)
    latency = statistics.median(times["graph"])
    return {
        "latency_ms": latency,
        "latency_ms_mean": statistics.fmean(times["graph"]),
        "fps": 1e3 * batch / latency,
        "capture_ms": capture_ms,
        "max_abs_diff_T": (replayed[1].float() - eager[1].float()).abs().max().item(),
        "peak_memory_mb": peak_memory_mb(device),
        "size": size,
        "batch": batch,
        "device": str(device),
        "device_name": device_name(device),
        "dtype": dtype,
        "cuda_graph": True,
        "channels_last": channels_last,
        "iters": iters,
        "torch": torch.__version__,
    }


def benchmark_training(
    *,
    size: int = 512,
    batch: int = 8,
    device: str = "auto",
    dtype: str = "fp32",
    channels_last: bool = False,
    compile_model: bool = False,
    warmup: int = 3,
    iters: int = 10,
    seed: int = 0,
) -> dict[str, Any]:
    """Time of whole training steps as the trainer runs them: forward under autocast, the
    recipe's loss in float32, backward (through the grad scaler for fp16), Adam.

    Inputs are random frames with a few square targets, so the loss is the real one.

    Returns:
        ``step_ms`` (median), ``iters_per_s``, ``images_per_s``, ``first_step_ms`` (a
        compile shows up there), ``peak_memory_mb``, ``final_loss`` and the settings.
    """
    target = resolve_device(device)
    if target.type == "cuda":
        torch.backends.cudnn.benchmark = True  # as the trainer does
    torch.manual_seed(seed)
    model = LRRNet().to(target).train()
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=memory_format)
    step_model = torch.compile(model) if compile_model else model
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    scaler = torch.amp.GradScaler("cuda", enabled=dtype == "fp16")
    criterion = LRRNetLoss()
    images = torch.rand(batch, 1, size, size, device=target).contiguous(memory_format=memory_format)
    masks = torch.zeros(batch, 1, size, size, device=target)
    masks[..., size // 3 : size // 3 + 4, size // 2 : size // 2 + 4] = 1.0
    if target.type == "cuda":
        torch.cuda.reset_peak_memory_stats(target)
    losses: list[torch.Tensor] = []

    def step() -> None:
        with autocast_context(target, dtype):
            reconstruction, target_logits = step_model(images)
        loss, _ = criterion(reconstruction, target_logits, images, masks)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        losses.append(loss.detach())

    start = time.perf_counter()
    step()
    synchronize(target)
    first_ms = 1e3 * (time.perf_counter() - start)
    for _ in range(max(warmup - 1, 0)):
        step()
    synchronize(target)
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        step()
        synchronize(target)
        times.append(1e3 * (time.perf_counter() - start))
    step_ms = statistics.median(times)
    return {
        "step_ms": step_ms,
        "step_ms_mean": statistics.fmean(times),
        "iters_per_s": 1e3 / step_ms,
        "images_per_s": 1e3 * batch / step_ms,
        "first_step_ms": first_ms,
        "peak_memory_mb": peak_memory_mb(target),
        "final_loss": losses[-1].item(),
        "losses_finite": all(torch.isfinite(value).item() for value in losses),
        "size": size,
        "batch": batch,
        "device": str(target),
        "device_name": device_name(target),
        "dtype": dtype,
        "compile": compile_model,
        "channels_last": channels_last,
        "warmup": warmup,
        "iters": iters,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }


def _device_line(result: dict[str, Any]) -> str:
    return (
        f"device {result['device']} ({result['device_name']}), {result['threads']} threads, "
        f"torch {result['torch']}"
    )


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
    parser.add_argument(
        "--cuda-graph", action="store_true", help="time the CUDA-graph replay (CUDA only)"
    )
    parser.add_argument(
        "--train", action="store_true", help="time training steps instead of forwards"
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--backend", choices=backends.BACKENDS, default="torch")
    parser.add_argument("--compare-backends", action="store_true", help="one table, CPU")
    parser.add_argument("--checkpoint", help="weights for --backend/--compare-backends")
    args = parser.parse_args(argv)
    if args.size % SIZE_MULTIPLE:
        parser.error(f"--size must be a multiple of {SIZE_MULTIPLE}, got {args.size}")
    if args.dtype == "fp16" and resolve_device(args.device).type != "cuda":
        parser.error("--dtype fp16 needs a CUDA device")
    if args.cuda_graph and (args.compile or args.train or args.compare):
        parser.error("--cuda-graph times the eager forward; leave out --compile/--train/--compare")
    if args.cuda_graph and resolve_device(args.device).type != "cuda":
        parser.error("--cuda-graph needs a CUDA device")

    if args.compare_backends or args.backend != "torch":
        try:
            result = backends.benchmark_cli(args)
        except UserError as error:
            print(f"error: {error}", file=sys.stderr)
            return error.exit_code
    elif args.train:
        result = benchmark_training(
            size=args.size,
            batch=args.batch,
            device=args.device,
            dtype=args.dtype,
            channels_last=args.channels_last,
            compile_model=args.compile,
            warmup=args.warmup,
            iters=args.iters,
        )
        print(_device_line(result))
        print(
            f"training step {args.batch}×1×{args.size}×{args.size} {args.dtype}, "
            f"channels_last {args.channels_last}, compile {args.compile}"
        )
        print(
            f"step          {result['step_ms']:.1f} ms (median of {args.iters}; first "
            f"{result['first_step_ms']:.0f} ms)"
        )
        print(f"iterations/s  {result['iters_per_s']:.2f} ({result['images_per_s']:.1f} images/s)")
        print(f"peak memory   {result['peak_memory_mb']:.0f} MiB")
    elif args.cuda_graph:
        result = benchmark_cuda_graph(
            size=args.size,
            batch=args.batch,
            dtype=args.dtype,
            channels_last=args.channels_last,
            warmup=args.warmup,
            iters=args.iters,
        )
        print(f"device {result['device']} ({result['device_name']}), torch {result['torch']}")
        print(
            f"CUDA graph {args.batch}×1×{args.size}×{args.size} {args.dtype}, channels_last "
            f"{args.channels_last}: {result['latency_ms']:.3f} ms (median of {args.iters}), "
            f"{result['fps']:.1f} FPS, capture {result['capture_ms']:.0f} ms, "
            f"max |ΔT| vs eager {result['max_abs_diff_T']:.2e}"
        )
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
            f"{_device_line(result)}, {args.batch}×1×{args.size}×{args.size} "
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
        print(_device_line(result))
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
        write_json_atomic(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
