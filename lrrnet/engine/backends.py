"""Deployment: ONNX export, and ONNX Runtime / OpenVINO runtimes behind LRRNet's interface.

The exported graph takes ``image`` (B×1×H×W float32 in [0, 1], H and W multiples of the
model's size multiple, 8 by default; batch, height and width are dynamic) and returns
``reconstruction`` (D, B×1×H×W) and ``target_logits`` (T, B×1×H×W; the target probability is
``sigmoid(T)``), in the order of ``LRRNet.forward``. Plain ONNX operators at opset 18, so
ONNX Runtime, OpenVINO and TensorRT read the same file.

:class:`ExportedModel` wraps a runtime in an ``nn.Module`` with no parameters, so the
:class:`~lrrnet.engine.predictor.Predictor` (padding, resizing, batching) runs it exactly as
it runs the PyTorch network. ``onnx``, ``onnxruntime`` and ``openvino`` are optional
(``pip install -e '.[deploy]'``); a missing one is a one-line error saying so.
"""

from __future__ import annotations

import copy
import hashlib
import importlib
import logging
import os
import statistics
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch
from torch import nn

from lrrnet.engine.distributed import resolve_device
from lrrnet.engine.predictor import Predictor, autocast_context, model_from_checkpoint
from lrrnet.errors import UserError
from lrrnet.models import SIZE_MULTIPLE, LRRNet
from lrrnet.models.benchmark import prepare_model, time_forwards

logger = logging.getLogger(__name__)

BACKENDS: tuple[str, ...] = ("torch", "onnxruntime", "openvino")
# The dtypes each backend runs. fp16 on the CPU: PyTorch has no fast kernels (CUDA only,
# checked by the predictor) and ONNX Runtime's CPU provider has none either.
BACKEND_DTYPES: dict[str, tuple[str, ...]] = {
    "torch": ("fp32", "bf16", "fp16"),
    "onnxruntime": ("fp32",),
    "openvino": ("fp32", "bf16", "fp16"),
}
INSTALL_HINT = "pip install -e '.[deploy]'"
INPUT_NAME = "image"
OUTPUT_NAMES: tuple[str, str] = ("reconstruction", "target_logits")  # LRRNet.forward's order
OPSET = 18
EXPORT_TOLERANCE = 1e-4  # largest |Δp| (probabilities) accepted between PyTorch and the export
# CPU flags of native bf16 arithmetic (AMX tiles, or AVX-512 BF16 dot products).
BF16_FLAGS: tuple[str, ...] = ("amx_bf16", "avx512_bf16")
# OpenVINO's element types as this module's dtype names.
OPENVINO_TYPES = {
    "<Type: 'float32'>": "fp32",
    "<Type: 'bfloat16'>": "bf16",
    "<Type: 'float16'>": "fp16",
}


class BackendError(UserError):
    """A backend that is not installed, a dtype it cannot run, an export that fails its check."""


def require(package: str, purpose: str) -> ModuleType:
    """Imports an optional package, or raises a one-line error with the install command."""
    try:
        return importlib.import_module(package)
    except ImportError:
        raise BackendError(
            f"{purpose} needs the optional package '{package}': {INSTALL_HINT} "
            f"(or pip install {package})"
        ) from None


def check_backend(backend: str, dtype: str) -> None:
    """Raises BackendError for an unknown backend or a dtype it does not run."""
    if backend not in BACKEND_DTYPES:
        raise BackendError(f"unknown backend '{backend}' (use {', '.join(BACKENDS)})")
    if dtype not in BACKEND_DTYPES[backend]:
        raise BackendError(
            f"backend {backend} runs dtype {', '.join(BACKEND_DTYPES[backend])}, not {dtype}"
        )


def cpu_flags(cpuinfo: str | os.PathLike = "/proc/cpuinfo") -> set[str]:
    """The CPU's feature flags (empty when ``/proc/cpuinfo`` cannot be read)."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def warn_if_bf16_is_emulated(dtype: str, flags: set[str] | None = None) -> bool:
    """Warns when bf16 is asked for on a CPU without native bf16; returns whether it warned."""
    if dtype != "bf16":
        return False
    flags = cpu_flags() if flags is None else flags
    if flags & set(BF16_FLAGS):
        return False
    warnings.warn(
        f"bf16 on this CPU is emulated and slow: it has neither {' nor '.join(BF16_FLAGS)} "
        "(see the flags in /proc/cpuinfo); fp32 is faster here",
        RuntimeWarning,
        stacklevel=2,
    )
    return True


# -- export --------------------------------------------------------------------------------


def export_onnx(model: LRRNet, path: str | os.PathLike, opset: int = OPSET) -> Path:
    """Writes ``model`` as an ONNX file with dynamic batch, height and width.

    The export runs a float32 copy in eval mode on contiguous tensors, so GroupNorm is
    PyTorch's accurate stock operator (InstanceNormalization in the graph).
    """
    require("onnx", "ONNX export")
    if opset < 18:
        raise BackendError(f"opset {opset} is too old: the export needs opset 18 or newer")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    network = copy.deepcopy(model).cpu().float().eval()
    multiple = network.size_multiple
    # Batch 2 and 8 size multiples: an example size of 1 would be fixed into the graph.
    example = torch.rand(2, 1, 8 * multiple, 8 * multiple)
    height = torch.export.Dim("height", min=1, max=8192 // multiple)
    width = torch.export.Dim("width", min=1, max=8192 // multiple)
    batch = torch.export.Dim("batch", min=1, max=1024)
    dynamic = ({0: batch, 2: multiple * height, 3: multiple * width},)
    temporary = path.with_name(path.name + ".partial")
    # torch.onnx logs a warning per torchvision operator it cannot register (unused here).
    exporter_log = logging.getLogger("torch.onnx")
    level = exporter_log.level
    exporter_log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.export's own deprecations
            torch.onnx.export(
                network,
                (example,),
                str(temporary),
                dynamo=True,
                opset_version=opset,
                input_names=[INPUT_NAME],
                output_names=list(OUTPUT_NAMES),
                dynamic_shapes=dynamic,
                external_data=False,
                verbose=False,
            )
    except Exception as exc:
        temporary.unlink(missing_ok=True)
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise BackendError(
            f"ONNX export to {path} failed: {type(exc).__name__}: {first_line}"
        ) from exc
    finally:
        exporter_log.setLevel(level)
    os.replace(temporary, path)
    return path


def max_probability_difference(
    model: LRRNet,
    runtime: nn.Module,
    shapes: Sequence[tuple[int, int, int]],
    seed: int = 0,
) -> float:
    """Largest |sigmoid(T) − sigmoid(T')| between ``model`` and ``runtime`` on random frames.

    Args:
        shapes: ``(batch, height, width)`` of each test input.
    """
    generator = torch.Generator().manual_seed(seed)
    reference = copy.deepcopy(model).cpu().float().eval()
    largest = 0.0
    with torch.inference_mode():
        for batch, height, width in shapes:
            image = torch.rand(batch, 1, height, width, generator=generator)
            expected = torch.sigmoid(reference(image)[1])
            found = torch.sigmoid(runtime(image)[1])
            largest = max(largest, (expected - found).abs().max().item())
    return largest


def check_shapes(multiple: int) -> list[tuple[int, int, int]]:
    """A few inputs for the export check: batch 1 and 2, square and not."""
    return [(1, 8 * multiple, 8 * multiple), (2, 5 * multiple, 9 * multiple)]


def export_checked(
    model: LRRNet,
    path: str | os.PathLike,
    opset: int = OPSET,
    tolerance: float = EXPORT_TOLERANCE,
) -> float:
    """Exports, then compares ONNX Runtime with PyTorch; refuses (deletes) a file off by more
    than ``tolerance`` in probability. Returns the max |Δp|."""
    path = export_onnx(model, path, opset=opset)
    difference = max_probability_difference(
        model, ExportedModel(path, "onnxruntime"), check_shapes(model.size_multiple)
    )
    if not difference <= tolerance:  # also catches NaN
        path.unlink(missing_ok=True)
        raise BackendError(
            f"export {path} refused: max |Δp| = {difference:.2e} against PyTorch "
            f"exceeds {tolerance:.0e}"
        )
    return difference


def weights_key(model: nn.Module) -> str:
    """A short hash of the architecture and every weight: the same checkpoint, whatever file
    or wrapper it came in, gives the same key; any changed weight gives another."""
    digest = hashlib.sha256(repr(model).encode())
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def default_cache_dir() -> Path:
    """``$LRRNET_CACHE``, else ``~/.cache/lrrnet``."""
    return Path(os.environ.get("LRRNET_CACHE", Path.home() / ".cache" / "lrrnet"))


def cache_path(model: LRRNet, cache_dir: str | os.PathLike | None = None) -> Path:
    """Where the export of these weights is kept: ``CACHE/onnx/lrrnet-<hash>-opset18.onnx``."""
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return folder / "onnx" / f"lrrnet-{weights_key(model)}-opset{OPSET}.onnx"


def cached_export(model: LRRNet, cache_dir: str | os.PathLike | None = None) -> Path:
    """The checked ONNX export of these weights, made once per weights hash and reused."""
    path = cache_path(model, cache_dir)
    if path.is_file():
        logger.info("using the cached export %s", path)
        return path
    difference = export_checked(model, path)
    logger.info("exported to %s (max |Δp| %.1e against PyTorch)", path, difference)
    return path


# -- runtimes ------------------------------------------------------------------------------


class ExportedModel(nn.Module):
    """An exported LRRNet run by ONNX Runtime or OpenVINO, called like the network.

    OpenVINO compiles one model per input shape (kept, so a folder of equal frames compiles
    once; compiled blobs also go to ``cache_dir`` when given); ONNX Runtime takes any shape.

    Args:
        path: the ``.onnx`` file of :func:`export_onnx`.
        backend: ``"onnxruntime"`` or ``"openvino"``.
        dtype: ``fp32``, or for OpenVINO ``bf16``/``fp16`` (its inference precision hint).
        threads: CPU threads (default: PyTorch's setting).
        cache_dir: OpenVINO's compiled-model cache.
        size_multiple: what H and W must be multiples of: the exported network's
            ``size_multiple`` (the predictor pads native frames to it, as for the network).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        backend: str,
        dtype: str = "fp32",
        threads: int | None = None,
        cache_dir: str | os.PathLike | None = None,
        size_multiple: int = SIZE_MULTIPLE,
    ) -> None:
        super().__init__()
        check_backend(backend, dtype)
        if backend == "torch":
            raise BackendError("backend torch runs the network itself, not an export")
        self.path, self.backend, self.dtype = Path(path), backend, dtype
        self.size_multiple = size_multiple
        self.threads = threads or torch.get_num_threads()
        self._compiled: dict[tuple[int, ...], Any] = {}
        self.runs_as = dtype  # the precision OpenVINO actually chose, known once compiled
        if backend == "onnxruntime":
            runtime = require("onnxruntime", "backend onnxruntime")
            options = runtime.SessionOptions()
            options.intra_op_num_threads = self.threads
            self._session = runtime.InferenceSession(
                str(self.path), options, providers=["CPUExecutionProvider"]
            )
        else:
            runtime = require("openvino", "backend openvino")
            self._core = runtime.Core()
            if cache_dir is not None:
                self._core.set_property({"CACHE_DIR": str(cache_dir)})

    def _openvino_model(self, shape: tuple[int, ...]) -> Any:
        if shape not in self._compiled:
            network = self._core.read_model(str(self.path))
            network.reshape({INPUT_NAME: list(shape)})
            precision = {"fp32": "f32", "bf16": "bf16", "fp16": "f16"}[self.dtype]
            self._compiled[shape] = self._core.compile_model(
                network,
                "CPU",
                {
                    "INFERENCE_PRECISION_HINT": precision,
                    "PERFORMANCE_HINT": "LATENCY",
                    "INFERENCE_NUM_THREADS": self.threads,
                },
            )
            actual = str(self._compiled[shape].get_property("INFERENCE_PRECISION_HINT"))
            self.runs_as = OPENVINO_TYPES.get(actual, actual)
            if self.runs_as != self.dtype and len(self._compiled) == 1:
                # OpenVINO quietly runs fp32 where the CPU has no bf16/fp16 arithmetic.
                logger.warning(
                    "OpenVINO runs %s, not %s, on this CPU (%s)",
                    self.runs_as,
                    self.dtype,
                    cpu_description(),
                )
        return self._compiled[shape]

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Args: image: B×1×H×W. Returns: ``(reconstruction, target_logits)``, B×1×H×W
        float32 on the CPU."""
        array = np.ascontiguousarray(image.detach().float().cpu().numpy())
        if self.backend == "onnxruntime":
            outputs = self._session.run(list(OUTPUT_NAMES), {INPUT_NAME: array})
        else:
            results = self._openvino_model(array.shape)({INPUT_NAME: array})
            outputs = [results[name] for name in OUTPUT_NAMES]
        reconstruction, target_logits = (torch.from_numpy(np.asarray(o)) for o in outputs)
        return reconstruction, target_logits


def predictor_for_backend(
    checkpoint: str | os.PathLike,
    *,
    backend: str = "torch",
    model_config: Mapping[str, Any] | None = None,
    device: str = "auto",
    dtype: str = "fp32",
    size: str | int = "native",
    cache_dir: str | os.PathLike | None = None,
    **predictor_options: Any,
) -> Predictor:
    """A :class:`Predictor` for a checkpoint on one backend.

    ``torch`` is the network itself (any device, autocast for bf16/fp16); ``onnxruntime`` and
    ``openvino`` run the checked, cached export on the CPU. ``predictor_options``
    (``cuda_graph``, ``keep_network_size``) go to the :class:`Predictor`.
    """
    check_backend(backend, dtype)
    if backend != "torch" and str(device) not in ("auto", "cpu"):
        raise BackendError(f"backend {backend} runs on the CPU here; use --device cpu")
    if backend != "torch":  # before a long export, not after it
        require(backend, f"backend {backend}")
    target = resolve_device(device) if backend == "torch" else torch.device("cpu")
    if target.type == "cpu":
        warn_if_bf16_is_emulated(dtype)
    if backend == "torch":
        return Predictor.from_checkpoint(
            checkpoint,
            model_config=model_config,
            device=target,
            dtype=dtype,
            size=size,
            **predictor_options,
        )
    model = model_from_checkpoint(checkpoint, model_config)
    path = cached_export(model, cache_dir)
    runtime = ExportedModel(
        path, backend, dtype, cache_dir=Path(path).parent, size_multiple=model.size_multiple
    )
    return Predictor(
        runtime, device=target, dtype="fp32", size=size, channels_last=False, **predictor_options
    )


# -- speed of the backends -----------------------------------------------------------------

# (name, backend, dtype, how torch runs). "original" is the straightforward path the
# original code takes (explicit attention, contiguous tensors): the speed-up reference.
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

    ``path`` picks the torch variant: ``"fast"`` (sdpa attention, channels_last, as the
    predictor runs it) or ``"original"`` (explicit attention, contiguous tensors).
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
    original = path == "original"
    network, memory_format = prepare_model(
        model,
        torch.device("cpu"),
        attention="naive" if original else "sdpa",
        channels_last=not original,
    )

    def run(image: torch.Tensor) -> torch.Tensor:
        with autocast_context(torch.device("cpu"), dtype):
            logits = network(image.contiguous(memory_format=memory_format))[1]
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

    Rows whose optional package is missing are reported with ``skipped`` (the reason).

    Returns:
        Per row: ``backend``, ``dtype``, ``path``, ``latency_ms`` (median), ``fps``,
        ``speedup`` (against the first row), ``max_abs_diff_p`` (against the first row).
    """
    image = torch.rand(batch, 1, size, size, generator=torch.Generator().manual_seed(seed))
    results = [{"backend": backend, "dtype": dtype, "path": path} for backend, dtype, path in rows]
    runs: dict[int, Callable[[torch.Tensor], torch.Tensor]] = {}
    for index, result in enumerate(results):
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
    if not runs:
        return results
    reference, baseline = outputs[min(runs)], statistics.median(times[str(min(runs))])
    for index, run in runs.items():
        latency = statistics.median(times[str(index)])
        runtime = getattr(run, "runtime", None)
        results[index].update(
            latency_ms=latency,
            fps=1e3 * batch / latency,
            speedup=baseline / latency,
            max_abs_diff_p=(outputs[index] - reference).abs().max().item(),
            runs_as=runtime.runs_as if runtime is not None else results[index]["dtype"],
            times_ms=times[str(index)],
        )
    return results


def format_comparison(results: Sequence[Mapping[str, Any]]) -> str:
    """One table: backend × dtype → latency, FPS, speed-up and max |Δp| against the first row.

    "runs as" is the precision the backend really used (OpenVINO falls back to fp32 on CPUs
    without bf16/fp16 arithmetic)."""
    lines = [
        f"{'backend':<12} {'dtype':<5} {'path':<9} {'runs as':<7} {'latency ms':>10} "
        f"{'FPS':>7} {'speed-up':>8} {'max |Δp|':>9}"
    ]
    for row in results:
        head = f"{row['backend']:<12} {row['dtype']:<5} {row['path'] or '-':<9}"
        if "skipped" in row:
            lines.append(f"{head} skipped: {row['skipped']}")
            continue
        lines.append(
            f"{head} {row['runs_as']:<7} {row['latency_ms']:10.1f} {row['fps']:7.2f} "
            f"{row['speedup']:7.2f}× {row['max_abs_diff_p']:9.1e}"
        )
    return "\n".join(lines)


def cpu_description(cpuinfo: str | os.PathLike = "/proc/cpuinfo") -> str:
    """``model name`` from ``/proc/cpuinfo`` and whether it has native bf16."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        text = ""
    names = [
        line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name")
    ]
    native = sorted(cpu_flags(cpuinfo) & set(BF16_FLAGS))
    return (
        f"{names[0] if names else 'unknown CPU'}, {os.cpu_count()} CPUs visible, "
        f"native bf16: {', '.join(native) if native else 'no (' + ', '.join(BF16_FLAGS) + ' absent)'}"
    )


def benchmark_cli(args: Any) -> dict[str, Any]:
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
