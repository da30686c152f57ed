"""inference.py and the predictor on odd sizes, both checkpoint kinds, and a corrupt file."""

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import scipy.io
import torch
import torch.nn.functional as F

from lrrnet.data.io import read_image, write_prediction
from lrrnet.engine.predictor import Predictor
from lrrnet.errors import ConfigError
from lrrnet.models import Downsample, LRRNet

ROOT = Path(__file__).resolve().parents[1]
TINY = {"base_channels": 8, "num_groups": 4, "channel_mults": (1, 2), "num_res_blocks": 1}
SIZES = {"odd": (37, 53), "square": (40, 40), "wide": (21, 64)}


def run_script(*args, cwd=None):
    return subprocess.run(
        [sys.executable, *map(str, args)], capture_output=True, text=True, cwd=cwd or ROOT
    )


def run_inference(checkpoint, images, out, *options):
    """``inference.py --checkpoint C --images DIR --out DIR [options]``."""
    return run_script(
        "inference.py", "--checkpoint", checkpoint, "--images", images, "--out", out, *options
    )


@pytest.fixture(scope="module")
def frames(tmp_path_factory):
    folder = tmp_path_factory.mktemp("frames")
    rng = np.random.default_rng(0)
    for name, (height, width) in SIZES.items():
        cv2.imwrite(
            str(folder / f"{name}.png"), rng.integers(0, 256, (height, width), dtype=np.uint8)
        )
    # 16-bit and RGB frames are read as one channel in [0, 1]
    cv2.imwrite(str(folder / "deep.png"), rng.integers(0, 65536, (24, 30), dtype=np.uint16))
    cv2.imwrite(str(folder / "colour.png"), rng.integers(0, 256, (33, 17, 3), dtype=np.uint8))
    return folder


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ckpt")
    torch.manual_seed(0)
    tiny = LRRNet(**TINY).eval()
    torch.save(
        {"model": tiny.state_dict(), "config": {"model": TINY}, "iteration": 3}, folder / "tiny.pth"
    )
    released = (
        LRRNet().eval()
    )  # the paper's architecture, saved as a bare state dict like the release
    torch.save(
        {f"module.{k}": v for k, v in released.state_dict().items()}, folder / "released.pkl"
    )
    return {"tiny": (folder / "tiny.pth", tiny), "released": (folder / "released.pkl", released)}


def expected_native(model, image):
    """The definition of --size native: reflect-pad to the model's multiple, run, crop back.

    The multiple is 2 ** (levels − 1): 8 for the published network, 2 for the tiny one.
    """
    height, width = image.shape
    x = torch.from_numpy(image)[None, None]
    multiple = 2 ** sum(isinstance(module, Downsample) for module in model.downs)
    padded = F.pad(x, (0, -width % multiple, 0, -height % multiple), mode="reflect")
    with torch.no_grad():
        _, target_logits = model(padded)
    return torch.sigmoid(target_logits)[0, 0, :height, :width].numpy()


@pytest.mark.parametrize("which", ["tiny", "released"])
def test_folder_mode_writes_every_map_at_its_own_size(frames, checkpoints, tmp_path, which):
    path, model = checkpoints[which]
    result = run_script(
        "inference.py",
        "--checkpoint",
        path,
        "--images",
        frames,
        "--out",
        tmp_path,
        "--size",
        "native",
    )
    assert result.returncode == 0, result.stderr
    assert "images/s" in result.stderr
    names = sorted(p.stem for p in frames.iterdir())
    assert sorted(p.stem for p in (tmp_path / "img").iterdir()) == names
    assert sorted(p.stem for p in (tmp_path / "mat").iterdir()) == names
    for name in names:
        image = read_image(frames / f"{name}.png")
        png = cv2.imread(str(tmp_path / "img" / f"{name}.png"), cv2.IMREAD_UNCHANGED)
        prob = scipy.io.loadmat(str(tmp_path / "mat" / f"{name}.mat"))["T"]
        assert png.dtype == np.uint8 and png.shape == image.shape
        assert prob.dtype == np.float32 and prob.shape == image.shape
        assert prob.min() >= 0.0 and prob.max() <= 1.0
        np.testing.assert_array_equal(png, np.round(prob * 255).astype(np.uint8))
        np.testing.assert_allclose(prob, expected_native(model, image), atol=1e-5)


def test_resized_mode_returns_maps_at_the_input_size(checkpoints):
    path, model = checkpoints["tiny"]
    predictor = Predictor.from_checkpoint(path, device="cpu", size=64)
    image = np.random.default_rng(1).random((37, 53), dtype=np.float32)
    prediction = predictor.predict(image)
    assert prediction.target_prob.shape == prediction.reconstruction.shape == (37, 53)
    x = F.interpolate(
        torch.from_numpy(image)[None, None], size=(64, 64), mode="bilinear", align_corners=False
    )
    with torch.no_grad():
        _, logits = model(x)
    expected = F.interpolate(
        torch.sigmoid(logits), size=(37, 53), mode="bilinear", align_corners=False
    )
    np.testing.assert_allclose(prediction.target_prob, expected[0, 0].numpy(), atol=1e-5)


def test_predictor_leaves_a_training_model_in_training_mode(checkpoints):
    _, model = checkpoints["tiny"]
    model.train()
    Predictor(model, device="cpu").predict(np.zeros((16, 16), np.float32))
    assert model.training
    model.eval()


def test_compile_model_runs_the_forward_through_torch_compile(checkpoints, monkeypatch):
    """The compiled wrapper is what runs (a stand-in here: a real CPU compile takes tens of
    seconds; tests/test_cuda.py compiles for real), on the same weights and in eval mode."""
    _, model = checkpoints["tiny"]
    calls = []

    def fake_compile(module):
        def forward(batch):
            calls.append(module.training)
            return module(batch)

        return forward

    monkeypatch.setattr(torch, "compile", fake_compile)
    image = np.random.default_rng(1).random((21, 30), dtype=np.float32)
    # compile_model defaults to channels_last: the same layout, so the same bits.
    expected = Predictor(model, device="cpu", channels_last=True).predict(image).target_prob
    model.train()
    compiled = Predictor(model, device="cpu", compile_model=True).predict(image).target_prob
    assert calls == [False] and model.training
    model.eval()
    np.testing.assert_array_equal(compiled, expected)


def test_compile_is_refused_for_an_exported_backend(frames, checkpoints, tmp_path):
    result = run_inference(
        checkpoints["tiny"][0], frames, tmp_path / "out", "--backend", "onnxruntime", "--compile"
    )
    last_line = result.stderr.strip().splitlines()[-1]
    assert result.returncode != 0 and last_line.startswith("error: --compile")
    assert not (tmp_path / "out").exists()


def test_corrupt_image_is_reported_and_the_others_are_written(frames, checkpoints, tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    for path in frames.iterdir():
        (folder / path.name).write_bytes(path.read_bytes())
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    out = tmp_path / "out"
    # An earlier run's maps: the one of the frame that now fails must not survive to be
    # scored as new, nor the map of a frame no longer in the folder. Other files stay.
    for name in ("broken", "gone"):
        write_prediction(out, name, np.zeros((4, 4), np.float32))
    (out / "notes.txt").write_text("mine")
    # At the frames' own size: this test is about the failure, not the geometry.
    result = run_inference(checkpoints["tiny"][0], folder, out, "--size", "native")
    assert result.returncode != 0
    assert "broken.png" in result.stderr and "Traceback" not in result.stderr
    written = {p.stem for p in (out / "mat").glob("*.mat")}
    assert written == {*SIZES, "deep", "colour"}  # no broken.mat, no gone.mat
    assert not (out / "img" / "broken.png").exists()
    assert (out / "notes.txt").read_text() == "mine"


def test_noise_is_seeded_and_changes_the_input(frames, checkpoints, tmp_path):
    path = checkpoints["tiny"][0]
    runs = []
    for index, seed in enumerate((5, 5, 6)):
        out = tmp_path / str(index)
        result = run_script(
            "inference.py",
            "--checkpoint",
            path,
            "--images",
            frames,
            "--out",
            out,
            "--noise-sigma",
            "20",
            "--noise-seed",
            str(seed),
            "--save-background",
            "--size",
            "native",
        )
        assert result.returncode == 0, result.stderr
        runs.append(scipy.io.loadmat(str(out / "mat" / "odd.mat")))
    np.testing.assert_array_equal(runs[0]["T"], runs[1]["T"])
    assert not np.array_equal(runs[0]["T"], runs[2]["T"])
    assert runs[0]["D"].shape == SIZES["odd"]


def test_config_mode_uses_the_newest_best_and_cal_from_mask_scores_it(
    tmp_path, checkpoints, tiny_synthetic_run
):
    run, args = tiny_synthetic_run
    (run / "best.pth").write_bytes(checkpoints["tiny"][0].read_bytes())
    result = run_script("inference.py", "synthetic", *args)
    assert result.returncode == 0, result.stderr
    assert str(run / "best.pth") in result.stderr
    assert len(list((tmp_path / "results" / "tiny" / "mat").iterdir())) == 3

    scored = run_script("cal_from_mask.py", "synthetic", *args)
    assert scored.returncode == 0, scored.stderr
    metrics = json.loads((tmp_path / "results" / "tiny" / "metrics.json").read_text())
    assert metrics["n_images"] == 3 and metrics["n_targets"] >= 3
    assert "IoU" in scored.stdout


def test_missing_checkpoint_is_a_one_line_error(frames, tmp_path):
    result = run_script(
        "inference.py", "--checkpoint", tmp_path / "nope.pth", "--images", frames, "--out", tmp_path
    )
    assert result.returncode == 2
    assert "nope.pth" in result.stderr and "Traceback" not in result.stderr


def test_native_size_is_a_reflection_pad_forward_and_crop():
    torch.manual_seed(0)
    model = LRRNet(base_channels=8, num_groups=4, num_res_blocks=1).eval()  # multiple 8
    image = torch.rand(1, 1, 37, 53)
    predictor = Predictor(model, device="cpu", size="native", channels_last=False)
    target_prob, reconstruction = predictor.predict_batch(image)
    with torch.inference_mode():
        manual = model(F.pad(image, (0, 56 - 53, 0, 40 - 37), mode="reflect"))
    assert reconstruction.shape == target_prob.shape == (1, 1, 37, 53)
    assert torch.equal(reconstruction, manual[0][..., :37, :53])
    assert torch.equal(target_prob, torch.sigmoid(manual[1])[..., :37, :53])


def test_native_size_pads_to_the_models_own_multiple():
    # Five levels halve four times: 40×40 (a multiple of 8, not of 16) must be padded to 48.
    model = LRRNet(base_channels=8, num_groups=4, channel_mults=(1, 1, 1, 1, 1), num_res_blocks=1)
    predictor = Predictor(model, device="cpu", size="native")
    prediction = predictor.predict(np.random.default_rng(0).random((40, 36), dtype=np.float32))
    assert prediction.target_prob.shape == (40, 36)
    with pytest.raises(ConfigError, match="size 40 must be a positive multiple of 16"):
        Predictor(model, device="cpu", size=40)


def test_save_at_network_writes_maps_at_the_working_resolution(frames, checkpoints, tmp_path):
    path, model = checkpoints["tiny"]
    out = tmp_path / "out"
    result = run_inference(
        path, frames, out, "--size", "64", "--save-at", "network", "--device", "cpu"
    )
    assert result.returncode == 0, result.stderr
    for name in ("odd", "wide", "deep"):
        prob = scipy.io.loadmat(out / "mat" / f"{name}.mat")["T"]
        assert prob.shape == (64, 64)  # not the frame's own size
        image = torch.from_numpy(read_image(frames / f"{name}.png"))[None, None]
        x = F.interpolate(image, size=(64, 64), mode="bilinear", align_corners=False)
        with torch.no_grad():
            expected = torch.sigmoid(model(x)[1])[0, 0].numpy()
        np.testing.assert_allclose(prob, expected, atol=1e-5)
    native = run_inference(path, frames, tmp_path / "n", "--size", "native", "--save-at", "network")
    assert native.returncode != 0 and "need a size N" in native.stderr.strip().splitlines()[-1]


def test_images_mode_default_size_comes_from_the_checkpoint(checkpoints, tmp_path):
    from lrrnet.config import load_config, to_dict
    from lrrnet.engine.inference import checkpoint_default_size

    size, why = checkpoint_default_size(checkpoints["released"][0])
    assert size == 512 and "bare state dict" in why and "--size native" in why
    _, tiny = checkpoints["tiny"]
    for overrides, expected in (
        (["data.base_size=256"], 256),
        (["data.eval_size=native"], "native"),
    ):
        path = tmp_path / f"{expected}.pth"
        config = to_dict(load_config("nudt", overrides))
        torch.save({"model": tiny.state_dict(), "config": config}, path)
        size, why = checkpoint_default_size(path)
        assert size == expected and "data.eval_size" in why


@pytest.mark.parametrize(
    ("option", "value"),
    [("--batch-size", "0"), ("--noise-sigma", "-1"), ("--noise-sigma", "inf")],
)
def test_impossible_options_are_refused_before_any_work(
    frames, checkpoints, tmp_path, option, value
):
    out = tmp_path / "out"
    result = run_inference(checkpoints["tiny"][0], frames, out, option, value)
    assert result.returncode == 2 and option in result.stderr
    assert not out.exists()


def test_an_output_folder_holding_the_frames_is_refused_and_they_stay(checkpoints, tmp_path):
    # A user's frames in U/img: --out U would write U/img/<name>.png over each of them.
    frames = tmp_path / "U" / "img"
    frames.mkdir(parents=True)
    rng = np.random.default_rng(7)
    for name in ("000001", "000002"):
        cv2.imwrite(str(frames / f"{name}.png"), rng.integers(0, 256, (16, 16), dtype=np.uint8))
    before = {p: p.read_bytes() for p in frames.iterdir()}
    for out in (tmp_path / "U", frames, tmp_path):
        result = run_inference(checkpoints["tiny"][0], frames, out, "--size", "native")
        assert result.returncode != 0
        last_line = result.stderr.strip().splitlines()[-1]
        assert last_line.startswith("error: ") and "holds the input" in last_line, result.stderr
        assert "Traceback" not in result.stderr
    assert {p: p.read_bytes() for p in frames.iterdir()} == before
    assert sorted(p.name for p in (tmp_path / "U").iterdir()) == ["img"]


def _no_work(monkeypatch, module, *names):
    """Make each of ``module``'s ``names`` fail the test when called: the work that a
    refused output place must never reach."""
    for name in names:

        def called(*args, _name=name, **kwargs):
            pytest.fail(f"{_name} ran before the output place was refused")

        monkeypatch.setattr(module, name, called)


@pytest.mark.parametrize(
    ("out", "options", "why"),
    [
        ("notes.txt/x", [], "notes.txt is a file, not a folder"),
        ("notes.txt", [], "notes.txt is a file, not a folder"),
        ("out", ["--save-background"], "out/background is a file, not a folder"),
        ("out", ["--detections"], "out/detections.csv: is a folder, not a file"),
    ],
)
def test_an_output_place_that_cannot_be_written_is_refused_before_any_work(
    frames, checkpoints, tmp_path, capsys, script_logging, monkeypatch, out, options, why
):
    import inference

    (tmp_path / "notes.txt").write_text("a user's")
    (tmp_path / "out" / "detections.csv").mkdir(parents=True)
    (tmp_path / "out" / "background").write_text("a user's")
    _no_work(monkeypatch, inference, "frame_source", "predictor_for_backend", "predict_to_folder")
    args = ["--checkpoint", str(checkpoints["tiny"][0]), "--images", str(frames)]
    assert inference.main([*args, "--out", str(tmp_path / out), *options]) == 2
    message = capsys.readouterr().err.strip().splitlines()[-1]
    assert message.startswith(f"error: --out {tmp_path / out}") and why in message, message
    assert (tmp_path / "notes.txt").read_text() == "a user's"


def test_config_mode_refuses_an_unwritable_results_folder_before_any_work(
    tmp_path, capsys, script_logging, monkeypatch, tiny_synthetic_run
):
    import inference

    _, args = tiny_synthetic_run
    blocker = tmp_path / "results.txt"
    blocker.write_text("a user's")
    _no_work(monkeypatch, inference, "splits_from_config", "predictor_for_backend")
    assert inference.main(["synthetic", *args, "--set", f"paths.results='{blocker}'"]) == 2
    message = capsys.readouterr().err.strip().splitlines()[-1]
    assert message == f"error: paths.results {blocker / 'tiny'}: {blocker} is a file, not a folder"
