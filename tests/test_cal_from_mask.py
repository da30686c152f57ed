"""cal_from_mask.py as a user runs it: exit codes, one-line errors, the JSON it writes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from lrrnet.data.io import write_prediction

SCRIPT = Path(__file__).resolve().parents[1] / "cal_from_mask.py"


def run(*args, cwd=None):
    return subprocess.run(
        [sys.executable, str(SCRIPT), *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
    )


def write_pair(masks, results, name, target, found):
    """Mask with one target pixel; prediction 0.9 there when ``found``, else at (0,0)."""
    masks.mkdir(parents=True, exist_ok=True)
    mask = np.zeros((6, 6), np.uint8)
    mask[target] = 255
    cv2.imwrite(str(masks / f"{name}.png"), mask)
    prob = np.zeros((6, 6), np.float32)
    prob[target if found else (0, 0)] = 0.9
    write_prediction(results, name, prob)


def test_folder_mode_writes_json(tmp_path):
    masks, results = tmp_path / "masks", tmp_path / "results"
    write_pair(masks, results, "a", (2, 2), found=True)
    write_pair(masks, results, "b", (4, 4), found=False)
    json_path = tmp_path / "out" / "scores.json"
    done = run("--pred", results, "--masks", masks, "--json", json_path)
    assert done.returncode == 0, done.stderr
    assert "IoU" in done.stdout and "Fa(e-6)" in done.stdout
    assert "scoring: 2/2 img in" in done.stderr  # progress, off a terminal, as a log line
    saved = json.loads(json_path.read_text())
    # a: TP 1. b: missed, one false-alarm pixel. IoU 1/3, Pd 1/2, Fa 1/72.
    assert saved["miou"] == pytest.approx(1 / 3, abs=1e-12)
    assert saved["pd"] == 0.5 and saved["fa"] == pytest.approx(1 / 72, abs=1e-12)
    assert (saved["n_images"], saved["n_targets"]) == (2, 2)
    assert (tmp_path / "out" / "roc.mat").is_file() and (tmp_path / "out" / "roc.png").is_file()


def test_lrrnet_protocol_and_threshold_flags(tmp_path):
    masks, results = tmp_path / "masks", tmp_path / "results"
    write_pair(masks, results, "a", (2, 2), found=True)
    done = run("--pred", results, "--masks", masks, "--protocol", "lrrnet", "--threshold", 0.95)
    assert done.returncode == 0, done.stderr
    saved = json.loads((results / "metrics.json").read_text())
    # Normalised by its maximum the detection is 1.0 > 0.95 even though 0.9 < 0.95.
    assert saved["protocol"] == "lrrnet" and saved["threshold"] == 0.95 and saved["pd"] == 1.0


def test_a_prediction_without_a_mask_exits_2_with_one_line(tmp_path):
    masks, results = tmp_path / "masks", tmp_path / "results"
    write_pair(masks, results, "a", (2, 2), found=True)
    write_pair(masks, tmp_path / "elsewhere", "b", (2, 2), found=True)  # another split's mask
    write_pair(tmp_path / "other_masks", results, "c", (2, 2), found=True)  # c has no mask
    done = run("--pred", results, "--masks", masks)
    assert done.returncode == 2
    error = done.stderr.splitlines()[-1]  # after an INFO line counting the unused mask b
    assert error.startswith("error: ") and done.stderr.count("error") == 1
    assert str(results / "mat" / "c.mat") in error and "b.png" not in error
    allowed = run("--pred", results, "--masks", masks, "--allow-missing")
    assert allowed.returncode == 0, allowed.stderr
    assert "1 predictions without a mask" in allowed.stdout
    assert json.loads((results / "metrics.json").read_text())["n_images"] == 1


def test_mask_of_another_size_scores_unless_strict_sizes(tmp_path):
    masks, results = tmp_path / "masks", tmp_path / "results"
    write_pair(masks, results, "a", (2, 2), found=True)
    cv2.imwrite(str(masks / "a.png"), cv2.resize(cv2.imread(str(masks / "a.png")), (12, 12)))
    done = run("--pred", results, "--masks", masks)
    assert done.returncode == 0, done.stderr
    assert f"{masks / 'a.png'}: mask is 12x12" in done.stderr
    strict = run("--pred", results, "--masks", masks, "--strict-sizes")
    error = strict.stderr.splitlines()[-1]
    assert strict.returncode == 2 and error.startswith("error: ") and "mask is" not in strict.stderr
    assert "size mismatch" in error and str(masks / "a.png") in error


def test_missing_folder_and_bad_usage(tmp_path):
    done = run("--pred", tmp_path / "nothing", "--masks", tmp_path)
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert str(tmp_path / "nothing") in done.stderr
    assert run("--pred", tmp_path).returncode == 2  # --masks missing: a usage error


def test_config_mode_scores_results_against_test_masks(tmp_path):
    from lrrnet.config import load_config

    root, results_root = tmp_path / "data", tmp_path / "results"
    overrides = [f"data.root={root}", f"paths.results={results_root}"]
    name = load_config("base", overrides)["name"]
    blank = np.zeros((6, 6), np.uint8)
    for split, names in (("trainval", ["t1", "t2", "t3", "t4"]), ("test", ["x1", "x2"])):
        (root / split / "images").mkdir(parents=True)
        for image_name in names:
            cv2.imwrite(str(root / split / "images" / f"{image_name}.png"), blank)
            write_pair(root / split / "masks", tmp_path / "unused", image_name, (3, 3), True)
    results = results_root / name
    write_pair(tmp_path / "unused_masks", results, "x1", (3, 3), found=True)
    write_pair(tmp_path / "unused_masks", results, "x2", (3, 3), found=False)
    done = run("base", *[arg for item in overrides for arg in ("--set", item)])
    assert done.returncode == 0, done.stderr
    saved = json.loads((results / "metrics.json").read_text())
    assert (saved["n_images"], saved["pd"]) == (2, 0.5)


def _three_folders(tmp_path):
    """Masks a, b, c and three results folders that find 3, 2 and 1 of the targets."""
    masks = tmp_path / "masks"
    folders = [tmp_path / name for name in ("good", "seed1", "seed2")]
    for folder, found in zip(folders, ((1, 1, 1), (1, 1, 0), (1, 0, 0)), strict=True):
        for name, target, hit in zip("abc", ((2, 2), (4, 4), (1, 3)), found, strict=True):
            write_pair(masks, folder, name, target, found=bool(hit))
    return masks, folders


def test_many_folders_one_table_each_row_as_scored_alone(tmp_path, capsys, script_logging):
    import csv

    import cal_from_mask

    masks, (good, seed1, seed2) = _three_folders(tmp_path)
    alone = {}
    for folder in (good, seed1, seed2):
        json_path = tmp_path / "alone" / folder.name / "metrics.json"
        assert (
            cal_from_mask.main(
                ["--pred", str(folder), "--masks", str(masks), "--json", str(json_path)]
            )
            == 0
        )
        alone[folder.name] = json.loads(json_path.read_text())
    preds = ["--pred", f"best_net={good}", "--pred", f"seeds={seed1}", "--pred", f"seeds={seed2}"]
    table = tmp_path / "table.csv"
    curves = tmp_path / "curves.png"
    args = [*preds, "--masks", str(masks), "--table", str(table), "--curves", str(curves)]
    assert cal_from_mask.main(args) == 0
    printed = capsys.readouterr().out
    assert "best_net" in printed and "±" in printed
    assert curves.stat().st_size > 0
    with table.open() as handle:
        rows = {row["name"]: row for row in csv.DictReader(handle)}
    assert list(rows) == ["best_net", "seeds"]
    for key in ("miou", "niou", "precision", "recall", "f1", "pd", "fa", "auc"):
        assert float(rows["best_net"][key]) == alone["good"][key]
        assert rows["best_net"][f"{key}_std"] == ""
        pair = np.array([alone["seed1"][key], alone["seed2"][key]])
        assert float(rows["seeds"][key]) == pytest.approx(pair.mean(), abs=1e-15)
        assert float(rows["seeds"][f"{key}_std"]) == pytest.approx(pair.std(ddof=1), abs=1e-15)
    assert rows["seeds"]["folders"] == f"{seed1} {seed2}" and rows["seeds"]["n_images"] == "3"
    # Pd: 2/3 and 1/3 of the targets: a mean of 1/2, a sample std of √2/6.
    assert float(rows["seeds"]["pd"]) == pytest.approx(0.5)
    assert float(rows["seeds"]["pd_std"]) == pytest.approx(np.sqrt(2) / 6)


def test_markdown_and_latex_tables_and_unnamed_folders(tmp_path, capsys, script_logging):
    import cal_from_mask

    masks, (good, seed1, seed2) = _three_folders(tmp_path)
    markdown, latex = tmp_path / "t.md", tmp_path / "t.tex"
    grouped = ["--pred", f"my_seeds={seed1}", "--pred", f"my_seeds={seed2}"]
    assert cal_from_mask.main([*grouped, "--masks", str(masks), "--table", str(markdown)]) == 0
    lines = markdown.read_text().splitlines()
    assert lines[0].startswith("| run | IoU | nIoU |") and lines[1].startswith("| --- | ---: |")
    assert lines[2].startswith("| my_seeds |") and "50.00 ± 23.57" in lines[2]  # Pd in %
    assert cal_from_mask.main([*grouped, "--masks", str(masks), "--table", str(latex)]) == 0
    text = latex.read_text()
    assert r"\begin{tabular}" in text and r"my\_seeds" in text and r"50.00 $\pm$ 23.57" in text
    # Plain folders name themselves: two folders are two rows, never a group.
    plain = tmp_path / "plain.csv"
    assert (
        cal_from_mask.main(
            [
                "--pred",
                str(seed1),
                "--pred",
                str(seed2),
                "--masks",
                str(masks),
                "--table",
                str(plain),
            ]
        )
        == 0
    )
    assert plain.read_text().count("\n") == 3


def test_json_with_several_folders_is_a_usage_error(tmp_path, capsys, script_logging):
    import cal_from_mask

    masks, (good, seed1, _) = _three_folders(tmp_path)
    two = ["--pred", str(good), "--pred", str(seed1), "--masks", str(masks)]
    with pytest.raises(SystemExit) as usage:
        cal_from_mask.main([*two, "--json", str(tmp_path / "m.json")])
    assert usage.value.code == 2 and "give one --pred" in capsys.readouterr().err
    with pytest.raises(SystemExit) as usage:
        cal_from_mask.main([*two, "--table", str(tmp_path / "t.xlsx")])
    assert usage.value.code == 2 and "t.xlsx: a table is .md, .csv, .tex" in capsys.readouterr().err
    # The figures are written by OpenCV: a format it cannot write is refused before scoring.
    with pytest.raises(SystemExit) as usage:
        cal_from_mask.main([*two, "--curves", str(tmp_path / "c.pdf")])
    assert usage.value.code == 2 and "c.pdf: a figure is .png, .bmp" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--json", "{notes}/m.json"], "--json {notes}/m.json: {notes} is a file, not a folder"),
        (["--report", "{notes}/r"], "--report {notes}/r: {notes} is a file, not a folder"),
        (["--table", "{notes}/t.md"], "--table {notes}/t.md: {notes} is a file, not a folder"),
        (["--curves", "{tmp}/c.png/x.png"], "--curves {tmp}/c.png/x.png: {tmp}/c.png is a file"),
        # A flat folder's report goes to DIR-report/ beside it, here a file: with a results
        # folder scored first, that folder's scoring is the work refused.
        ([], "--pred's report {tmp}/flat-report: {tmp}/flat-report is a file, not a folder"),
        (["--pred", "{results}"], "--pred's report {tmp}/flat-report: {tmp}/flat-report is"),
    ],
)
def test_an_output_place_that_cannot_be_written_is_refused_before_scoring(
    tmp_path, capsys, script_logging, monkeypatch, options, message
):
    import cal_from_mask

    masks, results, flat = tmp_path / "masks", tmp_path / "results", tmp_path / "flat"
    write_pair(masks, results, "a", (2, 2), found=True)
    flat.mkdir()
    (flat / "a.png").write_bytes((results / "img" / "a.png").read_bytes())
    notes = tmp_path / "notes.txt"
    for blocker in (notes, tmp_path / "c.png"):
        blocker.write_text("a user's")
    if "flat-report" in message:
        (tmp_path / "flat-report").write_text("a user's")
    for name in ("score_folder", "score_folders"):
        monkeypatch.setattr(cal_from_mask, name, lambda *a, **k: pytest.fail("scored"))
    names = {"notes": notes, "tmp": tmp_path, "results": results}
    argv = [option.format(**names) for option in options]
    assert cal_from_mask.main([*argv, "--pred", str(flat), "--masks", str(masks)]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("error: " + message.format(**names)), last
    assert notes.read_text() == "a user's"


def run_reporting_imports(*args) -> tuple[set[str], subprocess.CompletedProcess]:
    """Run the script in one interpreter that says which of Matplotlib and SciPy it imported."""
    probe = (
        "import runpy, sys; sys.argv = sys.argv[1:]\n"
        "try:\n    runpy.run_path(sys.argv[0], run_name='__main__')\n"
        "except SystemExit as done:\n    code = done.code\n"
        "print(*[m for m in ('matplotlib', 'scipy') if m in sys.modules], code)"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe, str(SCRIPT), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    *imported, code = done.stdout.strip().splitlines()[-1].split()
    assert code == "0", done.stderr
    return set(imported), done


def test_scoring_imports_neither_matplotlib_nor_scipy_and_no_plots_leaves_the_figures_out(
    tmp_path,
):
    masks, results = tmp_path / "masks", tmp_path / "results"
    write_pair(masks, results, "a", (2, 2), found=True)
    report = tmp_path / "report"
    imported, done = run_reporting_imports(
        "--pred", results, "--masks", masks, "--report", report, "--no-plots"
    )
    assert not imported
    written = sorted(path.name for path in report.iterdir())
    assert written == ["metrics.json", "metrics.txt", "pd_fa.csv", "roc.mat"]
    assert "(+ metrics.txt, roc.mat, pd_fa.csv beside it)" in done.stdout
    # Either import costs more than scoring many frames: the figures, the maps (written by
    # inference.py, compressed) and roc.mat are drawn, read and written without them.
    imported, plotted = run_reporting_imports(
        "--pred", results, "--masks", masks, "--report", tmp_path / "plotted"
    )
    assert not imported
    for name in ("roc.png", "pd_fa.png"):
        figure = cv2.imread(str(tmp_path / "plotted" / name))
        assert figure is not None and figure.shape == (540, 660, 3), name
    assert "roc.png, pd_fa.csv, pd_fa.png beside it" in plotted.stdout
