"""One allocation's chunk of a published-recipe run, written back in files a lent GPU returns.

    PYTHONPATH=. python3 tools/gpu/zoo_chunk.py sirst --data-root datasets/SIRST --out $OUT
    PYTHONPATH=. python3 tools/gpu/zoo_chunk.py sirst --data-root datasets/SIRST --out $OUT \\
        --resume pieces/sirst/state.tar.manifest.json [--budget-s 480] [--set KEY=VALUE ...]

Builds CONFIG as run_configs.py does (``--set`` items, then ``data.root`` from --data-root)
under the zoo's paper-comparison settings, each unless a ``--set`` gives its key: test as the
validation split (``data.val_split='test'``, the original code's protocol, logged as
optimistic), scored every 10 epochs (``train.eval_every`` from the training split's size)
and not at each epoch's end; on CUDA also ``train.amp='bf16'`` and ``train.compile=True``,
the fastest measured step, and ``data.num_workers=8``. It sets ``train.time_limit`` so
that training stops --budget-s seconds after this command started, trains (continuing the
run of --resume), and writes into --out (at most 8 files of at most 16 MiB each, 64 MiB
together, checked; an error otherwise):

- ``chunk.json``: the config, the settings applied, the run, the epoch and iteration
  reached, whether the run finished, the seconds this call took, the median training step
  after the first 10 (the speed to compare between chunks and settings), the device (GPU
  name or 'cpu'), the torch version;
- ``run.tar.gz``: the run folder's config.yaml (and earlier config.until-iter*.yaml),
  log.txt, metrics.csv and, once finished, test_metrics.json;
- not finished: ``state.tar.part000`` … and ``state.tar.manifest.json``
  (:mod:`lrrnet.engine.state_pieces`): a tar of the full ``latest.pth`` and of ``best.pth``
  without its optimizer and RNG states (only its weights, iteration and metrics are ever
  read: the final test and the zoo) and, under ``train.compile``, of the run folder's
  ``compile_cache.bin`` when it fits the 8 files (the trainer's resume in the next chunk
  loads it and compiles from a warm cache); the next chunk's --resume;
- finished: ``latest.pth`` and ``best.pth`` holding the weights, iteration, epoch, config
  and metrics (no optimizer): with run.tar.gz unpacked beside them a run folder that
  ``tools/zoo.py add NAME --run FOLDER`` takes.

The next chunk is given the whole folder a chunk wrote (chunk.json and run.tar.gz beside
the manifest); it continues the same run folder name, so log.txt and metrics.csv grow
across chunks. A failure after the run folder exists still writes what there is, with the
error in chunk.json, before it exits non-zero. Scratch (the run folder, the joined state)
goes to --work, by default a temporary folder. Tested on the CPU only
(tests/test_zoo_chunk.py); tools/gpu/README.md, "Zoo runs in chunks", gives the calls.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import sys
import tarfile
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from lrrnet import cli
from lrrnet.config import load_config
from lrrnet.data import splits_from_config
from lrrnet.engine import trainer
from lrrnet.engine.checkpoint import load_checkpoint, save_checkpoint
from lrrnet.engine.distributed import resolve_device
from lrrnet.engine.run_files import COMPILE_CACHE, METRICS_CSV
from lrrnet.engine.state_pieces import DEFAULT_MAX_MIB, join, read_manifest, split
from lrrnet.errors import ConfigError, DataError, UserError
from lrrnet.files import check_writable, jsonable, write_json_atomic

logger = logging.getLogger("lrrnet.zoo_chunk")

MAX_FILES = 8  # what one call of the lent machine brings back
MAX_FILE_MIB = DEFAULT_MAX_MIB
MAX_TOTAL_MIB = 64  # and together
DEFAULT_BUDGET_S = 480.0  # of the 600 s a command may run: start-up, last validation, writes
CHUNK_JSON = "chunk.json"
RUN_TAR = "run.tar.gz"
STATE_TAR = "state.tar"
# The run folder's small files that travel (TensorBoard events and train.lock stay behind).
RUN_FILE_PATTERNS = ("config.yaml", "config.until-iter*.yaml", "log.txt", METRICS_CSV)
# A training checkpoint's entries that only a resume from that very file reads.
RESUME_ONLY = ("optimizer", "scaler", "rng", "train_model")
# The zoo's paper-comparison protocol: test scored along the way as the original code did
# (logged as optimistic), every EVAL_EVERY_EPOCHS epochs and not at each epoch's end; on a
# GPU, the fastest settings measured for the recipe's step (bf16 autocast and torch.compile,
# with channels_last under it: docs/speed.md, "Training steps"), and loader workers enough
# to feed it (each sample's augmentation is seeded by its index, so the count changes no
# result). A --set of a key wins.
PAPER_SETTINGS = {"data.val_split": "'test'", "train.eval_epoch_end": "False"}
CUDA_SETTINGS = {"train.amp": "'bf16'", "train.compile": "True", "data.num_workers": "8"}
EVAL_EVERY_EPOCHS = 10
# Keys this command sets itself, and the flag that sets each.
OWN_KEYS = {
    "data.root": "--data-root",
    "train.time_limit": "--budget-s",
    "paths.checkpoints": "--work",
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = cli.parser(__doc__)
    parser.add_argument("--data-root", required=True, type=Path, help="the dataset folder")
    parser.add_argument("--out", required=True, type=Path, help="an empty folder (the $OUT)")
    parser.add_argument(
        "--budget-s",
        type=cli.positive_float,
        default=DEFAULT_BUDGET_S,
        help=f"seconds from this command's start to the end of training "
        f"(default {DEFAULT_BUDGET_S:g})",
    )
    parser.add_argument("--resume", type=Path, help="the previous chunk's state.tar.manifest.json")
    parser.add_argument("--work", type=Path, help="scratch folder (default: a temporary one)")
    parser.add_argument(
        "--piece-mib",
        type=cli.positive_float,
        default=MAX_FILE_MIB,
        help=f"largest state piece in MiB (default and most {MAX_FILE_MIB})",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cli.setup_logging()
    return cli.guarded(run, args)


def run(args: argparse.Namespace) -> int:
    started = trainer.clock()  # the time limit's own clock: the budget counts from here
    if args.config is None:
        raise ConfigError("CONFIG is required (sirst, irstd1k, nudt, ...)")
    if args.piece_mib > MAX_FILE_MIB:
        raise ConfigError(f"--piece-mib {args.piece_mib:g}: at most {MAX_FILE_MIB}")
    for item in args.overrides:
        key = item.partition("=")[0].strip()
        if key in OWN_KEYS:
            raise ConfigError(f"--set {key}: this command sets it from {OWN_KEYS[key]}")
    if not args.data_root.is_dir():
        raise DataError(f"--data-root {args.data_root}: no such folder")
    out = check_writable(args.out, "--out")
    if out.is_dir() and any(out.iterdir()):
        raise DataError(f"--out {out}: not empty; give the call's empty $OUT")
    overrides = [*args.overrides, f"data.root={str(args.data_root)!r}"]
    cfg = load_config(args.config, overrides)  # a bad key fails before anything is read
    previous = read_previous(args.resume, cfg["name"]) if args.resume else None
    device = resolve_device(cfg["train"]["device"])
    settings = zoo_settings(args.config, overrides, device)
    overrides = [*(f"{key}={value}" for key, value in settings.items()), *overrides]
    with tempfile.TemporaryDirectory(prefix="zoo_chunk.") as scratch:
        work = Path(args.work or scratch).resolve()
        overrides.append(f"paths.checkpoints={str(work)!r}")
        resume = prepare_resume(args.resume, previous, work, cfg["name"]) if previous else None
        limit = args.budget_s - (trainer.clock() - started)
        if limit <= 0:
            raise UserError(f"--budget-s {args.budget_s:g}: spent before training started")
        cfg = load_config(args.config, [*overrides, f"train.time_limit={limit}"])
        chunk = {
            "config": str(args.config),
            "name": cfg["name"],
            "chunk": previous["chunk"] + 1 if previous else 1,
            "resumed_from_iteration": previous["iteration"] if previous else None,
            "budget_s": args.budget_s,
            "overrides": list(args.overrides),
            "settings": settings,
            "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
            "torch": torch.__version__,
        }
        try:
            result = trainer.train(cfg, resume=str(resume) if resume else None)
        except Exception as error:
            run_dir = resume.parent if resume else newest_run(work, cfg["name"])
            if run_dir is not None and (run_dir / "latest.pth").is_file():
                chunk["error"] = f"{type(error).__name__}: {error}".splitlines()[0]
                seconds = trainer.clock() - started
                export(run_dir, out, chunk, None, args.piece_mib, seconds)
                logger.error("the state so far is in %s (%s)", out, CHUNK_JSON)
            raise
        seconds = trainer.clock() - started
        export(result.run_dir, out, chunk, result, args.piece_mib, seconds)
    state = "finished" if result.finished else "stopped"
    print(
        f"{cfg['name']}: chunk {chunk['chunk']} {state} at iteration {result.iteration} of "
        f"{result.total_iterations}; wrote {len(list(out.iterdir()))} files to {out}"
    )
    return 0


def zoo_settings(config: str, overrides: Sequence[str], device: torch.device) -> dict[str, str]:
    """The keys this command sets unless ``overrides`` (``--set`` items) set them.

    :data:`PAPER_SETTINGS`, then on CUDA :data:`CUDA_SETTINGS`, then ``train.eval_every``:
    :data:`EVAL_EVERY_EPOCHS` epochs of the training split these give (the split is read,
    not trained on). Each value is a ``--set`` literal; the same on every chunk of a run, so
    a resumed chunk has the config of the first.
    """
    given = {item.partition("=")[0].strip() for item in overrides}
    chosen = dict(PAPER_SETTINGS)
    if device.type == "cuda":
        chosen.update(CUDA_SETTINGS)
    settings = {key: value for key, value in chosen.items() if key not in given}
    if "train.eval_every" not in given:
        cfg = load_config(config, [*(f"{k}={v}" for k, v in settings.items()), *overrides])
        per_epoch = len(splits_from_config(cfg, generate=False).train) // cfg["train"]["batch_size"]
        settings["train.eval_every"] = str(max(1, EVAL_EVERY_EPOCHS * per_epoch))
    return settings


def read_previous(manifest: Path, name: str) -> dict[str, Any]:
    """The ``chunk.json`` beside ``manifest``, checked to continue a run of ``name``.

    Raises:
        UserError: naming --resume and the file: no manifest of a chunk's state, no
            chunk.json or run.tar.gz beside it, or a chunk of another config.
    """
    if not manifest.is_file():
        raise DataError(f"--resume {manifest}: no such file")
    listed = read_manifest(manifest)["file"]["name"]
    if listed != STATE_TAR:
        raise DataError(
            f"--resume {manifest}: the manifest of {listed}, not of a chunk's {STATE_TAR}"
        )
    folder = manifest.parent
    for needed in (CHUNK_JSON, RUN_TAR):
        if not (folder / needed).is_file():
            raise DataError(
                f"--resume {manifest}: no {needed} beside it; carry the whole folder the "
                "previous chunk wrote"
            )
    try:
        chunk = json.loads((folder / CHUNK_JSON).read_text())
        run, iteration, number = chunk["run"], int(chunk["iteration"]), int(chunk["chunk"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise DataError(f"{folder / CHUNK_JSON}: not a chunk's record ({error!r})") from None
    if not isinstance(run, str) or not run or Path(run).name != run or run == "..":
        raise DataError(f"{folder / CHUNK_JSON}: run {run!r} is not a folder name")
    if chunk.get("name") != name:
        raise ConfigError(f"--resume {manifest}: a chunk of '{chunk.get('name')}', not of '{name}'")
    return {"run": run, "iteration": iteration, "chunk": number}


def prepare_resume(manifest: Path, previous: Mapping[str, Any], work: Path, name: str) -> Path:
    """Rebuild the previous chunk's run folder under ``work``; returns its ``latest.pth``.

    The pieces are checked and joined (:func:`lrrnet.engine.state_pieces.join`), then the
    state tar and ``run.tar.gz`` are unpacked into ``work/<name>/<run>``.
    """
    run_dir = work / name / previous["run"]
    if run_dir.exists():
        raise DataError(f"--work {work}: {run_dir} exists already; give an empty --work")
    run_dir.mkdir(parents=True)
    joined = join(manifest, work / STATE_TAR)
    unpack(joined, run_dir)
    joined.unlink()
    unpack(manifest.parent / RUN_TAR, run_dir)
    if not (run_dir / "latest.pth").is_file():
        raise DataError(f"--resume {manifest}: its {STATE_TAR} holds no latest.pth")
    return run_dir / "latest.pth"


def unpack(archive: Path, folder: Path) -> None:
    """Extract the plain files of ``archive`` into ``folder``; any other member is refused."""
    try:
        with tarfile.open(archive) as tar:
            for member in tar.getmembers():
                if not member.isfile() or Path(member.name).name != member.name:
                    raise DataError(f"{archive}: member {member.name!r} is not a plain file")
            tar.extractall(folder, filter="data")
    except (OSError, tarfile.TarError) as error:
        raise DataError(f"{archive}: cannot unpack ({error})") from None


def newest_run(work: Path, name: str) -> Path | None:
    """The run folder a failed first chunk made in ``work`` (the only one there), or None."""
    runs = sorted(p for p in (work / name).glob("*") if p.is_dir())
    return runs[-1] if runs else None


def without_resume_state(checkpoint: Mapping[str, Any]) -> dict[str, Any]:
    """``checkpoint`` without the entries only a resume from it reads (a third its size)."""
    return {key: value for key, value in checkpoint.items() if key not in RESUME_ONLY}


def export(
    run_dir: Path,
    out: Path,
    chunk: dict[str, Any],
    result: trainer.RunResult | None,
    piece_mib: float,
    seconds: float,
) -> None:
    """Write the chunk's files into ``out`` (see the module docstring) and check them; the
    state also holds the run folder's torch.compile cache when it fits."""
    out.mkdir(parents=True, exist_ok=True)
    latest = load_checkpoint(run_dir / "latest.pth")
    best_path = run_dir / "best.pth"
    best = without_resume_state(load_checkpoint(best_path)) if best_path.is_file() else None
    finished = result is not None and result.finished
    if finished:
        save_checkpoint(without_resume_state(latest), out / "latest.pth")
        if best is not None:
            save_checkpoint(best, out / "best.pth")
    else:
        bundle = run_dir.parent / f".{run_dir.name}.bundle"
        bundle.mkdir(exist_ok=True)
        if best is not None:
            save_checkpoint(best, bundle / "best.pth")
        with tarfile.open(bundle / STATE_TAR, "w") as tar:
            tar.add(run_dir / "latest.pth", arcname="latest.pth")
            if best is not None:
                tar.add(bundle / "best.pth", arcname="best.pth")
        # What a stop under train.compile left (lrrnet.engine.run_files): the pieces may
        # take what the 8 files leave beside chunk.json, run.tar.gz and the manifest (1 MiB
        # kept for those), within the total; the cache travels only there.
        cache = run_dir / COMPILE_CACHE
        size = cache.stat().st_size if cache.is_file() else None
        pieces_room = min((MAX_FILES - 3) * piece_mib, MAX_TOTAL_MIB - 1) * 2**20
        room = int(pieces_room) - (bundle / STATE_TAR).stat().st_size
        if size is not None and size + 2048 <= room:
            with tarfile.open(bundle / STATE_TAR, "a") as tar:
                tar.add(cache, arcname=COMPILE_CACHE)
        elif size is not None:
            logger.warning("torch.compile's cache (%d bytes) left out: no room", size)
            size = None
        chunk["compile_cache_bytes"] = size
        split(bundle / STATE_TAR, out, piece_mib)
        for path in bundle.iterdir():
            path.unlink()
        bundle.rmdir()
    names = sorted({p.name for pattern in RUN_FILE_PATTERNS for p in run_dir.glob(pattern)})
    if finished:
        names.append("test_metrics.json")
    with tarfile.open(out / RUN_TAR, "w:gz") as tar:
        for name in names:
            tar.add(run_dir / name, arcname=name)
    chunk.update(
        run=run_dir.name,
        epoch=int(latest["epoch"]),
        iteration=int(latest["iteration"]),
        total_iterations=result.total_iterations if result is not None else None,
        iters_per_epoch=latest.get("iters_per_epoch"),
        finished=finished,
        seconds=round(seconds, 1),
        median_step_seconds=result.median_step_seconds if result is not None else None,
        best_iteration=best["iteration"] if best is not None else None,
        last_evaluation=last_metrics_row(run_dir / METRICS_CSV),
        test=jsonable(result.test) if finished else None,
    )
    chunk.setdefault("error", None)
    chunk.setdefault("compile_cache_bytes", None)
    write_json_atomic(out / CHUNK_JSON, chunk)
    check_out(out)


def last_metrics_row(path: Path) -> dict[str, str] | None:
    """The last row of ``metrics.csv`` (the newest evaluation), None before the first."""
    if not path.is_file():
        return None
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    return rows[-1] if rows else None


def check_out(
    out: Path,
    max_files: int = MAX_FILES,
    max_mib: float = MAX_FILE_MIB,
    max_total_mib: float = MAX_TOTAL_MIB,
) -> None:
    """Refuse an ``out`` that would not come back whole: more than ``max_files`` entries,
    one that is not a plain file, one over ``max_mib`` MiB, or more than ``max_total_mib``
    MiB together.

    Raises:
        UserError: one line naming --out and the entry.
    """
    entries: Sequence[Path] = sorted(out.iterdir())
    if len(entries) > max_files:
        raise UserError(
            f"--out {out}: {len(entries)} files, more than the {max_files} that come back"
        )
    for entry in entries:
        if not entry.is_file() or entry.is_symlink():
            raise UserError(f"--out {out}: {entry.name} is not a plain file")
        size = entry.stat().st_size
        if size > max_mib * 2**20:
            raise UserError(
                f"--out {out}: {entry.name} is {size / 2**20:.1f} MiB, over the {max_mib:g} MiB "
                "a file may be"
            )
    total = sum(entry.stat().st_size for entry in entries)
    if total > max_total_mib * 2**20:
        raise UserError(
            f"--out {out}: {total / 2**20:.1f} MiB together, over the {max_total_mib:g} MiB "
            "that come back"
        )


if __name__ == "__main__":
    sys.exit(main())
