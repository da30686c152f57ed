"""Score saved prediction maps against ground-truth masks.

    python cal_from_mask.py CONFIG [--set KEY=VALUE ...] [--pred DIR] [--protocol ...]
    python cal_from_mask.py --pred DIR --masks DIR [--threshold 0.5]
                            [--protocol standard|lrrnet] [--json FILE] [--allow-missing]
                            [--strict-sizes]

With a CONFIG, scores ``results/<name>/`` against the config's test masks, with the
config's ``eval.threshold`` and ``eval.protocol`` unless given here. ``DIR`` may be a results
folder of ``inference.py`` (``mat/`` and ``img/``), a folder of ``.mat`` files (variable
``T``), or a folder of ``.png`` maps (value / 255); masks are ``<name>.png`` or
``<name>_pixels0.png``. Prints the table and Pd by target area, and writes ``metrics.json``
(with ``pd_by_area``), ``metrics.txt``, ``roc.mat``, ``roc.png`` and the Pd–Fa curve over
thresholds 0.05 … 0.95 (``pd_fa.csv``, ``pd_fa.png``) next to the predictions (or where
``--json`` says).

Each map is scored at its mask's resolution: a prediction of another size than its mask (the
mask drawn on a larger copy of the frame, as SIRST v1 ``Misc_111``) is resized to the mask,
bilinearly, with a warning naming it; ``--strict-sizes`` (or a CONFIG's
``data.strict_sizes``) makes that an error.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lrrnet import cli
from lrrnet.config import load_config
from lrrnet.data import splits_from_config
from lrrnet.engine.scoring import score_folder
from lrrnet.metrics import PROTOCOLS, THRESHOLD, format_area_table, format_table


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = cli.parser(__doc__)
    parser.add_argument("--pred", help="predictions folder (default with CONFIG: results/<name>)")
    parser.add_argument("--masks", help="mask folder (default with CONFIG: its test masks)")
    parser.add_argument(
        "--threshold", type=cli.in_domain(THRESHOLD), help="positive when p > threshold (0.5)"
    )
    parser.add_argument("--protocol", choices=PROTOCOLS, help="standard (default) or lrrnet")
    parser.add_argument("--json", help="metrics.json path; the other files go beside it")
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
    args = parser.parse_args(argv)
    if args.config is None and not (args.pred and args.masks):
        parser.error("give a CONFIG, or both --pred DIR and --masks DIR")
    if args.config is None and args.overrides:
        parser.error("--set needs a CONFIG")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cli.setup_logging()
    return cli.guarded(run, args)


def run(args: argparse.Namespace) -> int:
    pred, masks = args.pred, args.masks
    threshold, protocol = args.threshold, args.protocol
    strict_sizes = args.strict_sizes
    if args.config is not None:
        cfg = load_config(args.config, args.overrides)
        pred = pred or Path(cfg["paths"]["results"]) / cfg["name"]
        if masks is None:
            splits = splits_from_config(cfg)
            masks = {s.name: s.mask for s in splits.test if s.mask is not None}
        threshold = cfg["eval"]["threshold"] if threshold is None else threshold
        protocol = protocol or cfg["eval"]["protocol"]
        strict_sizes = strict_sizes or cfg["data"]["strict_sizes"]
    results = score_folder(
        pred,
        masks,
        threshold=0.5 if threshold is None else threshold,
        protocol=protocol or "standard",
        allow_missing=args.allow_missing,
        json_path=args.json,
        strict_sizes=strict_sizes,
    )
    print(format_table(results))
    print("\nPd by target area (px)\n" + format_area_table(results["pd_by_area"]))
    skipped = {
        "predictions without a mask": results["n_missing_mask"],
        "masks without a prediction": results["n_missing_prediction"],
        "size mismatches": results["n_size_mismatch"],
    }
    if any(skipped.values()):
        print("skipped: " + ", ".join(f"{count} {what}" for what, count in skipped.items()))
    print(
        f"wrote {results['report']['json']} "
        "(+ metrics.txt, roc.mat, roc.png, pd_fa.csv, pd_fa.png beside it)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
