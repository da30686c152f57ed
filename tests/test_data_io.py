"""Readers refuse values they cannot interpret instead of scoring or training on them."""

import cv2
import numpy as np
import pytest
import scipy.io

from lrrnet.data.io import list_images, read_image, read_prediction
from lrrnet.errors import DataError


@pytest.mark.parametrize(
    ("values", "pattern"),
    [
        (np.full((4, 5), 255.0), r"\[255, 255\], outside \[0, 1\]"),  # a 0–255 map
        (np.linspace(-3, 4, 20).reshape(4, 5), r"\[-3, 4\], outside \[0, 1\]"),  # logits
        (np.full((4, 5), np.nan), "NaN or infinite"),
    ],
)
def test_mat_prediction_outside_unit_range_is_refused(tmp_path, values, pattern):
    path = tmp_path / "a.mat"
    scipy.io.savemat(str(path), {"T": values.astype(np.float32)})
    with pytest.raises(DataError, match=pattern) as error:
        read_prediction(path)
    assert str(path) in str(error.value) and "\n" not in str(error.value)


def test_probabilities_and_integer_maps_are_read(tmp_path):
    scipy.io.savemat(str(tmp_path / "p.mat"), {"T": np.array([[0.0, 1.0]], np.float32)})
    np.testing.assert_array_equal(read_prediction(tmp_path / "p.mat"), [[0.0, 1.0]])
    cv2.imwrite(str(tmp_path / "p.png"), np.array([[0, 51, 255]], np.uint8))
    np.testing.assert_array_equal(
        read_prediction(tmp_path / "p.png"), np.float32([[0, 51, 255]]) / 255
    )


def test_float_tiff_must_lie_in_the_unit_range(tmp_path):
    good = np.array([[0.0, 0.25], [0.5, 1.0]], np.float32)
    cv2.imwrite(str(tmp_path / "good.tif"), good)
    np.testing.assert_array_equal(read_image(tmp_path / "good.tif"), good)
    np.testing.assert_array_equal(read_prediction(tmp_path / "good.tif"), good)
    cv2.imwrite(str(tmp_path / "raw.tif"), good * 4000)  # radiometric counts, unnormalised
    with pytest.raises(DataError, match=r"raw.tif: float image values lie in \[0, 4000\]"):
        read_image(tmp_path / "raw.tif")
    with pytest.raises(DataError, match=r"raw.tif: float map values"):
        read_prediction(tmp_path / "raw.tif")


def test_a_folder_of_frames_is_dir_images_when_it_holds_images_else_dir(tmp_path):
    frame = np.zeros((4, 4), np.uint8)
    cv2.imwrite(str(tmp_path / "b.png"), frame)
    cv2.imwrite(str(tmp_path / "a.bmp"), frame)
    (tmp_path / "notes.txt").write_text("not a frame")
    assert [p.name for p in list_images(tmp_path)] == ["a.bmp", "b.png"]
    (tmp_path / "images").mkdir()
    assert [p.name for p in list_images(tmp_path)] == ["a.bmp", "b.png"]  # empty images/
    cv2.imwrite(str(tmp_path / "images" / "c.png"), frame)
    assert list_images(tmp_path) == [tmp_path / "images" / "c.png"]
    with pytest.raises(DataError, match="nowhere: folder not found"):
        list_images(tmp_path / "nowhere")
