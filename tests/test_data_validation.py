"""Reading a split's pixels before training: every problem collected in one error, a mask of
another size than its frame named once (an error with strict sizes)."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import pytest

from lrrnet.data.layouts import Sample
from lrrnet.data.validation import read_sample, validate_samples
from lrrnet.errors import DataError


def _write(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), array)


@pytest.fixture
def split(tmp_path: Path) -> list[Sample]:
    """Twelve 8×8 frames and their masks, named as SIRST v1 names them; validation needs only
    the samples, not the layout they were found in."""
    samples = []
    for index in range(110, 122):
        name = f"Misc_{index}"
        sample = Sample(
            name, tmp_path / "images" / f"{name}.png", tmp_path / "masks" / f"{name}_pixels0.png"
        )
        _write(sample.image, np.full((8, 8), 100, np.uint8))
        _write(sample.mask, np.full((8, 8), 255, np.uint8))
        samples.append(sample)
    return samples


def test_validation_collects_every_problem(split: list[Sample]):
    validate_samples(split, "test")  # the intact split passes
    missing_mask, corrupt, mismatched = split[0], split[1], split[2]
    missing_mask.mask.unlink()
    corrupt.image.write_bytes(b"\x89PNG\r\n\x1a\n this is not a png")
    _write(mismatched.mask, np.full((16, 16), 255, np.uint8))
    with pytest.raises(DataError) as error:
        validate_samples(split, "test", strict_sizes=True)
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith("test split: 3 problem(s) in 12 samples")
    assert f"{missing_mask.mask}: file not found" in message
    assert f"{corrupt.image}: cannot decode image" in message
    assert f"{mismatched.mask}: mask size 16x16 differs from image size 8x8" in message
    assert "data.strict_sizes" in message


def test_mask_of_another_size_is_named_once_unless_strict(split: list[Sample], caplog):
    """SIRST v1 Misc_111: the mask was drawn on a larger copy of the 325×220 frame."""
    misc_111 = next(s for s in split if s.name == "Misc_111")
    _write(misc_111.image, np.full((22, 32), 90, np.uint8))
    _write(misc_111.mask, np.zeros((40, 59), np.uint8))
    with caplog.at_level(logging.WARNING, logger="lrrnet.data.validation"):
        validate_samples(split, "test")
        validate_samples(split, "test")  # read again: not named again
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert warnings[0].startswith(f"{misc_111.mask}: mask is 59x40 but image {misc_111.image}")
    assert "data.strict_sizes=True" in warnings[0]
    with pytest.raises(DataError, match=r"1 problem\(s\).*Misc_111_pixels0.png: mask size 59x40"):
        validate_samples(split, "test", strict_sizes=True)


def test_validation_missing_images_are_counted_beyond_the_message(split: list[Sample]):
    for sample in split[:7]:
        sample.image.unlink()
    with pytest.raises(DataError, match=r"val split: 7 problem\(s\).*and 2 more") as error:
        validate_samples(split, "val")
    assert f"{split[0].image}: file not found" in str(error.value)


def test_validation_of_an_empty_split():
    with pytest.raises(DataError, match="train split is empty"):
        validate_samples([], "train")


def test_read_sample_returns_its_problems_instead_of_raising(split: list[Sample]):
    image, mask, problems = read_sample(split[0])
    assert image.shape == mask.shape == (8, 8) and problems == []
    without_mask = Sample(split[0].name, split[0].image, None)
    assert read_sample(without_mask)[2] == [f"{split[0].image}: no mask found for this image"]
    assert read_sample(without_mask, require_mask=False)[2] == []
    split[0].image.unlink()
    image, mask, problems = read_sample(split[0])
    assert image is None and mask is not None and problems == [f"{split[0].image}: file not found"]
