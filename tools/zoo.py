"""The model zoo: add a finished run's weights, check every entry, score across datasets.

    python tools/zoo.py add NAME --run RUN_DIR [--which best|last] [--set data.root=...]
                        [--dataset TEXT] [--gpu NAME] [--machine TEXT] [--commit SHA]
    python tools/zoo.py check
    python tools/zoo.py transfer [--set-root DATASET=PATH ...] --out FILE.md

add writes checkpoints/zoo/NAME.pkl (the run's best.pth or latest.pth weights as an fp16
state dict), scores that stored file on the run config's test split in both protocols (maps
and reports under results/zoo/NAME/), fills the entry from the run folder and writes
checkpoints/zoo.json, sorted. check verifies every entry's keys, file and SHA-256 and exits
non-zero on any problem. transfer scores every zoo model on every other dataset's test split
it finds (the sirst, nudt, irstd1k, sirst_v2 and sirstaug configs' roots, or --set-root) and
writes a markdown table. $LRRNET_ZOO points at another zoo.json. The entry's keys:
docs/inference.md, "The model zoo".
"""

from __future__ import annotations

import argparse
import sys

from lrrnet import cli
from lrrnet.engine import zoo, zoo_builder
from lrrnet.errors import ConfigError
from lrrnet.files import write_text_atomic


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = cli.parser(__doc__, config=None)
    commands = parser.add_subparsers(dest="command", required=True)
    add = commands.add_parser("add", help="add an entry from a finished run")
    add.add_argument("name", help="the zoo name (letters, digits, _.+-)")
    add.add_argument("--run", required=True, help="the run folder")
    add.add_argument("--which", choices=tuple(zoo_builder.RUN_CHECKPOINTS), default="best")
    add.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override the run's config to find its data here (data.root=...); repeatable",
    )
    add.add_argument("--replace", action="store_true", help="replace an entry of that name")
    add.add_argument("--dataset", help="the dataset and split, e.g. 'SIRST v1, idx_427 split'")
    add.add_argument("--description", help="the recipe's one line (default: its docstring's)")
    add.add_argument("--gpu", help="the GPU it trained on (default: from the log and here)")
    add.add_argument("--machine", help="the CPU or GPU model (default: this machine's)")
    add.add_argument("--commit", help="the commit it trained with (default: HEAD)")
    add.add_argument("--device", default="cpu", help="where to score (cpu, cuda, auto)")
    commands.add_parser("check", help="verify every entry's keys, file and SHA-256")
    transfer = commands.add_parser("transfer", help="every model on every dataset found")
    transfer.add_argument(
        "--set-root",
        action="append",
        default=[],
        metavar="DATASET=PATH",
        help=f"a dataset's root ({', '.join(zoo_builder.TRANSFER_DATASETS)}); repeatable",
    )
    transfer.add_argument("--out", required=True, help="the markdown file to write")
    transfer.add_argument("--device", default="cpu", help="where to score (cpu, cuda, auto)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cli.setup_logging()
    return cli.guarded(run, args)


def run(args: argparse.Namespace) -> int:
    if args.command == "add":
        entry = zoo_builder.add_run(
            args.name,
            args.run,
            which=args.which,
            overrides=args.overrides,
            replace=args.replace,
            dataset=args.dataset,
            description=args.description,
            gpu=args.gpu,
            machine=args.machine,
            commit=args.commit,
            device=args.device,
        )
        standard, lrrnet = (entry["test"][p]["miou"] for p in zoo.PROTOCOL_KEYS)
        print(
            f"added '{args.name}' to {zoo.zoo_file()}: {entry['weights']} ({entry['selection']}); "
            f"test IoU {standard} (lrrnet protocol {lrrnet})"
        )
        return 0
    if args.command == "check":
        problems = zoo.check_zoo()
        for problem in problems:
            print(f"error: {problem}", file=sys.stderr)
        if problems:
            return 1
        print(f"{zoo.zoo_file()}: {len(zoo.read_zoo())} entries, every file and hash checked")
        return 0
    roots = {}
    for item in args.set_root:
        dataset, sep, path = item.partition("=")
        if not sep or not path:
            raise ConfigError(f"--set-root {item!r}: expected DATASET=PATH")
        roots[dataset] = path
    table = zoo_builder.transfer_table(roots, device=args.device)
    write_text_atomic(args.out, table)
    print(table, end="")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
