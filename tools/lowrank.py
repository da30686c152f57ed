"""The low-rank evidence: spectra and effective ranks of x, D and B over frames.

    python tools/lowrank.py --checkpoint W|NAME --images DIR [--out DIR] [--size native|N]
                            [--limit N] [--energy 0.99] [--center] [--device cpu|cuda|auto]

For every frame in DIR (or DIR/images) the model runs once; the singular values of the
input x, the reconstruction D, the background feature B (per channel and unfolded
H×(C·W)) and, for comparison, the shallow feature u are taken, and the effective rank
(singular values holding 99 % of the energy) of each is reported. Writes OUT/lowrank.txt
(the printed table), OUT/lowrank.csv (per frame) and OUT/lowrank.png (mean normalised
spectra). Default OUT: results/lowrank. --center subtracts each matrix's mean first: the
mean level of a bright frame is a rank-1 term that otherwise holds most of the energy.
"""

from __future__ import annotations

import argparse
import sys

from lrrnet import cli
from lrrnet.data import folder_samples
from lrrnet.data.io import read_image
from lrrnet.engine.predictor import Predictor, parse_size
from lrrnet.errors import UserError
from lrrnet.lowrank import format_report, measure, write_report


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = cli.parser(__doc__, config=None)
    parser.add_argument(
        "--checkpoint", required=True, help=".pth checkpoint, released .pkl or a zoo name"
    )
    parser.add_argument("--images", required=True, help="folder of frames (or DIR/images)")
    parser.add_argument("--out", default="results/lowrank", help="folder for the report")
    parser.add_argument(
        "--size", help="native (the default; a zoo name: its entry's size) or N (resize N×N)"
    )
    parser.add_argument("--limit", type=cli.positive_int, help="the first N frames by name")
    parser.add_argument("--energy", type=float, default=0.99, help="energy fraction, (0, 1]")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda or auto")
    parser.add_argument(
        "--center", action="store_true", help="subtract each matrix's mean before the SVD"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cli.setup_logging()
    return cli.guarded(run, args)


def run(args: argparse.Namespace) -> int:
    if not 0 < args.energy <= 1:
        raise UserError(f"--energy {args.energy}: must be in (0, 1]")
    samples = folder_samples(args.images)[: args.limit]
    # No --size: native, or for a zoo name the size its entry's config evaluates at.
    size = {} if args.size is None else {"size": parse_size(args.size)}
    predictor = Predictor.from_checkpoint(
        args.checkpoint, device=args.device, channels_last=False, **size
    )
    frames = ((sample.name, read_image(sample.image)) for sample in samples)
    report = measure(
        predictor.model, frames, predictor.size, args.energy, predictor.device, args.center
    )
    paths = write_report(report, args.out)
    print(format_report(report))
    print(f"wrote {paths['txt']}, {paths['csv'].name}, {paths['png'].name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
