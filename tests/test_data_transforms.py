"""Training transforms: shapes, interpolation, crop placement, flips, noise."""

from __future__ import annotations

import numpy as np
import pytest

from lrrnet.data.transforms import (
    add_gaussian_noise,
    random_crop_pair,
    random_flip_transpose,
    resize_pair,
)


def _frame(height: int, width: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    image = np.random.default_rng(seed).random((height, width), dtype=np.float32)
    mask = np.zeros((height, width), bool)
    mask[height // 3 : height // 3 + 3, width // 2 : width // 2 + 2] = True
    return image, mask


@pytest.mark.parametrize("size", [32, (24, 40)])
def test_resize_pair_shapes_and_binary_nearest_mask(size):
    image, mask = _frame(17, 23)
    resized_image, resized_mask = resize_pair(image, mask, size)
    expected = (size, size) if isinstance(size, int) else size
    assert resized_image.shape == resized_mask.shape == expected
    assert resized_image.dtype == np.float32 and resized_mask.dtype == bool
    # Bilinear stays within the input range; nearest keeps the mask binary and non-empty.
    assert image.min() <= resized_image.min() and resized_image.max() <= image.max()
    assert resized_mask.any()


def test_resize_pair_is_bilinear_on_a_ramp():
    ramp = np.tile(np.linspace(0, 1, 4, dtype=np.float32), (4, 1))
    resized, _ = resize_pair(ramp, np.zeros((4, 4), np.uint8), (4, 8))
    # Interior output pixels interpolate between neighbours instead of repeating them.
    assert len(np.unique(resized[0])) == 8


def test_random_crop_pads_a_small_frame():
    image, mask = _frame(10, 30)
    crop_image, crop_mask = random_crop_pair(image, mask, 16, 0.0, np.random.default_rng(0))
    assert crop_image.shape == crop_mask.shape == (16, 16)
    # 6 rows of zero padding in all (3 above, 3 below) are inside every 16-row crop.
    assert np.all(crop_image[:3] == 0) and np.all(crop_image[-3:] == 0)


def test_random_crop_with_pos_prob_one_always_contains_the_target():
    image, mask = _frame(64, 64)
    rng = np.random.default_rng(0)
    for _ in range(50):
        _, crop_mask = random_crop_pair(image, mask, 16, 1.0, rng)
        assert crop_mask.any()
    empty = sum(not random_crop_pair(image, mask, 16, 0.0, rng)[1].any() for _ in range(50))
    assert empty > 25  # uniform crops mostly miss a 3x2 target in a 64x64 frame


def test_random_crop_keeps_image_and_mask_aligned_and_is_seeded():
    image, _ = _frame(40, 50)
    mask = image > 0.9
    first = random_crop_pair(image, mask, (16, 24), 0.5, np.random.default_rng(3))
    again = random_crop_pair(image, mask, (16, 24), 0.5, np.random.default_rng(3))
    assert np.array_equal(first[0], again[0]) and np.array_equal(first[1], again[1])
    assert first[0].shape == (16, 24)
    assert np.array_equal(first[1], first[0] > 0.9)


def _crop_position(frame: np.ndarray, crop: np.ndarray) -> tuple[int, int]:
    """Where ``crop`` starts in ``frame``, whose values are its flat pixel indices."""
    return divmod(int(crop[0, 0]), frame.shape[1])


def test_edge_prob_one_puts_every_crop_against_a_frame_edge_on_both_axes():
    frame = np.arange(64 * 96, dtype=np.float64).reshape(64, 96)
    mask = np.zeros(frame.shape, bool)
    rng = np.random.default_rng(0)
    starts = {
        _crop_position(frame, random_crop_pair(frame, mask, 16, 0.0, rng, edge_prob=1.0)[0])
        for _ in range(200)
    }
    # Rows start at 0 or 48, columns at 0 or 80, and all four corners come up.
    assert starts == {(0, 0), (0, 80), (48, 0), (48, 80)}


def test_edge_prob_moves_a_target_crop_only_to_an_edge_that_keeps_the_target():
    frame = np.arange(64 * 64, dtype=np.float64).reshape(64, 64)
    mask = np.zeros(frame.shape, bool)
    mask[5, 40] = True  # 5 rows from the top: no crop that keeps it can reach the bottom
    rng = np.random.default_rng(1)
    for _ in range(100):
        crop, crop_mask = random_crop_pair(frame, mask, 16, 1.0, rng, edge_prob=1.0)
        top, left = _crop_position(frame, crop)
        assert crop_mask.any()
        assert top == 0
        # Columns 25 … 40 keep the target and touch neither edge: the crop stays put.
        assert 25 <= left <= 40


def test_edge_prob_sets_how_often_a_crop_meets_an_edge():
    frame = np.arange(256 * 256, dtype=np.float64).reshape(256, 256)
    mask = np.zeros(frame.shape, bool)
    rng = np.random.default_rng(2)
    for edge_prob, low, high in ((0.0, 0.0, 0.04), (0.5, 0.45, 0.55)):
        rows = [
            _crop_position(
                frame, random_crop_pair(frame, mask, 128, 0.0, rng, edge_prob=edge_prob)[0]
            )[0]
            for _ in range(2000)
        ]
        # Uniform placement: 2 of 129 starts are edges (1.6 %).
        share = np.mean([row in (0, 128) for row in rows])
        assert low <= share <= high, (edge_prob, share)


def test_edge_prob_zero_draws_no_extra_random_numbers():
    image, mask = _frame(64, 64)
    rng = np.random.default_rng(3)
    random_crop_pair(image, mask, 16, 0.5, rng)
    reference = np.random.default_rng(3)
    reference.random(4)  # what the crop drew
    assert rng.random() == reference.random()


@pytest.mark.parametrize("shape", [(12, 12), (12, 20)])
def test_flip_transpose_moves_image_and_mask_together(shape):
    image, _ = _frame(*shape)
    mask = image > 0.7
    seen = set()
    for seed in range(40):
        out_image, out_mask = random_flip_transpose(image, mask, np.random.default_rng(seed))
        assert out_image.shape == shape and out_image.flags["C_CONTIGUOUS"]
        assert np.array_equal(out_mask, out_image > 0.7)
        seen.add(out_image.tobytes())
    # All 8 symmetries of a square, only the 4 flips of a non-square frame.
    assert len(seen) == (8 if shape[0] == shape[1] else 4)


def test_gaussian_noise_level_and_range():
    image = np.full((200, 200), 0.5, np.float32)
    noisy = add_gaussian_noise(image, 10.0, np.random.default_rng(0))
    assert noisy.dtype == np.float32
    assert abs(noisy.std() * 255 - 10.0) < 0.3
    assert add_gaussian_noise(image, 0.0, np.random.default_rng(0)) is image
    clipped = add_gaussian_noise(np.ones((50, 50), np.float32), 30.0, np.random.default_rng(0))
    assert clipped.max() <= 1.0 and clipped.min() < 1.0


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32, bool])
def test_mask_resize_is_nearest_neighbour_by_value(dtype):
    # Every source pixel has its own value (for bool: a checkerboard), so each output pixel
    # names the source pixel it came from: nearest neighbour takes floor(i·H/H') (OpenCV).
    source = np.arange(5 * 7).reshape(5, 7) + 1
    mask = (source % 2 == 0) if dtype is bool else source.astype(dtype)
    image = np.zeros((5, 7), np.float32)
    _, resized = resize_pair(image, mask, (11, 13))
    rows = np.floor(np.arange(11) * 5 / 11).astype(int)
    cols = np.floor(np.arange(13) * 7 / 13).astype(int)
    assert resized.dtype == mask.dtype
    np.testing.assert_array_equal(resized, mask[np.ix_(rows, cols)])
