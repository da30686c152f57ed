"""Run a classical baseline (white top-hat or IPI) and write maps like inference.

    python tools/baselines.py CONFIG --method tophat|ipi [--set KEY=VALUE ...] [--out DIR]
    python tools/baselines.py --images DIR --method tophat|ipi [--out DIR]

Both write OUT/img/<name>.png and OUT/mat/<name>.mat, so cal_from_mask.py scores them
unchanged. Method parameters go through --param, e.g. --param size=7 --param shape=square
(top-hat) or --param patch=30 --param step=5 (IPI).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

# One BLAS thread unless the user says otherwise, set before NumPy loads: IPI's matrices are
# small (2500×484 for a 256×256 frame) and on a busy 2-core machine two OpenBLAS threads
# made one frame 7-18× slower (3.4 s against 24-61 s), the threads stalling each other.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lrrnet.baselines import (  # noqa: E402
    BASELINES,
    parse_params,
    run_baseline_on_config,
    run_baseline_on_folder,
)
from lrrnet.errors import UserError  # noqa: E402


def _size(text: str) -> int | None:
    if text == "native":
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected native or an integer, got {text!r}") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", nargs="?", help="config name from configs/ or a path")
    parser.add_argument("--method", required=True, choices=sorted(BASELINES))
    parser.add_argument("--images", help="run on every image of this folder instead")
    parser.add_argument(
        "--out", help="results folder (default results/<config name or folder>_<method>)"
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="config override (CONFIG mode)",
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
    args = parser.parse_args(argv)
    if (args.config is None) == (args.images is None):
        parser.error("give either CONFIG or --images DIR")
    if args.images is not None and args.overrides:
        parser.error("--set needs a CONFIG")

    try:
        params = parse_params(args.params)
        if args.images is not None:
            out = args.out or Path("results") / f"{Path(args.images).resolve().name}_{args.method}"
            run = run_baseline_on_folder(args.images, args.method, out, params, args.size)
        else:
            from lrrnet.config import load_config

            cfg = load_config(args.config, args.overrides)
            run = run_baseline_on_config(cfg, args.method, args.out, params, args.size)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    for failure in run.failures:
        print(f"error: {failure}", file=sys.stderr)
    print(run.summary(args.method))
    return 2 if run.failures else 0


if __name__ == "__main__":
    sys.exit(main())
