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


def burn_down_svg(
    remaining: Sequence[float],
    *,
    committed: float,
    days: int,
    first_day: str,
    last_day: str,
    title: str,
    legend: dict[str, str],
    shown: Callable[[float], str],
    width: int = 720,
    height: int = 300,
) -> Markup:
    """A sprint commitment's burn-down as an ``<svg>``: what remains of ``committed`` at the end of each sprint day so
    far (``remaining[i]`` after day i + 1), against the ideal line from ``committed`` at the start to 0 at the end of
    the last of ``days`` days. ``legend`` names the lines (actual, ideal) in the page's language."""
    left, right, top, bottom = 72, 16, 14, 34
    values = [0.0, committed, *remaining]
    low, high = min(values), max(values)
    span = (high - low) or 1.0

    def x(index: float) -> float:
        return round(left + index / max(days, 1) * (width - left - right), 1)

    def y(value: float) -> float:
        return round(height - bottom - (value - low) / span * (height - top - bottom), 1)

    base = height - bottom
    parts = [
        f'<svg class="burn-down" viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}"'
        ' xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
        f'<line class="axis" x1="{left}" y1="{base}" x2="{width - right}" y2="{base}"/>',
        f'<line class="axis" x1="{left}" y1="{top}" x2="{left}" y2="{base}"/>',
        f'<line class="zero" x1="{left}" y1="{y(0)}" x2="{width - right}" y2="{y(0)}"/>',
    ]
    for value in sorted({0.0, committed}):
        parts.append(
            f'<text class="tick" x="{left - 8}" y="{y(value) + 5}" text-anchor="end">{escape(shown(value))}</text>'
        )
    parts.append(f'<text class="tick" x="{x(0)}" y="{base + 22}" text-anchor="start">{escape(first_day)}</text>')
    parts.append(f'<text class="tick" x="{x(days)}" y="{base + 22}" text-anchor="end">{escape(last_day)}</text>')
    parts.append(
        f'<line class="ideal" x1="{x(0)}" y1="{y(committed)}" x2="{x(days)}" y2="{y(0)}">'
        f"<title>{escape(legend['ideal'])}</title></line>"
    )
    points = [(x(0), y(committed)), *((x(i + 1), y(value)) for i, value in enumerate(remaining))]
    coordinates = " ".join(f"{px},{py}" for px, py in points)
    parts.append(
        f'<polyline class="actual" points="{coordinates}"><title>{escape(legend["actual"])}</title></polyline>'
    )
    px, py = points[-1]
    parts.append(f'<circle class="actual" cx="{px}" cy="{py}" r="5"/>')
    parts.append("</svg>")
    return Markup("".join(parts))
