"""Readers refuse values they cannot interpret instead of scoring or training on them."""

import re

import cv2
import numpy as np
import pytest
import scipy.io

from lrrnet.data.io import (
    WRITTEN_MAPS,
    check_apart_from_inputs,
    clear_predictions,
    list_images,
    read_image,
    read_mask,
    read_mask_levels,
    read_prediction,
    write_prediction,
)
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


def test_clearing_removes_only_the_maps_written_here_and_never_a_foreign_file(tmp_path):
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    elsewhere.mkdir()
    victim = elsewhere / "victim.png"
    victim.write_bytes(b"a user's file")
    write_prediction(out, "ours", np.zeros((4, 4), np.float32), background=np.ones((4, 4)))
    # Files with the names and suffixes of maps that this framework did not write.
    for relative in ("img/frame.png", "mat/frame.mat", "background/frame.png"):
        (out / relative).write_bytes(b"the user's")
    (out / "img" / "link.png").symlink_to(victim)
    # A hostile manifest: paths that leave OUT, absolute, other folders or suffixes, a link.
    with (out / WRITTEN_MAPS).open("a") as handle:
        for entry in (
            "img/../../elsewhere/victim.png",
            "../elsewhere/victim.png",
            str(victim),
            "img/link.png",
            "notes/frame.png",
            "img/frame.mat",
            "mat/",
            "",
        ):
            handle.write(entry + "\n")
    assert clear_predictions(out) == 3  # ours: img, mat, background
    assert victim.read_bytes() == b"a user's file" and (out / "img" / "link.png").is_symlink()
    for relative in ("img/frame.png", "mat/frame.mat", "background/frame.png"):
        assert (out / relative).read_bytes() == b"the user's"
    assert not (out / "img" / "ours.png").exists() and not (out / "mat" / "ours.mat").exists()
    assert clear_predictions(out) == 0  # the manifest went with the maps it listed


def test_a_map_that_would_overwrite_a_foreign_file_is_refused_before_any_removal(tmp_path):
    out = tmp_path / "out"
    write_prediction(out, "old", np.zeros((4, 4), np.float32))
    (out / "mat" / "frame.mat").write_bytes(b"the user's")
    with pytest.raises(DataError, match=r"did not write would be overwritten.*frame\.mat"):
        clear_predictions(out, ["old", "frame"])
    assert (out / "mat" / "old.mat").is_file()  # nothing removed
    assert (out / "mat" / "frame.mat").read_bytes() == b"the user's"
    # Maps of this framework's own earlier run are replaced freely; a background is checked
    # only when one is written.
    (out / "background").mkdir()
    (out / "background" / "old.png").write_bytes(b"the user's")
    assert clear_predictions(out, ["old"]) == 2
    with pytest.raises(DataError, match=r"background/old\.png"):
        clear_predictions(out, ["old"], with_background=True)


def test_a_manifest_that_is_a_link_is_never_followed(tmp_path):
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    (out / "img").mkdir(parents=True)
    elsewhere.mkdir()
    # The link's target reads as a manifest naming a map of OUT: followed, clearing would
    # remove that map, and writing would append to the target.
    target = elsewhere / "notes.txt"
    target.write_text("img/frame.png\n")
    (out / "img" / "frame.png").write_bytes(b"the user's")
    (out / WRITTEN_MAPS).symlink_to(target)
    for call in (
        lambda: write_prediction(out, "new", np.zeros((4, 4), np.float32)),
        lambda: clear_predictions(out),
    ):
        with pytest.raises(DataError, match=f"{WRITTEN_MAPS} is a symbolic link; remove it"):
            call()
    assert target.read_text() == "img/frame.png\n"
    assert (out / "img" / "frame.png").read_bytes() == b"the user's"
    assert sorted(p.name for p in (out / "img").iterdir()) == ["frame.png"]  # no map written
    assert (out / WRITTEN_MAPS).is_symlink()
    # Not a regular file either: a folder in its place is refused by name, in one line.
    (out / WRITTEN_MAPS).unlink()
    (out / WRITTEN_MAPS).mkdir()
    for call in (
        lambda: write_prediction(out, "new", np.zeros((4, 4), np.float32)),
        lambda: clear_predictions(out),
    ):
        with pytest.raises(DataError, match=WRITTEN_MAPS) as error:
            call()
        assert "\n" not in str(error.value)


def test_an_output_folder_holding_an_input_is_refused(tmp_path):
    frames = tmp_path / "U" / "img"
    frames.mkdir(parents=True)
    frame = frames / "a.png"
    frame.write_bytes(b"")
    (tmp_path / "link").symlink_to(tmp_path / "U")
    for out in (tmp_path / "U", frames, tmp_path, tmp_path / "link", tmp_path / "U" / ".."):
        with pytest.raises(DataError, match="holds the input") as error:
            check_apart_from_inputs(out, [frame])
        assert "\n" not in str(error.value)
    check_apart_from_inputs(tmp_path / "U" / "out", [frame])  # beside the frames: fine
    check_apart_from_inputs(tmp_path / "Uimg", [frame])  # a name prefix is not a parent


@pytest.mark.parametrize(
    ("variables", "pattern"),
    [
        ({"T": np.full((4, 4), 0.5 + 0.5j)}, "variable 'T' is complex, expected a real H×W"),
        ({"T": np.array([np.zeros(2), np.zeros(3)], dtype=object)}, "'T' is a cell array"),
        ({"T": {"field": 1}}, "variable 'T' is a"),
        ({"T": "probabilities"}, "variable 'T' is text"),
        ({"T": np.zeros((0, 0))}, r"'T' has shape \(0, 0\), expected H×W"),
        ({"T": np.zeros((4, 0))}, r"'T' has shape \(4, 0\), expected H×W"),
        ({"T": np.zeros((2, 3, 4))}, r"'T' has shape \(2, 3, 4\), expected H×W"),
        ({"P": np.zeros((4, 4))}, "no variable 'T'"),
    ],
)
def test_a_mat_whose_t_is_not_a_real_2d_array_is_refused_by_name(tmp_path, variables, pattern):
    path = tmp_path / "frame.mat"
    scipy.io.savemat(str(path), variables)
    with pytest.raises(DataError, match=rf"^{re.escape(str(path))}: .*{pattern}"):
        read_prediction(path)


def test_a_mat_that_is_not_a_mat_is_refused_by_name(tmp_path):
    for name, content in (("text.mat", b"MATLAB? no"), ("empty.mat", b""), ("png.mat", _png())):
        (tmp_path / name).write_bytes(content)
        with pytest.raises(DataError, match=rf"{name}: cannot read .mat file"):
            read_prediction(tmp_path / name)


def _png() -> bytes:
    return cv2.imencode(".png", np.zeros((4, 4), np.uint8))[1].tobytes()


@pytest.mark.parametrize("reader", [read_image, read_mask, read_mask_levels, read_prediction])
def test_a_file_that_decodes_to_something_else_is_refused_by_name(tmp_path, reader):
    hostile = {
        "notes.png": b"not an image",  # text with an image suffix
        "empty.png": b"",
        "half.png": _png()[:40],  # a truncated download
    }
    for name, content in hostile.items():
        (tmp_path / name).write_bytes(content)
    paths = [tmp_path / name for name in hostile]
    tifffile = pytest.importorskip("tifffile")
    bands = tmp_path / "bands.tif"  # one page of 6 channels: no frame or mask has six
    tifffile.imwrite(bands, np.zeros((8, 8, 6), np.uint8), planarconfig="contig")
    for path in [*paths, bands]:
        with pytest.raises(DataError, match=rf"^{re.escape(str(path))}: (decodes to|cannot)"):
            reader(path)


def test_a_decoded_array_of_more_than_four_channels_is_refused(tmp_path, monkeypatch):
    # What a decoder that keeps every band would return: refused by shape, not reduced.
    path = tmp_path / "bands.png"
    path.write_bytes(_png())
    monkeypatch.setattr(cv2, "imread", lambda *_: np.zeros((8, 8, 6), np.uint8))
    for reader in (read_image, read_mask, read_mask_levels):
        with pytest.raises(DataError, match=r"decodes to shape \(8, 8, 6\), expected H×W grey"):
            reader(path)


def test_image_files_leave_out_a_hidden_temporary_write(tmp_path):
    import cv2
    import numpy as np

    from lrrnet.data.io import image_files

    frame = np.zeros((8, 8), np.uint8)
    cv2.imwrite(str(tmp_path / "000001.png"), frame)
    cv2.imwrite(str(tmp_path / ".000002.abc.tmp.png"), frame)  # what a killed write leaves
    assert [p.name for p in image_files(tmp_path)] == ["000001.png"]


def test_a_mat_map_is_read_in_row_order(tmp_path):
    # loadmat returns MATLAB's column order; scoring's raster scans want rows.
    prob = np.linspace(0, 1, 12, dtype=np.float32).reshape(3, 4)
    scipy.io.savemat(str(tmp_path / "a.mat"), {"T": prob, "D": np.zeros((3, 4))})
    read = read_prediction(tmp_path / "a.mat")
    assert read.flags["C_CONTIGUOUS"] and read.dtype == np.float32
    np.testing.assert_array_equal(read, prob)
