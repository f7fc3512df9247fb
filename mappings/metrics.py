"""Key-result values from aggregated evidence: plain numbers in, value and each member's contribution out.

The service groups the evidence rows by (part, owner) in SQL and hands the sums here; response times arrive as the
list of waits, because medians and percentiles are not portable SQL.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from mappings.calendar import BusinessCalendar, business_seconds
from mappings.config import CountMetric, RatioMetric, Statistic, SumMetric, WaitMetric


@dataclass(frozen=True)
class PartTotal:
    """Evidence of one part (counted, numerator, denominator) for one owner: how many records, their sum."""

    part: str
    owner_id: str | None
    records: int
    total: float


@dataclass(frozen=True)
class Wait:
    """One inquiry: who owns it, when it came in, how long until the first response (None: not answered yet)."""

    owner_id: str | None
    occurred_at: datetime | None  # None only for an answered inquiry read for a wall-clock statistic
    seconds: float | None


@dataclass
class MetricValue:
    value: float | None
    records: int
    contributions: dict[str, float] = field(default_factory=dict)  # owner id → value
    numerator: float | None = None
    denominator: float | None = None
    detail: dict[str, float | int | None] = field(default_factory=dict)


def _part_value(metric: CountMetric | SumMetric, totals: Iterable[PartTotal]) -> tuple[float, dict[str, float]]:
    per_owner: dict[str, float] = {}
    for row in totals:
        amount = float(row.records) if isinstance(metric, CountMetric) else row.total
        per_owner[row.owner_id or ""] = per_owner.get(row.owner_id or "", 0.0) + amount
    return sum(per_owner.values()), per_owner


def count_or_sum(metric: CountMetric | SumMetric, totals: list[PartTotal]) -> MetricValue:
    value, per_owner = _part_value(metric, totals)
    return MetricValue(value, sum(t.records for t in totals), per_owner)


def ratio(metric: RatioMetric, totals: list[PartTotal]) -> MetricValue:
    """numerator / denominator; no value while the denominator is 0. A member's contribution is their own ratio."""
    num, num_by = _part_value(metric.numerator, [t for t in totals if t.part == "numerator"])
    den, den_by = _part_value(metric.denominator, [t for t in totals if t.part == "denominator"])
    contributions = {o: num_by.get(o, 0.0) / d for o, d in den_by.items() if d}
    records = sum(t.records for t in totals)
    return MetricValue(num / den if den else None, records, contributions, numerator=num, denominator=den)


def percentile_inc(sorted_values: list[float], share: float) -> float:
    """The percentile by linear interpolation between the closest ranks: Excel's ``PERCENTILE.INC`` (and
    ``MEDIAN`` for ``share`` 0.5), numpy's and pandas' default. With the n values sorted ascending as x[0] … x[n−1]:
    h = (n − 1) × share, and the value is x[⌊h⌋] + (h − ⌊h⌋) × (x[⌊h⌋ + 1] − x[⌊h⌋]). So the median of an even count
    is the mean of the two middle values."""
    position = (len(sorted_values) - 1) * share
    low = math.floor(position)
    if low + 1 >= len(sorted_values):
        return sorted_values[-1]
    return sorted_values[low] + (position - low) * (sorted_values[low + 1] - sorted_values[low])


def statistic(metric: WaitMetric, waits: list[float]) -> float | None:
    if not waits:
        return None
    ordered = sorted(waits)
    if metric.statistic == Statistic.median:
        return percentile_inc(ordered, 0.5) / 3600
    if metric.statistic == Statistic.p90:
        return percentile_inc(ordered, 0.9) / 3600
    if metric.statistic == Statistic.percentile:
        assert metric.percentile is not None
        return percentile_inc(ordered, metric.percentile / 100) / 3600
    if metric.statistic == Statistic.max:
        return ordered[-1] / 3600
    assert metric.within_hours is not None
    limit = metric.within_hours * 3600
    return sum(1 for w in ordered if w <= limit) / len(ordered)


def _arrived(wait: Wait) -> datetime:
    assert wait.occurred_at is not None, "an unanswered inquiry always comes with its arrival time"
    return wait.occurred_at


def business_wait(calendar: BusinessCalendar, wait: Wait, as_of: datetime) -> float:
    """The wait in the calendar's open hours: from the inquiry to its response (``occurred_at + seconds``), or to
    ``as_of`` while it is not answered."""
    assert wait.occurred_at is not None, "business hours need each inquiry's arrival time"
    end = as_of if wait.seconds is None else wait.occurred_at + timedelta(seconds=wait.seconds)
    return business_seconds(calendar, wait.occurred_at, end)


def response_time(
    metric: WaitMetric, waits: list[Wait], as_of: datetime, calendar: BusinessCalendar | None = None
) -> MetricValue:
    """Hours (median, p90, percentile, max) or a share 0–1 (share_within).

    An inquiry not answered yet counts with the time it has waited so far; for share_within it is left out until
    it has waited longer than the limit (then it is late whatever happens). With ``hours: business`` every wait is
    counted in ``calendar``'s open hours only (``business_wait``).
    """
    business = metric.hours == "business"
    if business and calendar is None:
        raise ValueError("hours: business needs the team's calendar (team.calendar)")
    limit = metric.within_hours * 3600 if metric.within_hours else None
    considered: list[tuple[str, float]] = []
    unanswered = 0
    for wait in waits:
        if business:
            assert calendar is not None
            seconds = business_wait(calendar, wait, as_of)
        else:
            seconds = wait.seconds if wait.seconds is not None else (as_of - _arrived(wait)).total_seconds()
        if wait.seconds is None:
            unanswered += 1
            if limit is not None and seconds <= limit:
                continue
        considered.append((wait.owner_id or "", seconds))
    by_owner: dict[str, list[float]] = {}
    for owner, seconds in considered:
        by_owner.setdefault(owner, []).append(seconds)
    contributions = {o: v for o, s in by_owner.items() if (v := statistic(metric, s)) is not None}
    value = statistic(metric, [s for _o, s in considered])
    detail: dict[str, float | int | None] = {"inquiries": len(waits), "unanswered": unanswered}
    return MetricValue(value, len(considered), contributions, detail=detail)
