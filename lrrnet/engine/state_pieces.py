"""A file cut into pieces of bounded size with a checksummed manifest, and joined back.

A resume state (``latest.pth`` with Adam's moments is about 42 MB for the published model)
has to cross channels that cap a file's size. :func:`split` writes ``NAME.part000``,
``NAME.part001``, … of at most ``max_mib`` MiB each and ``NAME.manifest.json``: the file's
name, size and SHA-256, and each piece's name, size and SHA-256. :func:`join` checks every
piece (present, of its size, of its checksum; no piece beside them that the manifest does
not list), then the whole file's size and checksum, and only then renames the joined file
into place (:func:`lrrnet.files.atomic_path`), so a refused join leaves nothing behind.
Every refusal is one line that names the piece. :func:`join_for_resume` is what
``run_configs.py --resume MANIFEST`` calls (docs/training.md, "Runs longer than an
allocation").
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from lrrnet.errors import UserError
from lrrnet.files import atomic_path, write_json_atomic

logger = logging.getLogger(__name__)

DEFAULT_MAX_MIB = 16
MANIFEST_SUFFIX = ".manifest.json"
FORMAT = "lrrnet-state-pieces-1"
_CHUNK = 1 << 20


class PieceError(UserError):
    """A manifest or piece that is missing, extra, truncated or corrupted."""


def manifest_path(out_dir: str | os.PathLike, name: str) -> Path:
    """Where :func:`split` writes the manifest of file ``name`` in ``out_dir``."""
    return Path(out_dir) / f"{name}{MANIFEST_SUFFIX}"


def _piece_name(name: str, index: int) -> str:
    return f"{name}.part{index:03d}"


def _chunks(handle: BinaryIO, limit: int) -> Iterator[bytes]:
    """The next ``limit`` bytes of ``handle`` (fewer at its end) in chunks of 1 MiB."""
    while limit > 0:
        chunk = handle.read(min(_CHUNK, limit))
        if not chunk:
            return
        limit -= len(chunk)
        yield chunk


def file_digest(path: Path) -> tuple[int, str]:
    """Size in bytes and SHA-256 (hex) of ``path``."""
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def split(
    path: str | os.PathLike, out_dir: str | os.PathLike, max_mib: float = DEFAULT_MAX_MIB
) -> Path:
    """Cut ``path`` into pieces of at most ``max_mib`` MiB in ``out_dir``; returns the manifest.

    Pieces of an earlier split of the same name in ``out_dir`` are removed first, so that a
    join never meets a stale one. Each piece and the manifest (last) are written atomically.

    Raises:
        PieceError: ``path`` is not a file, or ``max_mib`` is not a size of one byte or more.
    """
    source, out_dir = Path(path), Path(out_dir)
    if not source.is_file():
        raise PieceError(f"{source}: no such file to split")
    if isinstance(max_mib, bool) or not 2**-20 <= max_mib < math.inf:
        raise PieceError(f"--max-mib must be a finite size of at least one byte, got {max_mib!r}")
    limit = int(max_mib * 2**20)
    name = source.name
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in out_dir.glob(f"{name}.part*"):
        stale.unlink()
    whole, pieces, size = hashlib.sha256(), [], source.stat().st_size
    with source.open("rb") as handle:
        # At least one piece, so that an empty file round-trips too.
        for index in range(max(1, -(-size // limit))):
            piece_name, digest, piece_size = _piece_name(name, index), hashlib.sha256(), 0
            with atomic_path(out_dir / piece_name) as temp, temp.open("wb") as out:
                for chunk in _chunks(handle, limit):
                    out.write(chunk)
                    digest.update(chunk)
                    whole.update(chunk)
                    piece_size += len(chunk)
            pieces.append({"name": piece_name, "size": piece_size, "sha256": digest.hexdigest()})
    manifest = {
        "format": FORMAT,
        "file": {"name": name, "size": size, "sha256": whole.hexdigest()},
        "max_mib": max_mib,
        "pieces": pieces,
    }
    written = manifest_path(out_dir, name)
    write_json_atomic(written, manifest)
    logger.info(
        "split %s (%d bytes) into %d piece(s) of <= %g MiB: %s",
        source,
        size,
        len(pieces),
        max_mib,
        written,
    )
    return written


def read_manifest(manifest: str | os.PathLike) -> dict[str, Any]:
    """The manifest's content, checked for form (not the pieces; see :func:`check_pieces`).

    Raises:
        PieceError: unreadable, not a manifest of :func:`split`, or a name that is a path.
    """
    manifest = Path(manifest)
    try:
        content = json.loads(manifest.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise PieceError(f"{manifest}: cannot read the manifest: {error}") from error
    try:
        if content["format"] != FORMAT:
            raise PieceError(f"{manifest}: format {content['format']!r}, expected {FORMAT!r}")
        entries = [content["file"], *content["pieces"]]
        for entry in entries:
            name, size, sha = entry["name"], entry["size"], entry["sha256"]
            # A name is a file beside the manifest, never a path elsewhere.
            if not isinstance(name, str) or not name or Path(name).name != name:
                raise PieceError(f"{manifest}: {name!r} is not a plain file name")
            if isinstance(size, bool) or not isinstance(size, int) or size < 0:
                raise PieceError(f"{manifest}: {name}: size {size!r} is not a byte count")
            if not isinstance(sha, str) or len(sha) != 64:
                raise PieceError(f"{manifest}: {name}: {sha!r} is not a SHA-256")
    except (KeyError, TypeError) as error:
        raise PieceError(f"{manifest}: not a manifest of state pieces ({error!r})") from error
    if not content["pieces"]:
        raise PieceError(f"{manifest}: lists no pieces")
    return content


def check_pieces(manifest: str | os.PathLike) -> dict[str, Any]:
    """Every piece beside ``manifest`` is present, of its size and checksum, and no other
    piece of the file is there; returns the manifest's content.

    Raises:
        PieceError: naming the first piece that is missing, extra, truncated or corrupted.
    """
    manifest = Path(manifest)
    content = read_manifest(manifest)
    folder, name = manifest.parent, content["file"]["name"]
    listed = {piece["name"] for piece in content["pieces"]}
    extra = sorted(p.name for p in folder.glob(f"{name}.part*") if p.name not in listed)
    if extra:
        raise PieceError(f"{folder / extra[0]}: extra piece, not listed in {manifest.name}")
    for piece in content["pieces"]:
        path = folder / piece["name"]
        if not path.is_file():
            raise PieceError(f"{path}: piece missing ({len(listed)} listed in {manifest.name})")
        size, sha = file_digest(path)
        if size != piece["size"]:
            what = "truncated" if size < piece["size"] else "too long"
            raise PieceError(
                f"{path}: piece {what}: {size} bytes, the manifest says {piece['size']}"
            )
        if sha != piece["sha256"]:
            raise PieceError(f"{path}: piece corrupted: its SHA-256 differs from the manifest's")
    if sum(piece["size"] for piece in content["pieces"]) != content["file"]["size"]:
        raise PieceError(f"{manifest}: the pieces' sizes do not add up to the file's")
    return content


def join(manifest: str | os.PathLike, out: str | os.PathLike) -> Path:
    """Join the pieces of ``manifest`` into the file ``out``; returns ``out``.

    The pieces are checked first (:func:`check_pieces`); the joined bytes go to a temporary
    file whose size and SHA-256 must be the manifest's before it is renamed over ``out``.

    Raises:
        PieceError: a bad manifest or piece, or a joined file that differs from the original.
    """
    manifest, out = Path(manifest), Path(out)
    content = check_pieces(manifest)
    expected = content["file"]
    with atomic_path(out, durable=True) as temp:
        with temp.open("wb") as handle:
            for piece in content["pieces"]:
                with (manifest.parent / piece["name"]).open("rb") as source:
                    for chunk in iter(lambda: source.read(_CHUNK), b""):
                        handle.write(chunk)
        # The pieces could have changed since they were checked; the whole file decides.
        if file_digest(temp) != (expected["size"], expected["sha256"]):
            raise PieceError(
                f"{out}: the joined file's size or SHA-256 differs from {manifest.name}'s "
                f"{expected['name']}; not written"
            )
    logger.info("joined %d piece(s) of %s into %s", len(content["pieces"]), manifest, out)
    return out


def join_for_resume(manifest: str | os.PathLike) -> Path:
    """The checkpoint a resume from ``manifest`` reads: its file (``latest.pth``) joined in the
    manifest's folder, which is then the run folder the run continues in.

    The other manifests of that folder are joined beside it first (``best.pth``, which the
    final test scores, travels the same way). A file of a manifest's name already there is
    used as it is when it is the manifest's (same size and SHA-256), and refused otherwise:
    it may hold newer progress than the pieces.

    Raises:
        PieceError: a bad manifest or piece, or another file where a joined one would go.
    """
    manifest = Path(manifest)
    others = sorted(set(manifest.parent.glob(f"*{MANIFEST_SUFFIX}")) - {manifest})
    for other in [*others, manifest]:
        content = read_manifest(other)
        target = other.parent / content["file"]["name"]
        if not target.exists():
            join(other, target)
        elif file_digest(target) == (content["file"]["size"], content["file"]["sha256"]):
            logger.info("%s already holds the pieces of %s", target, other.name)
        else:
            raise PieceError(
                f"{target} exists and is not the file of {other.name} (newer progress?); "
                f"resume from the folder with --resume {other.parent}, or move the file away "
                "to resume from the pieces"
            )
    return target
