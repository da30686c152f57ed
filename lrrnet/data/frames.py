"""Where the frames of ``inference.py --images`` come from: one frame file, a folder, a video.

:func:`frame_source` turns the path into samples. A single frame or a folder gives a list of
:class:`~lrrnet.data.layouts.Sample`; a video gives :class:`VideoFrames`, a sequence of
samples named by frame index (``000000``, ``000001``, …) whose pixels are decoded in order,
one frame at a time, by :meth:`VideoFrames.read`, so a long video is never held in memory.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from pathlib import Path

import cv2
import numpy as np

from lrrnet.data.io import IMAGE_SUFFIXES, _to_gray, image_to_unit
from lrrnet.data.layouts import Sample, folder_samples
from lrrnet.errors import DataError

logger = logging.getLogger(__name__)

# Containers OpenCV's FFmpeg backend reads; anything else is refused rather than guessed at.
VIDEO_SUFFIXES = (".avi", ".mp4", ".m4v", ".mkv", ".mov", ".mpg", ".mpeg", ".webm", ".wmv")

# Digits of a frame's name: 000000 … 999999 sort by name in time order (longer videos get
# more digits, still sorting correctly among themselves).
FRAME_NAME_DIGITS = 6


def frame_name(index: int) -> str:
    """The name of a video's frame ``index`` (0-based): ``000042``."""
    return f"{index:0{FRAME_NAME_DIGITS}d}"


class VideoFrames(Sequence[Sample]):
    """The frames of a video file as samples, decoded in order by :meth:`read`.

    The file is opened and its first frame decoded when this is built, so a file that does
    not open or holds no frame is refused before any work. The length is the container's
    frame count (what the names and the progress bar use); :meth:`read` yields what the
    file actually holds, which can be fewer frames when the container's count is wrong.

    Attributes:
        path: the video file.
        height, width: the size of its frames.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        capture = self._open()
        try:
            first = self._next_frame(capture)
            if first is None:
                raise DataError(f"{self.path}: video holds no frame OpenCV can decode")
            count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        finally:
            capture.release()
        self.height, self.width = first.shape
        self._length = max(count, 1)

    def _open(self) -> cv2.VideoCapture:
        if not self.path.is_file():
            raise DataError(f"{self.path}: file not found")
        capture = cv2.VideoCapture(str(self.path))
        if not capture.isOpened():
            capture.release()
            raise DataError(f"{self.path}: cannot open video (corrupt or unsupported format)")
        return capture

    def _next_frame(self, capture: cv2.VideoCapture) -> np.ndarray | None:
        """The next frame as ``H×W`` float32 in [0, 1], or None at the end."""
        ok, array = capture.read()
        if not ok or array is None or array.size == 0:
            return None
        return image_to_unit(_to_gray(array, self.path), self.path)

    def __len__(self) -> int:
        return self._length

    def __getitem__(self, index):  # a sample, or a list of them for a slice
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if not -len(self) <= index < len(self):
            raise IndexError(index)
        return Sample(name=frame_name(index % len(self)), image=self.path, mask=None)

    def read(self) -> Iterator[tuple[Sample, np.ndarray]]:
        """``(sample, image H×W float32 in [0, 1])`` for every frame, in order."""
        capture = self._open()
        try:
            index = 0
            while (image := self._next_frame(capture)) is not None:
                yield Sample(name=frame_name(index), image=self.path, mask=None), image
                index += 1
        finally:
            capture.release()
        if index != len(self):
            logger.warning(
                "%s: decoded %d frames, the container announced %d", self.path, index, len(self)
            )


def frame_source(path: str | Path) -> list[Sample] | VideoFrames:
    """The frames at ``path``: a folder (see :func:`~lrrnet.data.layouts.folder_samples`),
    one frame file (:data:`~lrrnet.data.io.IMAGE_SUFFIXES`) or a video
    (:data:`VIDEO_SUFFIXES`).

    Raises:
        DataError: one line naming ``path`` when it is none of these, or a video that does
            not open or holds no frame.
    """
    path = Path(path)
    if path.is_dir():
        return folder_samples(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    suffix = path.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return [Sample(name=path.stem, image=path, mask=None)]
    if suffix in VIDEO_SUFFIXES:
        return VideoFrames(path)
    raise DataError(
        f"{path}: not a folder, a frame ({', '.join(IMAGE_SUFFIXES)}) or a video "
        f"({', '.join(VIDEO_SUFFIXES)})"
    )
