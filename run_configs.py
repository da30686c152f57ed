"""Train configs one after another and print every run's test metrics.

    python run_configs.py [CONFIG ...] [--set KEY=VALUE ...] [--resume auto|PATH] [--list]

CONFIG is a name from configs/ or a path (.py, or a run's config.yaml); none runs `demo`.
Under `torchrun --nproc_per_node=N` the same command trains with DDP.
"""

import argparse
import logging
import sys

from lrrnet.config import available_configs, load_config
from lrrnet.engine.trainer import train
from lrrnet.errors import UserError
from lrrnet.metrics import format_table

logger = logging.getLogger("lrrnet.run_configs")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("configs", nargs="*", help="config names or paths (default: demo)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--resume", help="'auto' (newest run of each config) or a checkpoint path")
    parser.add_argument("--list", action="store_true", help="list the available configs and exit")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")

    if args.list:
        print("\n".join(available_configs()))
        return 0
    names = args.configs or ["demo"]
    if args.resume not in (None, "auto") and len(names) > 1:
        print("error: --resume PATH takes a single config", file=sys.stderr)
        return 2

    rows, failed = [], []
    for name in names:
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
        rows.append((f"{result.name} best", result.test["best"]))
        rows.append((f"{result.name} last", result.test["last"]))
        logger.info("%s: run folder %s", result.name, result.run_dir)
    if rows and _is_main_process():
        print(format_table(rows))
    if failed:
        print(f"error: {len(failed)} config(s) failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def _is_main_process() -> bool:
    import os

    return os.environ.get("RANK", "0") == "0"


if __name__ == "__main__":
    sys.exit(main())
