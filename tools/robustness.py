"""Sweep sensor corruptions over a detector's test frames and score each level.

    python tools/robustness.py --checkpoint CKPT --images DIR [--masks DIR] --out OUT \\
        --noise gaussian=0,10,20,30 --noise stripe=2,5 --noise blur=1,2 [--seed 0]
    python tools/robustness.py --method tophat|ipi [--param KEY=VALUE ...] --images DIR ...
    python tools/robustness.py --compare NAME=CSV [--compare NAME=CSV ...] --out FIGURE.png \\
        [--metric miou|niou|f1|pd]

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

--compare runs nothing: it draws the robustness.csv of several sweeps on one figure (the
metric, IoU by default, against level, one panel per kind, one line per NAME; a plain CSV is
named by its folder), writes it to --out (.png, .pdf or .svg) and prints the same points.
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
    COMPARE_METRICS,
    CORRUPTIONS,
    CSV_FILE,
    FIGURE_FILE,
    BaselineMaps,
    format_comparison,
    parse_compare,
    parse_noise,
    plot,
    plot_comparison,
    read_csv,
    samples_with_masks,
    sweep,
    write_csv,
)

logger = logging.getLogger("lrrnet.robustness")

FIGURE_SUFFIXES = (".png", ".pdf", ".svg")
KINDS = "\n".join(f"    {name:<11} {kind.scale}" for name, kind in CORRUPTIONS.items())


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = cli.parser(__doc__.format(kinds=KINDS), config=None)
    model = parser.add_mutually_exclusive_group(required=True)
    model.add_argument("--checkpoint", help=".pth checkpoint or released .pkl state dict")
    model.add_argument("--method", choices=sorted(BASELINES), help="a classical baseline")
    model.add_argument(
        "--compare",
        action="append",
        metavar="NAME=CSV",
        help="a sweep's robustness.csv to draw, named (else named by its folder); repeatable",
    )
    parser.add_argument(
        "--param",
        dest="params",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="baseline parameter (with --method), e.g. size=9 or k=4",
    )
    parser.add_argument("--images", help="folder of frames (DIR or DIR/images)")
    parser.add_argument("--masks", help="mask folder (default: DIR/masks beside the frames)")
    parser.add_argument(
        "--out",
        required=True,
        help="folder for robustness.csv and .png; with --compare, the figure file",
    )
    parser.add_argument(
        "--metric",
        choices=list(COMPARE_METRICS),
        help="with --compare: the metric drawn (default miou)",
    )
    parser.add_argument(
        "--noise",
        action="append",
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
    sweep_only = {"--images": args.images, "--masks": args.masks, "--noise": args.noise}
    if args.compare is not None:
        given = [flag for flag, value in sweep_only.items() if value is not None]
        if given:
            parser.error(f"argument {given[0]}: not allowed with argument --compare")
        if Path(args.out).suffix.lower() not in FIGURE_SUFFIXES:
            suffixes = ", ".join(FIGURE_SUFFIXES)
            parser.error(f"--out {args.out}: with --compare, a figure file ({suffixes})")
        args.metric = args.metric or "miou"
    else:
        if args.metric is not None:
            parser.error("--metric needs --compare")
        missing = [flag for flag in ("--images", "--noise") if sweep_only[flag] is None]
        if missing:
            parser.error(f"the following arguments are required: {', '.join(missing)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cli.setup_logging()
    return cli.guarded(run, args)


def run(args: argparse.Namespace) -> int:
    if args.compare is not None:
        return compare(args)
    out = check_writable(args.out, "--out")  # before a frame is read, not after the sweep
    for name in (CSV_FILE, FIGURE_FILE):
        check_writable(out / name, "--out", file=True)  # not a folder of that name
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
    csv_path = write_csv(rows, out / CSV_FILE)
    plot(rows, out / FIGURE_FILE, title=f"{name}, {len(samples)} frames")
    print(format_table([(condition.label, metrics) for condition, metrics in rows]))
    print(f"wrote {csv_path} and {out / FIGURE_FILE}")
    return 0


def compare(args: argparse.Namespace) -> int:
    figure = check_writable(args.out, "--out", file=True)  # before a CSV is read
    sweeps = [(name, read_csv(path)) for name, path in parse_compare(args.compare)]
    plot_comparison(sweeps, figure, metric=args.metric)
    print(format_comparison(sweeps, metric=args.metric))
    print(f"wrote {figure}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
