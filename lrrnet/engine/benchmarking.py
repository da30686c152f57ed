"""Measuring LRRNet: parameters, FLOPs, forward latency and FPS, peak memory, the fast
path against the straightforward one, CUDA-graph replay and whole training steps.

What ``tools/benchmark.py`` runs and ``tools/gpu/gpu_check.py`` times on a lent GPU; the
deployment backends' comparison is :mod:`lrrnet.engine.backend_comparison`.

FLOPs come from :class:`torch.utils.flop_counter.FlopCounterMode` (a multiply-add counts as
2), which sees convolutions and attention matmuls; GroupNorm, ReLU and additions are not
counted, as in the papers of the field. Latency is the median over timed forward passes
under ``torch.inference_mode`` (the median resists the other processes of a shared
machine); FPS = batch / median latency. Devices, dtypes and autocast are the engine's
(:func:`lrrnet.engine.distributed.resolve_device`, :data:`lrrnet.engine.predictor.DTYPES`,
:func:`lrrnet.engine.predictor.autocast_context`), so a benchmark runs as inference does.

The fast path is what the predictor runs: sdpa attention, contiguous tensors, and on the
CPU freed memory kept for reuse (:mod:`lrrnet.engine.cpu_memory`). The straightforward
path is the original code's: explicit attention, contiguous tensors. On the CPU the
original is also timed in a fresh interpreter with glibc's default malloc, as the original
code runs; the speed-up over the original is measured against that.
"""

from __future__ import annotations

import copy
import multiprocessing
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from lrrnet.engine.cpu_memory import default_malloc_state, keep_freed_memory
from lrrnet.engine.distributed import resolve_device
from lrrnet.engine.hardware import cpu_description
from lrrnet.engine.predictor import CapturedForward, autocast_context
from lrrnet.losses import LRRNetLoss
from lrrnet.models import LRRNet
from lrrnet.models.blocks import AttentionBlock


def count_parameters(model: nn.Module) -> int:
    """Number of parameters (3,454,994 for the default LRRNet)."""
    return sum(parameter.numel() for parameter in model.parameters())


def count_flops(model: nn.Module, image: torch.Tensor) -> int:
    """FLOPs of one forward pass on ``image`` (B×1×H×W), multiply-add = 2.

    Attention is counted through its explicit formula: PyTorch's counter has no rule for
    some fused kernels (the CPU's flash attention), so the count would depend on the path.
    """
    blocks = [module for module in model.modules() if isinstance(module, AttentionBlock)]
    impls = [block.impl for block in blocks]
    for block in blocks:
        block.impl = "naive"
    try:
        with FlopCounterMode(display=False) as counter, torch.inference_mode():
            model(image)
    finally:
        for block, impl in zip(blocks, impls, strict=True):
            block.impl = impl
    return counter.get_total_flops()


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_memory_mb(device: torch.device) -> float:
    """CUDA: peak allocated by tensors; CPU: peak resident size of the whole process."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes vs KiB


def time_forwards(
    runners: dict[str, Callable[[], Any]],
    device: torch.device,
    warmup: int,
    iters: int,
) -> dict[str, list[float]]:
    """Times each runner ``iters`` times, interleaved so load changes hit all alike.

    Returns:
        Per runner, the latencies in milliseconds; the first call's time is kept under
        ``"<name>:first"`` (a compile shows up there).
    """
    times: dict[str, list[float]] = {name: [] for name in runners}
    with torch.inference_mode():
        for name, run in runners.items():
            start = time.perf_counter()
            run()
            synchronize(device)
            times[f"{name}:first"] = [1e3 * (time.perf_counter() - start)]
            for _ in range(max(warmup - 1, 0)):
                run()
            synchronize(device)
        for _ in range(iters):
            for name, run in runners.items():
                start = time.perf_counter()
                run()
                synchronize(device)
                times[name].append(1e3 * (time.perf_counter() - start))
    return times


def cuda_time(fn: Callable[[], Any], warmup: int, iters: int) -> float:
    """Median seconds of ``fn`` timed with CUDA events (the GPU's own clock, so the host's
    launch overhead does not count)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / 1e3)
    return statistics.median(times)


def prepare_model(
    model: LRRNet,
    device: torch.device,
    *,
    attention: str = "sdpa",
    channels_last: bool = False,
    compile_model: bool = False,
) -> tuple[nn.Module, torch.memory_format]:
    """A copy of ``model`` in eval mode, set up for one benchmark configuration.

    On CUDA, cuDNN autotunes its convolution algorithms per shape (as the trainer and
    ``inference.py`` do); the first calls pay for it, the timed ones come after warm-up.
    """
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    prepared = copy.deepcopy(model).to(device).eval().set_attention_impl(attention)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    prepared = prepared.to(memory_format=memory_format)
    if compile_model:
        prepared = torch.compile(prepared)
    return prepared, memory_format


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if sys.platform.startswith("linux"):
        return cpu_description()  # the model name; platform.processor() is only "x86_64"
    return platform.processor() or platform.machine()


def run_setting(size: int, batch: int, device: torch.device, dtype: str) -> dict[str, Any]:
    """The keys every result records about what was measured and on what."""
    return {
        "size": size,
        "batch": batch,
        "device": str(device),
        "device_name": device_name(device),
        "dtype": dtype,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }


# -- the network -------------------------------------------------------------------------


def benchmark(
    *,
    size: int = 512,
    batch: int = 1,
    device: str = "auto",
    dtype: str = "fp32",
    compile_model: bool = False,
    channels_last: bool = False,
    attention: str = "sdpa",
    warmup: int = 3,
    iters: int = 10,
    seed: int = 0,
) -> dict[str, Any]:
    """Measures one configuration of the default LRRNet on random weights and input.

    Returns:
        A dict with ``params``, ``gflops`` (one forward of the whole batch), ``latency_ms``
        (median), ``latency_ms_mean``, ``fps``, ``first_call_ms``, ``peak_memory_mb`` and
        the settings.
    """
    target = resolve_device(device)
    malloc = keep_freed_memory() if target.type == "cpu" else "-"
    torch.manual_seed(seed)
    model = LRRNet()
    image = torch.rand(batch, 1, size, size)
    # The count does not depend on the device; counting where the model runs avoids a slow
    # CPU forward of a large batch before a GPU benchmark.
    gflops = count_flops(model.eval().to(target), image.to(target)) / 1e9
    prepared, memory_format = prepare_model(
        model,
        target,
        attention=attention,
        channels_last=channels_last,
        compile_model=compile_model,
    )
    image = image.to(target).contiguous(memory_format=memory_format)
    if target.type == "cuda":
        torch.cuda.reset_peak_memory_stats(target)

    def run() -> None:
        with autocast_context(target, dtype):
            prepared(image)

    times = time_forwards({"model": run}, target, warmup=warmup, iters=iters)
    latency = statistics.median(times["model"])
    return {
        "params": count_parameters(model),
        "gflops": gflops,
        "latency_ms": latency,
        "latency_ms_mean": statistics.fmean(times["model"]),
        "fps": 1e3 * batch / latency,
        "first_call_ms": times["model:first"][0],
        "peak_memory_mb": peak_memory_mb(target),
        "compile": compile_model,
        "channels_last": channels_last,
        "attention": attention,
        "malloc": malloc,
        "warmup": warmup,
        "iters": iters,
        **run_setting(size, batch, target, dtype),
    }


def compare_paths(
    *,
    size: int = 512,
    batch: int = 1,
    device: str = "auto",
    dtype: str = "fp32",
    warmup: int = 1,
    iters: int = 3,
    seed: int = 0,
) -> dict[str, Any]:
    """The fast path (sdpa, contiguous, on the CPU with freed memory kept) against the
    straightforward one (explicit attention, contiguous tensors) on the same weights and
    input, interleaved; on the CPU also the straightforward path as the original code runs
    it, in a fresh interpreter with the default malloc.

    Returns:
        A dict with ``fast_latency_ms`` (also as ``latency_ms``, with ``fps``),
        ``straightforward_latency_ms`` (same process), ``original_latency_ms`` (fresh process
        on the CPU; the same-process figure on CUDA), ``speedup`` (original / fast),
        ``speedup_same_process`` (straightforward / fast), ``max_abs_diff_D`` and
        ``max_abs_diff_T`` between the fast and the original outputs, each path's largest
        error against a float64 run of the same weights (``max_abs_err_fp64_*``), the malloc
        state of each process, and the settings.
    """
    target = resolve_device(device)
    torch.manual_seed(seed)
    model = LRRNet()
    image = torch.rand(batch, 1, size, size, device=target)
    original: dict[str, Any] | None = None
    if target.type == "cpu":
        # First, so that the fresh process does not compete with this one's work.
        original = time_with_default_malloc(model, image, dtype, warmup, iters)
        malloc = keep_freed_memory()
    else:
        malloc = "-"
    paths = {
        "fast": prepare_model(model, target, attention="sdpa"),
        "straightforward": prepare_model(model, target, attention="naive"),
    }
    outputs: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def runner(name: str) -> Callable[[], None]:
        def run() -> None:
            with autocast_context(target, dtype):
                outputs[name] = paths[name][0](image)

        return run

    times = time_forwards({name: runner(name) for name in paths}, target, warmup, iters)
    if original is None:
        original = {
            "times_ms": times["straightforward"],
            "outputs": outputs["straightforward"],
            "malloc": malloc,
        }
    fast = statistics.median(times["fast"])
    straightforward = statistics.median(times["straightforward"])
    original_latency = statistics.median(original["times_ms"])
    diff_d, diff_t = _max_abs_diffs(outputs["fast"], original["outputs"])
    # Context for those differences: how far each float path is from a float64 run.
    reference_model = copy.deepcopy(model).to(target).eval().double().set_attention_impl("naive")
    with torch.inference_mode():
        reference = reference_model(image.double())
    error_fast = max(_max_abs_diffs(outputs["fast"], reference))
    error_original = max(_max_abs_diffs(original["outputs"], reference))
    return {
        "params": count_parameters(model),
        "latency_ms": fast,
        "fps": 1e3 * batch / fast,
        "fast_latency_ms": fast,
        "straightforward_latency_ms": straightforward,
        "original_latency_ms": original_latency,
        "fast_fps": 1e3 * batch / fast,
        "straightforward_fps": 1e3 * batch / straightforward,
        "original_fps": 1e3 * batch / original_latency,
        "speedup": original_latency / fast,
        "speedup_same_process": straightforward / fast,
        "max_abs_diff_D": diff_d,
        "max_abs_diff_T": diff_t,
        "max_abs_err_fp64_fast": error_fast,
        "max_abs_err_fp64_original": error_original,
        "max_abs_D": original["outputs"][0].abs().max().item(),
        "max_abs_T": original["outputs"][1].abs().max().item(),
        "malloc": malloc,
        "original_malloc": original["malloc"],
        "fast_times_ms": times["fast"],
        "straightforward_times_ms": times["straightforward"],
        "original_times_ms": original["times_ms"],
        "warmup": warmup,
        "iters": iters,
        **run_setting(size, batch, target, dtype),
    }


def time_with_default_malloc(
    model: nn.Module, image: torch.Tensor, dtype: str, warmup: int, iters: int
) -> dict[str, Any]:
    """Times the straightforward path on the CPU in a fresh interpreter (spawned), whose
    malloc is left as it starts: the conditions the original code runs in.

    Returns:
        ``times_ms`` (the timed forwards), ``outputs`` (D and T of the last one) and
        ``malloc`` (the child's malloc state, ``"glibc default"`` unless the environment
        sets one).
    """
    context = multiprocessing.get_context("spawn")
    with context.Pool(1) as pool:
        return pool.apply(
            _time_straightforward,
            (
                copy.deepcopy(model).cpu(),
                image.cpu(),
                dtype,
                warmup,
                iters,
                torch.get_num_threads(),
            ),
        )


def _time_straightforward(
    model: nn.Module, image: torch.Tensor, dtype: str, warmup: int, iters: int, threads: int
) -> dict[str, Any]:
    """The spawned half of :func:`time_with_default_malloc`."""
    torch.set_num_threads(threads)
    cpu = torch.device("cpu")
    network, _ = prepare_model(model, cpu, attention="naive")
    outputs: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def run() -> None:
        with autocast_context(cpu, dtype):
            outputs["last"] = network(image)

    times = time_forwards({"original": run}, cpu, warmup, iters)
    return {
        "times_ms": times["original"],
        "outputs": outputs["last"],
        "malloc": default_malloc_state(),
    }


def _max_abs_diffs(
    first: tuple[torch.Tensor, ...], second: tuple[torch.Tensor, ...]
) -> tuple[float, ...]:
    return tuple(
        (a.double() - b.double()).abs().max().item() for a, b in zip(first, second, strict=True)
    )


def benchmark_cuda_graph(
    *,
    size: int = 512,
    batch: int = 1,
    dtype: str = "fp32",
    channels_last: bool = True,
    compile_model: bool = False,
    warmup: int = 3,
    iters: int = 50,
    seed: int = 0,
) -> dict[str, Any]:
    """Latency of the CUDA-graph replay of the forward (the predictor's path) on one GPU;
    with ``compile_model``, of the ``torch.compile``d forward captured in the graph.

    Returns:
        ``latency_ms`` (median), ``fps``, ``capture_ms`` (warm-up runs plus capture),
        ``max_abs_diff_T`` between the replay and an eager forward, and the settings.
    """
    device = resolve_device("cuda")
    torch.manual_seed(seed)
    model, memory_format = prepare_model(LRRNet(), device, channels_last=channels_last)
    forward = torch.compile(model) if compile_model else model
    image = torch.rand(batch, 1, size, size, device=device).contiguous(memory_format=memory_format)
    torch.cuda.reset_peak_memory_stats(device)
    with torch.inference_mode():
        start = time.perf_counter()
        captured = CapturedForward(forward, image, device, dtype)
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
        "cuda_graph": True,
        "channels_last": channels_last,
        "compile": compile_model,
        "iters": iters,
        **run_setting(size, batch, device, dtype),
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
        "compile": compile_model,
        "channels_last": channels_last,
        "warmup": warmup,
        "iters": iters,
        **run_setting(size, batch, target, dtype),
    }


# -- what the command line prints --------------------------------------------------------


def _device_line(result: dict[str, Any]) -> str:
    return (
        f"device {result['device']} ({result['device_name']}), {result['threads']} threads, "
        f"torch {result['torch']}"
    )


def _input(result: dict[str, Any]) -> str:
    return f"{result['batch']}×1×{result['size']}×{result['size']} {result['dtype']}"


def format_benchmark(result: dict[str, Any]) -> str:
    """The lines ``tools/benchmark.py`` prints for :func:`benchmark`."""
    return "\n".join(
        [
            _device_line(result),
            f"input {_input(result)}, attention {result['attention']}, channels_last "
            f"{result['channels_last']}, compile {result['compile']}",
            f"params        {result['params']:,}",
            f"GFLOPs        {result['gflops']:.2f} (per forward of the batch)",
            f"latency       {result['latency_ms']:.1f} ms (median of {result['iters']}; "
            f"mean {result['latency_ms_mean']:.1f}; first call {result['first_call_ms']:.0f})",
            f"FPS           {result['fps']:.2f}",
            f"peak memory   {result['peak_memory_mb']:.0f} MiB",
        ]
    )


def format_paths(result: dict[str, Any]) -> str:
    """The lines ``tools/benchmark.py --compare`` prints for :func:`compare_paths`."""
    lines = [
        f"{_device_line(result)}, {_input(result)}, warmup {result['warmup']}, "
        f"iters {result['iters']}",
        f"fast (sdpa; malloc: {result['malloc']}):".ljust(58)
        + f"{result['fast_latency_ms']:9.1f} ms  {result['fast_fps']:7.2f} FPS",
        "straightforward (naive), same process:".ljust(58)
        + f"{result['straightforward_latency_ms']:9.1f} ms  "
        f"{result['straightforward_fps']:7.2f} FPS",
    ]
    if torch.device(result["device"]).type == "cpu":
        lines.append(
            f"original (naive; fresh process, malloc: {result['original_malloc']}):".ljust(58)
            + f"{result['original_latency_ms']:9.1f} ms  {result['original_fps']:7.2f} FPS"
        )
    lines += [
        f"speed-up over the original: {result['speedup']:.2f}× "
        f"({result['speedup_same_process']:.2f}× within one process); "
        f"max |ΔD| = {result['max_abs_diff_D']:.2e} (|D| ≤ {result['max_abs_D']:.2f}), "
        f"max |ΔT| = {result['max_abs_diff_T']:.2e} (|T| ≤ {result['max_abs_T']:.2f})",
        "max error against a float64 run: "
        f"fast {result['max_abs_err_fp64_fast']:.2e}, "
        f"original {result['max_abs_err_fp64_original']:.2e}",
    ]
    return "\n".join(lines)


def format_cuda_graph(result: dict[str, Any]) -> str:
    """The lines ``tools/benchmark.py --cuda-graph`` prints for :func:`benchmark_cuda_graph`."""
    return (
        f"device {result['device']} ({result['device_name']}), torch {result['torch']}\n"
        f"CUDA graph {_input(result)}, channels_last {result['channels_last']}, compile "
        f"{result['compile']}: {result['latency_ms']:.3f} ms (median of {result['iters']}), "
        f"{result['fps']:.1f} FPS, capture {result['capture_ms']:.0f} ms, "
        f"max |ΔT| vs eager {result['max_abs_diff_T']:.2e}"
    )


def format_training(result: dict[str, Any]) -> str:
    """The lines ``tools/benchmark.py --train`` prints for :func:`benchmark_training`."""
    return "\n".join(
        [
            _device_line(result),
            f"training step {_input(result)}, channels_last {result['channels_last']}, "
            f"compile {result['compile']}",
            f"step          {result['step_ms']:.1f} ms (median of {result['iters']}; first "
            f"{result['first_step_ms']:.0f} ms)",
            f"iterations/s  {result['iters_per_s']:.2f} ({result['images_per_s']:.1f} images/s)",
            f"peak memory   {result['peak_memory_mb']:.0f} MiB",
        ]
    )
