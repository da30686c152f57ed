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
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch
from torch import nn

from lrrnet.engine.distributed import resolve_device
from lrrnet.engine.hardware import cpu_description, warn_if_bf16_is_emulated
from lrrnet.engine.predictor import Predictor, model_from_checkpoint
from lrrnet.errors import UserError
from lrrnet.models import SIZE_MULTIPLE, LRRNet

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
    (``cuda_graph``, ``keep_network_size``, ``compile_model``) go to the :class:`Predictor`.
    """
    check_backend(backend, dtype)
    if backend != "torch" and predictor_options.get("compile_model"):
        raise BackendError(f"--compile is for the torch backend, not {backend}")
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
