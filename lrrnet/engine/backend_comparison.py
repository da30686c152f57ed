"""The deployment backends against PyTorch on the CPU: one table of backend × dtype →
latency, FPS, speed-up and max |Δp|, all measured in one run on the same weights and input.

What ``tools/benchmark.py --backend B`` and ``--compare-backends`` run; ``--backend``
times the checked ONNX export (:mod:`lrrnet.engine.backends`). Timing is
:mod:`lrrnet.engine.benchmarking`'s: the median of interleaved forwards.
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from lrrnet.engine.backends import BackendError, ExportedModel, cached_export, check_backend
from lrrnet.engine.benchmarking import prepare_model, time_forwards, time_with_default_malloc
from lrrnet.engine.cpu_memory import keep_freed_memory
from lrrnet.engine.hardware import cpu_description, warn_if_bf16_is_emulated
from lrrnet.engine.predictor import autocast_context, model_from_checkpoint
from lrrnet.models import LRRNet

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


def benchmark_backends(
    *,
    rows: Sequence[tuple[str, str, str]] = COMPARED,
    size: int = 512,
    batch: int = 1,
    warmup: int = 1,
    iters: int = 5,
    checkpoint: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """:func:`compare_backends` on trained weights (``checkpoint``) or seeded random ones,
    warning first when bf16 would run emulated.

    Returns:
        What ``tools/benchmark.py --backend B`` / ``--compare-backends`` writes as JSON:
        ``fps`` and ``latency_ms`` of the first measured row (the one backend asked for, or
        the first row; both absent when no row could be measured), ``rows``, ``cpu`` and the
        settings.
    """
    if checkpoint:
        model = model_from_checkpoint(checkpoint)
    else:
        torch.manual_seed(0)
        model = LRRNet()
    warn_if_bf16_is_emulated("bf16" if any(dtype == "bf16" for _, dtype, _ in rows) else "fp32")
    results = compare_backends(model, size=size, batch=batch, warmup=warmup, iters=iters, rows=rows)
    measured = [row for row in results if "fps" in row]
    first = {"fps": measured[0]["fps"], "latency_ms": measured[0]["latency_ms"]} if measured else {}
    return {
        **first,
        "rows": results,
        "cpu": cpu_description(),
        "size": size,
        "batch": batch,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "checkpoint": checkpoint,
    }


def format_backends(result: Mapping[str, Any], *, warmup: int, iters: int) -> str:
    """The machine and settings of a :func:`benchmark_backends` result, then its table."""
    return (
        f"{result['cpu']}; torch {result['torch']}, {result['threads']} threads; "
        f"{result['batch']}×1×{result['size']}×{result['size']}, warmup {warmup}, "
        f"median of {iters}\n" + format_comparison(result["rows"])
    )
