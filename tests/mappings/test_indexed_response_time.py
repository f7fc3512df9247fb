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


def _indexed(metric: ResponseTimeMetric, answered: list[tuple[str, float]], unanswered: list[Any]) -> Any:
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
    value = indexed_response_time(metric, answered=summary, unanswered=late, waits_slice=waits_slice)
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


def test_a_median_of_many_answered_waits_fetches_two_of_them() -> None:
    metric = ResponseTimeMetric.model_validate({"type": "response_time", "statistic": "median"})
    answered = [("005A", float(s)) for s in range(0, 100_000, 10)]
    got, fetched = _indexed(metric, answered, [])
    assert got.value == (49_990 + 50_000) / 2 / 3600  # the mean of the two middle values
    assert sorted(count for _o, _offset, count in fetched) == [2, 2]  # the team's and 005A's two middle values
