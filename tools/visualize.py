"""Look at what the model sees: a panel per image, the worst images, ROC curves.

    python tools/visualize.py CONFIG [--set KEY=VALUE ...] [--checkpoint PATH] [--out DIR]
                              [--threshold T] [--limit N]
    python tools/visualize.py --pred DIR --images DIR [--masks DIR] --out DIR
    python tools/visualize.py --roc results/a results/b [--labels A B] --out roc.png [--log-fpr]

A panel shows input | background D | target probability | detection | ground truth, with
matched targets green, missed targets red and false alarms yellow. CONFIG mode runs the
model (best.pth of the newest run unless --checkpoint) on the test split and writes
OUT/<name>.png (default OUT: results/<config name>/vis); both panel modes also write
OUT/worst.png, the images of lowest IoU, when masks are known. --pred reads saved maps as
cal_from_mask.py does; D comes from PRED/background/<name>.png or the .mat variable D.
--roc plots the roc.mat of folders scored by cal_from_mask.py.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lrrnet import cli
from lrrnet.config import load_config
from lrrnet.engine import panels
from lrrnet.engine.scoring import read_roc
from lrrnet.errors import UserError
from lrrnet.metrics import THRESHOLD
from lrrnet.visualize import FIGURE_SUFFIXES, roc_plot


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = cli.parser(__doc__)
    parser.add_argument(
        "--checkpoint", help=".pth checkpoint, released .pkl or a zoo name (CONFIG mode)"
    )
    parser.add_argument("--pred", help="saved predictions: results folder or folder of maps")
    parser.add_argument("--images", help="input frames of the predictions (with --pred)")
    parser.add_argument("--masks", help="ground-truth masks (with --pred)")
    parser.add_argument("--roc", nargs="+", metavar="DIR", help="results folders with roc.mat")
    parser.add_argument("--labels", nargs="+", help="legend labels for --roc, one per folder")
    parser.add_argument("--log-fpr", action="store_true", help="log-scale FPR axis (--roc)")
    parser.add_argument("--out", help="panel folder, or the plot file with --roc")
    parser.add_argument(
        "--threshold", type=cli.in_domain(THRESHOLD), help="positive when p > T (default 0.5)"
    )
    parser.add_argument("--limit", type=cli.positive_int, help="only the first N images")
    parser.add_argument(
        "--worst", type=cli.non_negative_int, default=16, help="images on worst.png (0: none)"
    )
    args = parser.parse_args(argv)
    modes = [args.config is not None, args.pred is not None, args.roc is not None]
    if sum(modes) != 1:
        parser.error("give one of: CONFIG, --pred DIR --images DIR, --roc DIR [DIR ...]")
    if args.pred is not None and not (args.images and args.out):
        parser.error("--pred needs --images DIR and --out DIR")
    if args.roc is not None and not args.out:
        parser.error("--roc needs --out FILE (e.g. roc.png)")
    if args.roc is not None and Path(args.out).suffix.lower() not in FIGURE_SUFFIXES:
        parser.error(f"--out {args.out}: a figure is {', '.join(FIGURE_SUFFIXES)}")
    if args.config is None and args.overrides:
        parser.error("--set needs a CONFIG")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cli.setup_logging()
    return cli.guarded(run, args)


def run(args: argparse.Namespace) -> int:
    if args.roc is not None:
        labels = args.labels or [None] * len(args.roc)
        if len(labels) != len(args.roc):
            raise UserError(f"--labels has {len(labels)} names for {len(args.roc)} --roc folders")
        curves = [read_roc(folder, label) for folder, label in zip(args.roc, labels, strict=True)]
        path = roc_plot(curves, args.out, log_fpr=args.log_fpr)
        print(f"wrote {path}")
        return 0

    report = panels.VisualReport()
    threshold = 0.5 if args.threshold is None else args.threshold
    if args.pred is not None:
        items, total = panels.read_saved_predictions(
            args.pred, args.images, args.masks, limit=args.limit, report=report
        )
        out_dir = Path(args.out)
    else:
        cfg = load_config(args.config, args.overrides)
        threshold = cfg["eval"]["threshold"] if args.threshold is None else args.threshold
        items, total = panels.predict_test_split(
            cfg, args.checkpoint, limit=args.limit, report=report
        )
        out_dir = Path(args.out) if args.out else Path(cfg["paths"]["results"], cfg["name"], "vis")
    panels.write_panels(
        items,
        out_dir,
        threshold=threshold,
        num_worst=args.worst,
        total=total,
        progress=True,
        report=report,
    )
    print(f"wrote {report.written} panel(s) to {out_dir}")
    if report.sheet_path is not None:
        worst = ", ".join(f"{entry.name} ({entry.iou:.3f})" for entry in report.worst[:3])
        print(f"wrote {report.sheet_path}; lowest IoU: {worst}")
    if report.failures:
        names = ", ".join(name for name, _ in report.failures)
        print(
            f"error: {len(report.failures)} image(s) could not be drawn: {names}", file=sys.stderr
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
