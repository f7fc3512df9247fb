"""Business hours for response-time key results: hand-computed spans in Berlin (weekend, public holidays, both DST
changes of 2026, closed days), each kind of bad calendar refused with a message that says what is wrong, and the
properties every measurement keeps (additive, never more than the elapsed time, all of it on a 24/7 calendar)."""

from __future__ import annotations

import gc
import weakref
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import holidays
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from mappings.calendar import BusinessCalendar, WeekdayName, business_seconds, business_seconds_many, next_opening

BERLIN = ZoneInfo("Europe/Berlin")
HOUR = 3600.0
MINUTE = 60.0

# Europe/Berlin, 08:00–18:00, Monday–Friday, Berlin's public holidays
OFFICE = BusinessCalendar.model_validate(
    {"time_zone": "Europe/Berlin", "holidays": {"country": "DE", "subdivision": "BE"}}
)
EVERY_DAY: list[WeekdayName] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
ALWAYS_OPEN = BusinessCalendar(time_zone="Europe/Berlin", working_days=EVERY_DAY, opens="00:00", closes="24:00")


def berlin(year: int, month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=BERLIN)


def test_the_dates_used_below_are_what_the_holidays_package_says() -> None:
    berlin_2026 = holidays.country_holidays("DE", subdiv="BE", years=2026)
    assert date(2026, 12, 24) not in berlin_2026  # Christmas Eve is a working day in Berlin
    assert {date(2026, 12, 25), date(2026, 12, 26)} <= set(berlin_2026)
    assert {date(2026, 4, 3), date(2026, 4, 6)} <= set(berlin_2026)  # Good Friday, Easter Monday
    assert date(2026, 11, 13) not in berlin_2026  # the "closed day" below is an ordinary Friday
    # weekdays: 2026-03-27 and 2026-10-23 are Fridays; the clocks change on Sundays 03-29 and 10-25
    assert [date(2026, 3, 27).weekday(), date(2026, 3, 29).weekday(), date(2026, 10, 25).weekday()] == [4, 6, 6]
    assert date(2026, 12, 24).weekday() == 3  # Thursday
    assert berlin(2026, 3, 30, 9).utcoffset() == timedelta(hours=2)  # CEST after the change
    assert berlin(2026, 10, 26, 9).utcoffset() == timedelta(hours=1)  # CET after the change


SPANS = [
    # Fri 17:00–18:00 = 1 h, Sat + Sun closed, Mon 08:00–09:00 = 1 h → 2 h
    ("across-a-weekend", berlin(2026, 6, 12, 17), berlin(2026, 6, 15, 9), 2 * HOUR),
    # Thu 2026-04-02 17:00–18:00 = 1 h, Good Friday, Sat, Sun, Easter Monday closed, Tue 08:00–09:00 = 1 h → 2 h
    ("over-easter", berlin(2026, 4, 2, 17), berlin(2026, 4, 7, 9), 2 * HOUR),
    # Thu 12-24 16:00–18:00 = 2 h (not a holiday), Fri 25th + Sat 26th holidays, Sun 27th, Mon 08:00–10:00 = 2 h → 4 h
    ("unanswered-over-christmas", berlin(2026, 12, 24, 16), berlin(2026, 12, 28, 10), 4 * HOUR),
    # Fri 03-27 17:00 CET–18:00 = 1 h, weekend (clocks go forward on Sunday), Mon 08:00–09:00 CEST = 1 h → 2 h
    ("spring-forward", berlin(2026, 3, 27, 17), berlin(2026, 3, 30, 9), 2 * HOUR),
    # in UTC: Fri 10-23 15:00Z = 17:00 CEST → 18:00 = 1 h; Mon 10-26 08:00Z = 09:00 CET, from 08:00 = 1 h → 2 h
    (
        "fall-back-in-utc",
        datetime(2026, 10, 23, 15, tzinfo=UTC),
        datetime(2026, 10, 26, 8, tzinfo=UTC),
        2 * HOUR,
    ),
    # Tue 17:59–18:00 = 1 min, Wed 08:00–08:01 = 1 min → 2 min
    ("1759-to-0801", berlin(2026, 6, 16, 17, 59), berlin(2026, 6, 17, 8, 1), 2 * MINUTE),
    # Sat 11:00, Sun closed; counting starts Mon 08:00 → 08:30 = 30 min
    ("saturday-inquiry", berlin(2026, 6, 13, 11), berlin(2026, 6, 15, 8, 30), 30 * MINUTE),
    # Wed 09:15 → 13:45 = 4 h 30 min = 16,200 s
    ("same-day", berlin(2026, 6, 17, 9, 15), berlin(2026, 6, 17, 13, 45), 4.5 * HOUR),
    # Tue 19:00 → Wed 07:00: both outside hours → 0
    ("overnight-outside-hours", berlin(2026, 6, 16, 19), berlin(2026, 6, 17, 7), 0.0),
    # Wed 31 Dec 2025 17:00–18:00 = 1 h; New Year's Day (Thu) holiday; Fri 2026-01-02 08:00–10:00 = 2 h → 3 h
    ("across-new-year", berlin(2025, 12, 31, 17), berlin(2026, 1, 2, 10), 3 * HOUR),
    ("end-before-start", berlin(2026, 6, 17, 13), berlin(2026, 6, 17, 9), 0.0),
    ("end-equals-start", berlin(2026, 6, 17, 13), berlin(2026, 6, 17, 13), 0.0),
]


@pytest.mark.parametrize(("start", "end", "expected"), [s[1:] for s in SPANS], ids=[s[0] for s in SPANS])
def test_business_seconds(start: datetime, end: datetime, expected: float) -> None:
    assert business_seconds(OFFICE, start, end) == pytest.approx(expected, abs=1e-6)


def test_a_whole_year_in_berlin() -> None:
    # 2026 has 261 weekdays (52 weeks + Thursday 1 January); 7 of Berlin's holidays fall on one (Jan 1, Apr 3,
    # Apr 6, May 1, May 14, May 25, Dec 25; Women's Day, Unity Day and Dec 26 are weekend days) → 254 days × 10 h
    assert business_seconds(OFFICE, berlin(2026, 1, 1, 0), berlin(2027, 1, 1, 0)) == 254 * 10 * HOUR


def test_a_closed_day_counts_nothing() -> None:
    start, end = berlin(2026, 11, 12, 17), berlin(2026, 11, 16, 9)
    business_seconds(OFFICE, start, end)  # builds OFFICE's table of 2026, which the copies must not reuse
    with_day_off = BusinessCalendar.model_validate({**OFFICE.model_dump(), "closed": ["2026-11-13"]})
    copied_with_day_off = OFFICE.model_copy(update={"closed": [date(2026, 11, 13)]})
    # Thu 17:00–18:00 = 1 h, Fri 13th closed, weekend, Mon 08:00–09:00 = 1 h → 2 h (without the day off: 1 + 10 + 1)
    assert business_seconds(with_day_off, start, end) == 2 * HOUR
    assert business_seconds(copied_with_day_off, start, end) == 2 * HOUR
    assert business_seconds(OFFICE, start, end) == 12 * HOUR


def test_a_day_of_the_clock_change_is_open_for_its_usual_hours() -> None:
    every_day = BusinessCalendar(time_zone="Europe/Berlin", working_days=EVERY_DAY)
    # Sunday 2026-03-29 (23 hours long) and Sunday 2026-10-25 (25 hours): 08:00–18:00 is 10 h on both
    assert business_seconds(every_day, berlin(2026, 3, 29, 0), berlin(2026, 3, 30, 0)) == 10 * HOUR
    assert business_seconds(every_day, berlin(2026, 10, 25, 0), berlin(2026, 10, 26, 0)) == 10 * HOUR


def test_hours_that_contain_the_clock_change_count_the_time_that_passes() -> None:
    # a 24/7 calendar: from midnight to midnight 23 h pass on 2026-03-29 and 25 h on 2026-10-25
    assert business_seconds(ALWAYS_OPEN, berlin(2026, 3, 29, 0), berlin(2026, 3, 30, 0)) == 23 * HOUR
    assert business_seconds(ALWAYS_OPEN, berlin(2026, 10, 25, 0), berlin(2026, 10, 26, 0)) == 25 * HOUR


def test_the_repeated_hour_is_ordered_by_the_instant_not_the_wall_clock() -> None:
    # 2026-10-25 in Berlin: 02:00–03:00 happens twice; 02:30 CEST (fold 0) is 00:30Z, 02:10 CET (fold 1) is 01:10Z
    first, second = berlin(2026, 10, 25, 2, 30), berlin(2026, 10, 25, 2, 10).replace(fold=1)
    # 00:30Z → 01:10Z = 40 min on a 24/7 calendar; the other way round → 0
    assert business_seconds(ALWAYS_OPEN, first, second) == 40 * MINUTE
    assert business_seconds(ALWAYS_OPEN, second, first) == 0.0


def test_many_spans_at_once() -> None:
    spans = [(start, end) for _, start, end, _ in SPANS]
    assert business_seconds_many(OFFICE, spans) == [business_seconds(OFFICE, start, end) for start, end in spans]
    assert business_seconds_many(OFFICE, []) == []


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        (berlin(2026, 6, 17, 9, 15), berlin(2026, 6, 17, 9, 15)),  # open: now
        (berlin(2026, 6, 17, 8), berlin(2026, 6, 17, 8)),  # opening time is open
        (berlin(2026, 6, 17, 18), berlin(2026, 6, 18, 8)),  # closing time is closed
        (berlin(2026, 6, 17, 6), berlin(2026, 6, 17, 8)),  # early morning: today's opening
        (berlin(2026, 12, 24, 19), berlin(2026, 12, 28, 8)),  # Christmas + weekend
        (datetime(2026, 3, 28, 12, tzinfo=UTC), berlin(2026, 3, 30, 8)),  # Saturday, in UTC; Monday is CEST
        (berlin(2025, 12, 31, 18, 30), berlin(2026, 1, 2, 8)),  # over New Year's Day into the next year
    ],
    ids=["open", "at-opening", "at-closing", "early", "christmas", "saturday-utc", "new-year"],
)
def test_next_opening(at: datetime, expected: datetime) -> None:
    opening = next_opening(OFFICE, at)
    assert opening == expected
    assert opening.tzinfo == BERLIN


def test_a_calendar_and_its_tables_are_freed_after_use() -> None:
    calendar = BusinessCalendar(time_zone="Europe/Berlin")
    assert business_seconds(calendar, berlin(2026, 6, 17, 9), berlin(2026, 6, 17, 10)) == HOUR
    freed = weakref.ref(calendar)
    del calendar
    gc.collect()
    assert freed() is None


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match=r"start 2026-06-17T09:00:00 has no time zone"):
        business_seconds(OFFICE, datetime(2026, 6, 17, 9), berlin(2026, 6, 17, 10))
    with pytest.raises(ValueError, match=r"at 2026-06-17T09:00:00 has no time zone"):
        next_opening(OFFICE, datetime(2026, 6, 17, 9))
    with pytest.raises(TypeError, match=r"end must be a datetime, not date"):
        business_seconds(OFFICE, berlin(2026, 6, 17, 9), date(2026, 6, 18))  # type: ignore[arg-type]  # a date, on purpose


def test_times_beyond_the_supported_years_are_refused() -> None:
    with pytest.raises(ValueError, match=r"year 1850 is out of range: business hours are counted between 1900-01-01"):
        business_seconds(OFFICE, berlin(1850, 6, 17, 9), berlin(2026, 6, 17, 10))


def test_defaults_and_spellings() -> None:
    in_berlin = {"country": "de", "subdivision": "berlin"}
    calendar = BusinessCalendar.model_validate(
        {"time_zone": "UTC", "working_days": ["mon", "wednesday"], "holidays": in_berlin}
    )
    assert calendar.working_days == ["monday", "wednesday"]
    assert calendar.holidays is not None
    assert (calendar.holidays.country, calendar.holidays.subdivision) == ("DE", "Berlin")
    assert (BusinessCalendar(time_zone="UTC").opens, BusinessCalendar(time_zone="UTC").closes) == ("08:00", "18:00")
    for name, field in BusinessCalendar.model_fields.items():
        assert field.title and field.description and field.examples, name


BAD = [
    (
        "unknown-time-zone",
        {"time_zone": "Europe/Berln"},
        "unknown time zone 'Europe/Berln' (an IANA name such as Europe/Berlin); did you mean Europe/Berlin?",
    ),
    ("unknown-country", {"holidays": {"country": "XX"}}, "unknown country 'XX' for public holidays"),
    (
        "unknown-subdivision",
        {"holidays": {"country": "DE", "subdivision": "XX"}},
        "unknown subdivision 'XX' of DE for public holidays; "
        "valid ones include BB, BE, BW, BY, HB, HE, HH, MV and 9 more",
    ),
    ("closes-before-opens", {"opens": "18:00", "closes": "08:00"}, "closes (08:00) must be after opens (18:00)"),
    ("closes-when-opening", {"opens": "09:00", "closes": "09:00"}, "closes (09:00) must be after opens (09:00)"),
    ("no-working-day", {"working_days": []}, "a calendar needs at least one working day"),
    ("not-a-weekday", {"working_days": ["montag"]}, "'montag' is not a weekday: write monday … sunday or mon … sun"),
    ("capitalised-weekday", {"working_days": ["Monday"]}, "'Monday' is not a weekday (write weekdays in lowercase)"),
    ("weekday-twice", {"working_days": ["mon", "monday"]}, "monday is listed twice"),
    ("not-a-time", {"opens": "8:00"}, "opens '8:00' is not a time of day: write HH:MM on the 24-hour clock"),
    ("after-midnight", {"closes": "24:30"}, "closes '24:30' is not a time of day"),
    ("opens-at-24", {"opens": "24:00"}, "opens '24:00' is the end of the day"),
    ("unknown-field", {"timezone": "UTC"}, "Extra inputs are not permitted"),
]


@pytest.mark.parametrize(("changes", "message"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_calendars_are_refused_with_what_is_wrong(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as refused:
        BusinessCalendar.model_validate({"time_zone": "Europe/Berlin", **changes})
    assert message in str(refused.value)


# --- properties, on a fixed budget -----------------------------------------------------------------------------

ZONES = [UTC, BERLIN, ZoneInfo("America/New_York"), ZoneInfo("Asia/Kolkata")]
moments = st.datetimes(
    min_value=datetime(2025, 12, 20), max_value=datetime(2027, 1, 10), timezones=st.sampled_from(ZONES)
)


@settings(max_examples=200, derandomize=True, deadline=None)
@given(st.lists(moments, min_size=3, max_size=3).map(lambda points: sorted(points, key=datetime.timestamp)))
def test_business_seconds_is_additive_and_bounded(points: list[datetime]) -> None:
    # sorted and measured by timestamp: datetimes with the same tzinfo compare and subtract by wall clock
    a, b, c = points
    elapsed = c.timestamp() - a.timestamp()
    whole = business_seconds(OFFICE, a, c)
    assert business_seconds(OFFICE, a, b) + business_seconds(OFFICE, b, c) == pytest.approx(whole, abs=1e-5)
    assert 0.0 <= whole <= elapsed + 1e-5
    assert business_seconds(ALWAYS_OPEN, a, c) == pytest.approx(elapsed, abs=1e-5)
    assert business_seconds(OFFICE, c, a) == 0.0
