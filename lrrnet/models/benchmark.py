"""Speed and size of the network: parameters, FLOPs, latency, FPS, peak memory.

FLOPs come from :class:`torch.utils.flop_counter.FlopCounterMode` (a multiply-add counts as
2), which sees convolutions and attention matmuls; GroupNorm, ReLU and additions are not
counted, as in the papers of the field. Latency is the median over timed forward passes
under ``torch.inference_mode`` (the median resists the other processes of a shared
machine); FPS = batch / median latency.
"""

from __future__ import annotations

import copy
import logging
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

from lrrnet.models.lrrnet import LRRNet

logger = logging.getLogger(__name__)

DTYPES: dict[str, torch.dtype] = {
    "fp32": torch.float32,
    "bf16": torch.bfloat16,
    "fp16": torch.float16,
}


def resolve_device(device: str) -> torch.device:
    """``"auto"`` → CUDA when available, else CPU; anything else as given."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def count_parameters(model: nn.Module) -> int:
    """Number of parameters (3,454,994 for the default LRRNet)."""
    return sum(parameter.numel() for parameter in model.parameters())


def count_flops(model: nn.Module, image: torch.Tensor) -> int:
    """FLOPs of one forward pass on ``image`` (B×1×H×W), multiply-add = 2."""
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        model(image)
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


def _autocast(device: torch.device, dtype: str) -> torch.autocast:
    return torch.autocast(device_type=device.type, dtype=DTYPES[dtype], enabled=dtype != "fp32")


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
        with _autocast(target, dtype):
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
        "size": size,
        "batch": batch,
        "device": str(target),
        "device_name": device_name(target),
        "dtype": dtype,
        "compile": compile_model,
        "channels_last": channels_last,
        "attention": attention,
        "warmup": warmup,
        "iters": iters,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
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
    """The fast path (sdpa + channels_last) against the straightforward one (explicit
    attention, contiguous tensors) on the same weights and input.

    Returns:
        A dict with ``fast_latency_ms`` (also as ``latency_ms``, with ``fps``),
        ``straightforward_latency_ms`` (medians of interleaved runs), ``speedup`` (straightforward / fast), ``max_abs_diff_D`` and
        ``max_abs_diff_T`` between the two paths' outputs, each path's largest error against
        a float64 run of the same weights (``max_abs_err_fp64_*``), and the settings.
    """
    target = resolve_device(device)
    torch.manual_seed(seed)
    model = LRRNet()
    image = torch.rand(batch, 1, size, size, device=target)
    paths = {
        "fast": prepare_model(model, target, attention="sdpa", channels_last=True),
        "straightforward": prepare_model(model, target, attention="naive", channels_last=False),
    }
    inputs = {name: image.contiguous(memory_format=fmt) for name, (_, fmt) in paths.items()}
    outputs: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def runner(name: str) -> Callable[[], None]:
        def run() -> None:
            with _autocast(target, dtype):
                outputs[name] = paths[name][0](inputs[name])

        return run

    times = time_forwards({name: runner(name) for name in paths}, target, warmup, iters)
    fast = statistics.median(times["fast"])
    straightforward = statistics.median(times["straightforward"])
    diff_d, diff_t = _max_abs_diffs(outputs["fast"], outputs["straightforward"])
    # Context for those differences: how far each float path is from a float64 run.
    reference_model = copy.deepcopy(model).to(target).eval().double().set_attention_impl("naive")
    with torch.inference_mode():
        reference = reference_model(image.double())
    error_fast = max(_max_abs_diffs(outputs["fast"], reference))
    error_straightforward = max(_max_abs_diffs(outputs["straightforward"], reference))
    return {
        "params": count_parameters(model),
        "latency_ms": fast,
        "fps": 1e3 * batch / fast,
        "fast_latency_ms": fast,
        "straightforward_latency_ms": straightforward,
        "fast_fps": 1e3 * batch / fast,
        "straightforward_fps": 1e3 * batch / straightforward,
        "speedup": straightforward / fast,
        "max_abs_diff_D": diff_d,
        "max_abs_diff_T": diff_t,
        "max_abs_err_fp64_fast": error_fast,
        "max_abs_err_fp64_straightforward": error_straightforward,
        "max_abs_D": outputs["straightforward"][0].abs().max().item(),
        "max_abs_T": outputs["straightforward"][1].abs().max().item(),
        "fast_times_ms": times["fast"],
        "straightforward_times_ms": times["straightforward"],
        "size": size,
        "batch": batch,
        "device": str(target),
        "device_name": device_name(target),
        "dtype": dtype,
        "warmup": warmup,
        "iters": iters,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }


def _max_abs_diffs(
    first: tuple[torch.Tensor, ...], second: tuple[torch.Tensor, ...]
) -> tuple[float, ...]:
    return tuple(
        (a.double() - b.double()).abs().max().item() for a, b in zip(first, second, strict=True)
    )


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return platform.processor() or platform.machine()
