"""The burn-up chart of a key result, drawn server-side as inline SVG (no JavaScript, no chart library).

Three lines over the key result's window: the actual value from its history, the expected path from the baseline
at the window's start to the target at its end (what "expected by now" compares against), and the target. A long
history is thinned to at most ``MAX_POINTS`` points by keeping the last value of each time bucket, so a year of
computations every two hours still draws a light chart.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta

from markupsafe import Markup, escape

MAX_POINTS = 200


@dataclass(frozen=True)
class Point:
    at: datetime
    value: float


@dataclass(frozen=True)
class BurnUp:
    """The chart's geometry: pixel coordinates of every line, and the domain they were scaled from."""

    width: int
    height: int
    left: int
    right: int
    top: int
    bottom: int
    start: datetime
    end: datetime
    low: float
    high: float
    window_end: datetime
    baseline: float
    target: float
    points: tuple[Point, ...]

    def x(self, at: datetime) -> float:
        span = (self.end - self.start).total_seconds() or 1.0
        share = (at - self.start).total_seconds() / span
        return round(self.left + share * (self.width - self.left - self.right), 1)

    def y(self, value: float) -> float:
        span = (self.high - self.low) or 1.0
        share = (value - self.low) / span
        return round(self.height - self.bottom - share * (self.height - self.top - self.bottom), 1)

    @property
    def actual(self) -> list[tuple[float, float]]:
        return [(self.x(p.at), self.y(p.value)) for p in self.points]

    @property
    def expected(self) -> tuple[tuple[float, float], tuple[float, float]]:
        return (self.x(self.start), self.y(self.baseline)), (self.x(self.window_end), self.y(self.target))

    @property
    def target_line(self) -> tuple[tuple[float, float], tuple[float, float]]:
        return (self.x(self.start), self.y(self.target)), (self.x(self.end), self.y(self.target))


def downsample(points: Sequence[Point], limit: int = MAX_POINTS) -> list[Point]:
    """At most ``limit`` points: the first, then the last point of each of ``limit - 1`` equal time buckets."""
    if len(points) <= limit:
        return list(points)
    first, last = points[0].at, points[-1].at
    span = (last - first).total_seconds() or 1.0
    buckets: dict[int, Point] = {}
    for point in points[1:]:
        buckets[min(limit - 2, int((point.at - first).total_seconds() / span * (limit - 1)))] = point
    return [points[0], *(buckets[b] for b in sorted(buckets))]


def burn_up(
    points: Sequence[Point],
    *,
    window_start: datetime,
    window_end: datetime,
    baseline: float,
    target: float,
    width: int = 720,
    height: int = 280,
) -> BurnUp:
    """The geometry for ``points`` (ordered by time) over the window; points before the window are left out, points
    after it (a sprint window computed later) widen the time axis."""
    shown = downsample([p for p in points if p.at >= window_start])
    end = max(window_end, shown[-1].at) if shown else window_end
    values = [baseline, target, *(p.value for p in shown)]
    low, high = min(values), max(values)
    pad = (high - low) * 0.06 or 1.0
    return BurnUp(
        width=width, height=height, left=64, right=16, top=14, bottom=30, start=window_start, end=end,
        low=low - pad if low < 0 or low - pad >= 0 else 0.0, high=high + pad, window_end=window_end,
        baseline=baseline, target=target, points=tuple(shown),
    )  # fmt: skip


def _date_ticks(chart: BurnUp) -> list[tuple[datetime, str]]:
    """The window's first and last day; when later points widen the axis, its end too (if there is room)."""
    if chart.end <= chart.window_end:
        return [(chart.start, "start"), (chart.window_end, "end")]
    ticks = [(chart.start, "start"), (chart.end, "end")]
    if min(chart.x(chart.window_end) - chart.left, chart.x(chart.end) - chart.x(chart.window_end)) >= 90:
        ticks.insert(1, (chart.window_end, "middle"))
    return ticks


def svg(
    chart: BurnUp,
    *,
    title: str,
    legend: dict[str, str],
    shown: Callable[[float], str],
    now: datetime | None = None,
) -> Markup:
    """The chart as an ``<svg>`` element; ``legend`` names the lines (actual, expected, target, now) in the page's
    language and ``shown`` formats a value like the key result's values."""
    (ex0, ey0), (ex1, ey1) = chart.expected
    (tx0, ty), (tx1, _ty) = chart.target_line
    bottom = chart.height - chart.bottom
    parts = [
        f'<svg class="burn-up" viewBox="0 0 {chart.width} {chart.height}" role="img" aria-label="{escape(title)}"'
        ' xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
        f'<line class="axis" x1="{chart.left}" y1="{bottom}" x2="{chart.width - chart.right}" y2="{bottom}"/>',
        f'<line class="axis" x1="{chart.left}" y1="{chart.top}" x2="{chart.left}" y2="{bottom}"/>',
    ]
    for value in sorted({chart.baseline, chart.target}):
        parts.append(
            f'<text class="tick" x="{chart.left - 6}" y="{chart.y(value) + 4}" text-anchor="end">'
            f"{escape(shown(value))}</text>"
        )
    for at, anchor in _date_ticks(chart):
        day = at - timedelta(microseconds=1) if at.time() == time(0) and at > chart.start else at  # the last day
        parts.append(
            f'<text class="tick" x="{chart.x(at)}" y="{bottom + 18}" text-anchor="{anchor}">{day:%Y-%m-%d}</text>'
        )
    parts.append(
        f'<line class="target" x1="{tx0}" y1="{ty}" x2="{tx1}" y2="{ty}"><title>{escape(legend["target"])}</title>'
        "</line>"
    )
    parts.append(
        f'<line class="expected" x1="{ex0}" y1="{ey0}" x2="{ex1}" y2="{ey1}">'
        f"<title>{escape(legend['expected'])}</title></line>"
    )
    if now is not None and chart.start <= now <= chart.end:
        x = chart.x(now)
        parts.append(
            f'<line class="now" x1="{x}" y1="{chart.top}" x2="{x}" y2="{bottom}"><title>{escape(legend["now"])}'
            "</title></line>"
        )
    if chart.points:
        coordinates = " ".join(f"{x},{y}" for x, y in chart.actual)
        parts.append(
            f'<polyline class="actual" points="{coordinates}"><title>{escape(legend["actual"])}</title></polyline>'
        )
        x, y = chart.actual[-1]
        parts.append(f'<circle class="actual" cx="{x}" cy="{y}" r="3.5"/>')
    parts.append("</svg>")
    return Markup("".join(parts))
