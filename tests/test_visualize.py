"""Panels, the worst-images sheet, ROC plots and tools/visualize.py --roc."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import scipy.io
from conftest import run_visualize

from lrrnet.visualize import (
    GAP,
    GREEN,
    LEGEND_HEIGHT,
    NA_GREY,
    RED,
    THUMB,
    TITLE_HEIGHT,
    YELLOW,
    detection_panel,
    roc_plot,
    sheet_entry,
    worst_entries,
    worst_images_sheet,
)

# A 16×16 frame is enlarged 16× (to the 256-px minimum tile): source pixel (r, c) covers
# rows 16r…16r+15, columns 16c…16c+15 of its tile.
SIDE, SCALE = 16, 16
MATCHED = (3, 3)  # target found by a detection on the same pixel
MISSED = (12, 12)  # target (2×2 from here) with no detection near it
FALSE_ALARM = (3, 12)  # detection 9 px away from every target


def hand_made_case():
    image = np.full((SIDE, SIDE), 0.2, np.float32)
    mask = np.zeros((SIDE, SIDE), bool)
    mask[MATCHED] = True
    mask[MISSED[0] : MISSED[0] + 2, MISSED[1] : MISSED[1] + 2] = True
    image[mask] = 0.8
    prob = np.full((SIDE, SIDE), 0.1, np.float32)
    prob[MATCHED] = 0.9
    prob[FALSE_ALARM] = 0.7
    return image, prob, mask


def tile_pixel(panel, tile_index, source_pixel):
    """Colour at the centre of ``source_pixel``'s block in tile ``tile_index``."""
    left = GAP + tile_index * (SIDE * SCALE + GAP)
    row, col = source_pixel
    return tuple(
        int(v)
        for v in panel[TITLE_HEIGHT + row * SCALE + SCALE // 2, left + col * SCALE + SCALE // 2]
    )


def test_panel_paints_matched_missed_and_false_alarm_where_they_are():
    image, prob, mask = hand_made_case()
    panel = detection_panel(image, image * 0.5, prob, mask, threshold=0.5, name="case")
    assert panel.dtype == np.uint8
    assert panel.shape == (
        TITLE_HEIGHT + SIDE * SCALE + LEGEND_HEIGHT,
        5 * SIDE * SCALE + 6 * GAP,
        3,
    )
    # ground truth tile (index 4)
    assert tile_pixel(panel, 4, MATCHED) == GREEN
    assert tile_pixel(panel, 4, MISSED) == RED
    assert tile_pixel(panel, 4, (MISSED[0] + 1, MISSED[1] + 1)) == RED  # the whole 2×2 target
    assert tile_pixel(panel, 4, FALSE_ALARM) == YELLOW
    background = tile_pixel(panel, 4, (8, 3))
    assert background[0] == background[1] == background[2]  # grey elsewhere
    # detection tile (index 3): white where p > 0.5, black elsewhere
    assert tile_pixel(panel, 3, MATCHED) == (255, 255, 255)
    assert tile_pixel(panel, 3, FALSE_ALARM) == (255, 255, 255)
    assert tile_pixel(panel, 3, MISSED) == (0, 0, 0)
    # a threshold above every probability: the matched target becomes missed, no false alarm
    strict = detection_panel(image, None, prob, mask, threshold=0.95)
    assert tile_pixel(strict, 4, MATCHED) == RED
    assert tile_pixel(strict, 4, FALSE_ALARM) not in (YELLOW, GREEN, RED)


def test_panel_without_background_or_mask_shows_grey_tiles():
    image, prob, _ = hand_made_case()
    panel = detection_panel(image, None, prob, None)
    for tile_index in (1, 4):
        assert tile_pixel(panel, tile_index, (SIDE // 2, SIDE // 2)) == NA_GREY
    colours = {tuple(pixel) for pixel in panel.reshape(-1, 3)}
    assert not colours & {GREEN, RED, YELLOW}  # nothing is matched without a mask


def test_probability_tile_follows_the_probability():
    image, prob, mask = hand_made_case()
    panel = detection_panel(image, None, prob, mask)
    bright, dim = tile_pixel(panel, 2, MATCHED), tile_pixel(panel, 2, (8, 3))
    assert sum(bright) > sum(dim) + 200  # inferno: 0.9 is pale yellow, 0.1 near black
    assert bright != dim


def iou_case(name, covered):
    """A 4-pixel target of which ``covered`` pixels are detected: IoU = covered / 4."""
    image = np.zeros((12, 12), np.float32)
    mask = np.zeros((12, 12), bool)
    mask[5:7, 5:7] = True
    prob = np.zeros((12, 12), np.float32)
    prob[np.nonzero(mask)[0][:covered], np.nonzero(mask)[1][:covered]] = 0.9
    return sheet_entry(name, image, prob, mask)


def test_worst_sheet_takes_the_lowest_ious_in_order():
    covered = {"a": 4, "b": 1, "c": 3, "d": 0, "e": 2}
    entries = [iou_case(name, count) for name, count in covered.items()]
    assert {entry.name: entry.iou for entry in entries} == {
        name: count / 4 for name, count in covered.items()
    }
    chosen = worst_entries(entries, n=3)
    assert [entry.name for entry in chosen] == ["d", "b", "e"]
    sheet = worst_images_sheet(entries, n=3)
    # three thumbnails: two columns of THUMB-px cells
    assert sheet.ndim == 3 and sheet.shape[1] == 2 * THUMB + 3 * GAP
    with pytest.raises(ValueError):
        worst_images_sheet([], n=3)


def write_scored_folder(folder, fpr, tpr, auc):
    folder.mkdir(parents=True)
    scipy.io.savemat(
        str(folder / "roc.mat"),
        {"fpr": np.asarray(fpr), "tpr": np.asarray(tpr), "thresholds": np.linspace(0, 1, len(fpr))},
    )
    (folder / "metrics.json").write_text(json.dumps({"auc": auc, "miou": 0.5}))


def colour_pixels(image_bgr, rgb, tolerance=40):
    distance = np.abs(image_bgr[:, :, ::-1].astype(int) - np.array(rgb)).sum(axis=2)
    return int(np.count_nonzero(distance < tolerance))


def test_roc_mode_plots_every_folder(tmp_path):
    fpr = np.array([1.0, 0.2, 0.01, 0.0])
    write_scored_folder(tmp_path / "a", fpr, [1.0, 0.9, 0.8, 0.0], 0.9)
    write_scored_folder(tmp_path / "b", fpr, [1.0, 0.5, 0.2, 0.0], 0.6)
    out = tmp_path / "plots" / "roc.png"
    done = run_visualize(
        "--roc", tmp_path / "a", tmp_path / "b", "--labels", "A", "B", "--out", out
    )
    assert done.returncode == 0, done.stderr
    plot = cv2.imread(str(out))
    assert plot is not None and plot.shape[0] > 200
    # matplotlib's first two cycle colours: one line each
    assert colour_pixels(plot, (31, 119, 180)) > 100
    assert colour_pixels(plot, (255, 127, 14)) > 100


def test_roc_plot_log_axis_leaves_out_zero_fpr(tmp_path):
    curves = [("x", np.array([0.0, 1e-5, 1e-3, 1.0]), np.array([0.0, 0.5, 0.9, 1.0]), 0.8)]
    path = roc_plot(curves, tmp_path / "log.png", log_fpr=True)
    assert cv2.imread(str(path)) is not None


def test_roc_figure_in_a_format_opencv_cannot_write_is_a_usage_error(tmp_path):
    write_scored_folder(tmp_path / "a", [1.0, 0.0], [1.0, 0.0], 0.5)
    done = run_visualize("--roc", tmp_path / "a", "--out", tmp_path / "roc.pdf")
    assert done.returncode == 2 and "roc.pdf: a figure is .png, .bmp" in done.stderr
    assert not (tmp_path / "roc.pdf").exists()


def test_roc_folder_without_roc_mat_is_a_one_line_error(tmp_path):
    write_scored_folder(tmp_path / "a", [1.0, 0.0], [1.0, 0.0], 0.5)
    (tmp_path / "unscored").mkdir()
    done = run_visualize(
        "--roc", tmp_path / "a", tmp_path / "unscored", "--out", tmp_path / "roc.png"
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert "unscored" in lines[0] and "cal_from_mask.py" in lines[0]
    assert not (tmp_path / "roc.png").exists()
