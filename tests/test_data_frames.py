"""Frame sources of inference.py --images: one frame file, a folder, a video."""

import cv2
import numpy as np
import pytest

from lrrnet.data.frames import VideoFrames, frame_name, frame_source
from lrrnet.errors import DataError

HEIGHT, WIDTH, FRAMES = 32, 48, 5


def write_video(path, frames, fps=10.0):
    """Write uint8 ``H×W`` frames as an MJPG .avi; skip the test when OpenCV cannot."""
    height, width = frames[0].shape
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (width, height))
    if not writer.isOpened():
        pytest.skip("OpenCV has no MJPG writer here")
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR))
    writer.release()
    if not path.is_file() or path.stat().st_size == 0:
        pytest.skip("OpenCV wrote no MJPG video here")
    return path


def video_frames(count=FRAMES):
    """Frames that differ in brightness, so their order can be read back through MJPG."""
    return [np.full((HEIGHT, WIDTH), 20 + 40 * index, np.uint8) for index in range(count)]


@pytest.fixture
def video(tmp_path):
    return write_video(tmp_path / "clip.avi", video_frames())


def test_a_single_frame_file_is_one_sample_named_by_its_stem(tmp_path):
    path = tmp_path / "shot 1.png"
    cv2.imwrite(str(path), np.zeros((8, 8), np.uint8))
    (sample,) = frame_source(path)
    assert sample.name == "shot 1" and sample.image == path and sample.mask is None


def test_a_folder_gives_its_frames_sorted(tmp_path):
    for name in ("b", "a"):
        cv2.imwrite(str(tmp_path / f"{name}.png"), np.zeros((8, 8), np.uint8))
    assert [s.name for s in frame_source(tmp_path)] == ["a", "b"]


def test_a_video_streams_its_frames_in_order_named_by_index(video):
    frames = frame_source(video)
    assert isinstance(frames, VideoFrames)
    assert (frames.height, frames.width) == (HEIGHT, WIDTH)
    assert len(frames) == FRAMES
    assert [s.name for s in frames] == ["000000", "000001", "000002", "000003", "000004"]
    read = list(frames.read())
    assert [sample.name for sample, _ in read] == [s.name for s in frames]
    assert all(sample.image == video and sample.mask is None for sample, _ in read)
    for index, (_, image) in enumerate(read):
        assert image.dtype == np.float32 and image.shape == (HEIGHT, WIDTH)
        # MJPG is lossy: the level survives to within a few grey levels.
        assert abs(image.mean() * 255 - (20 + 40 * index)) < 4
    # The reader is a generator: nothing past the frame asked for is decoded.
    first_sample, _ = next(frames.read())
    assert first_sample.name == frame_name(0) == "000000"


def test_broken_and_empty_videos_are_refused_naming_the_file(tmp_path):
    broken = tmp_path / "broken.avi"
    broken.write_bytes(b"RIFF\x00\x00\x00\x00AVI not a video at all" * 8)
    with pytest.raises(DataError, match="broken.avi"):
        frame_source(broken)
    # Opens (a valid header) but holds no frame.
    writer = cv2.VideoWriter(
        str(tmp_path / "zero.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (WIDTH, HEIGHT)
    )
    if writer.isOpened():
        writer.release()
        with pytest.raises(DataError, match="zero.avi: video holds no frame"):
            frame_source(tmp_path / "zero.avi")
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(DataError, match="empty.mp4"):
        frame_source(empty)


def test_other_files_and_missing_paths_are_refused_in_one_line(tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("not frames")
    with pytest.raises(DataError, match=r"notes.txt: not a folder, a frame \(.png"):
        frame_source(notes)
    with pytest.raises(DataError, match="nowhere: no such file or folder"):
        frame_source(tmp_path / "nowhere")
