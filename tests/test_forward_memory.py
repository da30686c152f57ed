"""A forward too large for the memory is refused before it runs, with its estimate and --size."""

import re

import cv2
import numpy as np
import pytest
import torch

import inference
from lrrnet.engine import forward_memory
from lrrnet.engine.forward_memory import (
    ACTIVATION_BYTES_PER_PIXEL,
    FRAME_BYTES_PER_PIXEL,
    GIB,
    available_bytes,
    check_forward_memory,
    forward_bytes,
    network_shape,
)
from lrrnet.engine.predictor import Predictor
from lrrnet.errors import UserError
from lrrnet.models import LRRNet

TINY = {"base_channels": 8, "num_groups": 4, "channel_mults": (1, 2), "num_res_blocks": 1}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pth"
    torch.manual_seed(0)
    torch.save({"model": LRRNet(**TINY).state_dict(), "config": {"model": TINY}}, path)
    return path


def test_the_network_sees_the_padded_frame_natively_and_n_by_n_resized():
    assert network_shape("native", 8, 37, 53) == (40, 56)
    assert network_shape("native", 8, 40, 48) == (40, 48)
    assert network_shape(512, 8, 37, 53) == (512, 512)


def test_the_estimate_grows_with_pixels_batch_and_width():
    published = Predictor(LRRNet(num_res_blocks=1), device="cpu", size="native")
    one = forward_bytes(published, 1, 64, 64)
    assert one == ACTIVATION_BYTES_PER_PIXEL * 64 * 64 + FRAME_BYTES_PER_PIXEL * 64 * 64
    assert forward_bytes(published, 3, 64, 64) == 3 * one
    tiny = Predictor(LRRNet(**TINY), device="cpu", size="native")  # half the first width
    assert forward_bytes(tiny, 1, 64, 64) == ACTIVATION_BYTES_PER_PIXEL // 2 * 4096 + 20 * 4096
    resized = Predictor(LRRNet(**TINY), device="cpu", size=32)
    assert forward_bytes(resized, 1, 64, 64) == ACTIVATION_BYTES_PER_PIXEL // 2 * 1024 + 20 * 4096


def test_available_cpu_memory_is_read_from_the_system():
    available = available_bytes(torch.device("cpu"))
    assert available is None or 0 < available < 1 << 50


def test_a_forward_that_fits_passes_and_one_that_does_not_names_estimate_and_flags(monkeypatch):
    predictor = Predictor(LRRNet(**TINY), device="cpu", size="native")
    monkeypatch.setattr(forward_memory, "available_bytes", lambda device: 64 << 20)
    check_forward_memory(predictor, 1, 128, 128)  # about 16 MiB
    with pytest.raises(UserError) as refused:
        check_forward_memory(predictor, 4, 1024, 1024, "big.png")
    message = str(refused.value)
    needed = forward_bytes(predictor, 4, 1024, 1024)
    assert message.startswith("big.png: a 1024×1024 frame runs the network at 1024×1024")
    assert f"about {needed / GIB:.1f} GiB" in message and "0.1 GiB available on cpu" in message
    assert "--size N (e.g. --size 512" in message and "--batch-size" in message


def write_frame(path, height, width):
    cv2.imwrite(str(path), np.random.default_rng(0).integers(0, 256, (height, width), np.uint8))


def test_inference_refuses_a_frame_too_large_before_any_work(
    checkpoint, tmp_path, capsys, script_logging, monkeypatch
):
    frames = tmp_path / "frames"
    frames.mkdir()
    write_frame(frames / "huge.png", 1024, 1024)
    monkeypatch.setattr(forward_memory, "available_bytes", lambda device: 64 << 20)
    out = tmp_path / "out"
    args = ["--checkpoint", str(checkpoint), "--images", str(frames), "--out", str(out)]
    assert inference.main([*args, "--device", "cpu", "--size", "native"]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert re.match(r"error: .*huge.png: a 1024×1024 frame .* about [\d.]+ GiB", last)
    assert "--size" in last
    assert not out.exists()  # refused before anything was written or cleared
    # The flag it names is the way out: at 64×64 the same frame fits.
    assert inference.main([*args, "--device", "cpu", "--size", "64"]) == 0
    assert (out / "mat" / "huge.mat").is_file()


def test_a_large_frame_later_in_a_folder_is_refused_before_its_forward(
    checkpoint, tmp_path, capsys, script_logging, monkeypatch
):
    frames = tmp_path / "frames"
    frames.mkdir()
    write_frame(frames / "a_small.png", 32, 32)
    write_frame(frames / "b_huge.png", 1024, 1024)
    monkeypatch.setattr(forward_memory, "available_bytes", lambda device: 64 << 20)
    forwards = []
    predict_batch = Predictor.predict_batch

    def recording(self, images):
        forwards.append(tuple(images.shape[-2:]))
        return predict_batch(self, images)

    monkeypatch.setattr(Predictor, "predict_batch", recording)
    args = ["--checkpoint", str(checkpoint), "--images", str(frames), "--out", str(tmp_path / "o")]
    assert inference.main([*args, "--device", "cpu", "--size", "native"]) == 2
    assert "b_huge.png: a 1024×1024 frame" in capsys.readouterr().err
    assert forwards == [(32, 32)]
