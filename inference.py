"""Write target probability maps as OUT/img/<name>.png and OUT/mat/<name>.mat.

    python inference.py CONFIG [--set KEY=VALUE ...] [--checkpoint PATH] [--out DIR]
    python inference.py --checkpoint PATH --images DIR --out DIR

Without --checkpoint, CONFIG mode uses best.pth of the newest run of that config. The
checkpoint may be this project's .pth or a released .pkl state dict.
"""

import argparse
import logging
import sys
from pathlib import Path

from lrrnet.config import load_config
from lrrnet.data import splits_from_config
from lrrnet.engine.inference import folder_samples, newest_run_checkpoint, predict_to_folder
from lrrnet.engine.predictor import Predictor, config_eval_size, parse_size
from lrrnet.errors import UserError

logger = logging.getLogger("lrrnet.inference")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("config", nargs="?", help="config name or path (runs its test split)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--checkpoint", help=".pth checkpoint or released .pkl state dict")
    parser.add_argument("--images", help="folder of frames to run instead of a config's test split")
    parser.add_argument("--out", help="output folder (default: results/<config name>)")
    parser.add_argument(
        "--size", help="'native' (pad to a multiple of 8) or N (resize to N×N); default: config"
    )
    parser.add_argument(
        "--device", default=None, help="auto | cpu | cuda (default: config's train.device)"
    )
    parser.add_argument("--dtype", default="fp32", choices=("fp32", "bf16", "fp16"))
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument(
        "--save-background", action="store_true", help="also write the reconstruction D"
    )
    parser.add_argument(
        "--noise-sigma", type=float, default=0.0, help="Gaussian input noise, grey levels"
    )
    parser.add_argument("--noise-seed", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        return run(args)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code


def run(args) -> int:
    if args.images:
        if not (args.checkpoint and args.out):
            raise UserError("--images needs --checkpoint and --out")
        samples = folder_samples(args.images)
        checkpoint, model_config, out_dir = Path(args.checkpoint), None, Path(args.out)
        size, device, batch_size = (
            args.size or "native",
            args.device or "auto",
            args.batch_size or 8,
        )
    elif args.config:
        cfg = load_config(args.config, args.overrides)
        splits = splits_from_config(cfg)
        samples = splits.test
        checkpoint = Path(args.checkpoint) if args.checkpoint else newest_run_checkpoint(cfg)
        model_config = cfg["model"]
        out_dir = Path(args.out) if args.out else Path(cfg["paths"]["results"], cfg["name"])
        size = args.size or config_eval_size(cfg)
        device = args.device or cfg["train"]["device"]
        batch_size = args.batch_size or cfg["eval"]["batch_size"]
    else:
        raise UserError("give a CONFIG, or --checkpoint PATH --images DIR --out DIR")

    logger.info("checkpoint %s", checkpoint)
    predictor = Predictor.from_checkpoint(
        checkpoint,
        model_config=model_config,
        device=device,
        dtype=args.dtype,
        size=parse_size(size),
    )
    report = predict_to_folder(
        predictor,
        samples,
        out_dir,
        batch_size=batch_size,
        save_background=args.save_background,
        noise_sigma=args.noise_sigma,
        noise_seed=args.noise_seed,
        progress=True,
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
    if report.failures:
        names = ", ".join(name for name, _ in report.failures)
        print(f"error: {len(report.failures)} image(s) could not be read: {names}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
