"""The burn-up chart: the expected line from the baseline at the window's start to the target at its end, the
actual line from the history, thinning of long histories, and escaping of the labels."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

from service.dashboard import charts

START = datetime(2026, 7, 1, tzinfo=UTC)
END = datetime(2026, 10, 1, tzinfo=UTC)
SVG = "{http://www.w3.org/2000/svg}"
LEGEND = {"actual": "Actual", "expected": "Expected", "target": "Target", "now": "Now"}


def _weekly(values: list[float], first: datetime = START) -> list[charts.Point]:
    return [charts.Point(first + timedelta(days=7 * n), v) for n, v in enumerate(values)]


def test_the_expected_line_runs_from_baseline_at_the_start_to_target_at_the_end() -> None:
    chart = charts.burn_up(_weekly([0, 8, 20, 31, 45]), window_start=START, window_end=END, baseline=0, target=150)
    (x0, y0), (x1, y1) = chart.expected
    assert (x0, y0) == (chart.x(START), chart.y(0)) == (chart.left, chart.height - chart.bottom)
    assert (x1, y1) == (chart.x(END), chart.y(150)) == (chart.width - chart.right, chart.y(150))
    assert chart.top <= y1 < y0  # the target is drawn above the baseline
    assert chart.target_line == ((x0, y1), (x1, y1))
    assert [p[0] for p in chart.actual] == sorted(p[0] for p in chart.actual) and len(chart.actual) == 5
    assert chart.actual[2] == (chart.x(START + timedelta(days=14)), chart.y(20))


def test_the_svg_has_the_actual_polyline_the_expected_and_target_lines() -> None:
    chart = charts.burn_up(_weekly([0, 8, 20]), window_start=START, window_end=END, baseline=0, target=150)
    svg = ET.fromstring(charts.svg(chart, title="150 meetings", legend=LEGEND, shown=lambda v: f"{v:g}",
                                   now=START + timedelta(days=20)))  # fmt: skip
    actual = svg.find(f"{SVG}polyline[@class='actual']")
    expected = svg.find(f"{SVG}line[@class='expected']")
    assert actual is not None and expected is not None
    assert [tuple(float(c) for c in p.split(",")) for p in (actual.get("points") or "").split()] == chart.actual
    (x0, y0), (x1, y1) = chart.expected
    assert [float(expected.get(a) or "nan") for a in ("x1", "y1", "x2", "y2")] == [x0, y0, x1, y1]
    assert svg.find(f"{SVG}line[@class='target']") is not None and svg.find(f"{SVG}line[@class='now']") is not None
    assert {t.text for t in svg.iter(f"{SVG}text")} >= {"0", "150", "2026-07-01", "2026-09-30"}  # first, last day


def test_lower_is_better_draws_a_falling_expected_line() -> None:
    chart = charts.burn_up(_weekly([70, 60, 41]), window_start=START, window_end=END, baseline=72, target=24)
    (_x0, y0), (_x1, y1) = chart.expected
    assert y0 < y1  # from 72 h down to 24 h
    assert chart.low <= 24 and chart.high >= 72


def test_a_year_of_history_every_two_hours_draws_at_most_200_points() -> None:
    first = START - timedelta(days=300)
    points = [charts.Point(first + timedelta(hours=2 * n), float(n)) for n in range(365 * 12)]
    thinned = charts.downsample(points)
    assert len(thinned) <= charts.MAX_POINTS and thinned[0] == points[0] and thinned[-1] == points[-1]
    assert [p.at for p in thinned] == sorted({p.at for p in thinned})
    chart = charts.burn_up(points, window_start=first, window_end=first + timedelta(days=365), baseline=0, target=5000)
    assert len(chart.actual) <= charts.MAX_POINTS
    assert charts.downsample(points[:50]) == points[:50]


def test_points_before_the_window_are_left_out_and_later_ones_widen_it() -> None:
    history = _weekly([5, 6, 7, 9], first=START - timedelta(days=14))
    chart = charts.burn_up(history, window_start=START, window_end=START + timedelta(days=10), baseline=0, target=10)
    assert [p.at for p in chart.points] == [START, START + timedelta(days=7)]
    late = [charts.Point(START + timedelta(days=30), 9)]  # a sprint window computed after it ended
    widened = charts.burn_up(late, window_start=START, window_end=START + timedelta(days=10), baseline=0, target=10)
    assert widened.end == START + timedelta(days=30)
    empty = charts.burn_up([], window_start=START, window_end=END, baseline=0, target=10)
    assert empty.actual == [] and "polyline" not in charts.svg(empty, title="t", legend=LEGEND, shown=str)


def test_labels_are_escaped() -> None:
    chart = charts.burn_up(_weekly([1]), window_start=START, window_end=END, baseline=0, target=2)
    drawn = charts.svg(chart, title="<script>alert(1)</script>", legend={**LEGEND, "actual": "<b>"}, shown=str)
    assert "<script>" not in drawn and "&lt;script&gt;" in drawn and "&lt;b&gt;" in drawn


def test_the_burn_down_runs_from_committed_to_zero_and_escapes_its_labels() -> None:
    """Ideal: committed at the sprint's start to 0 at the end of its last day; actual: committed, then what remains
    after each day so far (here the team did more than it committed: the axis reaches below 0)."""
    svg = charts.burn_down_svg(
        [8, 5, -2], committed=10, days=10, first_day="2026-08-24", last_day="2026-09-04",
        title="Burn-down: <10 meetings>", legend={"actual": "Remaining", "ideal": "Ideal"}, shown=lambda v: f"{v:g}",
    )  # fmt: skip
    root = ET.fromstring(str(svg))
    assert root.find(f"{SVG}title").text == "Burn-down: <10 meetings>"  # type: ignore[union-attr]
    ideal = root.find(f"{SVG}line[@class='ideal']")
    assert ideal is not None
    points = [tuple(map(float, p.split(","))) for p in root.find(f"{SVG}polyline").get("points", "").split()]  # type: ignore[union-attr]
    assert len(points) == 4 and points[0] == (float(ideal.get("x1", "")), float(ideal.get("y1", "")))
    assert float(ideal.get("x2", "")) > points[-1][0] > points[0][0]  # three of ten days drawn
    zero = float(ideal.get("y2", ""))  # the ideal ends at 0
    assert points[-1][1] > zero > points[1][1]  # -2 below the zero line, 8 above it
    assert [x for x, _y in points] == sorted(x for x, _y in points)
