"""Response times in business hours (issue 19): the same waits measured on the wall clock and in a team's open
hours, with every expectation worked out by hand in the comments (Europe/Berlin, 08:00–18:00, Monday to Friday,
Berlin's public holidays; CET is UTC+1 in November and December 2026)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from mappings.calendar import BusinessCalendar
from mappings.config import MappingConfig, ResponseTimeMetric, check_references
from mappings.metrics import Wait, response_time
from mappings.source import MappingFileError
from service.okrs.service import load

BERLIN = BusinessCalendar.model_validate(
    {
        "time_zone": "Europe/Berlin",
        "opens": "08:00",
        "closes": "18:00",
        "holidays": {"country": "DE", "subdivision": "BE"},
    }
)
AS_OF = datetime(2026, 12, 28, 9, 0, tzinfo=UTC)  # Monday 28 December, 10:00 in Berlin


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


WAITS = [
    # Friday 27 Nov 17:30 Berlin (16:30 UTC) answered Monday 30 Nov 08:15 Berlin (07:15 UTC): the wall clock says
    # 62.75 h; open hours are Friday 17:30–18:00 and Monday 08:00–08:15: 0.5 h + 0.25 h = 0.75 h
    Wait("u1", _utc("2026-11-27T16:30:00"), 62.75 * 3600),
    # Tuesday 1 Dec 17:59 Berlin answered Wednesday 08:01: 14 h 2 min on the wall clock, 1 + 1 = 2 minutes open
    Wait("u2", _utc("2026-12-01T16:59:00"), (14 * 60 + 2) * 60),
    # Thursday 24 Dec 16:00 Berlin, not answered by Monday 28 Dec 10:00: 25 and 26 Dec are public holidays, the
    # 26th and 27th the weekend; open: 24 Dec 16:00–18:00 (2 h) + 28 Dec 08:00–10:00 (2 h) = 4 h; wall clock 90 h
    Wait("u1", _utc("2026-12-24T15:00:00"), None),
    # Saturday 5 Dec 11:00 Berlin answered Monday 7 Dec 08:30: counting starts at Monday's opening: 0.5 h
    Wait("u2", _utc("2026-12-05T10:00:00"), (45 * 60 + 30) * 60),
]


def _metric(**fields: object) -> ResponseTimeMetric:
    return ResponseTimeMetric.model_validate({"type": "response_time", **fields})


def test_share_within_four_business_hours() -> None:
    # business: 0.75 h, 2 min and 0.5 h are within 4 h; the unanswered one has waited exactly 4 h, not more: it may
    # still be answered in time, so it is left out → 3 of 3 = 1.0
    value = response_time(_metric(statistic="share_within", within_hours=4, hours="business"), WAITS, AS_OF, BERLIN)
    assert value.value == 1.0 and value.records == 3 and value.detail["unanswered"] == 1
    # wall clock: 62.75 h, 14.03 h and 45.5 h are all over 4 h, and the unanswered one has waited 90 h (late
    # whatever happens) → 0 of 4
    wall = response_time(_metric(statistic="share_within", within_hours=4), WAITS, AS_OF)
    assert wall.value == 0.0 and wall.records == 4


def test_median_in_business_hours_with_the_unanswered_wait_so_far() -> None:
    # business waits sorted: 2 min (0.0333 h), 0.5 h, 0.75 h, 4 h → an even count: (0.5 + 0.75) / 2 = 0.625 h
    value = response_time(_metric(statistic="median", hours="business"), WAITS, AS_OF, BERLIN)
    assert value.value == pytest.approx(0.625)
    # u1: 0.75 h and 4 h → 2.375 h; u2: 2 min and 0.5 h → (1/30 + 0.5) / 2 = 0.2667 h
    assert value.contributions == pytest.approx({"u1": 2.375, "u2": (1 / 30 + 0.5) / 2})


def test_business_hours_without_a_calendar_are_refused_with_where_to_add_it() -> None:
    config = MappingConfig.model_validate(
        {
            "version": 1,
            "team": {"name": "Care", "members": [{"email": "a@example.com"}]},
            "cycle": {"name": "Q4", "start": "2026-10-01", "end": "2026-12-31"},
            "objectives": [
                {
                    "key": "o",
                    "title": "Customers get answers",
                    "key_results": [
                        {
                            "key": "fast",
                            "title": "Answered within 4 business hours",
                            "metric": {"type": "response_time", "statistic": "share_within", "within_hours": 4,
                                       "hours": "business"},
                            "target": 0.9,
                        }
                    ],
                }
            ],
        }
    )  # fmt: skip
    problems = check_references(config)
    assert [(at, text.split(":")[0]) for at, text in problems] == [
        (("objectives", 0, "key_results", 0, "metric", "hours"), "hours")
    ]
    assert "team.calendar" in problems[0][1]
    with pytest.raises(ValueError, match="team.calendar"):
        response_time(config.key_result("fast").metric, WAITS, AS_OF)  # type: ignore[arg-type]


BAD_CALENDAR = """\
version: 1
team:
  name: Care
  members:
    - {email: a@example.com}
  calendar:
    time_zone: Europe/Berln
    working_days: []
    holidays: {country: DE, subdivision: XX}
cycle: {name: Q4, start: 2026-10-01, end: 2026-12-31}
objectives:
  - key: o
    title: Customers get answers
    key_results:
      - key: fast
        title: Answered within 4 business hours
        metric: {type: response_time, statistic: share_within, within_hours: 4, hours: business}
        target: 0.9
"""


def test_a_bad_calendar_is_refused_with_file_line_and_column() -> None:
    with pytest.raises(MappingFileError) as refused:
        load(BAD_CALENDAR, filename="care.yaml")
    found = {(p.line, p.column): p.message for p in refused.value.problems}
    assert set(found) == {(7, 5), (8, 5), (9, 29)}
    assert "unknown time zone 'Europe/Berln'" in found[(7, 5)]
    assert "at least one working day" in found[(8, 5)]
    assert "unknown subdivision 'XX' of DE" in found[(9, 29)]
    hours = BAD_CALENDAR.replace("time_zone: Europe/Berln", "time_zone: Europe/Berlin")
    hours = hours.replace("working_days: []", 'opens: "18:00"\n    closes: "08:00"').replace("XX", "BE")
    with pytest.raises(MappingFileError) as refused:
        load(hours, filename="care.yaml")
    (problem,) = refused.value.problems
    assert (problem.line, "closes (08:00) must be after opens (18:00)" in problem.message) == (6, True)
