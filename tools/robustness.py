"""Sweep sensor corruptions over a detector's test frames and score each level.

    python tools/robustness.py --checkpoint CKPT --images DIR [--masks DIR] --out OUT \\
        --noise gaussian=0,10,20,30 --noise stripe=2,5 --noise blur=1,2 [--seed 0]
    python tools/robustness.py --method tophat|ipi [--param KEY=VALUE ...] --images DIR ...

Each --noise KIND=LEVELS gives one row per level; level 0 of any kind is the clean frame,
scored once for all kinds, and equals scoring inference.py's maps with cal_from_mask.py
(same --size, --threshold and --protocol). The kinds and what a level means:

{kinds}

The noise of a frame is seeded by --seed and its name: the same command writes the same
CSV, and gaussian=S is inference.py --noise-sigma S --noise-seed SEED. Writes
OUT/robustness.csv (noise, level, miou, niou, f1, pd, fa as fractions) and
OUT/robustness.png (IoU and Pd against level, one panel per kind), and prints the table.
--method runs a classical baseline (its parameters through --param, e.g. those
tools/baselines.py --tune chose) in place of the network. Masks default to DIR/masks.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

# One BLAS thread unless the user says otherwise, set before NumPy loads, as
# tools/baselines.py does for IPI's small SVDs (docs/baselines.md, "Top-hat and IPI").
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import torch

from lrrnet import cli
from lrrnet.baselines import BASELINES, parse_params
from lrrnet.engine.inference import checkpoint_default_size
from lrrnet.engine.predictor import Predictor, parse_size
from lrrnet.files import check_writable
from lrrnet.metrics import PROTOCOLS, THRESHOLD, format_table
from lrrnet.robustness import (
    CORRUPTIONS,
    BaselineMaps,
    parse_noise,
    plot,
    samples_with_masks,
    sweep,
    write_csv,
)

logger = logging.getLogger("lrrnet.robustness")

KINDS = "\n".join(f"    {name:<11} {kind.scale}" for name, kind in CORRUPTIONS.items())


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = cli.parser(__doc__.format(kinds=KINDS), config=None)
    model = parser.add_mutually_exclusive_group(required=True)
    model.add_argument("--checkpoint", help=".pth checkpoint or released .pkl state dict")
    model.add_argument("--method", choices=sorted(BASELINES), help="a classical baseline")
    parser.add_argument(
        "--param",
        dest="params",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="baseline parameter (with --method), e.g. size=9 or k=4",
    )
    parser.add_argument("--images", required=True, help="folder of frames (DIR or DIR/images)")
    parser.add_argument("--masks", help="mask folder (default: DIR/masks beside the frames)")
    parser.add_argument("--out", required=True, help="folder for robustness.csv and .png")
    parser.add_argument(
        "--noise",
        action="append",
        required=True,
        metavar="KIND=L1,L2,...",
        help=f"a corruption kind and its levels; repeatable; kinds: {', '.join(CORRUPTIONS)}",
    )
    parser.add_argument("--seed", type=cli.non_negative_int, default=0, help="noise seed")
    parser.add_argument(
        "--size",
        help="'native' or N (resize to N×N), as inference.py; default: the checkpoint's "
        "(its stored config, else 512), native for a baseline",
    )
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda")
    parser.add_argument("--batch-size", type=cli.positive_int, default=8)
    parser.add_argument(
        "--threshold", type=cli.in_domain(THRESHOLD), default=0.5, help="positive when p > t"
    )
    parser.add_argument("--protocol", choices=PROTOCOLS, default="standard")
    args = parser.parse_args(argv)
    if args.params and args.method is None:
        parser.error("--param needs --method")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cli.setup_logging()
    return cli.guarded(run, args)


def run(args: argparse.Namespace) -> int:
    out = check_writable(args.out, "--out")  # before a frame is read, not after the sweep
    conditions = parse_noise(args.noise)
    samples = samples_with_masks(args.images, args.masks)
    if args.method is not None:
        size = None if args.size in (None, "native") else parse_size(args.size, multiple=1)
        detector, name = BaselineMaps(args.method, parse_params(args.params), size), args.method
    else:
        size = args.size
        if size is None:
            size, why = checkpoint_default_size(args.checkpoint)
            logger.info("size %s: %s", size, why)
        detector = Predictor.from_checkpoint(args.checkpoint, device=args.device, size=size)
        if detector.device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # frames of one size repeat
        name = Path(args.checkpoint).name
    rows = sweep(
        detector,
        samples,
        conditions,
        seed=args.seed,
        batch_size=args.batch_size,
        threshold=args.threshold,
        protocol=args.protocol,
    )
    csv_path = write_csv(rows, out / "robustness.csv")
    plot(rows, out / "robustness.png", title=f"{name}, {len(samples)} frames")
    print(format_table([(condition.label, metrics) for condition, metrics in rows]))
    print(f"wrote {csv_path} and {out / 'robustness.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
