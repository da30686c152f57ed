"""Time lrrnet.metrics against a straightforward per-threshold implementation.

    python tools/benchmark_metrics.py [--num 200] [--reference-num 10] [--size 512] [--seed 0]
    python tools/benchmark_metrics.py --end-to-end [--num 100] [--repeats 3]
                                      [--cal-from-mask OTHER_CHECKOUT/cal_from_mask.py]
                                      [--pred RESULTS_DIR --masks MASK_DIR] [--no-plots]

Scores ``--num`` synthetic prediction/mask pairs (random blobs, seeded) with
:class:`lrrnet.metrics.MetricAccumulator`, and the first ``--reference-num`` of them with a
plain implementation written the way the field's evaluation code is (scikit-image labels and
regionprops, one thresholded pass per ROC threshold per image), whose time per frame is
extrapolated. Checks that both give the same IoU, nIoU, Pd, Fa and AUC on that subset.
The plain implementation is :mod:`lrrnet.engine.metrics_reference`: the yardstick, not a
code path.

``--end-to-end`` writes ``--num`` such pairs as files (``.mat`` maps, ``.png`` masks) to a
temporary folder and times, each in a fresh interpreter, ``cal_from_mask.py`` (with its
Pd–Fa curve and report files) and the reference reading the same files; ``--cal-from-mask``
times another checkout's script instead (with that checkout's ``lrrnet``), e.g. an older
commit's, and ``--repeats`` runs each that often, interleaved, keeping the fastest.
``--pred`` and ``--masks`` time both on real maps instead: a results folder of
``inference.py`` (``mat/``) and its ``<name>.png`` masks. ``--no-plots`` times the script
without its two figures.
"""

from __future__ import annotations

import argparse
import sys

from lrrnet.cli import non_negative_int, parser, positive_int
from lrrnet.engine.metrics_reference import compare_metrics, time_end_to_end


def main(argv: list[str] | None = None) -> int:
    arguments = parser(__doc__, config=None)
    arguments.add_argument(
        "--num",
        type=positive_int,
        help="pairs scored by the accumulator (200), or by both with --end-to-end (100)",
    )
    arguments.add_argument(
        "--reference-num", type=positive_int, default=10, help="pairs for the reference"
    )
    arguments.add_argument("--size", type=positive_int, default=512)
    arguments.add_argument("--seed", type=non_negative_int, default=0)
    arguments.add_argument(
        "--end-to-end", action="store_true", help="time cal_from_mask.py on files instead"
    )
    arguments.add_argument(
        "--cal-from-mask", default="cal_from_mask.py", help="the script --end-to-end times"
    )
    arguments.add_argument(
        "--repeats", type=positive_int, default=1, help="--end-to-end runs of each"
    )
    arguments.add_argument("--pred", help="--end-to-end on this results folder (mat/ maps)")
    arguments.add_argument("--masks", help="the masks of --pred (<name>.png)")
    arguments.add_argument(
        "--no-plots", action="store_true", help="--end-to-end: the script without its figures"
    )
    args = arguments.parse_args(argv)
    if (args.pred is None) != (args.masks is None) or (args.pred and not args.end_to_end):
        arguments.error("--pred and --masks go together, with --end-to-end")
    if args.end_to_end:
        return end_to_end(args)
    args.num = args.num or 200

    result = compare_metrics(args.num, args.reference_num, args.size, args.seed)
    fast, plain = result["fast"], result["reference"]
    fast_per_frame, plain_per_frame = result["fast_s_per_frame"], result["reference_s_per_frame"]
    print(f"{result['num']} pairs of {args.size}×{args.size}, {fast['n_targets']} targets")
    print(f"accumulator: {1e3 * fast_per_frame:8.2f} ms/frame over {result['num']} frames")
    print(
        f"reference:   {1e3 * plain_per_frame:8.2f} ms/frame over {result['reference_num']} frames"
    )
    print(f"speed-up:    {plain_per_frame / fast_per_frame:8.1f}×")
    print("on the subset   " + "  ".join(f"{key}={plain[key]:.6f}" for key in plain))
    print(f"largest difference accumulator vs reference: {result['worst']:.1e}")
    if result["worst"] > 1e-12:
        print("MISMATCH between accumulator and reference", file=sys.stderr)
        return 1
    return 0


def end_to_end(args: argparse.Namespace) -> int:
    folders = (args.pred, args.masks) if args.pred else None
    result = time_end_to_end(
        args.num or 100,
        args.size,
        args.seed,
        args.cal_from_mask,
        args.repeats,
        folders=folders,
        script_options=["--no-plots"] if args.no_plots else [],
    )
    script_s, reference_s = result["script_s"], result["reference_s"]
    what = f"of {args.size}×{args.size} as files" if folders is None else f"in {args.pred}"
    print(f"{result['num']} pairs {what}, the fastest of {args.repeats} run(s)")
    for name, seconds, runs in (
        (args.cal_from_mask, script_s, result["script_runs"]),
        ("reference", reference_s, result["reference_runs"]),
    ):
        print(f"{name}: {seconds:.2f} s (runs: {' '.join(f'{t:.2f}' for t in runs)})")
    script_cpu, reference_cpu = result["script_cpu_s"], result["reference_cpu_s"]
    print(f"CPU seconds: {script_cpu:.2f} against {reference_cpu:.2f}")
    print(f"speed-up: {reference_s / script_s:.1f}× (CPU time {reference_cpu / script_cpu:.1f}×)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
