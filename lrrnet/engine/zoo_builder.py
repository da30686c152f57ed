"""Building zoo entries from finished runs, and scoring zoo models: the work behind
``tools/zoo.py``.

:func:`add_run` stores a run's weights as an fp16 state dict, scores *that stored file* on
the run config's test split in both protocols (:func:`score_weights`: inference with
:func:`lrrnet.engine.inference.predict_to_folder`, scoring with
:func:`lrrnet.engine.scoring.score_folder`, the same path as ``inference.py`` followed by
``cal_from_mask.py``), fills the other keys from the run folder, and writes ``zoo.json``.
:func:`transfer_table` scores every zoo model on the other datasets' test splits. The format
and the name lookup are :mod:`lrrnet.engine.zoo`'s.
"""

from __future__ import annotations

import ast
import csv
import json
import logging
import math
import os
import re
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import yaml

from lrrnet.config import CONFIG_DIR, PROJECT_ROOT, load_config
from lrrnet.data import Sample, splits_from_config
from lrrnet.engine import zoo
from lrrnet.engine.checkpoint import extract_model_state, load_checkpoint, save_checkpoint
from lrrnet.engine.hardware import cpu_model_name
from lrrnet.engine.inference import predict_to_folder
from lrrnet.engine.predictor import Predictor, config_eval_size
from lrrnet.engine.run_files import METRICS_CSV
from lrrnet.engine.scoring import score_folder
from lrrnet.errors import CheckpointError, ConfigError, DataError
from lrrnet.files import jsonable

logger = logging.getLogger(__name__)

# The run folder's file of each --which.
RUN_CHECKPOINTS = {"best": "best.pth", "last": "latest.pth"}
WEIGHTS_FOLDER = Path("checkpoints", "zoo")
TRAINED_LINE = re.compile(r"trained (\d+) iterations in ([0-9.]+) s")
DEVICE_LINE = re.compile(r"run folder .* \(world size \d+, device (\S+)\)")
LOG_DATE = re.compile(r"^(\d{4}-\d{2}-\d{2}) ", re.MULTILINE)
METRIC_NAMES = {"miou": "IoU", "niou": "nIoU", "f1": "F1", "pd": "Pd", "auc": "AUC"}
# The dataset configs transfer_table looks for, by column.
TRANSFER_DATASETS = ("sirst", "nudt", "irstd1k", "sirst_v2", "sirstaug")


def fp16_state(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The state dict with floating tensors stored as fp16 (on the CPU, contiguous)."""
    return {
        key: (value.half() if value.is_floating_point() else value).detach().cpu().contiguous()
        for key, value in state.items()
    }


def figures(results: Mapping[str, Any]) -> dict[str, float | None]:
    """The zoo's five figures of a scoring result, as fractions (undefined: None)."""
    return {key: jsonable(float(results[key])) for key in zoo.FIGURE_KEYS}


def score_weights(
    weights: str | os.PathLike,
    model_config: Mapping[str, Any],
    samples: Sequence[Sample],
    size: str | int,
    work_dir: str | os.PathLike,
    threshold: float,
    protocols: Iterable[str] = zoo.PROTOCOL_KEYS,
    strict_sizes: bool = False,
    device: str = "cpu",
    batch_size: int = 8,
) -> dict[str, dict[str, float | None]]:
    """The figures of a weights file on ``samples`` (with masks) in each protocol.

    The standard protocol scores maps written at each frame's size
    (``WORK/standard``, as ``inference.py --size SIZE``); the lrrnet protocol scores maps
    at the network's size (``WORK/lrrnet``, as ``--save-at network``), which for ``native``
    are the same maps. Both are scored as ``cal_from_mask.py`` scores them, at
    ``threshold``; the report files stay beside the maps.

    Raises:
        DataError: a frame could not be read, or a map could not be scored.
    """
    work_dir = Path(work_dir)
    masks = {sample.name: sample.mask for sample in samples if sample.mask is not None}
    maps_of: dict[bool, Path] = {}
    scored = {}
    for protocol in protocols:
        at_network = protocol == "lrrnet" and size != "native"
        if at_network not in maps_of:
            folder = work_dir / ("lrrnet" if at_network else "standard")
            predictor = Predictor.from_checkpoint(
                weights,
                model_config=model_config,
                device=device,
                size=size,
                keep_network_size=at_network,
            )
            report = predict_to_folder(predictor, samples, folder, batch_size, progress=True)
            if report.failures:
                names = ", ".join(name for name, _ in report.failures)
                raise DataError(f"{len(report.failures)} test frame(s) could not be read: {names}")
            maps_of[at_network] = folder
        results = score_folder(
            maps_of[at_network],
            masks,
            threshold=threshold,
            protocol=protocol,
            out_dir=work_dir / protocol,
            strict_sizes=strict_sizes,
        )
        scored[protocol] = figures(results)
    return scored


def training_seconds(log_text: str, iterations: int) -> float:
    """The seconds of every ``trained N iterations in T s`` line of a run's log (a resumed
    run has one per session), summed."""
    found = [(int(n), float(t)) for n, t in TRAINED_LINE.findall(log_text)]
    if not found:
        raise DataError("log.txt has no 'trained N iterations in T s' line: not a finished run")
    logged = sum(n for n, _ in found)
    if logged != iterations:
        logger.warning(
            "log.txt's sessions trained %d iterations, the run holds %d (an interrupted "
            "session logged no time): training_seconds counts the logged sessions only",
            logged,
            iterations,
        )
    return round(sum(t for _, t in found), 1)


def best_on_test(run_dir: Path, cfg: Mapping[str, Any]) -> dict[str, Any] | None:
    """For a run that selected on test (``data.val_split=test``), the evaluation of
    ``metrics.csv`` with the best ``train.select_metric`` (the first of equals, as the
    trainer keeps it) and its figures, marked optimistic; None for any other run."""
    if cfg["data"]["val_split"] != "test":
        return None
    path = run_dir / METRICS_CSV
    if not path.is_file():
        raise DataError(f"{path}: not found; a data.val_split=test run scores test there")
    with path.open(newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row.get("miou")]
    if not rows:
        raise DataError(f"{path}: no evaluation rows")
    metric = cfg["train"]["select_metric"]
    best = max(rows, key=lambda row: _number(row[metric]))  # max keeps the first of equals
    values = {key: jsonable(_number(best[key])) for key in zoo.FIGURE_KEYS}
    return {
        "epoch": int(best["epoch"]),
        "iteration": int(best["iteration"]),
        **values,
        "optimistic": True,
    }


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        return -math.inf
    return value if math.isfinite(value) else -math.inf


def selection_text(cfg: Mapping[str, Any], report: Mapping[str, Any], which: str) -> str:
    """How the weights of ``which`` were chosen, from ``test_metrics.json``'s report."""
    iteration = report[which]["iteration"]
    if which == "last":
        return f"last iteration ({iteration}), no selection"
    val_split = cfg["data"]["val_split"]
    metric = METRIC_NAMES.get(cfg["train"]["select_metric"], cfg["train"]["select_metric"])
    if val_split == "none":
        return f"last iteration ({iteration}), no selection (no validation split)"
    if val_split == "test":
        return f"best test {metric} (data.val_split=test, optimistic), at iteration {iteration}"
    selection = report["selection"]
    return (
        f"best val {metric} on {selection['split']} of {Path(cfg['data']['root']).name} "
        f"({selection['n_val']} images), at iteration {iteration}"
    )


def recipe_description(name: str) -> str:
    """The first sentence of ``configs/<name>.py``'s docstring, on one line ('' if none)."""
    path = CONFIG_DIR / f"{name}.py"
    if not path.is_file():
        return ""
    docstring = ast.get_docstring(ast.parse(path.read_text())) or ""
    paragraph = " ".join(docstring.split("\n\n")[0].split())
    sentence = re.split(r"(?<=\.)\s", paragraph, maxsplit=1)[0]
    return sentence.replace("``", "`")


def repository_commit() -> str:
    """The commit checked out in the project's repository ('unknown' outside git)."""
    try:
        result = subprocess.run(
            ["git", "-C", str(PROJECT_ROOT), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return result.stdout.strip()


def run_hardware(log_text: str, gpu: str | None, machine: str | None) -> tuple[str | None, str]:
    """``(gpu, machine)`` of a run: the device its log names; the names given, else this
    machine's (logged, since the run may have trained elsewhere)."""
    found = DEVICE_LINE.search(log_text)
    device = found.group(1) if found else "cpu"
    if device.startswith("cpu"):
        gpu = None
        if machine is None:
            machine = cpu_model_name() or "unknown CPU"
            logger.info(
                "machine: %s (this machine's CPU; --machine if it trained elsewhere)", machine
            )
        return gpu, machine
    if gpu is None:
        if not torch.cuda.is_available():
            raise ConfigError(f"the run trained on {device}: give --gpu NAME (no GPU here)")
        gpu = torch.cuda.get_device_name()
        logger.info("gpu: %s (this machine's; --gpu if it trained elsewhere)", gpu)
    return gpu, machine or gpu


def _read_run(run_dir: Path, which: str) -> tuple[dict, str, dict]:
    """The run's config.yaml (as trained), log text and test report; refused unless the run
    finished."""
    if which not in RUN_CHECKPOINTS:
        raise ConfigError(f"--which {which!r}: expected one of {', '.join(RUN_CHECKPOINTS)}")
    needed = ("config.yaml", "log.txt", "test_metrics.json", RUN_CHECKPOINTS[which], "latest.pth")
    missing = [name for name in needed if not (run_dir / name).is_file()]
    if missing:
        raise DataError(f"{run_dir}: not a finished run (no {', '.join(missing)})")
    trained = yaml.safe_load((run_dir / "config.yaml").read_text())
    report = json.loads((run_dir / "test_metrics.json").read_text())
    return trained, (run_dir / "log.txt").read_text(), report


def add_run(
    name: str,
    run_dir: str | os.PathLike,
    which: str = "best",
    overrides: Sequence[str] = (),
    zoo_path: str | os.PathLike | None = None,
    replace: bool = False,
    dataset: str | None = None,
    description: str | None = None,
    gpu: str | None = None,
    machine: str | None = None,
    commit: str | None = None,
    device: str = "cpu",
    work_dir: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Add (or with ``replace``, replace) the zoo entry ``name`` from a finished run.

    Args:
        run_dir: the run folder (``config.yaml``, ``log.txt``, ``test_metrics.json``,
            ``metrics.csv``, ``best.pth``, ``latest.pth``).
        which: ``best`` (``best.pth``) or ``last`` (``latest.pth``).
        overrides: ``--set`` items applied to the run's config to find its data here
            (``data.root=...``); the entry keeps the config as trained.
        dataset, description, gpu, machine, commit: what the run folder does not record;
            default a description of the data, the config's docstring, this machine and
            the checked-out commit.
        work_dir: where the test maps and reports go (default
            ``<paths.results>/zoo/<name>``).

    Returns:
        The entry written to ``zoo.json``.
    """
    zoo_path = zoo.zoo_file(zoo_path)
    entries = zoo.read_zoo(zoo_path) if zoo_path.is_file() else {}
    if name in entries and not replace:
        raise ConfigError(f"zoo model '{name}' exists in {zoo_path}; --replace replaces it")
    if not zoo.is_name(name):
        raise ConfigError(f"zoo name {name!r}: {zoo.NAME_RULE}")
    run_dir = Path(run_dir)
    trained, log_text, report = _read_run(run_dir, which)
    cfg = load_config(run_dir / "config.yaml", overrides)
    splits = splits_from_config(cfg, generate=False)
    if not splits.test or any(sample.mask is None for sample in splits.test):
        raise DataError(f"{cfg['data']['root']}: the test split has no masks to score")

    state = extract_model_state(load_checkpoint(run_dir / RUN_CHECKPOINTS[which]))
    latest = load_checkpoint(run_dir / "latest.pth")
    relative = WEIGHTS_FOLDER / f"{name}.pkl"
    weights = zoo.zoo_root(zoo_path) / relative
    # Scored under a name git ignores, and renamed into place only once scored: a failure
    # leaves the previous weights (and the zoo.json that describes them) as they were.
    partial = weights.with_name(f".{weights.name}.partial")
    save_checkpoint(fp16_state(state), partial)
    try:
        size = config_eval_size(cfg)
        work = Path(work_dir) if work_dir else Path(cfg["paths"]["results"], "zoo", name)
        logger.info(
            "scoring %s (%d test frames, size %s) in %s", relative, len(splits.test), size, work
        )
        test = score_weights(
            partial,
            cfg["model"],
            splits.test,
            size,
            work,
            threshold=cfg["eval"]["threshold"],
            strict_sizes=cfg["data"]["strict_sizes"],
            device=device,
            batch_size=cfg["eval"]["batch_size"],
        )
        gpu, machine = run_hardware(log_text, gpu, machine)
        iterations = int(latest["iteration"])
        dates = LOG_DATE.findall(log_text)
        entry = {
            "weights": relative.as_posix(),
            "sha256": zoo.file_sha256(partial),
            "dataset": dataset
            or f"{Path(cfg['data']['root']).name} ({splits.layout} layout), "
            f"test split of {len(splits.test)} frames",
            "config": jsonable(trained),
            "epochs": int(latest["epoch"]),
            "iterations": iterations,
            "selection": selection_text(cfg, report, which),
            "test": test,
            "best_on_test": best_on_test(run_dir, cfg),
            "training_seconds": training_seconds(log_text, iterations),
            "gpu": gpu,
            "machine": machine,
            "commit": commit or repository_commit(),
            "recipe": {
                "config": cfg["name"],
                "description": recipe_description(cfg["name"])
                if description is None
                else description,
            },
            "date": dates[0] if dates else "unknown",
        }
        problems = zoo.entry_problems(name, entry)
        if problems:
            raise CheckpointError("; ".join(problems))
        os.replace(partial, weights)
    finally:
        partial.unlink(missing_ok=True)
    entries[name] = entry
    zoo.write_zoo(entries, zoo_path)
    return entry


def transfer_table(
    roots: Mapping[str, str] | None = None,
    zoo_path: str | os.PathLike | None = None,
    work_dir: str | os.PathLike = "results/zoo_transfer",
    device: str = "cpu",
) -> str:
    """A markdown table of every zoo model (rows) on every dataset found (columns).

    The datasets are those of :data:`TRANSFER_DATASETS`' configs, at their ``data.root``
    or the one ``roots`` gives by config name; one whose test split cannot be found is left
    out (logged). Each model runs at its entry's size and is scored in the standard
    protocol at its config's threshold; on its own test split the entry's figures are shown.
    """
    roots = dict(roots or {})
    unknown = sorted(set(roots) - set(TRANSFER_DATASETS))
    if unknown:
        raise ConfigError(
            f"unknown dataset(s) {', '.join(unknown)}: expected {', '.join(TRANSFER_DATASETS)}"
        )
    columns = []
    for dataset in TRANSFER_DATASETS:
        overrides = ["data.val_split='none'"]  # only the test split is used
        if dataset in roots:
            overrides.append(f"data.root={roots[dataset]!r}")
        cfg = load_config(dataset, overrides)
        try:
            splits = splits_from_config(cfg, generate=False)
        except DataError as error:
            logger.info("%s: left out (%s)", dataset, error)
            continue
        samples = [sample for sample in splits.test if sample.mask is not None]
        if samples:
            columns.append((dataset, Path(cfg["data"]["root"]).resolve(), samples))
    if not columns:
        raise DataError(
            f"no dataset of {', '.join(TRANSFER_DATASETS)} found (--set-root DATASET=PATH)"
        )
    entries = zoo.read_zoo(zoo_path)
    header = ["model", *(dataset for dataset, _, _ in columns)]
    lines = [
        "IoU % / Pd % / Fa ×10⁻⁶ on each dataset's test split (standard protocol); "
        "* the model's own test split (its zoo entry's figures).",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for name in sorted(entries):
        model = zoo.resolve(name, zoo_path)
        config = model.config
        own_root = Path(config["data"]["root"]).resolve()
        cells = []
        for dataset, root, samples in columns:
            if root == own_root:
                cells.append(_cell(model.entry["test"]["standard"]) + " *")
                continue
            scored = score_weights(
                model.weights,
                config["model"],
                samples,
                config_eval_size(config),
                Path(work_dir, name, dataset),
                threshold=config["eval"]["threshold"],
                protocols=("standard",),
                device=device,
                batch_size=config["eval"]["batch_size"],
            )
            cells.append(_cell(scored["standard"]))
        lines.append("| " + " | ".join([name, *cells]) + " |")
    return "\n".join(lines) + "\n"


def _cell(values: Mapping[str, float | None]) -> str:
    def scaled(key: str, factor: float, digits: int) -> str:
        value = values[key]
        return "–" if value is None else f"{value * factor:.{digits}f}"

    return f"{scaled('miou', 100, 2)} / {scaled('pd', 100, 2)} / {scaled('fa', 1e6, 2)}"
