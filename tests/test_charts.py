"""Line charts drawn with OpenCV (the report's ROC and Pd–Fa figures)."""

from __future__ import annotations

import numpy as np
import pytest

from lrrnet.charts import (
    PALETTE,
    WHITE,
    Axis,
    Series,
    _text_size,
    _ticks,
    fit_text,
    line_chart,
    nice_step,
)


@pytest.mark.parametrize(
    ("raw", "step"),
    [(0.149, 0.2), (3.86, 5.0), (1.0, 1.0), (0.021, 0.025), (7.0, 10.0), (1234.0, 2000.0)],
)
def test_nice_step_is_the_round_number_at_or_above(raw, step):
    assert nice_step(raw) == pytest.approx(step)


@pytest.mark.parametrize("seed", range(20))
def test_linear_ticks_are_evenly_spaced_round_numbers_inside_the_range(seed):
    rng = np.random.default_rng(seed)
    low = rng.uniform(-100, 100) * 10.0 ** rng.integers(-4, 4)
    high = low + rng.uniform(0.01, 10) * 10.0 ** rng.integers(-3, 4)
    ticks, minor = _ticks((low, high), log=False)
    assert 4 <= len(ticks) <= 8 and not len(minor)
    assert ticks[0] >= low - 1e-9 * abs(low) and ticks[-1] <= high + 1e-9 * abs(high)
    steps = np.diff(ticks)
    assert np.allclose(steps, steps[0])
    mantissa = steps[0] / 10.0 ** np.floor(np.log10(steps[0]))
    assert any(np.isclose(mantissa, m) for m in (1, 2, 2.5, 5, 10))  # 10: log10's rounding


def test_log_ticks_are_decades_and_within_one_decade_also_2_and_5():
    ticks, minor = _ticks((0.05, 5000.0), log=True)
    assert np.allclose(ticks, [0.1, 1, 10, 100, 1000])
    assert np.allclose(minor[:3], [0.05, 0.06, 0.07]) and 20 in minor
    ticks, _ = _ticks((3.0, 70.0), log=True)  # only 10 inside: 2, 5 and the decade
    assert np.allclose(ticks, [5, 10, 20, 50])
    ticks, _ = _ticks((2.7, 3.3), log=True)  # not even a 2 or a 5: round linear steps
    assert len(ticks) >= 2 and ticks[0] >= 2.7 - 1e-9 and ticks[-1] <= 3.3 + 1e-9


def colour_at(chart, x, y):
    column, row = np.round(chart.to_pixel(x, y)).astype(int)
    return tuple(int(v) for v in chart.image[row, column])


def test_each_series_is_drawn_through_its_points_in_its_colour():
    x = np.array([0.1, 0.3, 0.7, 0.9])  # the lines cross at 0.5, between points
    chart = line_chart(
        [Series("a", x, x), Series("b", x, 1 - x)],
        Axis("x"),
        Axis("y", limits=(0, 1)),
    )
    assert chart.image.shape == (540, 660, 3) and chart.image.dtype == np.uint8
    for point in x:
        assert colour_at(chart, point, point) == PALETTE[0]
    assert colour_at(chart, 0.3, 0.7) == PALETTE[1]
    # between the points, on the line: drawn too
    assert colour_at(chart, 0.2, 0.2) == PALETTE[0]
    # and where no series passes, the background shows
    assert colour_at(chart, 0.65, 0.15) == WHITE


def test_given_limits_are_the_edges_of_the_plot_area():
    chart = line_chart([Series("a", [1, 2], [3, 4])], Axis("x", limits=(0, 10)), Axis("y"))
    left, top, right, bottom = chart.box
    assert np.allclose(chart.to_pixel(0, chart.y_limits[0]), (left, bottom))
    assert np.allclose(chart.to_pixel(10, chart.y_limits[1]), (right, top))
    # the data's own range, with a margin each side, when none is given
    assert chart.y_limits[0] < 3 and chart.y_limits[1] > 4


def test_a_log_axis_leaves_out_the_points_it_cannot_show():
    x = np.array([0.0, -1.0, np.nan, 1e-3, 1e-1, 1.0])
    chart = line_chart([Series("a", x, np.linspace(0, 1, 6))], Axis("x", log=True), Axis("y"))
    assert 5e-4 < chart.x_limits[0] < 1e-3 and 1.0 < chart.x_limits[1] < 2.0
    assert colour_at(chart, 1e-2, 0.7) != WHITE  # the line joins the three usable points


def test_nothing_to_draw_still_gives_a_chart_with_axes():
    chart = line_chart([Series("empty", [], [])], Axis("x", log=True), Axis("y"))
    assert chart.x_limits == (1.0, 10.0) and chart.y_limits == (0.0, 1.0)
    assert (chart.image != WHITE).any()


def legend_colour_pixels(chart, corner_rows, corner_columns, colour):
    left, top, right, bottom = chart.box
    rows = (
        slice(top, (top + bottom) // 2)
        if corner_rows == "top"
        else slice((top + bottom) // 2, bottom)
    )
    columns = (
        slice(left, (left + right) // 2)
        if corner_columns == "left"
        else slice((left + right) // 2, right)
    )
    return int((chart.image[rows, columns] == colour).all(axis=2).sum())


def test_the_legend_takes_the_emptiest_corner_lower_right_first():
    flat = [Series("first", [0, 1], [1.5, 1.5]), Series("second", [0, 1], [1.7, 1.7])]
    chart = line_chart(flat, Axis("x"), Axis("y", limits=(0, 2)))
    for colour in PALETTE[:2]:  # the lines run across the top: both lower corners empty
        assert legend_colour_pixels(chart, "bottom", "right", colour) > 20
        assert legend_colour_pixels(chart, "bottom", "left", colour) == 0
    # A line into the lower right corner (a Pd-Fa curve's low thresholds) moves it away.
    falling = [Series("falling", np.linspace(0, 1, 11), np.linspace(1, 0, 11))]
    chart = line_chart(falling, Axis("x"), Axis("y"))
    assert legend_colour_pixels(chart, "top", "right", PALETTE[0]) > 20


def test_labels_outside_ascii_are_drawn_without_error():
    chart = line_chart([Series("ΔIoU × 10⁻⁶", [1, 2], [1, 2])], Axis("Fa (×10⁻⁶)"), Axis("é"))
    assert chart.image.shape == (540, 660, 3)


@pytest.mark.parametrize(
    ("series", "axis", "message"),
    [
        ([Series("a", [1, 2], [1])], Axis("x"), "2 x values but 1 y values"),
        ([Series("a", [1], [1])], Axis("x", limits=(2, 1)), "not increasing"),
        ([Series("a", [1], [1])], Axis("x", log=True, limits=(0, 1)), "positive limits"),
    ],
)
def test_inconsistent_input_is_refused_by_name(series, axis, message):
    with pytest.raises(ValueError, match=message):
        line_chart(series, axis, Axis("y"))


def test_a_canvas_too_small_for_a_plot_area_is_refused():
    with pytest.raises(ValueError, match="no room"):
        line_chart([Series("a", [1], [1])], Axis("x"), Axis("y"), size=(60, 50))


def test_fit_text_shortens_to_the_width_in_ascii():
    assert fit_text("Fa ×10⁻⁶", 500) == "Fa ?10??"
    short = fit_text("a rather long legend label", 60)
    assert short.endswith("~") and _text_size(short, 0.42)[0] <= 60
    assert fit_text("label", 1) == ""
