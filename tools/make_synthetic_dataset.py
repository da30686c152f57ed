"""Generate the synthetic SIRST dataset (split-folders layout).

    python tools/make_synthetic_dataset.py --out datasets/SIRST-Synth \
        [--num-train 800] [--num-test 200] [--size 256 | HxW] [--seed 0] [--overwrite]
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lrrnet.data.synthetic import generate_dataset  # noqa: E402
from lrrnet.errors import UserError  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path, help="dataset folder to create")
    parser.add_argument("--num-train", type=int, default=800, help="frames in trainval/")
    parser.add_argument("--num-test", type=int, default=200, help="frames in test/")
    parser.add_argument("--size", default="256", help="frame side S, or HxW (e.g. 96x160)")
    parser.add_argument("--seed", type=int, default=0, help="same seed, same bytes")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        generate_dataset(
            args.out,
            num_train=args.num_train,
            num_test=args.num_test,
            size=args.size,
            seed=args.seed,
            overwrite=args.overwrite,
        )
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
