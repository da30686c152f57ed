"""Run a classical baseline (top-hat, Max-Median, IPI, MPCM, PSTNN) and write maps like inference.

    python tools/baselines.py CONFIG --method NAME [--tune] [--set KEY=VALUE ...] [--out DIR]
    python tools/baselines.py --images DIR --method NAME [--out DIR]

NAME is tophat, maxmedian, ipi, mpcm or pstnn (docs/baselines.md describes each and its
parameters). Both forms write OUT/img/<name>.png and OUT/mat/<name>.mat, so cal_from_mask.py
scores them unchanged. Method parameters go through --param, e.g. --param size=7 --param
shape=square (top-hat) or --param patch=30 --param step=5 (IPI); --param k=4 thresholds each
frame at mean + 4·std of its response instead of a fixed gain. --tune chooses the element
size (top-hat) or line length (Max-Median) and the threshold (a fixed gain or a per-frame k)
on the config's validation split, never on test, prints the choice and its val score, writes
them to OUT/tuning.json, then writes the test predictions with them. --workers N computes N
frames at once, one process each (IPI spends seconds a frame in one BLAS thread, so one
worker per core).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

# One BLAS thread unless the user says otherwise, set before NumPy loads: IPI's matrices are
# small (2500×484 for a 256×256 frame), and on a busy machine two OpenBLAS threads stall
# each other and make a frame many times slower (docs/baselines.md, "Top-hat and IPI").
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from lrrnet import cli
from lrrnet.baselines import (
    BASELINES,
    parse_params,
    run_baseline_on_config,
    run_baseline_on_folder,
)
from lrrnet.baselines.tune import tune_baseline
from lrrnet.config import load_config
from lrrnet.data import splits_from_config
from lrrnet.data.io import check_prediction_folder
from lrrnet.errors import ConfigError
from lrrnet.files import write_json_atomic
from lrrnet.metrics import format_table


def _size(text: str) -> int | None:
    if text == "native":
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected native or an integer, got {text!r}") from None


def _tune(cfg: dict, method: str, fixed: dict, out_dir: Path, workers: int) -> dict:
    """Choose the parameters on the validation split; print and record the choice."""
    if cfg["data"]["val_split"] == "test":
        raise ConfigError("--tune chooses on validation, never on test: data.val_split='test'")
    splits = splits_from_config(cfg)
    result = tune_baseline(method, splits.val, fixed=fixed, workers=workers)
    chosen = ", ".join(
        f"{key}={value:g}" if isinstance(value, float) else f"{key}={value}"
        for key, value in result.best.params.items()
    )
    print(f"{method}: chose {chosen} on {splits.val_source} ({result.n_images} images)")
    for rule, choice in sorted(result.best_per_rule.items()):
        print(
            f"  best with {'a fixed gain' if rule == 'gain' else 'a per-frame k'}: {choice.params}, val IoU {100 * choice.iou:.2f}"
        )
    print(format_table([(f"{method} val", result.val_metrics)]))
    out_dir.mkdir(parents=True, exist_ok=True)
    record = {
        "method": method,
        "params": result.best.params,
        "selected_on": splits.val_source,
        "n_val_images": result.n_images,
        "val": {k: v for k, v in result.val_metrics.items() if not k.startswith("roc_")},
        "best_per_rule": {
            rule: {"params": c.params, "val_miou": c.iou}
            for rule, c in result.best_per_rule.items()
        },
    }
    write_json_atomic(out_dir / "tuning.json", record)  # strict JSON: an undefined Pd is null
    return dict(result.best.params)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = cli.parser(__doc__)
    parser.add_argument("--method", required=True, choices=sorted(BASELINES))
    parser.add_argument("--images", help="run on every image of this folder instead")
    parser.add_argument(
        "--out", help="results folder (default results/<config name or folder>_<method>)"
    )
    parser.add_argument(
        "--param",
        dest="params",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="method parameter, e.g. size=9, patch=50",
    )
    parser.add_argument(
        "--size",
        type=_size,
        default=None,
        metavar="native|N",
        help="run on the image as it is (default) or resized to N×N",
    )
    parser.add_argument(
        "--tune",
        action="store_true",
        help="choose size and threshold on the config's validation split, then run on test",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="frames computed at once, one process each (default 1; IPI: one per core)",
    )
    args = parser.parse_args(argv)
    if (args.config is None) == (args.images is None):
        parser.error("give either CONFIG or --images DIR")
    if args.tune and (args.images is not None or args.size is not None):
        parser.error("--tune needs a CONFIG and runs at the frames' own size (no --size)")
    if args.images is not None and args.overrides:
        parser.error("--set needs a CONFIG")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cli.setup_logging()
    return cli.guarded(run, args)


def run(args: argparse.Namespace) -> int:
    params = parse_params(args.params)
    # The output folder is checked before any frame is read (tuning reads a whole split).
    if args.images is not None:
        out = args.out or Path("results") / f"{Path(args.images).resolve().name}_{args.method}"
        check_prediction_folder(out, "--out")
        outcome = run_baseline_on_folder(
            args.images, args.method, out, params, args.size, args.workers
        )
    else:
        cfg = load_config(args.config, args.overrides)
        out = Path(args.out or Path(cfg["paths"]["results"]) / f"{cfg['name']}_{args.method}")
        check_prediction_folder(out, "--out" if args.out else "paths.results")
        if args.tune:
            params = _tune(cfg, args.method, params, out, args.workers)
        outcome = run_baseline_on_config(cfg, args.method, out, params, args.size, args.workers)
    for failure in outcome.failures:
        print(f"error: {failure}", file=sys.stderr)
    print(outcome.summary(args.method))
    return 2 if outcome.failures else 0


if __name__ == "__main__":
    sys.exit(main())
