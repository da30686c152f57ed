"""Reading a split's pixels to check them: every image and mask opens, decodes and fits.

Finding a dataset (:mod:`lrrnet.data.layouts`) lists where the files should be and opens
none; this module opens them. :func:`validate_samples` reads a whole split before anything
trains or evaluates on it and reports every problem in one error; :func:`read_sample` reads
one sample and returns its problems instead of raising (inference skips an unreadable frame);
:func:`warn_size_mismatch` names a mask of another size than its frame once per file
(docs/datasets.md, "Masks of another size than their frame" and "Checks before training").
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from lrrnet.data.io import read_image, read_mask
from lrrnet.data.layouts import Sample
from lrrnet.errors import DataError, summarize

logger = logging.getLogger(__name__)

# Problems quoted in a validation error; the rest are counted and logged.
MAX_PROBLEMS_IN_MESSAGE = 5

# Masks whose frame-size mismatch was already named in a warning (one warning per file per
# process, however many times validation and evaluation read it).
_SIZE_WARNED: set[Path] = set()
_SIZE_WARNED_LOCK = threading.Lock()

SIZE_RULE = (
    "training resizes the mask to the image (nearest), standard scoring resizes the "
    "prediction to the mask (bilinear); data.strict_sizes=True makes this an error"
)


def warn_size_mismatch(
    mask_path: Path, mask_shape: tuple[int, ...], other: str, other_shape: tuple[int, ...]
) -> None:
    """Name a mask whose size differs from its frame's (or prediction's), once per file.

    Args:
        mask_path: the mask file; the key of "once".
        mask_shape: ``(H, W)`` of the mask.
        other: what it was compared with, e.g. ``"image /data/Misc_111.png"``.
        other_shape: ``(H, W)`` of that.
    """
    with _SIZE_WARNED_LOCK:
        if mask_path in _SIZE_WARNED:
            return
        _SIZE_WARNED.add(mask_path)
    logger.warning(
        "%s: mask is %dx%d but %s is %dx%d; %s",
        mask_path,
        mask_shape[1],
        mask_shape[0],
        other,
        other_shape[1],
        other_shape[0],
        SIZE_RULE,
    )


def read_sample(
    sample: Sample, require_mask: bool = True, strict_sizes: bool = False
) -> tuple[np.ndarray | None, np.ndarray | None, list[str]]:
    """Read a sample's image and mask and check them; problems are returned, not raised.

    A mask of another size than its image (SIRST v1 ``Misc_111``: image 325×220, mask
    592×400) is a problem only with ``strict_sizes``; otherwise it is named once in a
    warning and returned at its own size: training resizes it to the frame, scoring resizes
    the prediction to it (the mask's resolution is authoritative).

    Returns:
        ``(image H×W float32 or None, mask h×w bool or None, problems)``; each problem is a
        message naming the file (unreadable image or mask, no mask, sizes that differ when
        strict).
    """
    problems = []
    image = mask = None
    try:
        image = read_image(sample.image)
    except DataError as error:
        problems.append(str(error))
    if sample.mask is None:
        if require_mask:
            problems.append(f"{sample.image}: no mask found for this image")
        return image, None, problems
    try:
        mask = read_mask(sample.mask)
    except DataError as error:
        problems.append(str(error))
        return image, None, problems
    if image is not None and mask.shape != image.shape:
        if strict_sizes:
            problems.append(
                f"{sample.mask}: mask size {mask.shape[1]}x{mask.shape[0]} differs from image "
                f"size {image.shape[1]}x{image.shape[0]} ({sample.image.name}; "
                "data.strict_sizes)"
            )
        else:
            warn_size_mismatch(sample.mask, mask.shape, f"image {sample.image}", image.shape)
    return image, mask, problems


def validate_samples(
    samples: Sequence[Sample],
    split_name: str,
    require_masks: bool = True,
    strict_sizes: bool = False,
) -> None:
    """Check every image and mask of a split before anything trains or evaluates on it.

    Every image and mask must exist and decode, and with ``strict_sizes`` each mask must
    have its image's size (otherwise a mismatch is a warning; see :func:`read_sample`).
    All problems are collected; the error's one-line message counts them and quotes the
    first few (each naming the file), and the full list goes to the log.

    Args:
        samples: the split.
        split_name: the split's name for messages (``"train"``, ``"test"``, ...).
        require_masks: a sample without a mask is a problem (training, evaluation).
        strict_sizes: a mask of another size than its image is a problem.

    Raises:
        DataError: the split is empty, or any problem was found.
    """
    if not samples:
        raise DataError(f"{split_name} split is empty: no images listed")
    # cv2 decodes outside the GIL, so a few threads overlap the decoding of the files.
    with ThreadPoolExecutor(max_workers=4) as pool:
        per_sample = list(
            pool.map(lambda s: read_sample(s, require_masks, strict_sizes)[2], samples)
        )
    problems = [problem for found in per_sample for problem in found]
    if not problems:
        return
    if len(problems) > MAX_PROBLEMS_IN_MESSAGE:
        logger.error("%s split, all problems:\n  %s", split_name, "\n  ".join(problems))
    see_log = " (see the log)" if len(problems) > MAX_PROBLEMS_IN_MESSAGE else ""
    raise DataError(
        f"{split_name} split: {len(problems)} problem(s) in {len(samples)} samples: "
        f"{summarize(problems, limit=MAX_PROBLEMS_IN_MESSAGE)}{see_log}"
    )
