"""Writing result files so that a kill never leaves a half-written one, and valid JSON.

Every file a run, inference or scoring writes goes through :func:`atomic_path`: the bytes
go to a temporary file in the same folder, which is then renamed over the destination
(``os.replace`` is atomic on one file system). A process killed at any moment leaves the
old file or the new one, never a truncated mix; at most a ``.NAME.*.tmp`` file stays behind.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from lrrnet.errors import DataError


@contextmanager
def atomic_path(path: str | os.PathLike, durable: bool = False) -> Iterator[Path]:
    """A temporary path to write ``path``'s new content to; renamed over it on success.

    The temporary name keeps ``path``'s suffix, so writers that pick a format from it
    (OpenCV, Matplotlib, SciPy) work unchanged. On an exception the temporary file is
    removed and ``path`` is left as it was.

    Args:
        path: the destination; its folder is created.
        durable: fsync before the rename, so the content also survives a power loss (for
            checkpoints; a kill needs only the rename).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temp_name = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.", suffix=f".tmp{path.suffix}"
    )
    os.close(descriptor)
    temp = Path(temp_name)
    try:
        os.chmod(temp, 0o644)  # mkstemp's 0600 would make shared results unreadable
        yield temp
        if durable:
            with temp.open("rb") as handle:
                os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def check_writable(path: str | os.PathLike, flag: str, file: bool = False) -> Path:
    """``path`` as a Path when a folder there can receive files; else a DataError naming
    ``flag`` and ``path``. Called before a script's work, so a place that cannot be written
    is refused at once, not after every frame is computed.

    A folder that does not exist yet passes when its nearest existing ancestor is a folder
    this process can create entries in (:func:`atomic_path` creates the rest). Nothing is
    left behind: the check is ``os.access`` and a temporary file made and removed there,
    since ``os.access`` says yes to everything for root and knows nothing of some mounts.

    Args:
        path: the folder, or with ``file`` a file to be written (its folder is checked, and
            an existing folder of that name is refused).
        flag: the command-line flag that gave ``path``, for the message (``--out``).
        file: ``path`` names a file, not a folder.

    Raises:
        DataError: one line, e.g. ``--out a.txt/x: a.txt is a file, not a folder``.
    """
    path = Path(path)
    if file:
        if path.is_dir():
            raise DataError(f"{flag} {path}: is a folder, not a file")
        folder = path.parent
    else:
        folder = path
    # The nearest ancestor that exists (a dangling link counts: nothing can be made there).
    existing = folder
    while not os.path.lexists(existing) and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        kind = "a broken link" if existing.is_symlink() else "a file"
        raise DataError(f"{flag} {path}: {existing} is {kind}, not a folder")
    if os.access(existing, os.W_OK | os.X_OK):
        try:
            descriptor, probe = tempfile.mkstemp(dir=existing, prefix=".lrrnet-write-check.")
        except OSError as error:
            reason = error.strerror or str(error)
        else:
            os.close(descriptor)
            os.unlink(probe)
            return path
    else:
        reason = "permission denied"
    raise DataError(f"{flag} {path}: cannot write into {existing} ({reason})")


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` through :func:`atomic_path`."""
    with atomic_path(path) as temp:
        temp.write_text(text)


def jsonable(value: Any) -> Any:
    """``value`` with NumPy/torch scalars as Python numbers and NaN or ±inf as None.

    JSON has no NaN: ``json.dumps`` would write the bare word ``NaN``, which strict readers
    (JavaScript, jq, many languages' parsers) reject.
    """
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if hasattr(value, "item") and callable(value.item):  # NumPy and torch scalars
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def json_text(value: Any) -> str:
    """Strict JSON (``allow_nan=False``) of :func:`jsonable` ``(value)``, indented, one final newline."""
    return json.dumps(jsonable(value), indent=2, allow_nan=False) + "\n"


def write_json_atomic(path: str | os.PathLike, value: Any) -> None:
    """Write :func:`json_text` ``(value)`` to ``path`` atomically."""
    write_text_atomic(path, json_text(value))
