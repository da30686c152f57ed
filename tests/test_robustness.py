"""Robustness sweeps: the corruptions, their seeding, and tools/robustness.py against the
plain inference.py → cal_from_mask.py path."""

from __future__ import annotations

import csv
import json

import cv2
import numpy as np
import pytest
import torch
from conftest import load_tool

import cal_from_mask
import inference
from lrrnet.baselines import run_baseline_on_folder
from lrrnet.data import Sample
from lrrnet.data.io import read_image
from lrrnet.data.synthetic import generate_dataset
from lrrnet.engine.inference import load_sample
from lrrnet.engine.predictor import Predictor
from lrrnet.engine.scoring import score_folder
from lrrnet.errors import ConfigError, DataError
from lrrnet.models import LRRNet
from lrrnet.robustness import (
    CORRUPTIONS,
    BaselineMaps,
    Condition,
    parse_noise,
    plot_comparison,
    read_csv,
    samples_with_masks,
    sweep,
    write_csv,
)

TINY = {"base_channels": 8, "num_groups": 4, "channel_mults": (1, 2), "num_res_blocks": 1}


@pytest.fixture(scope="module")
def frames(tmp_path_factory):
    """Four 32×32 synthetic test frames with their masks: ``DIR/images``, ``DIR/masks``."""
    root = tmp_path_factory.mktemp("robustness")
    data = generate_dataset(root / "data", num_train=1, num_test=4, size=32, seed=3, progress=False)
    return data / "test"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pth"
    torch.save({"model": LRRNet(**TINY).state_dict(), "config": {"model": TINY}}, path)
    return path


def read_rows(path):
    with path.open() as handle:
        return list(csv.DictReader(handle))


def test_clean_rows_equal_inference_then_cal_from_mask(
    frames, checkpoint, tmp_path, capsys, script_logging
):
    out = tmp_path / "sweep"
    tool = load_tool("robustness")
    common = ["--size", "native", "--device", "cpu", "--batch-size", "3"]
    code = tool.main(
        ["--checkpoint", str(checkpoint), "--images", str(frames / "images")]
        + ["--masks", str(frames / "masks"), "--out", str(out), *common]
        + ["--noise", "gaussian=0,20", "--noise", "blur=1,0"]
    )
    assert code == 0
    printed = capsys.readouterr()
    assert "gaussian=20" in printed.out and "IoU" in printed.out
    assert "4 conditions in 3 passes" in printed.err  # the clean pass is shared
    rows = read_rows(out / "robustness.csv")
    assert list(rows[0]) == ["noise", "level", "miou", "niou", "f1", "pd", "fa"]
    assert [(r["noise"], r["level"]) for r in rows] == [
        ("gaussian", "0"),
        ("gaussian", "20"),
        ("blur", "1"),
        ("blur", "0"),
    ]
    assert (out / "robustness.png").stat().st_size > 0

    maps = tmp_path / "maps"
    args = ["--checkpoint", str(checkpoint), "--images", str(frames), "--out", str(maps)]
    assert inference.main(args + common) == 0
    assert cal_from_mask.main(["--pred", str(maps), "--masks", str(frames / "masks")]) == 0
    alone = json.loads((maps / "metrics.json").read_text())
    for row in (rows[0], rows[3]):
        assert {k: float(row[k]) for k in ("miou", "niou", "f1", "pd", "fa")} == {
            k: alone[k] for k in ("miou", "niou", "f1", "pd", "fa")
        }
    assert rows[1]["miou"] != rows[0]["miou"]  # 20 grey levels of noise change the maps

    again = tmp_path / "again"
    assert tool.main([*_flags(checkpoint, frames, again), "--noise", "gaussian=0,20"]) == 0
    assert read_rows(again / "robustness.csv") == rows[:2]  # seeded: the same rows again


def _flags(checkpoint, frames, out):
    return ["--checkpoint", str(checkpoint), "--images", str(frames), "--out", str(out)] + [
        "--size",
        "native",
        "--device",
        "cpu",
    ]


def test_a_sweep_costs_one_pass_per_distinct_condition(frames, checkpoint):
    predictor = Predictor.from_checkpoint(checkpoint, device="cpu")
    seen = []
    real = predictor.predict_batch

    def counting(images):
        seen.append(len(images))
        return real(images)

    predictor.predict_batch = counting
    conditions = parse_noise(["gaussian=0,5,10", "stripe=0,3", "contrast=0"])
    rows = sweep(predictor, samples_with_masks(frames), conditions, progress=False)
    assert [c for c, _ in rows] == conditions
    assert sum(seen) == 4 * 4  # clean once, gaussian 5 and 10, stripe 3: four passes
    assert rows[0][1] is rows[3][1] is rows[5][1]


def test_baseline_clean_row_equals_its_written_maps_scored(frames, tmp_path):
    maps = tmp_path / "tophat"
    run_baseline_on_folder(frames, "tophat", maps, {"size": 5, "gain": 4.0})
    alone = score_folder(maps, frames / "masks", progress=False)
    baseline = BaselineMaps("tophat", {"size": 5, "gain": 4.0})
    rows = sweep(baseline, samples_with_masks(frames), parse_noise(["deadpixels=0,0.01"]))
    for key in ("miou", "niou", "f1", "pd", "fa", "auc"):
        assert rows[0][1][key] == alone[key]
    with pytest.raises(ConfigError, match="unknown parameter"):
        BaselineMaps("tophat", {"patch": 3})


def test_gaussian_is_inference_noise_and_every_kind_is_seeded_by_frame(tmp_path):
    pixels = np.random.default_rng(0).integers(0, 256, (16, 24), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "frame.png"), pixels)
    image = read_image(tmp_path / "frame.png")
    noisy = Condition("gaussian", 20.0).corruption(seed=5)("frame", image)
    inference_noise = load_sample(Sample("frame", tmp_path / "frame.png", None), False, 20.0, 5)
    np.testing.assert_array_equal(noisy, inference_noise.image)  # --noise-sigma 20 --noise-seed 5
    for kind in CORRUPTIONS:
        assert Condition(kind, 0.0).corruption(seed=5) is None  # level 0: the frame itself
        level = 0.5 if kind in ("deadpixels", "contrast") else 3.0
        corrupt = Condition(kind, level).corruption(seed=5)
        first = corrupt("frame", image)
        assert first.shape == image.shape and first.dtype == np.float32
        assert first.min() >= 0.0 and first.max() <= 1.0
        np.testing.assert_array_equal(first, corrupt("frame", image.copy()))
        assert not np.array_equal(first, image)
        if kind not in ("blur", "contrast"):  # the random kinds
            other = Condition(kind, level).corruption(seed=6)("frame", image)
            assert not np.array_equal(first, other)
            assert not np.array_equal(first, corrupt("another frame", image))


def test_the_kinds_do_what_their_scale_says():
    flat = np.full((64, 64), 0.5, np.float32)
    rng = np.random.default_rng
    stripes = CORRUPTIONS["stripe"].apply(flat, 10.0, rng(0))
    assert np.ptp(stripes, axis=0).max() == 0  # each column one offset
    assert np.std(stripes[0]) == pytest.approx(10 / 255, rel=0.3)
    stuck = CORRUPTIONS["deadpixels"].apply(flat, 0.1, rng(0))
    changed = stuck != flat
    assert changed.mean() == pytest.approx(0.1, abs=0.02)
    assert set(np.unique(stuck[changed])) == {0.0, 1.0}
    white = np.ones((200, 200), np.float32)
    shot = CORRUPTIONS["poisson"].apply(white * 0.5, 20.0, rng(0))
    assert shot.mean() == pytest.approx(0.5, abs=0.005)
    assert shot.std() == pytest.approx(np.sqrt(0.5) * 20 / 255, rel=0.05)  # √intensity
    point = np.zeros((33, 33), np.float32)
    point[16, 16] = 1.0
    blurred = CORRUPTIONS["blur"].apply(point, 2.0, rng(0))
    assert blurred.sum() == pytest.approx(1.0, abs=1e-4) and blurred.max() < 0.05
    ramp = np.linspace(0.25, 0.75, 64, dtype=np.float32)[None, :].repeat(8, 0)
    halved = CORRUPTIONS["contrast"].apply(ramp, 0.5, rng(0))
    assert halved.mean() == pytest.approx(ramp.mean(), abs=1e-6)
    assert np.ptp(halved) == pytest.approx(np.ptp(ramp) / 2, rel=1e-5)


@pytest.mark.parametrize(
    "items, message",
    [
        (["fog=1"], "unknown kind"),
        (["gaussian"], "expected KIND=LEVEL"),
        (["gaussian=-1"], "outside"),
        (["deadpixels=0.5,2"], "outside"),
        (["contrast=1.5"], "outside"),
        (["blur=1,x"], "not a number"),
        (["blur=nan"], "outside"),
        (["blur=1,1"], "repeated"),
        (["blur=1", "blur=2"], "given twice"),
        ([], "no --noise"),
    ],
)
def test_bad_noise_specs_are_refused(items, message):
    with pytest.raises(ConfigError, match=message):
        parse_noise(items)


def test_a_frame_without_a_mask_is_named(frames, tmp_path):
    masks = tmp_path / "masks"
    masks.mkdir()
    first = sorted((frames / "masks").iterdir())[0]
    (masks / first.name).write_bytes(first.read_bytes())
    with pytest.raises(DataError, match="3 frame\\(s\\) without a mask"):
        samples_with_masks(frames, masks)


def test_an_output_folder_that_cannot_be_written_is_refused_before_the_sweep(
    frames, checkpoint, tmp_path, capsys, script_logging, monkeypatch
):
    tool = load_tool("robustness")
    for name in ("samples_with_masks", "sweep"):
        monkeypatch.setattr(tool, name, lambda *a, _name=name, **k: pytest.fail(f"{_name} ran"))
    notes = tmp_path / "notes.txt"
    notes.write_text("a user's")
    out = notes / "sweep"
    assert tool.main([*_flags(checkpoint, frames, out), "--noise", "gaussian=0,20"]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last == f"error: --out {out}: {notes} is a file, not a folder"
    assert notes.read_text() == "a user's"


@pytest.mark.parametrize("name", ["robustness.csv", "robustness.png"])
def test_an_output_file_that_is_a_folder_is_refused_before_the_sweep(
    frames, checkpoint, tmp_path, capsys, script_logging, monkeypatch, name
):
    tool = load_tool("robustness")
    for step in ("samples_with_masks", "sweep"):
        monkeypatch.setattr(tool, step, lambda *a, _step=step, **k: pytest.fail(f"{_step} ran"))
    out = tmp_path / "sweep"
    (out / name).mkdir(parents=True)
    assert tool.main([*_flags(checkpoint, frames, out), "--noise", "gaussian=0,20"]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last == f"error: --out {out / name}: is a folder, not a file"


HEADER = "noise,level,miou,niou,f1,pd,fa\n"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def write_sweeps(root):
    """Three robustness.csv files as three sweeps would write them: ``a`` and ``b`` share
    gaussian, ``b`` alone has blur, ``c`` has stripe without a clean row."""
    texts = {
        "a": "gaussian,0,0.8,0.7,0.9,1.0,1e-05\ngaussian,20,0.41,0.4,0.5,0.75,2e-05\n",
        "b": "gaussian,0,0.6,0.5,0.7,,0\ngaussian,10,0.55,0.5,0.6,,0\nblur,2,0.3,0.3,0.4,,0\n",
        "c": "stripe,5,0.123456,0.1,0.2,0.5,0\n",
    }
    paths = {}
    for name, text in texts.items():
        (root / name).mkdir()
        paths[name] = root / name / "robustness.csv"
        paths[name].write_text(HEADER + text)
    return paths


def test_compare_draws_every_sweep_on_one_figure_and_prints_its_points(
    tmp_path, capsys, script_logging
):
    paths = write_sweeps(tmp_path)
    figure = tmp_path / "figures" / "compare.png"
    tool = load_tool("robustness")
    flags = ["--compare", f"LRRNet={paths['a']}", "--compare", f"Top-Hat={paths['b']}"]
    assert tool.main([*flags, "--compare", str(paths["c"]), "--out", str(figure)]) == 0
    assert figure.read_bytes()[:8] == PNG_SIGNATURE
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "IoU (%)"
    assert lines[1].split() == ["noise", "level", "LRRNet", "Top-Hat", "c"]  # c: its folder
    # One row per kind and level, a sweep's cell under its name, empty where it lacks the row.
    assert lines[2:-1] == [
        "gaussian      0   80.00    60.00",
        "gaussian     10            55.00",
        "gaussian     20   41.00",
        "blur          0            60.00",  # b's clean row starts its blur panel; a has none
        "blur          2            30.00",
        "stripe        5                   12.35",
    ]
    assert lines[-1] == f"wrote {figure}"

    assert tool.main([*flags, "--out", str(tmp_path / "pd.svg"), "--metric", "pd"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "Pd (%)"
    assert lines[2] == "gaussian      0  100.00        -"  # b's Pd is undefined, not absent
    assert (tmp_path / "pd.svg").read_text().lstrip().startswith("<?xml")


def test_compare_plot_has_a_line_per_sweep_and_kind(tmp_path, monkeypatch):
    import lrrnet.robustness as robustness

    paths = write_sweeps(tmp_path)
    saved = {}
    monkeypatch.setattr(robustness, "save_figure", lambda f, path: saved.setdefault("f", f))
    sweeps = [(name, read_csv(path)) for name, path in paths.items()]
    plot_comparison(sweeps, tmp_path / "unused.png", metric="f1")
    panels = [axes for axes in saved["f"].axes if axes.get_visible()]
    assert [axes.get_title() for axes in panels] == ["gaussian", "blur", "stripe"]
    assert panels[0].get_xlabel() == CORRUPTIONS["gaussian"].unit
    assert panels[0].get_ylabel() == "F1, %"
    drawn = {
        (axes.get_title(), line.get_label()): (
            list(line.get_xdata()),
            list(line.get_ydata()),
            line.get_color(),
        )
        for axes in panels
        for line in axes.get_lines()
    }
    assert drawn == {
        ("gaussian", "a"): ([0.0, 20.0], [90.0, 50.0], "C0"),
        ("gaussian", "b"): ([0.0, 10.0], [70.0, 60.0], "C1"),
        ("blur", "b"): ([0.0, 2.0], [70.0, 40.0], "C1"),  # b keeps its colour without a
        ("stripe", "c"): ([5.0], [20.0], "C2"),
    }


def test_read_csv_reads_what_write_csv_wrote(tmp_path):
    rows = [
        (Condition("gaussian", 0.0), {"miou": 0.25, "niou": 0.5, "f1": 1 / 3, "pd": 0.1, "fa": 0}),
        (Condition("blur", 1.5), {"miou": 0.0, "niou": 0.0, "f1": 0.0, "pd": np.nan, "fa": 1e-7}),
    ]
    again = read_csv(write_csv(rows, tmp_path / "robustness.csv"))
    assert [c for c, _ in again] == [c for c, _ in rows]
    assert again[0][1] == {k: float(v) for k, v in rows[0][1].items()}
    assert np.isnan(again[1][1]["pd"]) and again[1][1]["fa"] == 1e-7


@pytest.mark.parametrize(
    "text, message",
    [
        (None, "no such file, not a CSV"),
        ("epoch,loss,miou\n1,0.5,0.3\n", "not a robustness.csv: no column noise, level, niou"),
        ("", "not a robustness.csv"),
        (HEADER, "no rows under the header"),
        (HEADER + "gaussian,0,0.5,0.5,high,0.5,0\n", "line 2: f1 'high' is not a number"),
        (HEADER + "gaussian,x,0.5,0.5,0.5,0.5,0\n", "line 2: level 'x' is not a number"),
        (HEADER + "gaussian,0,0.5,0.5\n", "line 2: 4 values for 7 columns"),
        (HEADER + "fog,1,0.5,0.5,0.5,0.5,0\n", "line 2: unknown noise 'fog'"),
        (HEADER + "blur,1,0.5,0.5,0.5,0.5,0\nblur,1,0.5,0.5,0.5,0.5,0\n", "blur=1 given twice"),
    ],
)
def test_compare_refuses_a_malformed_csv_in_one_line_naming_it(
    tmp_path, capsys, script_logging, text, message
):
    good = write_sweeps(tmp_path)["a"]
    bad = tmp_path / "bad" / "robustness.csv"
    if text is not None:
        bad.parent.mkdir()
        bad.write_text(text)
    figure = tmp_path / "compare.png"
    tool = load_tool("robustness")
    code = tool.main(["--compare", str(good), "--compare", str(bad), "--out", str(figure)])
    assert code == 2
    printed = capsys.readouterr()
    assert printed.out == "" and not figure.exists()
    error = printed.err.strip().splitlines()
    assert len(error) == 1 and error[0].startswith(f"error: {bad}")
    assert message in error[0]


def test_compare_names_must_differ_and_the_figure_be_writable(tmp_path, capsys, script_logging):
    paths = write_sweeps(tmp_path)
    tool = load_tool("robustness")
    twice = ["--compare", f"a={paths['b']}", "--compare", str(paths["a"])]
    assert tool.main([*twice, "--out", str(tmp_path / "f.png")]) == 2
    assert "two sweeps named 'a'" in capsys.readouterr().err
    notes = tmp_path / "notes.txt"
    notes.write_text("a user's")
    missing = ["--compare", str(tmp_path / "nowhere.csv")]  # not read: --out fails first
    assert tool.main([*missing, "--out", str(notes / "f.png")]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last == f"error: --out {notes / 'f.png'}: {notes} is a file, not a folder"


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--checkpoint", "x.pth"], "argument --checkpoint: not allowed with argument --compare"),
        (["--method", "tophat"], "argument --method: not allowed with argument --compare"),
        (["--noise", "gaussian=0"], "argument --noise: not allowed with argument --compare"),
        (["--images", "data"], "argument --images: not allowed with argument --compare"),
        (["--out", "figure.csv"], "with --compare, a figure file (.png, .pdf, .svg)"),
    ],
)
def test_compare_excludes_the_sweep_flags(tmp_path, capsys, extra, message):
    args = ["--compare", "a.csv", "--out", "figure.png", *extra]
    with pytest.raises(SystemExit) as exit_:
        load_tool("robustness").parse_args(args)
    assert exit_.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].endswith(message)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--method", "tophat", "--out", "o", "--noise", "blur=1"], "required: --images"),
        (["--method", "tophat", "--out", "o", "--images", "d"], "required: --noise"),
        (
            [
                "--method",
                "tophat",
                "--out",
                "o",
                "--images",
                "d",
                "--noise",
                "blur=1",
                "--metric",
                "pd",
            ],
            "--metric needs --compare",
        ),
        (["--out", "o", "--images", "d", "--noise", "blur=1"], "one of the arguments"),
    ],
)
def test_the_sweep_still_needs_its_flags(capsys, args, message):
    with pytest.raises(SystemExit):
        load_tool("robustness").parse_args(args)
    assert message in capsys.readouterr().err
