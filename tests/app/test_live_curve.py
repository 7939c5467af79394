"""The SVG curve the sparse autoencoder's live panel shows: a well-formed picture whose lines are the data."""

import xml.etree.ElementTree as ET

from ui.figures import live_curve_svg

SVG = "{http://www.w3.org/2000/svg}"
SERIES = {"total cost": "cost", "weight decay": "weight_decay"}


def polylines(svg: str) -> list[list[tuple[float, float]]]:
    """The lines in the order of their series (the picture draws the first series last, on top)."""
    root = ET.fromstring(svg)
    lines = sorted(root.iter(f"{SVG}polyline"), key=lambda line: int(line.get("data-series")))
    return [[tuple(map(float, point.split(","))) for point in line.get("points").split()] for line in lines]


def test_the_first_series_is_drawn_last_and_thicker_so_a_term_that_equals_it_cannot_hide_it():
    rows = [{"step": step, "cost": 1.0, "weight_decay": 1.0} for step in range(3)]
    drawn = list(ET.fromstring(live_curve_svg(rows, SERIES, "Cost", "cost")).iter(f"{SVG}polyline"))
    assert [line.get("data-series") for line in drawn] == ["1", "0"]
    assert float(drawn[-1].get("stroke-width")) > float(drawn[0].get("stroke-width"))


def test_each_series_is_a_line_through_its_points_and_higher_costs_are_drawn_higher():
    rows = [{"step": step, "cost": 50.0 / (step + 1), "weight_decay": 0.01} for step in range(11)]
    total, decay = polylines(live_curve_svg(rows, SERIES, "Cost", "cost", log_y=True, x_max=20))
    assert len(total) == len(decay) == 11
    xs = [x for x, _ in total]
    assert xs == sorted(xs) and xs[0] < xs[-1]
    assert total[0][1] < total[-1][1]  # 50 is above 4.5: smaller y is higher up
    assert len({y for _, y in decay}) == 1  # a constant is a flat line
    # x_max fixes the axis: step 10 of 20 lies halfway between the left edge and where 20 would be
    wider = polylines(live_curve_svg(rows, SERIES, "Cost", "cost", log_y=True, x_max=10))[0]
    assert abs((xs[-1] - xs[0]) * 2 - (wider[-1][0] - wider[0][0])) < 0.2


def test_a_log_axis_leaves_out_values_that_are_not_positive():
    rows = [{"step": step, "cost": 1.0 + step, "weight_decay": 0.0} for step in range(5)]  # lambda = 0
    lines = polylines(live_curve_svg(rows, SERIES, "Cost", "cost", log_y=True))
    assert len(lines) == 1 and len(lines[0]) == 5
    assert len(polylines(live_curve_svg(rows, SERIES, "Cost", "cost", log_y=False))) == 2


def test_no_rows_yet_and_labels_with_markup_still_make_a_valid_picture():
    svg = live_curve_svg([], {"a <b> & c": "cost"}, "Cost <while> training", "cost", log_y=True)
    root = ET.fromstring(svg)
    texts = [element.text for element in root.iter(f"{SVG}text")]
    assert "Cost <while> training" in texts and "a <b> & c" in texts
    assert not polylines(svg)
