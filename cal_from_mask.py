"""Score saved prediction maps against ground-truth masks.

    python cal_from_mask.py CONFIG [--set KEY=VALUE ...] [--pred DIR] [--protocol ...]
    python cal_from_mask.py --pred DIR --masks DIR [--threshold 0.5]
                            [--protocol standard|lrrnet] [--report DIR | --json FILE]
                            [--allow-missing] [--strict-sizes] [--no-plots]

With a CONFIG, scores ``results/<name>/`` against the config's test masks, with the
config's ``eval.threshold`` and ``eval.protocol`` unless given here. ``DIR`` may be a results
folder of ``inference.py`` (``mat/`` and ``img/``), a folder of ``.mat`` files (variable
``T``), or a folder of ``.png`` maps (value / 255); masks are ``<name>.png`` or
``<name>_pixels0.png``. Prints the table and Pd by target area, and writes ``metrics.json``
(with ``pd_by_area``), ``metrics.txt``, ``roc.mat``, ``roc.png`` and the Pd–Fa curve over
thresholds 0.05 … 0.95 (``pd_fa.csv``, ``pd_fa.png``): at the top of a results folder, whose
maps are read from ``mat/`` or ``img/`` only, and into ``DIR-report/`` beside a flat folder of
maps (or where ``--report`` or ``--json`` says). Never among the maps or the masks, so a frame
of any name is scored and no report file replaces one. ``--no-plots`` leaves out the two
figures (the same numbers stay in ``roc.mat`` and ``pd_fa.csv``).

Each map is scored at its mask's resolution: a prediction of another size than its mask (the
mask drawn on a larger copy of the frame, as SIRST v1 ``Misc_111``) is resized to the mask,
bilinearly, with a warning naming it; ``--strict-sizes`` (or a CONFIG's
``data.strict_sizes``) makes that an error.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from pathlib import Path

from lrrnet import cli
from lrrnet.engine.scoring import (
    TABLE_SUFFIXES,
    curves_plot,
    named_folder,
    report_json_path,
    score_folder,
    score_folders,
    table_rows,
    write_table,
)
from lrrnet.errors import summarize
from lrrnet.files import check_writable
from lrrnet.metrics import PROTOCOLS, THRESHOLD, format_area_table, format_table
from lrrnet.visualize import FIGURE_SUFFIXES


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = cli.parser(__doc__)
    parser.add_argument(
        "--pred",
        action="append",
        metavar="[NAME=]DIR",
        help="predictions folder (default with CONFIG: results/<name>); repeat it for one "
        "table of many, NAME=DIR names a row and a repeated NAME is a group (mean ± std)",
    )
    parser.add_argument("--masks", help="mask folder (default with CONFIG: its test masks)")
    parser.add_argument(
        "--threshold", type=cli.in_domain(THRESHOLD), help="positive when p > threshold (0.5)"
    )
    parser.add_argument("--protocol", choices=PROTOCOLS, help="standard (default) or lrrnet")
    parser.add_argument(
        "--report",
        help="folder for the report files (default: a results folder's top level, or "
        "DIR-report/ beside a flat folder of maps)",
    )
    parser.add_argument("--json", help="metrics.json path; the other files go beside it")
    parser.add_argument(
        "--table", metavar="OUT.md|OUT.csv|OUT.tex", help="one row per --pred NAME (or DIR)"
    )
    parser.add_argument(
        "--curves", metavar="OUT.png", help="every --pred folder's ROC and Pd–Fa curves together"
    )
    parser.add_argument(
        "--allow-missing",
        action="store_true",
        help="skip and count unpaired files and size mismatches instead of failing",
    )
    parser.add_argument(
        "--strict-sizes",
        action="store_true",
        help="a prediction of another size than its mask is an error (default: resized to it)",
    )
    parser.add_argument(
        "--no-plots",
        action="store_true",
        help="write no roc.png or pd_fa.png (their numbers stay in roc.mat and pd_fa.csv)",
    )
    args = parser.parse_args(argv)
    if args.config is None and not (args.pred and args.masks):
        parser.error("give a CONFIG, or both --pred DIR and --masks DIR")
    if args.config is None and args.overrides:
        parser.error("--set needs a CONFIG")
    if args.pred and len(args.pred) > 1 and (args.json or args.report):
        parser.error("--json and --report name one folder's report: give one --pred")
    if args.table and Path(args.table).suffix.lower() not in TABLE_SUFFIXES:
        parser.error(f"--table {args.table}: a table is {', '.join(TABLE_SUFFIXES)}")
    if args.curves and Path(args.curves).suffix.lower() not in FIGURE_SUFFIXES:
        parser.error(f"--curves {args.curves}: a figure is {', '.join(FIGURE_SUFFIXES)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cli.setup_logging()
    return cli.guarded(run, args)


def run(args: argparse.Namespace) -> int:
    preds, masks = args.pred or [], args.masks
    threshold, protocol = args.threshold, args.protocol
    strict_sizes = args.strict_sizes
    if args.config is not None:
        # Here, not at the top: the config schema imports PyTorch (1–2 s), and scoring a
        # folder of maps against a folder of masks needs neither.
        from lrrnet.config import load_config
        from lrrnet.data import splits_from_config

        cfg = load_config(args.config, args.overrides)
        preds = preds or [str(Path(cfg["paths"]["results"]) / cfg["name"])]
        if masks is None:
            splits = splits_from_config(cfg)
            masks = {s.name: s.mask for s in splits.test if s.mask is not None}
        threshold = cfg["eval"]["threshold"] if threshold is None else threshold
        protocol = protocol or cfg["eval"]["protocol"]
        strict_sizes = strict_sizes or cfg["data"]["strict_sizes"]
    options = {
        "threshold": 0.5 if threshold is None else threshold,
        "protocol": protocol or "standard",
        "allow_missing": args.allow_missing,
        "strict_sizes": strict_sizes,
        "plots": not args.no_plots,
    }
    check_output_places(args, preds, masks)
    if len(preds) > 1 or args.table or args.curves:
        return run_many(args, preds, masks, options)
    results = score_folder(
        named_folder(preds[0])[1], masks, out_dir=args.report, json_path=args.json, **options
    )
    print(format_table(results))
    print("\nPd by target area (px)\n" + format_area_table(results["pd_by_area"]))
    if skipped := skipped_line(results):
        print(skipped)
    beside = [Path(path).name for kind, path in results["report"].items() if kind != "json"]
    print(f"wrote {results['report']['json']} (+ {', '.join(beside)} beside it)")
    return 0


def check_output_places(args: argparse.Namespace, preds: list[str], masks) -> None:
    """Refuse, before any frame is scored, a report folder (each --pred's), --json, --table
    or --curves that cannot be written (:func:`lrrnet.files.check_writable`)."""
    mask_dir = None if isinstance(masks, Mapping) else masks
    for text in preds:
        folder = named_folder(text)[1]
        if not Path(folder).is_dir():
            continue  # scoring names it as not found
        json_path = report_json_path(folder, args.report, args.json, mask_dir)
        if args.json:
            check_writable(json_path, "--json", file=True)
        else:
            check_writable(json_path.parent, "--report" if args.report else "--pred's report")
    for flag, path in (("--table", args.table), ("--curves", args.curves)):
        if path:
            check_writable(path, flag, file=True)


def skipped_line(results: dict) -> str:
    """What scoring left out, in one line; empty when nothing was."""
    skipped = {
        "predictions without a mask": results["n_missing_mask"],
        "masks without a prediction": results["n_missing_prediction"],
        "size mismatches": results["n_size_mismatch"],
    }
    if not any(skipped.values()):
        return ""
    return "skipped: " + ", ".join(f"{count} {what}" for what, count in skipped.items())


def run_many(args: argparse.Namespace, preds: list[str], masks, options: dict) -> int:
    """Several folders (or one with --table/--curves): each scored alone, one table."""
    if len(preds) == 1:  # --json and --report name one folder's report
        options = {**options, "out_dir": args.report, "json_path": args.json}
    scored = score_folders(preds, masks, **options)
    for name, folder, results in scored:
        if skipped := skipped_line(results):
            print(f"{name} ({folder}): {skipped}")
    rows = table_rows(scored)
    print(format_table([(row.name, row.metrics) for row in rows]))
    if args.table:
        print(f"wrote {write_table(rows, args.table)}")
    if args.curves:
        print(f"wrote {curves_plot(scored, args.curves)}")
    reports = [results["report"]["json"] for _, _, results in scored]
    print(f"wrote {summarize(reports, ', ')} (+ each one's report files beside it)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
