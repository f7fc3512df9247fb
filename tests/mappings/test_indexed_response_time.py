"""``indexed_response_time`` (the answered waits stay in the database, only the slices a percentile needs are
fetched) gives exactly what ``response_time`` gives from every wait, for any mix of answered and unanswered
inquiries, owners, ties and statistics. The slices come from a sorted list here, as the database returns them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from mappings.config import ResponseTimeMetric
from mappings.metrics import (
    HINT_WINDOW,
    AnsweredWaits,
    Wait,
    indexed_response_time,
    needs_late_waits,
    response_time,
    unanswered_summary,
)

AS_OF = datetime(2026, 9, 30, 18, 0, tzinfo=UTC)
OWNERS = ["005A", "005B", "005C", ""]

STATISTICS = st.one_of(
    st.sampled_from([{"statistic": "median"}, {"statistic": "p90"}, {"statistic": "max"}]),
    st.integers(min_value=1, max_value=99).map(lambda p: {"statistic": "percentile", "percentile": p}),
    st.sampled_from([0.5, 1, 4, 24]).map(lambda h: {"statistic": "share_within", "within_hours": h}),
)
# waits in whole minutes up to ten days, so that ties are common; unanswered inquiries arrived up to ten days ago
ANSWERED = st.lists(st.tuples(st.sampled_from(OWNERS), st.integers(0, 14_400).map(lambda m: m * 60.0)), max_size=60)
UNANSWERED = st.lists(st.tuples(st.sampled_from(OWNERS), st.integers(1, 14_400)), max_size=12)
# enough late waits for a hint to be used (more than 2 × HINT_WINDOW of one owner)
MANY_UNANSWERED = st.lists(st.tuples(st.sampled_from(OWNERS), st.integers(1, 14_400)), min_size=20, max_size=80)
# the last run's values as a hint: none, the right ones, the right ones a little off, or anything
HINTS = st.sampled_from(["none", "right", "off"]) | st.dictionaries(
    st.sampled_from([*OWNERS, None]), st.floats(0, 300, allow_nan=False), max_size=5
)


def _indexed(
    metric: ResponseTimeMetric,
    answered: list[tuple[str, float]],
    unanswered: list[Any],
    hints: dict[str | None, float] | None = None,
) -> Any:
    limit = metric.within_hours * 3600 if metric.within_hours else None
    summary: dict[str, AnsweredWaits] = {}
    for owner in {o for o, _s in answered}:
        mine = [s for o, s in answered if o == owner]
        summary[owner] = AnsweredWaits(len(mine), sum(1 for s in mine if limit is not None and s <= limit), max(mine))
    fetched: list[tuple[str | None, int, int]] = []

    def waits_slice(owner: str | None, offset: int, count: int, total: int) -> list[float]:
        fetched.append((owner, offset, count))
        values = sorted(s for o, s in answered if owner is None or o == owner)
        assert total == len(values)  # what the database's slice counts from the top with
        return values[offset : offset + count]

    arrivals = [(o, AS_OF - timedelta(minutes=m)) for o, m in unanswered]
    late = unanswered_summary(arrivals, as_of=AS_OF, limit=limit, with_waits=needs_late_waits(metric))
    value = indexed_response_time(metric, answered=summary, unanswered=late, waits_slice=waits_slice, hints=hints)
    return value, fetched


@settings(max_examples=400, derandomize=True, deadline=None)
@given(statistic=STATISTICS, answered=ANSWERED, unanswered=UNANSWERED)
def test_indexed_response_time_equals_response_time(
    statistic: dict[str, Any], answered: list[tuple[str, float]], unanswered: list[tuple[str, int]]
) -> None:
    metric = ResponseTimeMetric.model_validate({"type": "response_time", **statistic})
    waits = [Wait(o or None, AS_OF - timedelta(days=30), s) for o, s in answered]
    waits += [Wait(o or None, AS_OF - timedelta(minutes=m), None) for o, m in unanswered]
    expected = response_time(metric, waits, AS_OF)
    got, fetched = _indexed(metric, answered, unanswered)
    assert (got.value, got.records, got.detail) == (expected.value, expected.records, expected.detail)
    assert got.contributions == expected.contributions
    # only a few waits per owner and statistic are fetched, never all of them
    assert all(count <= len(unanswered) + 2 for _owner, _offset, count in fetched)


@settings(max_examples=400, derandomize=True, deadline=None)
@given(
    statistic=STATISTICS,
    answered=st.lists(ANSWERED.map(list), min_size=1, max_size=4).map(lambda ls: [w for chunk in ls for w in chunk]),
    unanswered=MANY_UNANSWERED,
    hints=HINTS,
)
def test_any_hint_gives_the_same_value(
    statistic: dict[str, Any], answered: list[tuple[str, float]], unanswered: list[tuple[str, int]], hints: Any
) -> None:
    """The last run's values tell where to fetch (``hints``); right, a little off or wrong, the value is the same,
    and no more waits are fetched than without."""
    metric = ResponseTimeMetric.model_validate({"type": "response_time", **statistic})
    waits = [Wait(o or None, AS_OF - timedelta(days=30), s) for o, s in answered]
    waits += [Wait(o or None, AS_OF - timedelta(minutes=m), None) for o, m in unanswered]
    expected = response_time(metric, waits, AS_OF)
    if hints in ("right", "off"):
        shift = 0.0 if hints == "right" else 0.37
        right: dict[str | None, float] = {o: v + shift for o, v in expected.contributions.items()}
        if expected.value is not None:
            right[None] = expected.value + shift
        hints = right
    elif hints == "none":
        hints = None
    got, fetched = _indexed(metric, answered, unanswered, hints=hints or None)
    assert (got.value, got.records, got.detail) == (expected.value, expected.records, expected.detail)
    assert got.contributions == expected.contributions
    assert all(count <= len(unanswered) + 2 for _owner, _offset, count in fetched)


def test_a_median_of_many_answered_waits_fetches_two_of_them() -> None:
    metric = ResponseTimeMetric.model_validate({"type": "response_time", "statistic": "median"})
    answered = [("005A", float(s)) for s in range(0, 100_000, 10)]
    got, fetched = _indexed(metric, answered, [])
    assert got.value == (49_990 + 50_000) / 2 / 3600  # the mean of the two middle values
    assert sorted(count for _o, _offset, count in fetched) == [2, 2]  # the team's and 005A's two middle values


def test_a_right_hint_fetches_a_few_waits_around_it() -> None:
    """3,000 inquiries unanswered for days, 10,000 answered within the hour: with the last run's values as hints
    the median's neighbours come from one slice of 2 × HINT_WINDOW + 2 per owner, not 3,002."""
    metric = ResponseTimeMetric.model_validate({"type": "response_time", "statistic": "median"})
    answered = [("005A", float(s % 3600)) for s in range(10_000)]
    unanswered = [("005A", 2 * 24 * 60 + m) for m in range(3_000)]  # minutes ago
    unhinted, fetched = _indexed(metric, answered, unanswered)
    assert sorted(count for _o, _offset, count in fetched) == [3_002, 3_002]
    hints: dict[str | None, float] = {"005A": unhinted.contributions["005A"], None: unhinted.value}
    got, fetched = _indexed(metric, answered, unanswered, hints)
    assert (got.value, got.contributions) == (unhinted.value, unhinted.contributions)
    assert sorted(count for _o, _offset, count in fetched) == [2 * HINT_WINDOW + 2, 2 * HINT_WINDOW + 2]
