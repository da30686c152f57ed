"""ONNX export, the ONNX Runtime / OpenVINO backends, the export cache and their errors.

Run on a tiny model; the tests that need an optional package skip, with its name, when it
is absent (CI installs the deploy extra, so they run there).
"""

import copy
import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import scipy.io
import torch

from lrrnet.engine import backends
from lrrnet.engine.backends import (
    BackendError,
    ExportedModel,
    cached_export,
    check_backend,
    export_checked,
    max_probability_difference,
    predictor_for_backend,
    require,
)
from lrrnet.engine.predictor import model_from_checkpoint
from lrrnet.models import LRRNet

ROOT = Path(__file__).resolve().parents[1]
TINY = {"base_channels": 8, "num_groups": 4, "channel_mults": (1, 2), "num_res_blocks": 1}


def needs(*packages):
    missing = [name for name in packages if importlib.util.find_spec(name) is None]
    return pytest.mark.skipif(
        bool(missing), reason=f"optional package(s) {', '.join(missing)} not installed"
    )


def run_script(*args):
    return subprocess.run(
        [sys.executable, *map(str, args)], capture_output=True, text=True, cwd=ROOT
    )


@pytest.fixture(scope="module", autouse=True)
def export_cache(tmp_path_factory):
    """Exports go to one folder of this module (so the tiny model is exported once for the
    backends), not the user's cache; subprocesses inherit the variable."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LRRNET_CACHE", str(tmp_path_factory.mktemp("cache")))
        yield


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny trained-looking model saved as a .pth, and its checked export."""
    folder = tmp_path_factory.mktemp("deploy")
    torch.manual_seed(0)
    model = LRRNet(**TINY).eval()
    with torch.no_grad():  # non-default norm weights, so a dropped affine would show
        for parameter in model.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    checkpoint = folder / "tiny.pth"
    torch.save({"model": model.state_dict(), "config": {"model": TINY}}, checkpoint)
    return {"folder": folder, "model": model, "checkpoint": checkpoint}


@pytest.fixture(scope="module")
def exported(tiny):
    if importlib.util.find_spec("onnx") is None or importlib.util.find_spec("onnxruntime") is None:
        pytest.skip("optional packages onnx, onnxruntime not installed")
    # Written where the backends look for it, so the tests that run them reuse this export.
    path = backends.cache_path(tiny["model"])
    result = run_script("tools/export.py", "--checkpoint", tiny["checkpoint"], "--out", path)
    assert result.returncode == 0, result.stderr
    return path, result.stdout


def test_export_has_named_outputs_dynamic_axes_and_a_printed_check(exported):
    import onnx

    path, stdout = exported
    graph = onnx.load(str(path))
    assert max(o.version for o in graph.opset_import if o.domain in ("", "ai.onnx")) >= 18
    assert [o.name for o in graph.graph.output] == ["reconstruction", "target_logits"]
    (image,) = graph.graph.input
    dims = image.type.tensor_type.shape.dim
    assert dims[1].dim_value == 1
    assert all(dims[i].dim_param for i in (0, 2, 3)), "batch, height, width must be dynamic"
    difference = float(stdout.split("max |Δp| against PyTorch ")[1].split()[0])
    assert 0 <= difference <= 1e-4


@needs("onnxruntime")
@pytest.mark.parametrize("shape", [(1, 16, 24), (3, 40, 8)])
def test_onnxruntime_matches_pytorch_on_other_shapes(exported, tiny, shape):
    runtime = ExportedModel(exported[0], "onnxruntime")
    assert max_probability_difference(tiny["model"], runtime, [shape]) <= 1e-4


@needs("openvino")
def test_openvino_matches_pytorch_and_compiles_once_per_shape(exported, tiny):
    runtime = ExportedModel(exported[0], "openvino")
    shapes = [(1, 16, 24), (2, 32, 32), (1, 16, 24)]
    assert max_probability_difference(tiny["model"], runtime, shapes) <= 1e-4
    assert sorted(runtime._compiled) == [(1, 1, 16, 24), (2, 1, 32, 32)]


@needs("onnx", "onnxruntime")
def test_an_export_off_by_more_than_the_tolerance_is_refused_and_deleted(
    exported, tiny, monkeypatch
):
    path = tiny["folder"] / "refused.onnx"

    def copy_export(model, out, **kwargs):  # the real file, without a second export
        shutil.copyfile(exported[0], out)
        return Path(out)

    monkeypatch.setattr(backends, "export_onnx", copy_export)
    monkeypatch.setattr(backends, "max_probability_difference", lambda *args: 3e-3)
    with pytest.raises(BackendError, match=r"refused: max \|Δp\| = 3.00e-03"):
        export_checked(tiny["model"], path)
    assert not path.exists()


def test_export_cache_is_keyed_by_the_weights_hash(tiny, tmp_path, monkeypatch):
    calls = []

    def fake_export(model, path, **kwargs):
        calls.append(path)
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_bytes(b"onnx")
        return 0.0

    monkeypatch.setattr(backends, "export_checked", fake_export)
    first = cached_export(tiny["model"], tmp_path)
    # The same weights from a bare (released-style) state dict reuse the export.
    bare = tmp_path / "bare.pkl"
    torch.save({f"module.{k}": v for k, v in tiny["model"].state_dict().items()}, bare)
    again = cached_export(model_from_checkpoint(bare, TINY), tmp_path)
    changed = copy.deepcopy(tiny["model"])
    with torch.no_grad():
        changed.out_conv.bias.add_(1e-3)
    other = cached_export(changed, tmp_path)
    assert first == again and other != first
    assert len(calls) == 2


@needs("onnx", "onnxruntime", "openvino")
def test_every_backend_writes_the_same_maps(tiny, tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    rng = np.random.default_rng(1)
    for name, shape in {"odd": (37, 53), "wide": (21, 64)}.items():
        cv2.imwrite(str(folder / f"{name}.png"), rng.integers(0, 256, shape, dtype=np.uint8))
    maps = {}
    for backend in backends.BACKENDS:
        out = tmp_path / backend
        result = run_script(
            "inference.py", "--checkpoint", tiny["checkpoint"], "--images", folder,
            "--out", out, "--device", "cpu", "--backend", backend, "--size", "native",
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        maps[backend] = {
            name: scipy.io.loadmat(out / "mat" / f"{name}.mat")["T"] for name in ("odd", "wide")
        }
        assert sorted(p.name for p in (out / "img").iterdir()) == ["odd.png", "wide.png"]
    for backend in ("onnxruntime", "openvino"):
        for name, expected in maps["torch"].items():
            assert maps[backend][name].shape == expected.shape
            assert np.abs(maps[backend][name] - expected).max() <= 1e-4


def test_missing_package_names_the_install_command():
    with pytest.raises(
        BackendError, match=r"needs the optional package 'no_such_pkg': pip install"
    ):
        require("no_such_pkg", "backend test")


def test_backend_and_dtype_are_checked():
    check_backend("openvino", "bf16")
    with pytest.raises(BackendError, match="unknown backend 'tensorrt'"):
        check_backend("tensorrt", "fp32")
    with pytest.raises(BackendError, match="backend onnxruntime runs dtype fp32, not bf16"):
        check_backend("onnxruntime", "bf16")


def test_backend_on_a_gpu_device_is_refused(tiny):
    with pytest.raises(BackendError, match="backend openvino runs on the CPU"):
        predictor_for_backend(tiny["checkpoint"], backend="openvino", device="cuda")


def test_export_of_a_missing_checkpoint_is_a_one_line_error(tmp_path):
    result = run_script(
        "tools/export.py", "--checkpoint", tmp_path / "nope.pth", "--out", tmp_path / "m.onnx"
    )
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "nope.pth" in result.stderr


@pytest.mark.parametrize(
    "blocked, args, message",
    [
        ("", ["--backend", "onnxruntime", "--dtype", "bf16"], "runs dtype fp32, not bf16"),
        ("openvino", ["--backend", "openvino"], "needs the optional package 'openvino': pip"),
    ],
)
def test_inference_backend_errors_are_one_line(tiny, tmp_path, blocked, args, message):
    frames = tmp_path / "frames"
    frames.mkdir()
    cv2.imwrite(str(frames / "a.png"), np.zeros((16, 16), np.uint8))
    argv = [
        "--checkpoint",
        str(tiny["checkpoint"]),
        "--images",
        str(frames),
        "--out",
        str(tmp_path / "out"),
        *args,
    ]
    # sys.modules[name] = None makes "import name" fail, as if the package were absent.
    code = f"import sys; sys.modules[{blocked!r}] = None; import inference; sys.exit(inference.main({argv!r}))"
    result = run_script("-c", code)
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]  # after the log's "checkpoint PATH" line
    assert last.startswith("error: ") and message in last, result.stderr
    assert "Traceback" not in result.stderr
