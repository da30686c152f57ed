"""Cut a file (a run's latest.pth) into checksummed pieces of bounded size, or join them.

    python tools/state_pieces.py split RUN/latest.pth RUN/best.pth --out pieces/
    python tools/state_pieces.py split latest.pth --out pieces/ --max-mib 8
    python tools/state_pieces.py join pieces/latest.pth.manifest.json --out RUN/latest.pth

split writes, for each FILE, NAME.part000, NAME.part001, … of at most --max-mib MiB
(default 16) and NAME.manifest.json (the file's and every piece's size and SHA-256). join checks every piece
and the whole file against the manifest before it writes --out; a missing, extra, truncated
or corrupted piece is refused in one line naming it. `run_configs.py CONFIG --resume
pieces/latest.pth.manifest.json` joins and resumes in one step (docs/training.md, "Runs
longer than an allocation").
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lrrnet import cli
from lrrnet.engine.state_pieces import DEFAULT_MAX_MIB, join, read_manifest, split


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = cli.parser(__doc__, config=None)
    commands = parser.add_subparsers(dest="command", required=True)
    cut = commands.add_parser("split", help="cut each FILE into pieces and a manifest in --out")
    cut.add_argument("files", nargs="+", type=Path, help="the files to cut (a run's latest.pth)")
    cut.add_argument("--out", required=True, type=Path, help="folder for the pieces")
    cut.add_argument(
        "--max-mib",
        type=cli.positive_int,
        default=DEFAULT_MAX_MIB,
        help=f"largest piece in MiB (default {DEFAULT_MAX_MIB})",
    )
    glue = commands.add_parser("join", help="join the pieces of MANIFEST into --out")
    glue.add_argument("manifest", type=Path, help="NAME.manifest.json, the pieces beside it")
    glue.add_argument("--out", required=True, type=Path, help="the file to write")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cli.setup_logging()
    return cli.guarded(run, args)


def run(args: argparse.Namespace) -> int:
    if args.command == "split":
        for path in args.files:
            manifest = split(path, args.out, args.max_mib)
            pieces = read_manifest(manifest)["pieces"]
            print(f"wrote {len(pieces)} piece(s) and {manifest}")
    else:
        out = join(args.manifest, args.out)
        print(f"wrote {out} ({read_manifest(args.manifest)['file']['size']} bytes, verified)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
