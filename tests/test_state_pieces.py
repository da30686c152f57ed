"""Cutting a file into checksummed pieces and joining them back (lrrnet/engine/state_pieces.py)."""

import json
import os
import shutil

import pytest
from conftest import load_tool

from lrrnet.engine.state_pieces import (
    PieceError,
    join,
    join_for_resume,
    manifest_path,
    read_manifest,
    split,
)

MIB = 2**20


@pytest.fixture
def state(tmp_path):
    """A 2.5 MiB file of bytes that differ between pieces, cut at 1 MiB into 3 pieces."""
    path = tmp_path / "run" / "latest.pth"
    path.parent.mkdir()
    path.write_bytes(os.urandom(5 * MIB // 2))
    return path, split(path, tmp_path / "pieces", max_mib=1)


def test_split_writes_bounded_pieces_and_join_gives_the_same_bytes(state, tmp_path):
    path, manifest = state
    content = read_manifest(manifest)
    assert manifest == tmp_path / "pieces" / "latest.pth.manifest.json"
    assert content["file"]["name"] == "latest.pth"
    assert content["file"]["size"] == path.stat().st_size
    assert [p["name"] for p in content["pieces"]] == [f"latest.pth.part00{i}" for i in range(3)]
    assert [p["size"] for p in content["pieces"]] == [MIB, MIB, MIB // 2]
    for piece in content["pieces"]:
        assert (manifest.parent / piece["name"]).stat().st_size <= MIB

    moved = shutil.move(tmp_path / "pieces", tmp_path / "elsewhere")  # another machine
    out = join(moved / manifest.name, tmp_path / "joined" / "latest.pth")
    assert out.read_bytes() == path.read_bytes()
    assert list(out.parent.iterdir()) == [out]  # no temporary file left


def _refused(manifest, out, match):
    with pytest.raises(PieceError, match=match) as error:
        join(manifest, out)
    assert "\n" not in str(error.value)
    assert not out.exists() and not list(out.parent.glob(".*tmp*"))


@pytest.mark.parametrize(
    "damage, match",
    [
        ("corrupt", r"latest\.pth\.part001: piece corrupted"),
        ("truncate", r"latest\.pth\.part001: piece truncated"),
        ("remove", r"latest\.pth\.part001: piece missing"),
        ("extra", r"latest\.pth\.part003: extra piece"),
    ],
)
def test_a_bad_piece_is_refused_by_name_and_nothing_is_written(state, tmp_path, damage, match):
    _, manifest = state
    piece = manifest.parent / "latest.pth.part001"
    data = bytearray(piece.read_bytes())
    if damage == "corrupt":  # same size, one bit flipped
        data[len(data) // 2] ^= 1
        piece.write_bytes(bytes(data))
    elif damage == "truncate":
        piece.write_bytes(bytes(data[:-10]))
    elif damage == "remove":
        piece.unlink()
    else:
        (manifest.parent / "latest.pth.part003").write_bytes(b"stale")
    out = tmp_path / "out" / "latest.pth"
    out.parent.mkdir()
    _refused(manifest, out, match)


def test_a_manifest_whose_pieces_pass_but_whole_file_differs_is_refused(state, tmp_path):
    _, manifest = state
    content = json.loads(manifest.read_text())
    content["file"]["sha256"] = "0" * 64
    manifest.write_text(json.dumps(content))
    out = tmp_path / "out" / "latest.pth"
    out.parent.mkdir()
    _refused(manifest, out, "the joined file's size or SHA-256 differs")


def test_a_manifest_naming_a_path_or_of_another_format_is_refused(state, tmp_path):
    _, manifest = state
    content = json.loads(manifest.read_text())
    content["pieces"][0]["name"] = "../run/latest.pth"
    manifest.write_text(json.dumps(content))
    with pytest.raises(PieceError, match="is not a plain file name"):
        read_manifest(manifest)
    manifest.write_text("{}")
    with pytest.raises(PieceError, match="not a manifest of state pieces"):
        read_manifest(manifest)
    with pytest.raises(PieceError, match="at least one byte"):
        split(tmp_path / "run" / "latest.pth", tmp_path / "x", max_mib=0)


def test_a_second_split_replaces_the_pieces_of_the_first(state, tmp_path):
    path, manifest = state
    path.write_bytes(b"small now")
    assert split(path, manifest.parent, max_mib=1) == manifest
    assert sorted(p.name for p in manifest.parent.iterdir()) == [
        "latest.pth.manifest.json",
        "latest.pth.part000",
    ]
    assert join(manifest, tmp_path / "again.pth").read_bytes() == b"small now"


def test_join_for_resume_joins_every_manifest_beside_it_and_keeps_newer_progress(state, tmp_path):
    path, manifest = state
    best = path.with_name("best.pth")
    best.write_bytes(b"the best weights")
    split(best, manifest.parent, max_mib=1)
    joined = join_for_resume(manifest)
    assert joined == manifest.parent / "latest.pth"
    assert joined.read_bytes() == path.read_bytes()
    assert (manifest.parent / "best.pth").read_bytes() == b"the best weights"
    assert join_for_resume(manifest) == joined  # already there and the same: used as it is

    joined.write_bytes(b"progress made after the join")
    with pytest.raises(PieceError, match="exists and is not the file of latest.pth.manifest"):
        join_for_resume(manifest)
    assert joined.read_bytes() == b"progress made after the join"


def test_the_script_splits_and_joins(tmp_path, capsys, script_logging):
    tool = load_tool("state_pieces")
    source = tmp_path / "latest.pth"
    source.write_bytes(os.urandom(1000))
    assert tool.main(["split", str(source), "--out", str(tmp_path / "p")]) == 0
    assert "wrote 1 piece(s)" in capsys.readouterr().out
    manifest = manifest_path(tmp_path / "p", "latest.pth")
    assert tool.main(["join", str(manifest), "--out", str(tmp_path / "j.pth")]) == 0
    assert (tmp_path / "j.pth").read_bytes() == source.read_bytes()

    (tmp_path / "p" / "latest.pth.part000").write_bytes(b"x" * 1000)
    assert tool.main(["join", str(manifest), "--out", str(tmp_path / "k.pth")]) == 2
    assert "latest.pth.part000: piece corrupted" in capsys.readouterr().err
    assert not (tmp_path / "k.pth").exists()
    with pytest.raises(SystemExit):
        tool.main(["split", str(source), "--out", str(tmp_path / "p"), "--max-mib", "0"])
