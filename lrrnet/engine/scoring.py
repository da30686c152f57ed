"""Scoring saved prediction maps against masks: pairing, metrics, report files.

What ``cal_from_mask.py`` runs. Predictions may come from this project's ``inference.py``
(a results folder with ``mat/`` and ``img/``) or from any other framework (a folder of
``.mat`` files holding ``T``, or of ``.png`` maps read as value / 255). :func:`read_roc`
reads back the curve the report keeps, for ``tools/visualize.py --roc``.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lrrnet.data.io import IMAGE_SUFFIXES, image_files, read_mask, read_prediction
from lrrnet.data.layouts import mask_index
from lrrnet.data.matfile import write_matrices
from lrrnet.data.transforms import resize_map
from lrrnet.data.validation import warn_size_mismatch
from lrrnet.errors import DataError, summarize
from lrrnet.files import atomic_path, jsonable, write_json_atomic, write_text_atomic
from lrrnet.metrics import (
    _TABLE_COLUMNS,
    CURVE_THRESHOLDS,
    METRIC_KEYS,
    MetricAccumulator,
    _format_cell,
    format_area_table,
    format_table,
    mean_and_std,
)
from lrrnet.progress import Progress
from lrrnet.visualize import RocCurve, pd_fa_plot, roc_and_pd_fa_plot, roc_plot

logger = logging.getLogger(__name__)

# What write_report writes. Never into a folder that is read as maps (report_json_path), so
# a frame of any name is scored and no report replaces a map.
REPORT_FILES = ("metrics.json", "metrics.txt", "roc.mat", "roc.png", "pd_fa.csv", "pd_fa.png")
# Frames read and scored at once by metrics_of_pairs.
SCORING_THREADS = min(4, os.cpu_count() or 1)
# The subfolders of a results folder of inference.py that hold maps, in order of preference.
MAP_FOLDERS = ("mat", "img")


@dataclass(frozen=True)
class PredictionFilePair:
    """The files of a saved prediction map and of the mask it is scored against."""

    name: str
    prediction: Path
    mask: Path


@dataclass(frozen=True)
class PairingProblem:
    """A prediction without a mask, a mask without a prediction, or a size mismatch.

    Attributes:
        kind: ``"missing_mask"``, ``"missing_prediction"`` or ``"size_mismatch"``.
        message: names the file(s).
    """

    kind: str
    message: str


def is_results_folder(pred_dir: str | Path) -> bool:
    """Whether ``pred_dir`` is a results folder (``mat/`` or ``img/`` in it): its maps are
    read from those subfolders only, never from its top level, where the report goes."""
    return any((Path(pred_dir) / folder).is_dir() for folder in MAP_FOLDERS)


def prediction_files(pred_dir: str | Path) -> list[Path]:
    """The prediction maps in ``pred_dir``, sorted by name.

    ``pred_dir`` may be a results folder (``mat/`` preferred over ``img/``; its top level is
    never read as maps), a folder of ``.mat`` files, or a folder of image maps; ``.mat``
    files win over images in one folder. Every file of a map's suffix is a map, whatever its
    name: the report never lies among them (:func:`report_json_path`).
    """
    pred_dir = Path(pred_dir)
    if not pred_dir.is_dir():
        raise DataError(f"{pred_dir}: prediction folder not found")
    results = is_results_folder(pred_dir)
    folders = [pred_dir / folder for folder in MAP_FOLDERS] if results else [pred_dir]
    for folder in folders:
        if not folder.is_dir():
            continue
        mats = sorted(p for p in folder.iterdir() if p.suffix.lower() == ".mat" and p.is_file())
        images = image_files(folder)
        if mats or images:
            return mats or images
    where = f"{pred_dir}/{{{','.join(MAP_FOLDERS)}}}" if results else str(pred_dir)
    raise DataError(f"{where}: no prediction maps (.mat or {'/'.join(IMAGE_SUFFIXES)})")


def default_report_dir(pred_dir: str | Path) -> Path:
    """Where :func:`score_folder` writes the report when told nothing: a results folder's top
    level (its maps live in subfolders), or ``<PRED>-report/`` beside a flat folder of maps."""
    pred_dir = Path(pred_dir)
    if is_results_folder(pred_dir):
        return pred_dir
    named = pred_dir if pred_dir.name not in ("", ".", "..") else pred_dir.resolve()
    if not named.name:
        raise DataError(f"{pred_dir}: give --report DIR for the report of this folder")
    return named.with_name(f"{named.name}-report")


def report_json_path(
    pred_dir: str | Path,
    out_dir: str | Path | None = None,
    json_path: str | Path | None = None,
    mask_dir: str | Path | None = None,
) -> Path:
    """The ``metrics.json`` path of a report (the other files go beside it), refused when
    that folder is one whose files are read as maps or masks.

    Args:
        pred_dir: the predictions scored.
        out_dir: the report folder; default :func:`default_report_dir`.
        json_path: the JSON's path; overrides ``out_dir``.
        mask_dir: the mask folder, when the masks come from one.

    Raises:
        DataError: the report would go into (or under) a flat folder of maps, a results
            folder's map subfolders, or the mask folder; one line naming both.
    """
    pred_dir = Path(pred_dir)
    if json_path is not None:
        json_path = Path(json_path)
    else:
        json_path = Path(out_dir if out_dir is not None else default_report_dir(pred_dir))
        json_path = json_path / "metrics.json"
    if is_results_folder(pred_dir):
        read = {pred_dir / folder: "maps" for folder in (*MAP_FOLDERS, "background")}
    else:
        read = {pred_dir: "maps"}
    if mask_dir is not None:
        read[Path(mask_dir)] = "masks"
    folder = json_path.parent.resolve()
    for kept, what in read.items():
        if folder == kept.resolve() or folder.is_relative_to(kept.resolve()):
            raise DataError(
                f"{json_path}: the report would go among the {what} of {kept}, where a frame "
                "could be named like a report file; give --report DIR (or --json FILE) outside it"
            )
    return json_path


def _masks_by_name(masks: str | Path | Mapping[str, str | Path]) -> tuple[dict[str, Path], str]:
    """Masks by image name, and a description of where they come from."""
    if isinstance(masks, Mapping):
        return {name: Path(path) for name, path in masks.items()}, "the given mask list"
    mask_dir = Path(masks)
    if not mask_dir.is_dir():
        raise DataError(f"{mask_dir}: mask folder not found")
    return mask_index(mask_dir), str(mask_dir)


def _one_line(problems: list[PairingProblem]) -> str:
    return summarize([problem.message for problem in problems])


def pair_predictions(
    pred_dir: str | Path,
    masks: str | Path | Mapping[str, str | Path],
    allow_missing: bool = False,
) -> tuple[list[PredictionFilePair], list[PairingProblem]]:
    """Pair each prediction ``<name>.mat|.png`` with mask ``<name>.png|<name>_pixels0.png``.

    The predictions decide what is scored when ``masks`` is a folder: a released dataset's
    ``masks/`` holds every split, so its masks without a prediction are counted in the log,
    not problems. A prediction without a mask is a problem. When ``masks`` is a mapping (a
    config's test split), every listed mask needs a prediction too.

    Args:
        pred_dir: see :func:`prediction_files`.
        masks: a mask folder, or masks by image name (e.g. a dataset's test split).
        allow_missing: report unpaired files (logged and returned) instead of failing.

    Returns:
        The pairs sorted by name, and the problems (empty unless ``allow_missing``).

    Raises:
        DataError: a file has no partner and ``allow_missing`` is false; the one-line
            message names every such file.
    """
    predictions = {p.stem: p for p in prediction_files(pred_dir)}
    masks_by_name, mask_source = _masks_by_name(masks)
    problems = [
        PairingProblem("missing_mask", f"no mask for {path} in {mask_source}")
        for name, path in predictions.items()
        if name not in masks_by_name
    ]
    unused = sorted(name for name in masks_by_name if name not in predictions)
    if isinstance(masks, Mapping):
        problems += [
            PairingProblem(
                "missing_prediction", f"no prediction for mask {masks_by_name[name]} in {pred_dir}"
            )
            for name in unused
        ]
    elif unused:
        logger.info(
            "%d of the %d masks in %s have no prediction (other splits) and are not scored",
            len(unused),
            len(masks_by_name),
            mask_source,
        )
    if problems and not allow_missing:
        stale = [path.name for name, path in predictions.items() if path.name in REPORT_FILES]
        hint = (
            f"; {', '.join(stale)}: a report written among the maps by an earlier version? "
            f"Move it out, reports now go to {default_report_dir(pred_dir)}"
            if stale and not is_results_folder(pred_dir)
            else ""
        )
        raise DataError(
            f"{len(problems)} unpaired file(s): {_one_line(problems)} "
            f"(--allow-missing scores the pairs that exist){hint}"
        )
    for problem in problems:
        logger.warning("skipped: %s", problem.message)
    pairs = [
        PredictionFilePair(name=name, prediction=path, mask=masks_by_name[name])
        for name, path in sorted(predictions.items())
        if name in masks_by_name
    ]
    return pairs, problems


def _accumulate_pair(
    metrics: MetricAccumulator, pair: PredictionFilePair, strict_sizes: bool
) -> PairingProblem | None:
    """Add one pair to ``metrics``; returns the size mismatch instead when strict."""
    prob = read_prediction(pair.prediction)
    mask = read_mask(pair.mask)
    # The lrrnet protocol brings both to 512×512 on its own, as the original does.
    resized_by_protocol = metrics.protocol == "lrrnet"
    if prob.shape != mask.shape and not strict_sizes and not resized_by_protocol:
        warn_size_mismatch(pair.mask, mask.shape, f"prediction {pair.prediction}", prob.shape)
        prob = resize_map(prob, mask.shape)
    if prob.shape != mask.shape and not resized_by_protocol:
        return PairingProblem(
            "size_mismatch",
            f"{pair.prediction} is {prob.shape[1]}×{prob.shape[0]} but mask "
            f"{pair.mask} is {mask.shape[1]}×{mask.shape[0]}",
        )
    try:
        metrics.update(prob, mask)
    except ValueError as error:
        raise DataError(f"{pair.prediction} against {pair.mask}: {error}") from None
    return None


def metrics_of_pairs(
    pairs: list[PredictionFilePair],
    threshold: float = 0.5,
    protocol: str = "standard",
    progress: bool = True,
    allow_missing: bool = False,
    strict_sizes: bool = False,
) -> dict:
    """The metrics of every pair, from one :class:`MetricAccumulator` (with the Pd–Fa curve).

    The mask's resolution is authoritative: in the standard protocol a prediction of
    another size (made at its frame's size when the mask was drawn larger, as SIRST v1
    ``Misc_111``) is resized to the mask bilinearly and the mask named once in a warning.
    With ``strict_sizes`` such a pair is an error naming both files (all of them in one
    message, after the others are scored), or, with ``allow_missing`` too, is skipped and
    counted in ``n_size_mismatch``. The ``lrrnet`` protocol resizes both to 512×512 first,
    so any sizes score (the original writes 512×512 maps for 256×256 masks).

    Returns:
        The metrics of :meth:`MetricAccumulator.compute` plus ``n_size_mismatch``.
    """
    metrics = MetricAccumulator(threshold, protocol, curve_thresholds=CURVE_THRESHOLDS)

    def score_pair(pair: PredictionFilePair) -> tuple[np.ndarray, PairingProblem | None]:
        alone = MetricAccumulator(threshold, protocol, curve_thresholds=CURVE_THRESHOLDS)
        problem = _accumulate_pair(alone, pair, strict_sizes)
        return alone.state(), problem

    mismatches: list[PairingProblem] = []
    # Reading and scoring spend most of their time in OpenCV and NumPy, which release the
    # GIL, so frames are scored SCORING_THREADS at a time. Each pair's sums are added in
    # pair order: integer counts and the nIoU sum come out as one accumulator's, bit for bit.
    pool = ThreadPoolExecutor(max_workers=SCORING_THREADS)
    try:
        with Progress(len(pairs), "scoring", enabled=progress) as bar:
            for state, problem in pool.map(score_pair, pairs):
                metrics.load_state(metrics.state() + state)
                if problem is not None:
                    mismatches.append(problem)
                bar.update()
    finally:
        pool.shutdown(cancel_futures=True)  # an error stops the frames not yet started
    if mismatches and not allow_missing:
        raise DataError(f"{len(mismatches)} size mismatch(es): {_one_line(mismatches)}")
    for problem in mismatches:
        logger.warning("skipped: %s", problem.message)
    if metrics.n_images == 0:
        raise DataError("no prediction could be scored against a mask")
    results = metrics.compute()
    results["n_size_mismatch"] = len(mismatches)
    return results


def write_report(
    results: dict,
    out_dir: str | Path,
    json_path: str | Path | None = None,
    plots: bool = True,
) -> dict[str, Path]:
    """Write ``metrics.json``, ``metrics.txt``, ``roc.mat``, ``roc.png`` and, when the
    results hold a ``pd_fa_curve``, ``pd_fa.csv`` and ``pd_fa.png``.

    Args:
        results: from :func:`metrics_of_pairs` (or :meth:`MetricAccumulator.compute`), possibly
            with extra scalar entries, which go into the JSON too (``pd_by_area`` included;
            the curve goes to its own files).
        out_dir: folder for the files.
        json_path: write the JSON here instead, and the other files beside it.
        plots: also draw ``roc.png`` and ``pd_fa.png`` (:mod:`lrrnet.charts`, a few ms).
            Without them the report holds the same numbers (``roc.mat``, ``pd_fa.csv``).

    Returns:
        The written paths by kind: ``json``, ``txt``, ``roc_mat``, perhaps ``roc_png``, and
        with a curve ``pd_fa_csv`` and perhaps ``pd_fa_png``.
    """
    json_path = Path(json_path) if json_path else Path(out_dir) / "metrics.json"
    folder = json_path.parent
    folder.mkdir(parents=True, exist_ok=True)
    paths = {
        "json": json_path,
        "txt": folder / "metrics.txt",
        "roc_mat": folder / "roc.mat",
    }
    scalars = {
        key: value
        for key, value in results.items()
        if not isinstance(value, np.ndarray) and key != "pd_fa_curve"
    }
    write_json_atomic(paths["json"], scalars)
    text = format_table(results)
    if "pd_by_area" in results:
        text += "\n\nPd by target area (px)\n" + format_area_table(results["pd_by_area"])
    write_text_atomic(paths["txt"], text + "\n")
    write_matrices(
        paths["roc_mat"],
        {
            "fpr": results["roc_fpr"],
            "tpr": results["roc_tpr"],
            "thresholds": results["roc_thresholds"],
            "auc": results["auc"],
        },
    )
    # One ROC plotter for the project: the same figure as `tools/visualize.py --roc`.
    label = Path(results.get("predictions", "predictions")).name or "predictions"
    if plots:
        paths["roc_png"] = folder / "roc.png"
        roc = (label, results["roc_fpr"], results["roc_tpr"], results["auc"])
        roc_plot([roc], paths["roc_png"])
    if results.get("pd_fa_curve"):
        paths["pd_fa_csv"] = folder / "pd_fa.csv"
        _write_rows(results["pd_fa_curve"], paths["pd_fa_csv"])
        if plots:
            paths["pd_fa_png"] = folder / "pd_fa.png"
            pd_fa_plot([(label, results["pd_fa_curve"])], paths["pd_fa_png"])
    return paths


def read_roc(folder: str | Path, label: str | None = None) -> RocCurve:
    """The curve in ``folder/roc.mat`` and the AUC in ``folder/metrics.json``.

    Both are written by :func:`write_report` (``cal_from_mask.py``); without
    ``metrics.json`` the AUC stored in ``roc.mat`` is used.

    Args:
        folder: a scored results folder, a report folder, or a flat folder of maps scored
            with the default report folder beside it.
        label: the legend entry; default the folder as given.

    Raises:
        DataError: the folder or its ``roc.mat`` is missing or unreadable.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: results folder not found")
    if (default_report_dir(folder) / "roc.mat").is_file():
        # A flat folder of maps, scored beside it; its own roc.mat would be a frame.
        folder = default_report_dir(folder)
    roc_path = folder / "roc.mat"
    if not roc_path.is_file():
        raise DataError(
            f"{roc_path}: not found; score the folder first: "
            f"python cal_from_mask.py --pred {folder} --masks MASK_DIR"
        )
    import scipy.io  # here: scoring itself never needs it

    try:
        content = scipy.io.loadmat(str(roc_path))
        fpr = np.asarray(content["fpr"], dtype=np.float64).ravel()
        tpr = np.asarray(content["tpr"], dtype=np.float64).ravel()
    except Exception as error:  # scipy raises several types; a missing key is a KeyError
        raise DataError(f"{roc_path}: cannot read fpr/tpr ({error!r})") from None
    if fpr.shape != tpr.shape:
        raise DataError(f"{roc_path}: fpr has {fpr.size} points but tpr {tpr.size}")
    auc = float(np.asarray(content.get("auc", math.nan)).ravel()[0])
    json_path = folder / "metrics.json"
    if json_path.is_file():
        try:
            stored = json.loads(json_path.read_text()).get("auc")
        except (json.JSONDecodeError, AttributeError) as error:
            raise DataError(f"{json_path}: not a metrics JSON object ({error})") from None
        auc = math.nan if stored is None else float(stored)  # JSON writes NaN as null
    return RocCurve(label if label is not None else str(folder), fpr, tpr, auc)


def _write_rows(rows: list[Mapping[str, float]], path: Path) -> None:
    """Rows of equal keys as CSV (full precision; an undefined value is left empty)."""
    with atomic_path(path) as temp, temp.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        for row in rows:
            writer.writerow({k: "" if jsonable(v) is None else v for k, v in row.items()})


def score_folder(
    pred_dir: str | Path,
    masks: str | Path | Mapping[str, str | Path],
    threshold: float = 0.5,
    protocol: str = "standard",
    allow_missing: bool = False,
    out_dir: str | Path | None = None,
    json_path: str | Path | None = None,
    progress: bool = True,
    strict_sizes: bool = False,
    plots: bool = True,
) -> dict:
    """Pair, score and write the report: everything ``cal_from_mask.py`` does.

    Args:
        pred_dir: predictions (see :func:`prediction_files`).
        masks: a mask folder, or masks by image name.
        threshold: a pixel is positive when ``p > threshold``.
        protocol: ``"standard"`` or ``"lrrnet"`` (see :mod:`lrrnet.metrics`).
        allow_missing: skip and count unpaired files and size mismatches instead of failing.
        out_dir: folder for the report; default :func:`default_report_dir` (``pred_dir``
            for a results folder, ``<pred_dir>-report`` beside a flat folder of maps).
        json_path: the JSON's path (the other files go beside it); overrides ``out_dir``.
            Neither may be a folder read as maps or masks (:func:`report_json_path`).
        progress: show progress (a bar on a terminal, log lines elsewhere).
        strict_sizes: a prediction of another size than its mask is an error (see
            :func:`metrics_of_pairs`).
        plots: draw the report's two figures (see :func:`write_report`).

    Returns:
        The metrics, the ROC arrays, ``n_missing_mask``, ``n_missing_prediction``,
        ``n_size_mismatch``, ``protocol``, ``threshold``, ``predictions`` and ``report``
        (the written paths).
    """
    mask_dir = None if isinstance(masks, Mapping) else masks
    # Checked before the scoring work, so a refused place costs nothing.
    json_path = report_json_path(pred_dir, out_dir, json_path, mask_dir)
    pairs, problems = pair_predictions(pred_dir, masks, allow_missing=allow_missing)
    if not pairs:
        raise DataError(f"{pred_dir}: no prediction has a mask")
    results = metrics_of_pairs(
        pairs,
        threshold=threshold,
        protocol=protocol,
        progress=progress,
        allow_missing=allow_missing,
        strict_sizes=strict_sizes,
    )
    for kind in ("missing_mask", "missing_prediction"):
        results[f"n_{kind}"] = sum(problem.kind == kind for problem in problems)
    results.update(protocol=protocol, threshold=threshold, predictions=str(pred_dir))
    paths = write_report(results, json_path.parent, json_path, plots=plots)
    results["report"] = {kind: str(path) for kind, path in paths.items()}
    return results


# Many folders in one table: cal_from_mask.py --pred A --pred B … --table OUT.md|.csv|.tex.
TABLE_SUFFIXES = (".md", ".csv", ".tex")


@dataclass(frozen=True)
class TableRow:
    """One row of a table of many folders.

    Attributes:
        name: the row's name (``--pred NAME=DIR``; a plain ``DIR`` names itself).
        folders: the folders scored into it, more than one for a group (e.g. seeds).
        metrics: a folder's metrics (:func:`score_folder`), or for a group ``{key: (mean,
            std)}`` of :data:`METRIC_KEYS` (:func:`lrrnet.metrics.mean_and_std`) with
            ``n_images`` and ``n_targets`` when the folders agree on them.
    """

    name: str
    folders: tuple[str, ...]
    metrics: dict


def named_folder(text: str) -> tuple[str, str]:
    """``NAME=DIR`` as ``(NAME, DIR)``; a plain ``DIR`` (an existing folder whose name holds
    ``=`` too) is named by itself."""
    name, sep, folder = text.partition("=")
    if sep and name and folder and not Path(text).is_dir():
        return name, folder
    return text, text


def table_rows(scored: Sequence[tuple[str, str, dict]]) -> list[TableRow]:
    """One row per name, in the order names first appear.

    Args:
        scored: ``(name, folder, metrics)`` per folder; folders of one name form a group.
    """
    groups: dict[str, list[tuple[str, dict]]] = {}
    for name, folder, metrics in scored:
        groups.setdefault(name, []).append((folder, metrics))
    rows = []
    for name, members in groups.items():
        folders = tuple(folder for folder, _ in members)
        if len(members) == 1:
            rows.append(TableRow(name, folders, members[0][1]))
            continue
        summary: dict[str, Any] = dict(mean_and_std([metrics for _, metrics in members]))
        for key in ("n_images", "n_targets"):
            values = {metrics[key] for _, metrics in members}
            if len(values) == 1:
                summary[key] = values.pop()
            else:
                logger.warning("%s: its folders scored different %s: %s", name, key, values)
        rows.append(TableRow(name, folders, summary))
    return rows


def write_table(rows: Sequence[TableRow], path: str | Path) -> Path:
    """Write the rows as Markdown (``.md``), CSV (``.csv``) or LaTeX (``.tex``).

    Markdown and LaTeX show the cells of :func:`lrrnet.metrics.format_table` (IoU … F1 and
    Pd in %, Fa ×10⁻⁶, a group as ``mean ± std``). The CSV holds fractions at full precision:
    ``name``, ``folders`` (space-separated), :data:`METRIC_KEYS`, ``n_images``, ``n_targets``,
    then ``<key>_std`` for each metric (a group's sample std; empty for one folder).

    Raises:
        DataError: another suffix.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        raise DataError(f"{path}: a table is {', '.join(TABLE_SUFFIXES)}")
    if suffix == ".csv":
        _write_table_csv(rows, path)
        return path
    header = ["run", *(column[0] for column in _TABLE_COLUMNS)]
    body = [
        [
            row.name,
            *(
                _format_cell(row.metrics.get(key), scale, fmt)
                for _, key, scale, fmt in _TABLE_COLUMNS
            ),
        ]
        for row in rows
    ]
    if suffix == ".md":
        lines = [_markdown_line(header), _markdown_line(["---", *["---:"] * (len(header) - 1)])]
        lines += [_markdown_line(cells) for cells in body]
    else:
        lines = [
            r"\begin{tabular}{l" + "r" * (len(header) - 1) + "}",
            r"\hline",
            " & ".join(_latex(cell) for cell in header) + r" \\",
            r"\hline",
            *(" & ".join(_latex(cell) for cell in cells) + r" \\" for cells in body),
            r"\hline",
            r"\end{tabular}",
        ]
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, "\n".join(lines) + "\n")
    return path


def _markdown_line(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cell.replace("|", r"\|") for cell in cells) + " |"


_LATEX_SPECIAL = {c: "\\" + c for c in "&%$#_{}"} | {"\\": r"\textbackslash{}", "~": r"\~{}"}


def _latex(cell: str) -> str:
    escaped = "".join(_LATEX_SPECIAL.get(c, c) for c in cell)
    return escaped.replace(" ± ", r" $\pm$ ").replace("^", r"\^{}")


def _write_table_csv(rows: Sequence[TableRow], path: Path) -> None:
    fields = ["name", "folders", *METRIC_KEYS, "n_images", "n_targets"]
    fields += [f"{key}_std" for key in METRIC_KEYS]
    lines = []
    for row in rows:
        line: dict[str, Any] = {"name": row.name, "folders": " ".join(row.folders)}
        for key in (*METRIC_KEYS, "n_images", "n_targets"):
            value = row.metrics.get(key)
            if isinstance(value, tuple):  # a group's (mean, std)
                line[key], line[f"{key}_std"] = value
            else:
                line[key] = value
        lines.append({key: line.get(key) for key in fields})
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_rows(lines, path)


def curves_plot(scored: Sequence[tuple[str, str, dict]], path: str | Path) -> Path:
    """The ROC and the Pd–Fa curves of every folder in one figure (one line each; the
    folders of a group are numbered in the order given)."""
    counts: dict[str, int] = {}
    for name, _, _ in scored:
        counts[name] = counts.get(name, 0) + 1
    seen: dict[str, int] = {}
    labels = []
    for name, _, _ in scored:
        seen[name] = seen.get(name, 0) + 1
        labels.append(f"{name} #{seen[name]}" if counts[name] > 1 else name)
    roc = [
        (label, m["roc_fpr"], m["roc_tpr"], m["auc"])
        for label, (_, _, m) in zip(labels, scored, strict=True)
    ]
    pd_fa = [
        (label, m.get("pd_fa_curve") or []) for label, (_, _, m) in zip(labels, scored, strict=True)
    ]
    return roc_and_pd_fa_plot(roc, pd_fa, path)


def score_folders(
    preds: Sequence[str], masks: str | Path | Mapping[str, str | Path], **options: Any
) -> list[tuple[str, str, dict]]:
    """Score each ``[NAME=]DIR`` of ``preds`` alone, as :func:`score_folder` does (each
    report where scoring it alone writes it), for :func:`table_rows` and :func:`curves_plot`.

    Args:
        preds: ``NAME=DIR`` or ``DIR`` items (:func:`named_folder`).
        masks: a mask folder, or masks by image name, for every folder.
        options: keyword arguments of :func:`score_folder`; ``out_dir`` and ``json_path``
            only with one folder (else each report goes where scoring it alone puts it).

    Returns:
        ``(name, folder, metrics)`` per item, in order.
    """
    scored = []
    for text in preds:
        name, folder = named_folder(text)
        scored.append((name, folder, score_folder(folder, masks, **options)))
    return scored
