"""Train configs one after another and print every run's test metrics.

    python run_configs.py [CONFIG ...] [--set KEY=VALUE ...] [--resume auto|PATH] [--list]
    python run_configs.py CONFIG --seeds 1 2 3 [--set KEY=VALUE ...] [--resume auto]
    python run_configs.py CONFIG --resume DIR/latest.pth.manifest.json

CONFIG is a name from configs/ or a path (.py, or a run's config.yaml); none runs `demo`.
With --seeds, each config trains once per seed on the same split (data.split_seed) and a
checkpoints/<name>/seeds_summary_<timestamp>.csv gets every run's test metrics and their
mean ± std (sample std, n − 1), for the selected and the last checkpoint; it is printed too.
Under `torchrun --nproc_per_node=N` the same command trains with DDP.
A run that train.time_limit stops prints where it stopped instead of its test metrics, and
the configs after it wait for the next call (exit status 0). --resume with a manifest of
tools/state_pieces.py joins the checked pieces into latest.pth beside it and continues there
(docs/training.md, "Runs longer than an allocation").
"""

import argparse
import logging
import sys

from lrrnet import cli
from lrrnet.config import available_configs, load_config
from lrrnet.engine.distributed import is_main_process
from lrrnet.engine.seeds import train_seeds
from lrrnet.engine.state_pieces import MANIFEST_SUFFIX, join_for_resume
from lrrnet.engine.trainer import RunResult, train
from lrrnet.errors import UserError
from lrrnet.metrics import format_table

logger = logging.getLogger("lrrnet.run_configs")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = cli.parser(__doc__, config="*")
    parser.add_argument(
        "--resume",
        help="'auto' (newest run of each config), a checkpoint path, or a pieces manifest",
    )
    parser.add_argument("--list", action="store_true", help="list the available configs and exit")
    parser.add_argument(
        "--seeds",
        type=cli.non_negative_int,
        nargs="+",
        metavar="S",
        help="one run per training seed, summarised",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cli.setup_logging()
    return cli.guarded(run, args)


def run(args: argparse.Namespace) -> int:
    """Train each config; one that fails is reported and the others still run."""
    if args.list:
        print("\n".join(available_configs()))
        return 0
    names = args.configs or ["demo"]
    if args.resume not in (None, "auto") and len(names) > 1:
        raise UserError("--resume PATH takes a single config")
    if args.resume and args.resume.endswith(MANIFEST_SUFFIX):
        args.resume = str(join_for_resume(args.resume))

    rows, failed = [], []
    for index, name in enumerate(names):
        if args.seeds:
            failed += _train_seeds(name, args)
            continue
        try:
            result = train(load_config(name, args.overrides), resume=args.resume)
        except UserError as error:
            print(f"error: {name}: {error}", file=sys.stderr)
            failed.append(name)
            continue
        except Exception:
            logger.exception("config %s failed", name)
            failed.append(name)
            continue
        if not result.finished:  # train.time_limit: a later call continues
            print(_stopped_line(result))
            if names[index + 1 :]:
                print(f"not started before the time limit: {', '.join(names[index + 1 :])}")
            break
        for which in ("best", "last"):
            entry = result.report[which]
            rows.append((f"{result.name} {which}", entry["test"]))
            if "test_at_val_threshold" in entry:  # eval.val_threshold: the chosen threshold
                chosen = entry["val_threshold"]["threshold"]
                rows.append((f"{result.name} {which}@{chosen:g}", entry["test_at_val_threshold"]))
        logger.info("%s: run folder %s", result.name, result.run_dir)
    if rows and is_main_process():
        print(format_table(rows))
    if failed:
        print(f"error: {len(failed)} config(s) failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def _train_seeds(name: str, args: argparse.Namespace) -> list[str]:
    """Train one config per seed, print the summary; returns the failed runs' labels."""
    try:
        outcome = train_seeds(load_config(name, args.overrides), args.seeds, resume=args.resume)
    except UserError as error:
        print(f"error: {name}: {error}", file=sys.stderr)
        return [name]
    for seed, message in outcome.failed:
        print(f"error: {name} seed {seed}: {message}", file=sys.stderr)
    if outcome.stopped is not None:
        print(_stopped_line(outcome.stopped))
    if outcome.summary_path and is_main_process():
        print(outcome.table)
        print(f"summary: {outcome.summary_path}")
    return [f"{name} seed {seed}" for seed, _ in outcome.failed]


def _stopped_line(result: RunResult) -> str:
    """Where a run that train.time_limit stopped is, and how to continue it."""
    return (
        f"{result.name}: stopped by train.time_limit at iteration {result.iteration} of "
        f"{result.total_iterations}; continue with --resume auto (or --resume {result.run_dir})"
    )


if __name__ == "__main__":
    sys.exit(main())
