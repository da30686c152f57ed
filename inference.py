"""Write target probability maps as OUT/img/<name>.png and OUT/mat/<name>.mat.

    python inference.py CONFIG [--set KEY=VALUE ...] [--checkpoint PATH] [--out DIR]
    python inference.py --checkpoint PATH --images DIR|FRAME|VIDEO --out DIR [--detections]

Without --checkpoint, CONFIG mode uses best.pth of the newest run of that config. The
checkpoint may be this project's .pth, a released .pkl state dict, or a name of the model
zoo (checkpoints/zoo.json), which also brings its architecture and size (docs/inference.md,
"The model zoo").
"""

import argparse
import logging
import sys
from pathlib import Path

import torch

from lrrnet import cli
from lrrnet.config import load_config
from lrrnet.data import splits_from_config
from lrrnet.data.frames import frame_source
from lrrnet.engine.backends import BACKENDS, predictor_for_backend
from lrrnet.engine.detections import DETECTIONS_FILE
from lrrnet.engine.inference import (
    check_output_folder,
    checkpoint_default_size,
    predict_to_folder,
)
from lrrnet.engine.predictor import config_eval_size, parse_size
from lrrnet.engine.run_files import newest_run_checkpoint
from lrrnet.engine.zoo import resolve_checkpoint
from lrrnet.errors import UserError
from lrrnet.metrics import THRESHOLD

logger = logging.getLogger("lrrnet.inference")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = cli.parser(__doc__)
    parser.add_argument(
        "--checkpoint", help=".pth checkpoint, released .pkl state dict, or a zoo name"
    )
    parser.add_argument(
        "--images",
        help="a folder of frames, one frame file or a video (frames named 000000, 000001, …) "
        "to run instead of a config's test split",
    )
    parser.add_argument("--out", help="output folder (default: results/<config name>)")
    parser.add_argument(
        "--size",
        help="'native' (pad to the model's multiple) or N (resize to N×N); default: the "
        "config's (with --images: the checkpoint's stored config, else 512, the recipe's; "
        "for a zoo name always its entry's config)",
    )
    parser.add_argument(
        "--save-at",
        choices=("input", "network"),
        default="input",
        help="write maps at each input's size (default) or at the network's N×N (--size N), "
        "as the original repository does; score those with --protocol lrrnet",
    )
    parser.add_argument(
        "--device", default=None, help="auto | cpu | cuda (default: config's train.device)"
    )
    parser.add_argument("--dtype", default="fp32", choices=("fp32", "bf16", "fp16"))
    parser.add_argument(
        "--backend",
        default="torch",
        choices=BACKENDS,
        help="onnxruntime/openvino run a checked, cached ONNX export on the CPU",
    )
    # Refused at parsing: a batch of 0 frames would write nothing, a negative noise level
    # would be silently ignored.
    parser.add_argument("--batch-size", type=cli.positive_int, default=None)
    parser.add_argument(
        "--cuda-graph",
        action="store_true",
        help="replay a captured CUDA graph per input shape (CUDA only; fastest at batch 1)",
    )
    parser.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile the network (torch backend; each new frame size compiles first)",
    )
    parser.add_argument(
        "--save-background", action="store_true", help="also write the reconstruction D"
    )
    parser.add_argument(
        "--noise-sigma",
        type=cli.non_negative_float,
        default=0.0,
        help="Gaussian input noise, grey levels",
    )
    parser.add_argument(
        "--detections",
        action="store_true",
        help="also write OUT/detections.csv: each frame's 8-connected components of "
        "p > --threshold (centroid, area, peak and mean probability)",
    )
    parser.add_argument(
        "--threshold",
        type=cli.in_domain(THRESHOLD),
        help="positive when p > threshold, for --detections (default: the config's "
        "eval.threshold; 0.5 with --images)",
    )
    parser.add_argument("--noise-seed", type=cli.non_negative_int, default=0)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cli.setup_logging()
    return cli.guarded(run, args)


def run(args: argparse.Namespace) -> int:
    if args.images:
        if not (args.checkpoint and args.out):
            raise UserError("--images needs --checkpoint and --out")
        out_dir = Path(args.out)
        check_output_folder(out_dir, args.save_background, args.detections)
        samples = frame_source(args.images)
        checkpoint, model_config = Path(args.checkpoint), None
        size = args.size
        if size is None:
            size, why = checkpoint_default_size(checkpoint)
            logger.info("size %s: %s", size, why)
        device, batch_size = args.device or "auto", args.batch_size or 8
        threshold = 0.5 if args.threshold is None else args.threshold
    elif args.config:
        cfg = load_config(args.config, args.overrides)
        out_dir = Path(args.out) if args.out else Path(cfg["paths"]["results"], cfg["name"])
        where = "--out" if args.out else "paths.results"  # the default's config key
        check_output_folder(out_dir, args.save_background, args.detections, where)
        splits = splits_from_config(cfg)
        samples = splits.test
        checkpoint, zoo_model = (
            resolve_checkpoint(args.checkpoint)
            if args.checkpoint
            else (newest_run_checkpoint(cfg), None)
        )
        # A zoo model is built and sized as its own config says; the config gives the data.
        trained = zoo_model.config if zoo_model is not None else cfg
        model_config = trained["model"]
        size = args.size or config_eval_size(trained)
        device = args.device or cfg["train"]["device"]
        batch_size = args.batch_size or cfg["eval"]["batch_size"]
        threshold = cfg["eval"]["threshold"] if args.threshold is None else args.threshold
    else:
        raise UserError("give a CONFIG, or --checkpoint PATH --images DIR --out DIR")

    logger.info("checkpoint %s", checkpoint)
    predictor = predictor_for_backend(
        checkpoint,
        backend=args.backend,
        model_config=model_config,
        device=device,
        dtype=args.dtype,
        size=parse_size(size),
        cuda_graph=args.cuda_graph,
        compile_model=args.compile,
        keep_network_size=args.save_at == "network",
    )
    if predictor.device.type == "cuda":
        # Frames of one size repeat: let cuDNN pick its fastest algorithms for each shape.
        torch.backends.cudnn.benchmark = True
    report = predict_to_folder(
        predictor,
        samples,
        out_dir,
        batch_size=batch_size,
        save_background=args.save_background,
        noise_sigma=args.noise_sigma,
        noise_seed=args.noise_seed,
        progress=True,
        detections_threshold=threshold if args.detections else None,
    )
    logger.info(
        "wrote %d of %d predictions to %s in %.1f s (%.2f images/s, %s, size %s)",
        report.written,
        len(samples),
        out_dir,
        report.seconds,
        report.images_per_second,
        predictor.device,
        predictor.size,
    )
    if args.detections:
        logger.info(
            "wrote %d detections (p > %g) to %s",
            report.detections,
            threshold,
            out_dir / DETECTIONS_FILE,
        )
    if report.failures:
        names = ", ".join(name for name, _ in report.failures)
        print(f"error: {len(report.failures)} image(s) could not be read: {names}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
