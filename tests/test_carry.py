"""tools/gpu/carry.py: ignored files cut into parts that each fit one call, and put back."""

import json
import shutil
import subprocess

import numpy as np
import pytest
from conftest import load_tool

from lrrnet.errors import UserError

carry = load_tool("gpu/carry")

KIB = 1024


@pytest.fixture
def repo(tmp_path):
    """A checkout with a tracked file, an untracked one and ignored data/, .carry/ folders."""
    root = tmp_path / "repo"
    root.mkdir()
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    (root / ".gitignore").write_text(".carry/\ndata/\nbuild/\n")
    (root / "tracked.txt").write_bytes(b"t" * 5000)
    subprocess.run(["git", "-C", str(root), "add", "tracked.txt", ".gitignore"], check=True)
    (root / "untracked.txt").write_bytes(b"u" * 100)
    (root / "build").mkdir()
    (root / "build" / "big.bin").write_bytes(b"b" * 100_000)  # ignored: never travels
    return root


@pytest.fixture
def source(tmp_path):
    """A dataset-like folder: files of assorted sizes in two subfolders."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "SIRST"
    for index, size in enumerate([30, 9, 17, 2, 25, 12, 1, 20]):
        sub = folder / ("images" if index % 2 else "masks")
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"f{index}.png").write_bytes(rng.bytes(size * KIB))
    return folder


def _tree(folder):
    return {
        str(path.relative_to(folder)): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def _carry_over(repo, remote, name, parts):
    """What the lent machine gets: each named part of .carry/NAME copied into its checkout."""
    for number in parts:
        src = repo / carry.CARRY_DIR / name / f"part-{number}"
        shutil.copytree(src, remote / carry.CARRY_DIR / name / f"part-{number}")


def test_tree_bytes_counts_what_travels(repo):
    # tracked.txt (5000 B), untracked.txt and .gitignore, each in 4 KiB blocks with a header;
    # build/ is ignored.
    expected = sum(
        carry.travel_bytes((repo / name).stat().st_size)
        for name in ("tracked.txt", "untracked.txt", ".gitignore")
    )
    assert carry.tree_bytes(repo) == expected
    assert carry.travel_bytes(5000) == 8192 + 512
    assert carry.travel_bytes(0) == 512


def test_parts_fit_the_room_and_unpack_rebuilds_the_folder(repo, source, tmp_path):
    room_mib = 40 * KIB / carry.MIB
    plan = carry.pack(repo, "sirst", [(source, carry.PurePosixPath("data/SIRST"))], room_mib)
    parts = plan["parts"]
    assert len(parts) >= 4  # 116 KiB in travel sizes, at most 40 KiB a part
    packed = {}
    for part in parts:
        folder = repo / carry.CARRY_DIR / "sirst" / f"part-{part['part']}"
        listing = json.loads((folder / carry.PART_JSON).read_text())
        assert listing["parts"] == len(parts) and listing["pack"] == plan["pack"]
        sizes = [carry.travel_bytes(entry["size"]) for entry in listing["files"]]
        assert sum(sizes) <= 40 * KIB
        for entry in listing["files"]:
            assert entry["path"] not in packed  # each file in one part only
            packed[entry["path"]] = (folder / entry["path"]).read_bytes()
    original = _tree(source)
    assert packed == {f"data/SIRST/{name}": data for name, data in original.items()}
    # Nothing of the source was moved or changed by packing.
    assert _tree(source) == original

    remote = tmp_path / "remote"
    remote.mkdir()
    _carry_over(repo, remote, "sirst", [p["part"] for p in parts])
    moved = carry.unpack(remote, "sirst", plan["pack"])
    assert len(moved) == len(original)
    assert _tree(remote / "data" / "SIRST") == original
    assert not list((remote / carry.CARRY_DIR / "sirst").iterdir())  # the parts are gone


def test_the_largest_files_go_first_and_the_last_part_is_the_smallest(repo, source):
    plan = carry.pack(
        repo, "sirst", [(source, carry.PurePosixPath("data/SIRST"))], 40 * KIB / carry.MIB
    )
    sizes = [part["bytes"] for part in plan["parts"]]
    assert sizes[-1] == min(sizes)


def test_a_missing_part_is_refused_before_anything_moves(repo, source, tmp_path):
    plan = carry.pack(
        repo, "sirst", [(source, carry.PurePosixPath("data/SIRST"))], 40 * KIB / carry.MIB
    )
    remote = tmp_path / "remote"
    remote.mkdir()
    # The machine was given back after the first call: part 1 is lost, the rest arrive.
    _carry_over(repo, remote, "sirst", [p["part"] for p in plan["parts"]][1:])
    with pytest.raises(UserError, match=r"part-1: missing.*given back between calls"):
        carry.unpack(remote, "sirst", plan["pack"])
    assert not (remote / "data").exists()


def test_a_changed_file_and_a_stale_part_are_refused(repo, source, tmp_path):
    items = [(source, carry.PurePosixPath("data/SIRST"))]
    room = 40 * KIB / carry.MIB
    first = carry.pack(repo, "sirst", items, room)
    remote = tmp_path / "remote"
    remote.mkdir()
    _carry_over(repo, remote, "sirst", [1])
    second = carry.pack(repo, "sirst", items, room)  # a new pack replaces the old here
    assert second["pack"] != first["pack"]
    _carry_over(repo, remote, "sirst", [p["part"] for p in second["parts"]][1:])
    with pytest.raises(UserError, match=rf"part-1/{carry.PART_JSON}: of pack {first['pack']}"):
        carry.unpack(remote, "sirst", second["pack"])

    shutil.rmtree(remote / carry.CARRY_DIR / "sirst" / "part-1")
    _carry_over(repo, remote, "sirst", [1])
    listing = json.loads(
        (remote / carry.CARRY_DIR / "sirst" / "part-1" / carry.PART_JSON).read_text()
    )
    victim = remote / carry.CARRY_DIR / "sirst" / "part-1" / listing["files"][0]["path"]
    victim.write_bytes(b"x" + victim.read_bytes()[1:])
    with pytest.raises(UserError, match="changed on the way"):
        carry.check_part(remote, "sirst", second["pack"], 1)
    with pytest.raises(UserError, match="changed on the way"):
        carry.unpack(remote, "sirst", second["pack"])
    assert not (remote / "data").exists()


def test_unpack_replaces_an_older_copy_and_keeps_what_the_part_did_not_bring(
    repo, source, tmp_path
):
    plan = carry.pack(repo, "sirst", [(source, carry.PurePosixPath("data/SIRST"))])
    assert len(plan["parts"]) == 1
    remote = tmp_path / "remote"
    (remote / "data" / "SIRST" / "masks").mkdir(parents=True)
    (remote / "data" / "SIRST" / "masks" / "f0.png").write_bytes(b"old")
    _carry_over(repo, remote, "sirst", [1])
    stray = remote / carry.CARRY_DIR / "sirst" / "part-1" / "notes.txt"
    stray.write_text("mine")
    carry.unpack(remote, "sirst", plan["pack"])
    assert (remote / "data" / "SIRST" / "masks" / "f0.png").read_bytes() == (
        source / "masks" / "f0.png"
    ).read_bytes()
    assert stray.read_text() == "mine"


@pytest.mark.parametrize(
    ("dest", "message"),
    [
        ("kept/SIRST", "git does not ignore it"),
        ("../SIRST", "inside the checkout"),
        ("/tmp/SIRST", "inside the checkout"),
        (".carry/SIRST", "where the parts themselves go"),
    ],
)
def test_a_dest_that_would_travel_anyway_or_leave_the_checkout_is_refused(
    repo, source, dest, message
):
    assert carry.main(["pack", "sirst", f"{source}=kept/x", "--repo", str(repo)]) == 2
    with pytest.raises(UserError, match=message):
        items = [carry.parse_item(f"{source}={dest}")]
        carry.pack(repo, "sirst", items)
    assert not (repo / carry.CARRY_DIR).exists()


def test_a_file_larger_than_a_call_is_refused_by_name(repo, source):
    with pytest.raises(UserError, match=r"f0\.png: .* more than a call's room"):
        carry.pack(repo, "sirst", [(source, carry.PurePosixPath("data/SIRST"))], 20 * KIB / 2**20)
    assert not (repo / carry.CARRY_DIR).exists()


def test_a_link_back_up_the_source_is_refused_not_walked_for_ever(repo, source):
    (source / "images" / "loop").symlink_to(source)
    with pytest.raises(UserError, match="a link to a folder already carried"):
        carry.pack(repo, "sirst", [(source, carry.PurePosixPath("data/SIRST"))])
    assert not (repo / carry.CARRY_DIR).exists()


def test_a_carry_folder_that_pack_did_not_write_is_left_alone(repo, source):
    mine = repo / carry.CARRY_DIR / "sirst" / "keep.txt"
    mine.parent.mkdir(parents=True)
    mine.write_text("mine")
    with pytest.raises(UserError, match="not written by pack"):
        carry.pack(repo, "sirst", [(source, carry.PurePosixPath("data/SIRST"))])
    assert mine.read_text() == "mine"


def test_an_unignored_carry_folder_is_refused(repo, source):
    (repo / ".gitignore").write_text("data/\n")
    with pytest.raises(UserError, match=r"\.carry/ is not ignored"):
        carry.pack(repo, "sirst", [(source, carry.PurePosixPath("data/SIRST"))])


def test_the_command_line_prints_the_calls_and_checks_a_part_there(repo, source, tmp_path, capsys):
    then = "python3 tools/gpu/zoo_chunk.py sirst --out $OUT --set \"data.val_split='test'\""
    args = ["pack", "sirst", f"{source}=data/SIRST", "--room-mib", str(40 * KIB / 2**20)]
    assert carry.main([*args, "--then", then, "--repo", str(repo)]) == 0
    printed = capsys.readouterr().out
    plan = json.loads((repo / carry.CARRY_DIR / "sirst" / carry.PLAN_JSON).read_text())
    count = len(plan["parts"])
    assert printed.count("run(command=") == count
    assert f"check sirst --pack {plan['pack']} --part 1" in printed
    last = f"unpack sirst --pack {plan['pack']} && {then}"
    assert f'{json.dumps(last)[1:]}, carry=[".carry/sirst/part-{count}"], timeout_s=600)' in (
        printed
    )

    remote = tmp_path / "remote"
    remote.mkdir()
    _carry_over(repo, remote, "sirst", [1])
    check = ["check", "sirst", "--pack", plan["pack"], "--part", "1", "--repo", str(remote)]
    assert carry.main(check) == 0
    assert "part 1 of" in capsys.readouterr().out
    assert carry.main([*check[:-3], "2", "--repo", str(remote)]) == 2
    assert "part-2: missing" in capsys.readouterr().err
    for name in ("../x", "sïrst"):
        assert carry.main(["unpack", name, "--pack", "p", "--repo", str(remote)]) == 2
        assert f"NAME {name!r}: letters, digits" in capsys.readouterr().err
