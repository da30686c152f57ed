"""Generate the synthetic SIRST dataset (split-folders layout).

    python tools/make_synthetic_dataset.py --out datasets/SIRST-Synth \
        [--num-train 800] [--num-test 200] [--size 256 | HxW] [--seed 0] [--overwrite]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lrrnet import cli
from lrrnet.data.synthetic import generate_dataset


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = cli.parser(__doc__, config=None)
    parser.add_argument("--out", required=True, type=Path, help="dataset folder to create")
    parser.add_argument(
        "--num-train", type=cli.positive_int, default=800, help="frames in trainval/"
    )
    parser.add_argument("--num-test", type=cli.positive_int, default=200, help="frames in test/")
    parser.add_argument("--size", default="256", help="frame side S, or HxW (e.g. 96x160)")
    parser.add_argument(
        "--seed", type=cli.non_negative_int, default=0, help="same seed, same bytes"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cli.setup_logging()
    return cli.guarded(run, args)


def run(args: argparse.Namespace) -> int:
    generate_dataset(
        args.out,
        num_train=args.num_train,
        num_test=args.num_test,
        size=args.size,
        seed=args.seed,
        overwrite=args.overwrite,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
