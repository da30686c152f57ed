"""Time lrrnet.metrics against a straightforward per-threshold implementation.

    python tools/benchmark_metrics.py [--num 200] [--reference-num 10] [--size 512] [--seed 0]

Scores ``--num`` synthetic prediction/mask pairs (random blobs, seeded) with
:class:`lrrnet.metrics.MetricAccumulator`, and the first ``--reference-num`` of them with a
plain implementation written the way the field's evaluation code is (scikit-image labels and
regionprops, one thresholded pass per ROC threshold per image), whose time per frame is
extrapolated. Checks that both give the same IoU, nIoU, Pd, Fa and AUC on that subset.
The plain implementation is :mod:`lrrnet.engine.metrics_reference`: the yardstick, not a
code path.
"""

from __future__ import annotations

import sys

from lrrnet.cli import non_negative_int, parser, positive_int
from lrrnet.engine.metrics_reference import compare_metrics


def main(argv: list[str] | None = None) -> int:
    arguments = parser(__doc__, config=None)
    arguments.add_argument(
        "--num", type=positive_int, default=200, help="pairs scored by the accumulator"
    )
    arguments.add_argument(
        "--reference-num", type=positive_int, default=10, help="pairs for the reference"
    )
    arguments.add_argument("--size", type=positive_int, default=512)
    arguments.add_argument("--seed", type=non_negative_int, default=0)
    args = arguments.parse_args(argv)

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


if __name__ == "__main__":
    sys.exit(main())
