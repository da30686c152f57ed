"""CUDA paths: forward, AMP training, torch.compile, the predictor, CUDA graphs, exact resume.

Skipped without a CUDA device (CI has none). `tools/gpu/gpu_check.py` runs this file on a lent
GPU and keeps its report. Comparisons with the CPU switch TF32 off: cuDNN convolutions use
TF32 by default, which is ~1e-3 from float32 by design, not a bug.
"""

import json
import math
import os

# cuBLAS reads this when its first handle is created: before any test touches the GPU.
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from lrrnet.config import load_config  # noqa: E402
from lrrnet.data import folder_samples  # noqa: E402
from lrrnet.data.io import read_prediction  # noqa: E402
from lrrnet.data.synthetic import generate_dataset  # noqa: E402
from lrrnet.engine import trainer  # noqa: E402
from lrrnet.engine.checkpoint import load_checkpoint  # noqa: E402
from lrrnet.engine.inference import predict_to_folder  # noqa: E402
from lrrnet.engine.predictor import Predictor  # noqa: E402
from lrrnet.losses import LRRNetLoss  # noqa: E402
from lrrnet.models import LRRNet  # noqa: E402

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

TINY_MODEL = {"base_channels": 8, "channel_mults": (1, 2), "num_res_blocks": 1, "num_groups": 4}


@pytest.fixture
def no_tf32():
    """Full float32 on the GPU for comparisons with the CPU, restored afterwards."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


@pytest.fixture(autouse=True)
def restore_global_modes():
    """The trainer's deterministic mode and cudnn.benchmark are global: undo them per test."""
    deterministic = torch.are_deterministic_algorithms_enabled()
    benchmark = torch.backends.cudnn.benchmark
    yield
    torch.use_deterministic_algorithms(deterministic)
    torch.backends.cudnn.benchmark = benchmark


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth") / "SIRST-Synth"
    generate_dataset(root, num_train=40, num_test=6, size=64, seed=5, progress=False)
    return root


def structured_frames(batch: int, height: int, width: int, seed: int = 0) -> torch.Tensor:
    """Smooth bright backgrounds with a few small bright blobs, B×1×H×W in [0, 1]."""
    generator = torch.Generator().manual_seed(seed)
    rows = torch.linspace(0, 1, height)[:, None]
    cols = torch.linspace(0, 1, width)[None, :]
    frames = 0.5 + 0.3 * torch.sin(3 * rows + 2 * cols) * torch.ones(batch, 1, 1, 1)
    frames = frames + 0.02 * torch.randn(batch, 1, height, width, generator=generator)
    for index in range(batch):
        y, x = torch.randint(4, height - 4, (2,), generator=generator).tolist()
        frames[index, 0, y - 1 : y + 2, x - 1 : x + 2] += 0.4
    return frames.clamp(0, 1)


def trained_model(seed: int = 0, **kwargs) -> LRRNet:
    """A default-width LRRNet with a few CPU training steps, so outputs are not flat."""
    torch.manual_seed(seed)
    model = LRRNet(**kwargs)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    criterion = LRRNetLoss()
    images = structured_frames(2, 32, 32, seed)
    masks = (images > 0.85).float()
    for _ in range(3):
        reconstruction, target_logits = model(images)
        loss, _ = criterion(reconstruction, target_logits, images, masks)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


def overrides(root, checkpoints, **extra):
    values = {
        **{f"model.{key}": value for key, value in TINY_MODEL.items()},
        "data.root": str(root),
        # As the dataset fixture generated it: the config checks a synthetic root's settings.
        "data.split_seed": 5,
        "data.synthetic": {"num_train": 40, "num_test": 6, "size": 64},
        "data.base_size": 64,
        "data.eval_size": "native",
        "data.num_workers": 2,
        "data.augment": True,
        "train.epochs": 1,
        "train.batch_size": 4,
        "train.lr": 1e-3,
        "train.device": "cuda",
        "train.log_every": 1,
        "train.num_log_images": 1,
        "paths.checkpoints": str(checkpoints),
        "name": "cuda",
    }
    values.update(extra)
    return [
        f"{key}={value!r}" if isinstance(value, str) else f"{key}={value}"
        for key, value in values.items()
    ]


@pytest.mark.parametrize("channels_last", [False, True])
def test_forward_on_cuda_equals_cpu(no_tf32, channels_last):
    model = trained_model()
    images = structured_frames(2, 96, 128, seed=1)
    with torch.inference_mode():
        expected = model(images)
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        gpu_model = LRRNet().eval()
        gpu_model.load_state_dict(model.state_dict())
        gpu_model = gpu_model.cuda().to(memory_format=fmt)
        actual = gpu_model(images.cuda().contiguous(memory_format=fmt))
    for name, cpu, gpu in zip(("D", "T"), expected, actual, strict=True):
        difference = (gpu.cpu() - cpu).abs().max().item()
        assert difference < 1e-4, f"{name}: max |GPU − CPU| = {difference:.2e}"


# bf16 keeps 8 significant bits, fp16 11: over ~40 layers the maps drift by a few per cent
# and a few per mille.
@pytest.mark.parametrize("dtype, tolerance", [(torch.bfloat16, 6e-2), (torch.float16, 1e-2)])
def test_autocast_forward_stays_close_to_float32(dtype, tolerance):
    model = trained_model().cuda()
    images = structured_frames(2, 128, 128, seed=2).cuda()
    with torch.inference_mode():
        reference = torch.sigmoid(model(images)[1])
        with torch.autocast("cuda", dtype=dtype):
            low = torch.sigmoid(model(images)[1].float())
    assert torch.isfinite(low).all()
    relative = ((low - reference).norm() / reference.norm()).item()
    assert relative < tolerance, f"{dtype}: relative error of sigmoid(T) {relative:.2e}"


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_amp_training_runs_finite_with_pinned_persistent_loader(dataset, tmp_path, amp):
    cfg = load_config(
        "synthetic",
        overrides(dataset, tmp_path, **{"train.amp": amp, "train.max_iters": 6}),
    )
    result = trainer.train(cfg)
    latest = load_checkpoint(result.run_dir / "latest.pth")
    assert latest["iteration"] == 6
    for key, value in latest["model"].items():
        assert torch.isfinite(value).all(), key
    if amp == "fp16":
        # The grad scaler was live: its scale is stored and finite.
        assert math.isfinite(float(latest["scaler"]["scale"]))
    else:
        assert not latest["scaler"], "bf16 needs no loss scaling"
    summary = json.loads((result.run_dir / "test_metrics.json").read_text())
    assert summary["last"]["test"]["n_images"] == 6
    log = (result.run_dir / "log.txt").read_text()
    assert "device cuda" in log


def test_predictor_on_cuda_writes_the_cpu_maps(dataset, tmp_path, no_tf32):
    samples = folder_samples(dataset / "test" / "images")
    model = trained_model()
    written = {}
    for name, device, graph in (
        ("cpu", "cpu", False),
        ("cuda", "cuda", False),
        ("graph", "cuda", True),
    ):
        gpu_model = LRRNet()
        gpu_model.load_state_dict(model.state_dict())
        predictor = Predictor(gpu_model, device=device, size="native", cuda_graph=graph)
        report = predict_to_folder(predictor, samples, tmp_path / name, progress=False)
        assert report.written == len(samples) and not report.failures
        written[name] = {
            sample.name: read_prediction(tmp_path / name / "mat" / f"{sample.name}.mat")
            for sample in samples
        }
    for name in samples:
        cpu = written["cpu"][name.name]
        for other in ("cuda", "graph"):
            difference = np.abs(written[other][name.name] - cpu).max()
            assert difference < 1e-4, f"{other} {name.name}: max |Δp| {difference:.2e}"
        # The graph replays the same kernels as the eager CUDA forward.
        assert np.abs(written["graph"][name.name] - written["cuda"][name.name]).max() < 1e-6


def test_cuda_graph_predictor_keeps_one_graph_per_shape_and_sees_new_weights():
    model = trained_model().cuda()
    predictor = Predictor(model, device="cuda", size="native", cuda_graph=True)
    first = predictor.predict_batch(structured_frames(1, 64, 64, seed=5))[0]
    predictor.predict_batch(structured_frames(1, 64, 64, seed=6))
    predictor.predict_batch(structured_frames(1, 80, 64, seed=7))
    assert len(predictor._graphs) == 2
    # Weights updated in place (as an optimizer does) are used by the next replay.
    with torch.no_grad():
        model.out_conv.bias += 1.0
    second = predictor.predict_batch(structured_frames(1, 64, 64, seed=5))[0]
    assert (second - first).abs().max().item() > 1e-3


@pytest.mark.parametrize("ema_decay", [0.0, 0.9], ids=["live", "weight_average"])
def test_resume_on_cuda_is_exact_when_deterministic(
    dataset, tmp_path, interrupted_train, ema_decay
):
    extra = {
        "train.deterministic": True,
        "train.eval_every": 4,
        "train.max_iters": 9,
        "train.ema_decay": ema_decay,
    }
    reference = trainer.train(load_config("synthetic", overrides(dataset, tmp_path / "a", **extra)))
    cfg = load_config("synthetic", overrides(dataset, tmp_path / "b", **extra))
    interrupted_train(cfg, step=5)  # the last checkpoint is iteration 4's
    resumed = trainer.train(cfg, resume="auto")
    expected = load_checkpoint(reference.run_dir / "latest.pth")
    actual = load_checkpoint(resumed.run_dir / "latest.pth")
    # With the weight average on, "model" is the average and "train_model" the live weights.
    entries = ("model", "train_model") if ema_decay else ("model",)
    assert ("train_model" in actual) == bool(ema_decay)
    for entry in entries:
        differences = {
            key: (expected[entry][key] - actual[entry][key]).abs().max().item()
            for key in expected[entry]
        }
        worst = max(differences, key=differences.get)
        assert differences[worst] == 0.0, (
            f"{entry}: largest difference {differences[worst]:.2e} in {worst}"
        )
    if ema_decay:
        live, average = actual["train_model"], actual["model"]
        assert any(not torch.equal(live[key], average[key]) for key in live)


# Compiles last: they are the slowest, and a time limit should cut them, not the others.
def test_compiled_forward_equals_eager(no_tf32):
    model = trained_model(**TINY_MODEL).cuda()
    compiled = torch.compile(model)
    images = structured_frames(2, 64, 64, seed=3).cuda()
    with torch.inference_mode():
        eager = model(images)
        fused = compiled(images)
    for name, a, b in zip(("D", "T"), eager, fused, strict=True):
        difference = (a - b).abs().max().item()
        assert difference < 1e-4, f"{name}: max |compiled − eager| = {difference:.2e}"


@pytest.mark.parametrize("graph", [False, True], ids=["compiled", "compiled_graph"])
def test_compiled_predictor_writes_the_eager_maps(no_tf32, graph):
    """``inference.py --compile`` (and with ``--cuda-graph``, the compiled forward captured)."""
    model = trained_model(**TINY_MODEL).cuda()
    frames = structured_frames(2, 64, 48, seed=4)
    eager_predictor = Predictor(model, device="cuda")
    eager = eager_predictor.predict_batch(frames)[0]
    predictor = Predictor(model, device="cuda", compile_model=True, cuda_graph=graph)
    # The measured-fastest layouts: contiguous in eager mode on CUDA, channels_last compiled.
    assert eager_predictor.memory_format == torch.contiguous_format
    assert predictor.memory_format == torch.channels_last
    for _ in range(2):  # the second call replays (graph) or reuses the compiled code
        compiled = predictor.predict_batch(frames)[0]
        difference = (compiled - eager).abs().max().item()
        assert difference < 1e-4, f"max |Δp| compiled vs eager {difference:.2e}"
    assert len(predictor._graphs) == int(graph)


def test_compiled_training_follows_eager_losses(no_tf32):
    """Three Adam steps without dropout: compile must not change what is learnt."""
    images = structured_frames(4, 64, 64, seed=4).cuda()
    masks = (images > 0.85).float()
    losses = {}
    for compile_model in (False, True):
        torch.manual_seed(0)
        model = LRRNet(**TINY_MODEL, dropout=0.0).cuda().train()
        step_model = torch.compile(model) if compile_model else model
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        criterion = LRRNetLoss()
        values = []
        for _ in range(3):
            reconstruction, target_logits = step_model(images)
            loss, _ = criterion(reconstruction, target_logits, images, masks)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            values.append(loss.item())
        losses[compile_model] = values
    np.testing.assert_allclose(losses[True], losses[False], rtol=1e-3)


def test_trainer_runs_with_compile(dataset, tmp_path):
    cfg = load_config(
        "synthetic",
        overrides(
            dataset,
            tmp_path,
            **{
                "train.compile": True,
                "train.amp": "bf16",
                "train.max_iters": 3,
                "train.ema_decay": 0.9,
            },
        ),
    )
    result = trainer.train(cfg)
    latest = load_checkpoint(result.run_dir / "latest.pth")
    assert latest["iteration"] == 3
    # The saved weights (the average and the live ones) carry the plain module's names.
    for entry in ("model", "train_model"):
        assert latest[entry].keys() == LRRNet(**TINY_MODEL).state_dict().keys(), entry
