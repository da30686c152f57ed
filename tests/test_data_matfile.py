"""Level-5 MAT files read and written without SciPy, checked against scipy.io."""

from __future__ import annotations

import struct

import numpy as np
import pytest
import scipy.io
import scipy.sparse

from lrrnet.data.matfile import read_matrix, write_matrices

DTYPES = (np.float32, np.float64, np.uint8, np.int8, np.int16, np.uint16, np.int32, np.int64)


def random_matrix(dtype, shape, seed=0):
    rng = np.random.default_rng(seed)
    if np.issubdtype(dtype, np.floating):
        return rng.random(shape).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(max(info.min, -1000), min(info.max, 1000), shape).astype(dtype)


@pytest.mark.parametrize("compressed", [False, True])
@pytest.mark.parametrize("dtype", DTYPES)
def test_numeric_matrices_read_as_scipy_reads_them(tmp_path, dtype, compressed):
    path = tmp_path / "map.mat"
    values = random_matrix(dtype, (7, 5))
    # T between two other variables: the others are skipped, not read.
    scipy.io.savemat(
        str(path),
        {"D": np.ones((3, 3)), "T": values, "Z": np.zeros(4, np.float32)},
        do_compression=compressed,
    )
    expected = scipy.io.loadmat(str(path))["T"]
    got = read_matrix(path, "T")
    assert got is not None and got.dtype == expected.dtype and got.shape == (7, 5)
    assert np.array_equal(got, expected) and np.array_equal(got, values)


@pytest.mark.parametrize("compressed", [False, True])
@pytest.mark.parametrize(
    "value", [np.float64(0.25), np.arange(6.0), np.zeros((0, 3)), np.array([[True, False]])]
)
def test_scalars_vectors_empty_and_logical_matrices(tmp_path, value, compressed):
    path = tmp_path / "m.mat"
    scipy.io.savemat(str(path), {"T": value}, do_compression=compressed)
    expected = scipy.io.loadmat(str(path))["T"]
    got = read_matrix(path, "T")
    assert got is not None and got.dtype == expected.dtype and got.shape == expected.shape
    assert np.array_equal(got, expected)


def test_a_double_stored_in_a_smaller_type_is_converted_to_its_class(tmp_path):
    """MATLAB stores a double matrix of small integers as miUINT8 to save space."""
    path = tmp_path / "small.mat"
    write_matrices(path, {"T": np.array([[1.0, 2.0], [3.0, 250.0]])})
    data = bytearray(path.read_bytes())
    # Rewrite the real part (the last sub-element, 4 doubles) as 4 uint8 values.
    real_at = len(data) - (8 + 32)
    assert struct.unpack_from("<II", data, real_at) == (9, 32)
    small = struct.pack("<II", 2, 4) + bytes([1, 3, 2, 250]) + bytes(4)
    data[real_at:] = small
    struct.pack_into("<I", data, 132, struct.unpack_from("<I", data, 132)[0] - 24)
    path.write_bytes(bytes(data))
    expected = scipy.io.loadmat(str(path))["T"]
    got = read_matrix(path, "T")
    assert got.dtype == np.float64 and np.array_equal(got, expected)
    assert np.array_equal(got, [[1, 2], [3, 250]])


def test_written_matrices_read_back_in_scipy_as_savemat_stores_them(tmp_path):
    path = tmp_path / "roc.mat"
    fpr, grid = np.linspace(0, 1, 201), np.arange(12.0).reshape(3, 4)
    write_matrices(path, {"fpr": fpr, "auc": 0.875, "grid": grid, "n": np.int64(3)})
    content = scipy.io.loadmat(str(path))
    assert content["fpr"].shape == (1, 201) and np.array_equal(content["fpr"][0], fpr)
    assert content["auc"].shape == (1, 1) and content["auc"][0, 0] == 0.875
    assert np.array_equal(content["grid"], grid) and content["n"].dtype == np.float64
    assert np.array_equal(read_matrix(path, "grid"), grid)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [("1x", 1.0, "not a MATLAB variable name"), ("T", np.zeros((2, 2, 2)), "3-D")],
)
def test_what_cannot_be_written_is_refused_by_name(tmp_path, key, value, message):
    with pytest.raises(ValueError, match=message):
        write_matrices(tmp_path / "x.mat", {key: value})
    assert not (tmp_path / "x.mat").exists()


def write(path, content, **options):
    scipy.io.savemat(str(path), content, **options)
    return path


@pytest.mark.parametrize(
    "content",
    [
        {"T": np.ones((2, 2)) + 1j},  # complex
        {"T": np.array([[1, "a"]], dtype=object)},  # a cell
        {"T": {"field": 1.0}},  # a struct
        {"T": "text"},
        {"T": scipy.sparse.eye(3, format="csc")},
        {"T": np.zeros((2, 2, 2))},  # 3-D
        {"D": np.ones((2, 2))},  # no T
    ],
    ids=["complex", "cell", "struct", "text", "sparse", "3-D", "absent"],
)
def test_variables_it_does_not_read_are_left_to_scipy(tmp_path, content):
    for compressed in (False, True):
        path = write(tmp_path / f"{compressed}.mat", content, do_compression=compressed)
        assert read_matrix(path, "T") is None


def test_other_file_kinds_and_damage_are_left_to_scipy(tmp_path):
    good = write(tmp_path / "good.mat", {"T": np.ones((4, 4), np.float32)})
    compressed = write(tmp_path / "z.mat", {"T": np.ones((4, 4))}, do_compression=True)
    data = good.read_bytes()
    cases = {
        "level4.mat": write(tmp_path / "v4.mat", {"T": np.ones((2, 2))}, format="4").read_bytes(),
        "big_endian.mat": data[:126] + b"MI" + data[128:],
        "hdf5.mat": data[:124] + struct.pack("<H", 0x0200) + data[126:],
        "truncated.mat": data[:-9],
        "header_only.mat": data[:100],
        "deflate_damaged.mat": compressed.read_bytes()[:140] + bytes(20),
        "T_twice.mat": data + data[128:],
    }
    assert read_matrix(good, "T") is not None and read_matrix(compressed, "T") is not None
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
        assert read_matrix(tmp_path / name, "T") is None, name
