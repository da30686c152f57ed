"""inference.py --images on a frame file, a folder and a video, and --detections."""

import cv2
import numpy as np
import pytest
import scipy.io
import torch
from test_data_frames import video_frames, write_video

import inference
from lrrnet.engine.detections import frame_detections, read_detections
from lrrnet.engine.inference import at_frame_size
from lrrnet.engine.predictor import Predictor
from lrrnet.models import LRRNet

TINY = {"base_channels": 8, "num_groups": 4, "channel_mults": (1, 2), "num_res_blocks": 1}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pth"
    torch.manual_seed(0)
    torch.save({"model": LRRNet(**TINY).state_dict(), "config": {"model": TINY}}, path)
    return path


def run(checkpoint, images, out, *options):
    args = ["--checkpoint", str(checkpoint), "--images", str(images), "--out", str(out)]
    return inference.main([*args, "--device", "cpu", *options])


def written_maps(out):
    return {p.stem: scipy.io.loadmat(str(p))["T"] for p in sorted((out / "mat").iterdir())}


def test_a_single_frame_file_runs_alone(checkpoint, tmp_path, script_logging):
    folder = tmp_path / "frames"
    folder.mkdir()
    for name in ("one", "two"):
        cv2.imwrite(str(folder / f"{name}.png"), np.full((24, 20), 90, np.uint8))
    assert run(checkpoint, folder / "two.png", tmp_path / "out", "--size", "native") == 0
    maps = written_maps(tmp_path / "out")
    assert list(maps) == ["two"] and maps["two"].shape == (24, 20)


def test_a_video_runs_frame_by_frame_in_batches_named_by_index(
    checkpoint, tmp_path, script_logging, monkeypatch
):
    video = write_video(tmp_path / "clip.avi", video_frames(5))
    batches = []
    predict_batch = Predictor.predict_batch

    def recording(self, images):
        batches.append(images.shape[0])
        return predict_batch(self, images)

    monkeypatch.setattr(Predictor, "predict_batch", recording)
    out = tmp_path / "out"
    assert run(checkpoint, video, out, "--size", "native", "--batch-size", "2") == 0
    maps = written_maps(out)
    assert list(maps) == ["000000", "000001", "000002", "000003", "000004"]
    assert all(prob.shape == (32, 48) for prob in maps.values())
    # Read a chunk of four batches at a time, run two frames at a time.
    assert batches == [2, 2, 1]
    # Brighter frames differ: the maps are of the frames in their order, not one frame.
    assert not np.array_equal(maps["000000"], maps["000004"])


def test_a_broken_video_is_refused_in_one_line(checkpoint, tmp_path, capsys, script_logging):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42 truncated")
    assert run(checkpoint, broken, tmp_path / "out") == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("error: ") and "broken.mp4" in last
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "save_at", [["--size", "native"], ["--size", "16", "--save-at", "network"]]
)
def test_detections_are_the_components_of_each_written_map(
    checkpoint, tmp_path, script_logging, save_at
):
    video = write_video(tmp_path / "clip.avi", video_frames(3))
    out = tmp_path / "out"
    assert run(checkpoint, video, out, *save_at) == 0
    maps = {name: at_frame_size(prob, (32, 48)) for name, prob in written_maps(out).items()}
    # A threshold inside the maps' range, so that there are components to compare.
    threshold = float(np.quantile(np.concatenate([p.ravel() for p in maps.values()]), 0.9))
    assert run(checkpoint, video, out, *save_at, "--detections", "--threshold", str(threshold)) == 0
    rows = read_detections(out / "detections.csv")
    expected = [
        d for name, prob in sorted(maps.items()) for d in frame_detections(name, prob, threshold)
    ]
    assert len(rows) == len(expected) > 0
    for row, want in zip(rows, expected, strict=True):
        assert (row.frame, row.target, row.area) == (want.frame, want.target, want.area)
        assert (row.y, row.x) == pytest.approx((want.y, want.x), abs=1e-3)
        assert (row.peak, row.mean) == pytest.approx((want.peak, want.mean), abs=1e-6)
        assert 0 <= row.y < 32 and 0 <= row.x < 48  # the frame's own pixels


def test_threshold_out_of_its_domain_is_refused(checkpoint, tmp_path, capsys):
    with pytest.raises(SystemExit):
        run(checkpoint, tmp_path, tmp_path / "out", "--detections", "--threshold", "50")
    assert "--threshold" in capsys.readouterr().err
