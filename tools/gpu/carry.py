"""Bring ignored files to a lent GPU machine over back-to-back calls, each within its limit.

    python tools/gpu/carry.py pack NAME SRC=DEST [SRC=DEST ...] [--room-mib MIB]
    python3 tools/gpu/carry.py check NAME --pack ID --part K     # there: part K arrived whole
    python3 tools/gpu/carry.py unpack NAME --pack ID             # there: all parts into place

A call to the lent machine carries at most 64 MiB: the working tree that travels (tracked
and untracked files that git does not ignore) plus the ignored paths it names. A resumed
zoo chunk needs more than is left (a state of 40–62 MiB, IRSTD-1k's 85 MiB), and the
machine keeps the ignored files of one call for the next while it stays warm.

``pack`` (here) puts the files of each SRC (a file or a folder, read through links) at DEST
(a path of this checkout that git ignores, e.g. ``datasets/IRSTD-1k``) into
``.carry/NAME/part-1`` … ``part-N``, each within one call's room: 64 MiB less the tree
that travels anyway, less 1 MiB (a file counted in 4 KiB blocks with a tar header, the
most any way of measuring the limit can count it). Each part holds ``carry-part.json``:
the pack's id, its number of N, and every file's path, size and SHA-256. It then prints the calls, one part
each, made one after another at once: the first N-1 run ``check`` (the part arrived whole),
the last runs ``unpack`` and then the command that needs the files.

``unpack`` (there) checks that all N parts of that pack are present and whole, then moves
every file to its DEST (replacing an older copy there) and removes the emptied parts. A
part that is missing, of another pack or changed is refused in one line naming it, before
anything moves: a machine given back between two calls has lost the earlier parts.
It imports no PyTorch.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path, PurePosixPath

# Run as a script (python tools/gpu/carry.py): the checkout's lrrnet, without PYTHONPATH.
ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from lrrnet import cli  # noqa: E402
from lrrnet.engine.state_pieces import file_digest  # noqa: E402
from lrrnet.errors import DataError, UserError  # noqa: E402
from lrrnet.files import write_json_atomic  # noqa: E402

CARRY_DIR = ".carry"
PART_JSON = "carry-part.json"
PLAN_JSON = "plan.json"
FORMAT = "lrrnet-carry-1"
CALL_LIMIT_MIB = 64.0  # what one call of the lent machine carries, the tree included
MARGIN_MIB = 1.0
MIB = 2**20


def travel_bytes(size: int) -> int:
    """What a file of ``size`` bytes may count for against a call's limit: its size in 4 KiB
    blocks (as ``du`` counts) and a tar header, whichever way the limit is measured."""
    return -(-size // 4096) * 4096 + 512


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = cli.parser(__doc__, config=None)
    commands = parser.add_subparsers(dest="command", required=True)
    pack = commands.add_parser("pack", help="split files into parts, one a call (here)")
    pack.add_argument("name", help="the pack's name: a folder of .carry/")
    pack.add_argument("items", nargs="+", metavar="SRC=DEST", help="a file or folder, and where")
    pack.add_argument(
        "--room-mib",
        type=float,
        help="a part's most MiB (default: 64 MiB less the travelling tree, less 1 MiB)",
    )
    pack.add_argument("--then", help="the command the last call runs after unpack, to print")
    pack.add_argument("--repo", type=Path, default=ROOT, help=argparse.SUPPRESS)
    for verb, text in (("check", "check one part there"), ("unpack", "move all parts there")):
        command = commands.add_parser(verb, help=text)
        command.add_argument("name")
        command.add_argument("--pack", required=True, help="the pack's id, which pack printed")
        if verb == "check":
            command.add_argument("--part", required=True, type=cli.positive_int)
        command.add_argument("--repo", type=Path, default=ROOT, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return cli.guarded(run, args)


def run(args: argparse.Namespace) -> int:
    check_name(args.name)
    if args.command == "pack":
        plan = pack(args.repo, args.name, [parse_item(item) for item in args.items], args.room_mib)
        print(describe(plan, args.then))
    elif args.command == "check":
        part = check_part(args.repo, args.name, args.pack, args.part)
        size = sum(entry["size"] for entry in part["files"])
        print(
            f"{CARRY_DIR}/{args.name}/part-{args.part}: part {args.part} of {part['parts']}, "
            f"{len(part['files'])} file(s), {size / MIB:.1f} MiB, whole"
        )
    else:
        moved = unpack(args.repo, args.name, args.pack)
        print(f"unpacked {len(moved)} file(s) of {args.name} ({args.pack})")
    return 0


def check_name(name: str) -> None:
    allowed = all((c.isascii() and c.isalnum()) or c in "._-" for c in name)
    if not name or not allowed or name.startswith("."):
        raise UserError(f"NAME {name!r}: letters, digits, '.', '_' and '-' only")


def parse_item(item: str) -> tuple[Path, PurePosixPath]:
    source, sep, dest = item.partition("=")
    if not sep or not source or not dest:
        raise UserError(f"{item!r}: expected SRC=DEST")
    dest_path = PurePosixPath(dest)
    if dest_path.is_absolute() or ".." in dest_path.parts or dest_path.parts[:1] == (".git",):
        raise UserError(f"{item!r}: DEST must be a path inside the checkout")
    if dest_path.parts[:1] == (CARRY_DIR,):
        raise UserError(f"{item!r}: DEST inside {CARRY_DIR}/, where the parts themselves go")
    if not Path(source).exists():
        raise DataError(f"{source}: no such file or folder")
    return Path(source), dest_path


def git(repo: Path, *args: str) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, check=False)
    except FileNotFoundError:
        raise UserError("git not found: pack measures the travelling tree with it") from None


def is_ignored(repo: Path, path: str) -> bool:
    return git(repo, "check-ignore", "-q", "--no-index", path).returncode == 0


def tree_bytes(repo: Path) -> int:
    """Bytes of what every call carries: tracked files and untracked ones git does not
    ignore."""
    listed = git(repo, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
    if listed.returncode != 0:
        raise UserError(f"{repo}: not a git checkout ({listed.stderr.decode().strip()})")
    total = 0
    for name in filter(None, listed.stdout.decode().split("\0")):
        path = repo / name
        if path.is_file() and not path.is_symlink():  # a deleted tracked file travels not
            total += travel_bytes(path.stat().st_size)
    return total


def files_of(source: Path, dest: PurePosixPath) -> list[tuple[Path, PurePosixPath]]:
    """Every file under ``source`` (itself, if a file) with its path under ``dest``."""
    if source.is_file():
        return [(source, dest)]
    found, seen = [], set()
    for folder, _, names in os.walk(source, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:  # a link back up the tree: walked once already
            raise DataError(f"{folder}: a link to a folder already carried ({real})")
        seen.add(real)
        for name in names:
            path = Path(folder, name)
            if not path.is_file():
                raise DataError(f"{path}: not a regular file (a broken link?)")
            found.append((path, dest / PurePosixPath(path.relative_to(source).as_posix())))
    if not found:
        raise DataError(f"{source}: an empty folder, nothing to carry")
    return found


def pack(
    repo: Path,
    name: str,
    items: list[tuple[Path, PurePosixPath]],
    room_mib: float | None = None,
) -> dict:
    """Write ``.carry/NAME/part-*`` (see the module's help); returns the plan."""
    repo = repo.resolve()
    home = repo / CARRY_DIR / name
    if not is_ignored(repo, f"{CARRY_DIR}/{name}/{PART_JSON}"):
        raise UserError(f"{CARRY_DIR}/ is not ignored by git in {repo}: add it to .gitignore")
    if home.exists() and not (home / PLAN_JSON).is_file():
        raise UserError(f"{home}: exists and was not written by pack; move it away")
    files: dict[PurePosixPath, Path] = {}
    for source, dest in items:
        if not is_ignored(repo, str(dest)):
            raise UserError(f"DEST {dest}: git does not ignore it, so it travels anyway")
        for path, target in files_of(source, dest):
            if target in files:
                raise UserError(f"{target}: given twice ({files[target]} and {path})")
            files[target] = path
    tree = tree_bytes(repo)
    if room_mib is None:
        room = int((CALL_LIMIT_MIB - MARGIN_MIB) * MIB) - tree
    elif not 0 < room_mib <= CALL_LIMIT_MIB:
        raise UserError(f"--room-mib {room_mib:g}: must be in (0, {CALL_LIMIT_MIB:g}]")
    else:
        room = int(room_mib * MIB)
    if room <= 0:
        raise UserError(f"the travelling tree is {tree / MIB:.1f} MiB: no room left in a call")
    sizes = {target: travel_bytes(path.stat().st_size) for target, path in files.items()}
    parts: list[list[PurePosixPath]] = []  # first fit, largest file first
    free: list[int] = []
    for target in sorted(files, key=lambda t: (-sizes[t], str(t))):
        if sizes[target] > room:
            raise UserError(
                f"{files[target]}: {sizes[target] / MIB:.1f} MiB, more than a call's room of "
                f"{room / MIB:.1f} MiB; cut it first (lrrnet.engine.state_pieces)"
            )
        index = next((i for i, left in enumerate(free) if left >= sizes[target]), None)
        if index is None:
            parts.append([])
            free.append(room)
            index = len(parts) - 1
        parts[index].append(target)
        free[index] -= sizes[target]
    if home.exists():
        shutil.rmtree(home)  # an earlier pack of this name: its plan.json says it is ours
    pack_id = secrets.token_hex(4)
    plan = {"format": FORMAT, "name": name, "pack": pack_id, "room": room, "tree": tree}
    plan["parts"] = []
    for number, targets in enumerate(parts, start=1):
        folder = home / f"part-{number}"
        entries = []
        for target in sorted(targets, key=str):
            copy = folder / target
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(files[target], copy)
            size, sha = file_digest(copy)
            entries.append({"path": str(target), "size": size, "sha256": sha})
        part = {"format": FORMAT, "name": name, "pack": pack_id, "part": number}
        part.update(parts=len(parts), files=entries)
        write_json_atomic(folder / PART_JSON, part)
        used = room - free[number - 1]
        plan["parts"].append({"part": number, "files": len(entries), "bytes": used})
    write_json_atomic(home / PLAN_JSON, plan)
    return plan


def describe(plan: dict, then: str | None = None) -> str:
    """The pack's parts and the calls that bring them over, for a person to make; the last
    runs ``then`` (default: a placeholder) after unpacking."""
    name, pack_id, count = plan["name"], plan["pack"], len(plan["parts"])
    lines = [
        f"packed {sum(p['files'] for p in plan['parts'])} file(s) of {name} into {count} "
        f"part(s) (pack {pack_id}): at most {plan['room'] / MIB:.1f} MiB each beside the "
        f"{plan['tree'] / MIB:.1f} MiB tree",
    ]
    for part in plan["parts"]:
        size = part["bytes"] / MIB
        lines.append(f"  part-{part['part']}: {part['files']} file(s), {size:.1f} MiB")
    lines.append("the calls, each made as soon as the one before returns (a machine left idle")
    lines.append("about 30 s is given back, and the parts it held with it):")
    tool = "python3 tools/gpu/carry.py"
    for part in plan["parts"]:
        number = part["part"]
        if number < count:
            command, limit = f"{tool} check {name} --pack {pack_id} --part {number}", 60
        else:
            command, limit = f"{tool} unpack {name} --pack {pack_id} && {then or 'COMMAND'}", 600
        paths = [f"{CARRY_DIR}/{name}/part-{number}"]
        lines.append(
            f"  run(command={json.dumps(command)}, carry={json.dumps(paths)}, timeout_s={limit})"
        )
    return "\n".join(lines)


def read_part(folder: Path, name: str, pack_id: str) -> dict:
    path = folder / PART_JSON
    try:
        part = json.loads(path.read_text())
        if part["format"] != FORMAT or part["name"] != name:
            raise ValueError("not a part of this pack")
        files, number, count = part["files"], part["part"], part["parts"]
        if not all(isinstance(v, int) and v > 0 for v in (number, count)) or number > count:
            raise ValueError(f"part {number!r} of {count!r}")
        for entry in files:
            target = PurePosixPath(entry["path"])
            inside = not target.is_absolute() and ".." not in target.parts
            if not inside or target.parts[:1] == (".git",) or not isinstance(entry["size"], int):
                raise ValueError(f"bad entry {entry!r}")
    except FileNotFoundError:
        raise DataError(f"{path}: missing; this part did not arrive") from None
    except (OSError, UnicodeDecodeError, KeyError, TypeError, ValueError) as error:
        raise DataError(f"{path}: not a carry part ({error})") from None
    if part["pack"] != pack_id:
        raise DataError(
            f"{path}: of pack {part['pack']}, not {pack_id}: a part left from another pack; "
            "make the calls of one pack"
        )
    return part


def check_part(repo: Path, name: str, pack_id: str, number: int) -> dict:
    """Part ``number`` of the pack is present, its files of their size and SHA-256."""
    folder = repo / CARRY_DIR / name / f"part-{number}"
    if not folder.is_dir():
        raise DataError(
            f"{folder}: missing: it did not arrive, or the machine was given back between "
            "calls (it keeps carried files only while warm); make the calls again from part-1"
        )
    part = read_part(folder, name, pack_id)
    if part["part"] != number:
        raise DataError(f"{folder / PART_JSON}: says part {part['part']}, not {number}")
    for entry in part["files"]:
        path = folder / entry["path"]
        if not path.is_file():
            raise DataError(f"{path}: missing from part {number}")
        if file_digest(path) != (entry["size"], entry["sha256"]):
            raise DataError(f"{path}: changed on the way (size or SHA-256 differs)")
    return part


def unpack(repo: Path, name: str, pack_id: str) -> list[Path]:
    """Check every part of the pack, then move its files into place; returns their paths."""
    repo = repo.resolve()
    home = repo / CARRY_DIR / name
    found = sorted(home.glob("part-*"))
    if not found:
        raise DataError(f"{home}: no parts here; carry them first")
    count = None
    for folder in found:  # the count from any part of this pack
        try:
            count = read_part(folder, name, pack_id)["parts"]
            break
        except DataError:
            continue
    if count is None:
        raise DataError(f"{home}: no part of pack {pack_id} here")
    parts = [check_part(repo, name, pack_id, number) for number in range(1, count + 1)]
    moved = []
    for part in parts:
        folder = home / f"part-{part['part']}"
        for entry in part["files"]:
            target = repo / entry["path"]
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(folder / entry["path"], target)
            except OSError as error:
                raise DataError(f"{target}: cannot put the carried file there ({error})") from None
            moved.append(target)
        remove_emptied(folder)
    return moved


def remove_emptied(folder: Path) -> None:
    """A part's own json and the folders its files left; anything else there stays."""
    (folder / PART_JSON).unlink()
    for path, _, _ in os.walk(folder, topdown=False):
        with contextlib.suppress(OSError):  # not empty: something the part did not bring
            os.rmdir(path)


if __name__ == "__main__":
    sys.exit(main())
