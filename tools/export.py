"""Export a checkpoint to ONNX, checked against PyTorch.

    python tools/export.py --checkpoint best.pth --out lrrnet.onnx
    python tools/export.py --checkpoint LRRNet_IRSTD1k.pkl --out lrrnet.onnx --opset 18
    python tools/export.py --checkpoint sirst_cpu_bf16 --out lrrnet.onnx   # a zoo name

The file takes ``image`` (B×1×H×W float32 in [0, 1]; batch, height and width dynamic, H and
W multiples of 8) and returns ``reconstruction`` (D) and ``target_logits`` (T; probability =
sigmoid(T)). Before it is kept, ONNX Runtime runs it on a few random inputs beside PyTorch:
the largest probability difference is printed and an export off by more than --tolerance
is deleted and refused. Needs the deploy extra: pip install -e '.[deploy]'.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lrrnet import cli
from lrrnet.engine.backends import (
    EXPORT_TOLERANCE,
    INPUT_NAME,
    OPSET,
    OUTPUT_NAMES,
    export_checked,
)
from lrrnet.engine.predictor import model_from_checkpoint


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = cli.parser(__doc__, config=None)
    parser.add_argument(
        "--checkpoint", required=True, help=".pth checkpoint, released .pkl or a zoo name"
    )
    parser.add_argument("--out", required=True, type=Path, help="the .onnx file to write")
    parser.add_argument(
        "--opset", type=int, default=OPSET, help=f"ONNX opset (≥ 18, default {OPSET})"
    )
    parser.add_argument(
        "--tolerance",
        type=cli.positive_float,
        default=EXPORT_TOLERANCE,
        help="largest accepted |Δp| against PyTorch",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cli.setup_logging()
    return cli.guarded(run, args)


def run(args: argparse.Namespace) -> int:
    model = model_from_checkpoint(args.checkpoint)
    difference = export_checked(model, args.out, opset=args.opset, tolerance=args.tolerance)
    print(
        f"wrote {args.out} (opset {args.opset}): input {INPUT_NAME} B×1×H×W, outputs "
        f"{' and '.join(OUTPUT_NAMES)}; max |Δp| against PyTorch {difference:.2e} "
        f"(limit {args.tolerance:.0e})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
