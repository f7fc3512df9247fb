"""Key-result values from aggregated evidence: plain numbers in, value and each member's contribution out.

The service groups the evidence rows by (part, owner) in SQL and hands the sums here; response times arrive as the
list of waits, because medians and percentiles are not portable SQL.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Iterable
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
    occurred_at: datetime
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


def business_wait(calendar: BusinessCalendar, wait: Wait, as_of: datetime) -> float:
    """The wait in the calendar's open hours: from the inquiry to its response (``occurred_at + seconds``), or to
    ``as_of`` while it is not answered."""
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
            seconds = wait.seconds if wait.seconds is not None else (as_of - wait.occurred_at).total_seconds()
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


@dataclass
class AnsweredWaits:
    """One owner's answered inquiries as the database sums them up: how many, how many within the limit, the
    longest wait (seconds)."""

    count: int
    within: int
    longest: float | None


@dataclass
class UnansweredWaits:
    """One owner's unanswered inquiries as the database sums them up: how many; how many are late (waited longer
    than the limit by now; every one when there is no limit) and the longest of those waits (seconds); and, only
    when a percentile needs them, every late wait (seconds, any order)."""

    count: int
    late: int
    longest: float | None
    late_waits: list[float] | None = None


def unanswered_summary(
    arrivals: list[tuple[str, datetime]], *, as_of: datetime, limit: float | None, with_waits: bool
) -> dict[str, UnansweredWaits]:
    """``UnansweredWaits`` per owner from each unanswered inquiry's (owner, arrival): what the database sums up
    when no percentile needs the waits themselves, here from every arrival (the written definition of those sums)."""
    out: dict[str, UnansweredWaits] = {}
    for owner, arrived in arrivals:
        seconds = (as_of - arrived).total_seconds()
        entry = out.setdefault(owner, UnansweredWaits(0, 0, None, [] if with_waits else None))
        entry.count += 1
        if limit is not None and seconds <= limit:
            continue
        entry.late += 1
        entry.longest = seconds if entry.longest is None else max(entry.longest, seconds)
        if entry.late_waits is not None:
            entry.late_waits.append(seconds)
    return out


def needs_late_waits(metric: WaitMetric) -> bool:
    """Whether ``indexed_response_time`` needs every late unanswered wait (a percentile), or only their counts
    and the longest (share_within, max)."""
    return metric.statistic not in (Statistic.share_within, Statistic.max)


# (owner or None for the whole team, offset, how many, how many answered waits there are) → that slice of the
# answered waits in ascending order
WaitSlice = Callable[[str | None, int, int, int], list[float]]


# answered waits fetched either side of a hinted percentile (``_near_hint``). At a million activities an inquiry
# key has ~2,800 late unanswered inquiries; without a hint a median fetched 1,700 of the team's answered waits and
# ~200 of each owner's, a p90 2,600 and ~300, on every incremental run (the waits of unanswered inquiries grow with
# 'now', so the value is read again each time)
HINT_WINDOW = 8


def _near_hint(
    owner: str | None, low: int, n: int, count: int, late_waits: list[float], hint: float, waits_slice: WaitSlice
) -> tuple[int, list[float]] | None:
    """(m, the merged waits from merged position m on) covering positions ``low`` and ``low`` + 1 of the sorted
    answered waits (``count``, in the database) and the late unanswered ones; None when the slice fetched around
    the hint (``hint`` hours) cannot tell.

    b late waits are shorter than the hint: the position is then near the answered wait ⌊h⌋ − b. The answered waits
    x[f] … x[l] around it are fetched. The late waits below x[f] (b' of them) all come before it, so the merge of the
    fetched waits and the other late waits starts at position f + b'. Of that merge, the values up to x[l] are
    certain (an answered wait not fetched is x[l] or longer; every one is when l is the last); ⌊h⌋ and ⌊h⌋ + 1 (when
    n has it) must be among them."""
    if count == 0 or len(late_waits) <= 2 * HINT_WINDOW:
        return None  # without the hint at most as many are fetched
    late = sorted(late_waits)
    centre = low - bisect.bisect_left(late, hint * 3600)
    first = min(max(0, centre - HINT_WINDOW), count - 1)
    last = min(count - 1, max(first, centre + 1 + HINT_WINDOW))
    fetched = waits_slice(owner, first, last - first + 1, count)
    below = bisect.bisect_left(late, fetched[0]) if first > 0 else 0
    start = first + below
    if start > low:
        return None
    certain = len(fetched) + len(late) - below
    if last < count - 1:
        certain = len(fetched) + bisect.bisect_right(late, fetched[-1]) - below
    if min(low + 1, n - 1) - start >= certain:
        return None
    return start, sorted([*fetched, *late[below:]])[:certain]


def indexed_response_time(
    metric: WaitMetric,
    *,
    answered: dict[str, AnsweredWaits],
    unanswered: dict[str, UnansweredWaits],
    waits_slice: WaitSlice,
    hints: dict[str | None, float] | None = None,
) -> MetricValue:
    """``response_time`` for wall-clock hours without reading every wait: the answered waits stay in the database,
    in order (an index), and only the few values a statistic needs are fetched.

    The same numbers as ``response_time``, step for step. An unanswered inquiry counts once late, with the time it
    has waited so far (``unanswered_summary``); share_within and max need only how many are late and the longest,
    so the database sums them up. A percentile of the n = a + u waits sits at position h = (n − 1) × share; its two
    neighbours x[⌊h⌋] and x[⌊h⌋ + 1] are among the answered waits at positions ⌊h⌋ − u … ⌊h⌋ + 1 and the u late
    unanswered ones (at most u of those come before it), so those are fetched and merged.

    ``hints``: the last run's values in hours, per owner ("" for none) and for the team (None). A hint says how many
    late waits come before the position, and so where among the answered waits it is: only ``HINT_WINDOW`` answered
    waits either side of there are fetched (``_near_hint``), when they are enough to tell; otherwise as above. The
    result is the same with any hint, right, stale or wrong.
    """
    if metric.hours == "business":
        raise ValueError("business hours are counted per wait: use response_time")
    limit = metric.within_hours * 3600 if metric.within_hours else None
    percentile = needs_late_waits(metric)
    late = {o: w for o, w in unanswered.items() if w.late}

    def value(owner: str | None, waits: AnsweredWaits, extra: UnansweredWaits) -> float | None:
        n = waits.count + extra.late
        if n == 0:
            return None
        if metric.statistic == Statistic.share_within:
            assert limit is not None
            return waits.within / n  # a late unanswered inquiry has waited longer than the limit
        if metric.statistic == Statistic.max:
            longest = [w for w in (waits.longest, extra.longest) if w is not None]
            return max(longest) / 3600
        assert percentile and extra.late_waits is not None, "a percentile needs the late waits themselves"
        share = {Statistic.median: 0.5, Statistic.p90: 0.9}.get(metric.statistic)
        if share is None:
            assert metric.percentile is not None
            share = metric.percentile / 100
        position = (n - 1) * share
        low = math.floor(position)
        hint = (hints or {}).get(owner)
        near = _near_hint(owner, low, n, waits.count, extra.late_waits, hint, waits_slice) if hint is not None else None
        if near is not None:
            first, merged = near
        else:
            first = max(0, low - extra.late)
            last = min(low + 1, waits.count - 1)
            fetched = waits_slice(owner, first, last - first + 1, waits.count) if waits.count and last >= first else []
            merged = sorted([*fetched, *extra.late_waits])
        if low + 1 >= n:
            return merged[low - first] / 3600
        x_low, x_high = merged[low - first], merged[low + 1 - first]
        return (x_low + (position - low) * (x_high - x_low)) / 3600

    none = AnsweredWaits(0, 0, None)
    nobody = UnansweredWaits(0, 0, None, [] if percentile else None)
    contributions = {
        o: v
        for o in sorted(set(answered) | set(late))
        if (v := value(o, answered.get(o, none), late.get(o, nobody))) is not None
    }

    def longest_of(values: list[float | None]) -> float | None:
        return max((v for v in values if v is not None), default=None)

    team = AnsweredWaits(
        sum(w.count for w in answered.values()),
        sum(w.within for w in answered.values()),
        longest_of([w.longest for w in answered.values()]),
    )
    everyone_late = UnansweredWaits(
        sum(w.count for w in unanswered.values()),
        sum(w.late for w in late.values()),
        longest_of([w.longest for w in late.values()]),
        [s for w in late.values() for s in (w.late_waits or [])] if percentile else None,
    )
    detail: dict[str, float | int | None] = {
        "inquiries": team.count + everyone_late.count,
        "unanswered": everyone_late.count,
    }
    return MetricValue(value(None, team, everyone_late), team.count + everyone_late.late, contributions, detail=detail)
