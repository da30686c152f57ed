"""Real numeric matrices in MATLAB's level-5 MAT files, read and written without SciPy.

Scoring reads one ``.mat`` map per frame and writes one ``roc.mat``. Importing
``scipy.io`` (it brings ``scipy.sparse`` and SciPy's array-API layer) costs more than reading
and scoring twenty 512×512 frames, so the files every framework writes are handled here:
little-endian level-5 files whose variables are real numeric matrices, compressed or not.
:func:`read_matrix` returns None for any other file (MATLAB 7.3 / HDF5, level 4,
big-endian, a cell, struct, text, sparse or complex variable, a damaged file); the caller
then reads it with ``scipy.io``, which says what the file holds. :func:`write_matrices`
writes real double matrices, uncompressed, which MATLAB and ``scipy.io`` read.

The layout: a 128-byte header (descriptive text, a subsystem offset, the version 0x0100 and
the endian mark ``IM``), then one data element per variable. An element is an 8-byte tag
(data type, byte count) and its data, padded to a multiple of 8 bytes; a small element packs
type and count into 4 bytes and its data into the next 4. A matrix element (``miMATRIX``)
holds sub-elements: the array flags (class and a complex bit), the dimensions, the
name and the real part, stored column by column in any numeric type and converted to the
class. A compressed element (``miCOMPRESSED``, not padded) holds one element, zlib-deflated.
"""

from __future__ import annotations

import math
import struct
import zlib
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from lrrnet.files import atomic_path

_HEADER = 128
_VERSION = 0x0100
_MATRIX, _COMPRESSED = 14, 15
# The numeric data types of an element's data, by their code.
_DATA_TYPES = {
    1: np.dtype("<i1"),
    2: np.dtype("<u1"),
    3: np.dtype("<i2"),
    4: np.dtype("<u2"),
    5: np.dtype("<i4"),
    6: np.dtype("<u4"),
    7: np.dtype("<f4"),
    9: np.dtype("<f8"),
    12: np.dtype("<i8"),
    13: np.dtype("<u8"),
}
_INT8, _INT32, _UINT32, _DOUBLE = 1, 5, 6, 9
# The numeric array classes, by their code in the array flags.
_CLASSES = {
    6: np.dtype(np.float64),
    7: np.dtype(np.float32),
    8: np.dtype(np.int8),
    9: np.dtype(np.uint8),
    10: np.dtype(np.int16),
    11: np.dtype(np.uint16),
    12: np.dtype(np.int32),
    13: np.dtype(np.uint32),
    14: np.dtype(np.int64),
    15: np.dtype(np.uint64),
}
_DOUBLE_CLASS = 6
_COMPLEX = 0x0800
# Enough of a deflated matrix for its flags, dimensions and name (names have ≤ 63 characters).
_PREFIX = 8 + 16 + 8 + 8 * 8 + 8 + 64


class _Unsupported(Exception):
    """Not a file, or a variable, that this module reads: the caller falls back to SciPy."""


def read_matrix(path: str | Path, name: str) -> np.ndarray | None:
    """The variable ``name`` of a level-5 MAT file, when it is a real numeric matrix.

    Args:
        path: the file.
        name: the variable.

    Returns:
        ``H×W`` array of the variable's class (uint8 for a logical one), in MATLAB's column
        order, as ``scipy.io.loadmat`` gives it; None when the file or the variable is of a
        kind this module leaves to ``scipy.io`` (module docstring), when the variable is
        absent or appears twice, or when the file is damaged.
    """
    data = memoryview(Path(path).read_bytes())
    try:
        return _find(data, name)
    except (_Unsupported, zlib.error, struct.error, ValueError):
        return None


def write_matrices(path: str | Path, variables: Mapping[str, np.ndarray | float]) -> Path:
    """Write real values as double matrices (uncompressed), atomically.

    A scalar becomes 1×1 and a vector 1×N, as ``scipy.io.savemat`` stores them.

    Args:
        path: the ``.mat`` file.
        variables: name → value; names are ASCII identifiers of at most 63 characters.

    Returns:
        ``path``.
    """
    path = Path(path)
    header = b"MATLAB 5.0 MAT-file, written by lrrnet".ljust(116) + bytes(8)
    parts = [header, struct.pack("<H2s", _VERSION, b"IM")]
    for key, value in variables.items():
        if not (key.isidentifier() and key.isascii() and len(key) <= 63):
            raise ValueError(f"{key!r} is not a MATLAB variable name")
        matrix = np.asarray(value, dtype=np.float64)
        if matrix.ndim > 2:
            raise ValueError(f"{key}: {matrix.ndim}-D, only matrices are written")
        matrix = matrix.reshape(1, -1) if matrix.ndim < 2 else matrix
        body = b"".join(
            (
                _element(_UINT32, struct.pack("<II", _DOUBLE_CLASS, 0)),
                _element(_INT32, struct.pack("<ii", *matrix.shape)),
                _element(_INT8, key.encode("ascii")),
                _element(_DOUBLE, matrix.tobytes(order="F")),
            )
        )
        parts.append(_element(_MATRIX, body))
    with atomic_path(path) as temp:
        Path(temp).write_bytes(b"".join(parts))
    return path


def _find(data: memoryview, name: str) -> np.ndarray | None:
    if len(data) < _HEADER or bytes(data[126:128]) != b"IM":
        raise _Unsupported  # level 4, big-endian, or not a MAT file
    if struct.unpack_from("<H", data, 124)[0] != _VERSION:
        raise _Unsupported  # MATLAB 7.3 (HDF5) files carry 0x0200
    found = None
    position = _HEADER
    while position < len(data):
        kind, size = struct.unpack_from("<II", data, position)
        start, end = position + 8, position + 8 + size
        if end > len(data) or kind not in (_MATRIX, _COMPRESSED):
            raise _Unsupported
        if kind == _COMPRESSED:
            # Inflate only the start to learn the name; the whole only for the one wanted.
            head = zlib.decompressobj().decompress(data[start:end], _PREFIX)
            element = memoryview(head)
            position = end
        else:
            element = data[position:end]
            position = start + _padded(size)
        if _name(element) != name:
            continue
        if found is not None:
            raise _Unsupported  # a second variable of that name
        if kind == _COMPRESSED:
            element = memoryview(zlib.decompress(data[start:end]))
        found = _matrix(element)
    return found


def _name(element: memoryview) -> str:
    """The name of the matrix whose element (tag included) is ``element``."""
    kind, size = struct.unpack_from("<II", element, 0)
    if kind != _MATRIX:
        raise _Unsupported
    position = 8
    for _ in range(2):  # the array flags and the dimensions
        _, _, position = _sub_element(element, position)
    _, text, _ = _sub_element(element, position)
    return bytes(text).decode("ascii", "replace")


def _matrix(element: memoryview) -> np.ndarray:
    """The values of a real numeric matrix element, in column order."""
    kind, size = struct.unpack_from("<II", element, 0)
    end = 8 + size
    if len(element) < end:
        raise _Unsupported
    element = element[:end]
    _, flags, position = _sub_element(element, 8)
    flag_word = struct.unpack_from("<I", flags, 0)[0]
    array_class = _CLASSES.get(flag_word & 0xFF)
    if array_class is None or flag_word & _COMPLEX:
        raise _Unsupported  # cell, struct, object, text, sparse, or complex
    kind, dims, position = _sub_element(element, position)
    if kind != _INT32 or len(dims) != 8:
        raise _Unsupported  # N-D arrays: scipy.io names the shape
    shape = struct.unpack("<ii", dims)
    _, _, position = _sub_element(element, position)
    kind, real, position = _sub_element(element, position)
    stored_type = _DATA_TYPES.get(kind)
    if stored_type is None or len(real) != stored_type.itemsize * math.prod(shape):
        raise _Unsupported
    if position < len(element):
        raise _Unsupported  # an imaginary part without the complex flag
    values = np.frombuffer(real, stored_type).reshape(shape[::-1]).T
    return values if values.dtype == array_class else values.astype(array_class)


def _sub_element(element: memoryview, position: int) -> tuple[int, memoryview, int]:
    """The data type, the data and the position after the sub-element at ``position``."""
    first, second = struct.unpack_from("<II", element, position)
    if first >> 16:  # a small element: count in the upper half, data in the next 4 bytes
        kind, size = first & 0xFFFF, first >> 16
        if size > 4:
            raise _Unsupported
        return kind, element[position + 4 : position + 4 + size], position + 8
    start = position + 8
    if start + second > len(element):
        raise _Unsupported
    return first, element[start : start + second], start + _padded(second)


def _padded(size: int) -> int:
    return (size + 7) // 8 * 8


def _element(kind: int, payload: bytes) -> bytes:
    """A tag and its data, padded to 8 bytes."""
    return (
        struct.pack("<II", kind, len(payload))
        + payload
        + bytes(_padded(len(payload)) - len(payload))
    )
