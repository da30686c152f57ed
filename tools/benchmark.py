"""Parameters, GFLOPs, latency, FPS and peak memory of LRRNet.

    python tools/benchmark.py --size 512 --batch 1 --device cpu --warmup 1 --iters 3
    python tools/benchmark.py --device cuda --dtype bf16 --channels-last --json bench.json
    python tools/benchmark.py --compare --device cpu --warmup 1 --iters 3
    python tools/benchmark.py --device cuda --dtype bf16 --channels-last --cuda-graph
    python tools/benchmark.py --train --size 512 --batch 8 --device cuda --dtype bf16

``--compare`` runs the fast path (what the predictor runs: sdpa attention, contiguous
tensors, and on the CPU freed memory kept for reuse, :mod:`lrrnet.engine.cpu_memory`) and
the straightforward one (explicit attention, contiguous) on the same weights, interleaved,
and reports the speed ratio and the largest output difference. On the CPU it also times
the straightforward path in a fresh interpreter with glibc's default malloc, as the
original code runs: the speed-up over the original is measured against that.
``--cuda-graph`` times the predictor's CUDA-graph replay of the forward (batch-1 latency). ``--train`` times whole training steps
(forward, loss, backward, Adam) instead of forwards. ``--backend onnxruntime|openvino``
times the checked ONNX export (CPU); ``--compare-backends`` prints one table of backend ×
dtype → latency, FPS and max |Δp| against fp32 PyTorch, all measured in one run.

FLOPs come from :class:`torch.utils.flop_counter.FlopCounterMode` (a multiply-add counts as
2), which sees convolutions and attention matmuls; GroupNorm, ReLU and additions are not
counted, as in the papers of the field. Latency is the median over timed forward passes
under ``torch.inference_mode`` (the median resists the other processes of a shared
machine); FPS = batch / median latency. Devices, dtypes and autocast are the engine's
(:func:`lrrnet.engine.distributed.resolve_device`, :data:`lrrnet.engine.predictor.DTYPES`,
:func:`lrrnet.engine.predictor.autocast_context`), so a benchmark runs as inference does.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import copy  # noqa: E402
import multiprocessing  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Mapping, Sequence  # noqa: E402
from typing import Any  # noqa: E402

import torch  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from lrrnet.engine.backends import (  # noqa: E402
    BACKENDS,
    BackendError,
    ExportedModel,
    cached_export,
    check_backend,
)
from lrrnet.engine.cpu_memory import default_malloc_state, keep_freed_memory  # noqa: E402
from lrrnet.engine.distributed import resolve_device  # noqa: E402
from lrrnet.engine.hardware import cpu_description, warn_if_bf16_is_emulated  # noqa: E402
from lrrnet.engine.predictor import (  # noqa: E402
    DTYPES,
    CapturedForward,
    autocast_context,
    model_from_checkpoint,
)
from lrrnet.errors import UserError  # noqa: E402
from lrrnet.files import write_json_atomic  # noqa: E402
from lrrnet.losses import LRRNetLoss  # noqa: E402
from lrrnet.models import SIZE_MULTIPLE, LRRNet  # noqa: E402
from lrrnet.models.blocks import AttentionBlock  # noqa: E402

# -- measuring -----------------------------------------------------------------------------


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


# -- the deployment backends (CPU) ---------------------------------------------------------

# (backend, dtype, how torch runs). "original" is the straightforward path the original code
# takes (explicit attention, contiguous tensors), timed in a fresh interpreter with glibc's
# default malloc: the speed-up reference. The other rows run in this process, which keeps
# freed memory for reuse (lrrnet.engine.cpu_memory) as the predictor does.
COMPARED: tuple[tuple[str, str, str], ...] = (
    ("torch", "fp32", "original"),
    ("torch", "fp32", "fast"),
    ("torch", "bf16", "fast"),
    ("onnxruntime", "fp32", ""),
    ("openvino", "fp32", ""),
    ("openvino", "bf16", ""),
)


def runner_for(
    model: LRRNet,
    backend: str,
    dtype: str,
    path: str = "fast",
    cache_dir: str | os.PathLike | None = None,
) -> Callable[[torch.Tensor], torch.Tensor]:
    """A CPU function image (B×1×H×W) → target probabilities for one backend and dtype.

    ``path`` picks the torch variant: ``"fast"`` (sdpa attention, as the predictor runs it)
    or ``"original"`` (explicit attention); both on contiguous tensors.
    """
    check_backend(backend, dtype)
    if backend != "torch":
        runtime = ExportedModel(
            cached_export(model, cache_dir), backend, dtype, size_multiple=model.size_multiple
        )

        def run_exported(image: torch.Tensor) -> torch.Tensor:
            return torch.sigmoid(runtime(image)[1])

        run_exported.runtime = runtime  # type: ignore[attr-defined]
        return run_exported
    network, _ = prepare_model(
        model, torch.device("cpu"), attention="naive" if path == "original" else "sdpa"
    )

    def run(image: torch.Tensor) -> torch.Tensor:
        with autocast_context(torch.device("cpu"), dtype):
            logits = network(image)[1]
        return torch.sigmoid(logits.float())

    return run


def compare_backends(
    model: LRRNet,
    *,
    size: int = 512,
    batch: int = 1,
    warmup: int = 1,
    iters: int = 5,
    rows: Sequence[tuple[str, str, str]] = COMPARED,
    cache_dir: str | os.PathLike | None = None,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Times backends × dtypes on the CPU in one run, interleaved, on the same weights and input.

    Rows whose optional package is missing are reported with ``skipped`` (the reason). A torch
    row with path ``"original"`` runs in a fresh interpreter with the default malloc
    (:func:`time_with_default_malloc`), before the others; they run in this process, with
    freed memory kept for reuse.

    Returns:
        Per row: ``backend``, ``dtype``, ``path``, ``latency_ms`` (median), ``fps``,
        ``speedup`` (against the first row), ``max_abs_diff_p`` (against the first row),
        ``malloc``.
    """
    image = torch.rand(batch, 1, size, size, generator=torch.Generator().manual_seed(seed))
    results = [{"backend": backend, "dtype": dtype, "path": path} for backend, dtype, path in rows]
    fresh: dict[int, dict[str, Any]] = {}
    for index, result in enumerate(results):
        if result["backend"] == "torch" and result["path"] == "original":
            fresh[index] = time_with_default_malloc(model, image, result["dtype"], warmup, iters)
    malloc = keep_freed_memory()
    runs: dict[int, Callable[[torch.Tensor], torch.Tensor]] = {}
    for index, result in enumerate(results):
        if index in fresh:
            continue
        try:
            runs[index] = runner_for(
                model, result["backend"], result["dtype"], result["path"] or "fast", cache_dir
            )
        except BackendError as error:
            result["skipped"] = str(error)
    outputs: dict[int, torch.Tensor] = {}

    def timed(index: int) -> Callable[[], None]:
        def run() -> None:
            outputs[index] = runs[index](image)

        return run

    times = time_forwards(
        {str(index): timed(index) for index in runs}, torch.device("cpu"), warmup, iters
    )
    for index, measured in fresh.items():
        times[str(index)] = measured["times_ms"]
        outputs[index] = torch.sigmoid(measured["outputs"][1].float())
    if not outputs:
        return results
    first = min(outputs)
    reference, baseline = outputs[first], statistics.median(times[str(first)])
    for index in outputs:
        latency = statistics.median(times[str(index)])
        runtime = getattr(runs.get(index), "runtime", None)
        results[index].update(
            latency_ms=latency,
            fps=1e3 * batch / latency,
            speedup=baseline / latency,
            max_abs_diff_p=(outputs[index] - reference).abs().max().item(),
            runs_as=runtime.runs_as if runtime is not None else results[index]["dtype"],
            malloc=fresh[index]["malloc"] if index in fresh else malloc,
            times_ms=times[str(index)],
        )
    return results


def format_comparison(results: Sequence[Mapping[str, Any]]) -> str:
    """One table: backend × dtype → latency, FPS, speed-up and max |Δp| against the first row.

    "runs as" is the precision the backend really used (OpenVINO falls back to fp32 on CPUs
    without bf16/fp16 arithmetic); the rows' malloc states are listed under the table."""
    lines = [
        f"{'backend':<12} {'dtype':<5} {'path':<9} {'runs as':<7} {'latency ms':>10} "
        f"{'FPS':>7} {'speed-up':>8} {'max |Δp|':>9}"
    ]
    mallocs: dict[str, list[str]] = {}
    for row in results:
        head = f"{row['backend']:<12} {row['dtype']:<5} {row['path'] or '-':<9}"
        if "skipped" in row:
            lines.append(f"{head} skipped: {row['skipped']}")
            continue
        lines.append(
            f"{head} {row['runs_as']:<7} {row['latency_ms']:10.1f} {row['fps']:7.2f} "
            f"{row['speedup']:7.2f}× {row['max_abs_diff_p']:9.1e}"
        )
        name = f"{row['backend']} {row['dtype']}" + (f" {row['path']}" if row["path"] else "")
        mallocs.setdefault(row.get("malloc", "?"), []).append(name)
    lines += [f"malloc {state}: {', '.join(names)}" for state, names in mallocs.items()]
    return "\n".join(lines)


def benchmark_backends(args: argparse.Namespace) -> dict[str, Any]:
    """``tools/benchmark.py --backend B`` / ``--compare-backends``: prints, returns the JSON."""
    if resolve_device(args.device).type != "cpu":
        raise BackendError("--backend and --compare-backends measure the CPU; use --device cpu")
    if args.checkpoint:
        model = model_from_checkpoint(args.checkpoint)
    else:
        torch.manual_seed(0)
        model = LRRNet()
    rows = COMPARED if args.compare_backends else ((args.backend, args.dtype, ""),)
    warn_if_bf16_is_emulated("bf16" if any(dtype == "bf16" for _, dtype, _ in rows) else "fp32")
    results = compare_backends(
        model, size=args.size, batch=args.batch, warmup=args.warmup, iters=args.iters, rows=rows
    )
    print(
        f"{cpu_description()}; torch {torch.__version__}, {torch.get_num_threads()} threads; "
        f"{args.batch}×1×{args.size}×{args.size}, warmup {args.warmup}, median of {args.iters}"
    )
    print(format_comparison(results))
    measured = [row for row in results if "fps" in row]
    if not measured:
        raise BackendError(results[0].get("skipped", "nothing could be measured"))
    return {
        "fps": measured[0]["fps"],  # the one backend asked for, or the first row
        "latency_ms": measured[0]["latency_ms"],
        "rows": results,
        "cpu": cpu_description(),
        "size": args.size,
        "batch": args.batch,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "checkpoint": args.checkpoint,
    }


# -- command line --------------------------------------------------------------------------


def _device_line(result: dict[str, Any]) -> str:
    return (
        f"device {result['device']} ({result['device_name']}), {result['threads']} threads, "
        f"torch {result['torch']}"
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
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
    parser.add_argument("--backend", choices=BACKENDS, default="torch")
    parser.add_argument("--compare-backends", action="store_true", help="one table, CPU")
    parser.add_argument("--checkpoint", help="weights for --backend/--compare-backends")
    args = parser.parse_args(argv)
    if args.size % SIZE_MULTIPLE:
        parser.error(f"--size must be a multiple of {SIZE_MULTIPLE}, got {args.size}")
    try:
        device = resolve_device(args.device)
    except UserError as error:
        parser.error(str(error))
    if args.dtype == "fp16" and device.type != "cuda":
        parser.error("--dtype fp16 needs a CUDA device")
    if args.cuda_graph and (args.train or args.compare):
        parser.error("--cuda-graph times the inference forward; leave out --train/--compare")
    if args.cuda_graph and device.type != "cuda":
        parser.error("--cuda-graph needs a CUDA device")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        result = run(args)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    if args.json:
        write_json_atomic(args.json, result)
    return 0


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Measures what ``args`` ask for, prints it, and returns the results for the JSON."""
    if args.compare_backends or args.backend != "torch":
        result = benchmark_backends(args)
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
            compile_model=args.compile,
            warmup=args.warmup,
            iters=args.iters,
        )
        print(f"device {result['device']} ({result['device_name']}), torch {result['torch']}")
        print(
            f"CUDA graph {args.batch}×1×{args.size}×{args.size} {args.dtype}, channels_last "
            f"{args.channels_last}, compile {args.compile}: {result['latency_ms']:.3f} ms "
            f"(median of {args.iters}), "
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
            f"fast (sdpa; malloc: {result['malloc']}):".ljust(58)
            + f"{result['fast_latency_ms']:9.1f} ms  {result['fast_fps']:7.2f} FPS"
        )
        print(
            "straightforward (naive), same process:".ljust(58)
            + f"{result['straightforward_latency_ms']:9.1f} ms  "
            f"{result['straightforward_fps']:7.2f} FPS"
        )
        if resolve_device(args.device).type == "cpu":
            print(
                f"original (naive; fresh process, malloc: {result['original_malloc']}):".ljust(58)
                + f"{result['original_latency_ms']:9.1f} ms  {result['original_fps']:7.2f} FPS"
            )
        print(
            f"speed-up over the original: {result['speedup']:.2f}× "
            f"({result['speedup_same_process']:.2f}× within one process); "
            f"max |ΔD| = {result['max_abs_diff_D']:.2e} (|D| ≤ {result['max_abs_D']:.2f}), "
            f"max |ΔT| = {result['max_abs_diff_T']:.2e} (|T| ≤ {result['max_abs_T']:.2f})"
        )
        print(
            "max error against a float64 run: "
            f"fast {result['max_abs_err_fp64_fast']:.2e}, "
            f"original {result['max_abs_err_fp64_original']:.2e}"
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
    return result


if __name__ == "__main__":
    sys.exit(main())
