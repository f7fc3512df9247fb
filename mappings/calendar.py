"""Business hours for response-time key results: "we answer customer inquiries within 4 business hours".

A ``BusinessCalendar`` says when the team is open: a time zone, working days, opening hours, the public holidays of
a country (and region) and extra closed days. ``business_seconds`` measures the working time between an inquiry and
its answer the way support tools measure an SLA: only time inside opening hours counts, so an inquiry that arrives
on Friday at 17:00 and is answered on Monday at 09:00 waited 2 business hours, and one that arrives on Saturday
starts counting at Monday's opening.

Opening hours are local wall-clock times: 08:00–18:00 in Europe/Berlin is 08:00–18:00 in winter and in summer, and
is 10 hours on the days the clocks change (they change at night). What is counted is the time that really passes
inside those hours, so the count is additive and never more than the elapsed time; only hours that contain the
change itself (a 24/7 calendar) have the 23 or 25 hours that really pass on those days.

Speed: the first measurement in a year builds that year's table once per calendar (each day's opening and closing
instant and the business seconds before it; public holidays come from the ``holidays`` package then, not per call).
A measurement is then two table look-ups, so a million inquiries take seconds. Pure: no I/O, no database.
"""

from __future__ import annotations

import difflib
import re
import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cache
from typing import Literal
from zoneinfo import ZoneInfo, available_timezones

import holidays as holiday_tables
from pydantic import Field, ValidationInfo, field_validator, model_validator

from mappings.limits import FIRST_DAY, LAST_DAY, MAX_CLOSED_DAYS, Day, StrictModel

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_WEEKDAY_NUMBER = {spelling: number for number, name in enumerate(WEEKDAYS) for spelling in (name, name[:3])}
WeekdayName = Literal[
    "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday",
    "mon", "tue", "wed", "thu", "fri", "sat", "sun",
]  # fmt: skip
_TIME_PATTERN = r"^(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$"
_SHOWN_SUBDIVISIONS = 8


_Strict = StrictModel


class PublicHolidays(_Strict):
    """Whose public holidays close the team: a country and, where holidays differ by region, a subdivision."""

    country: str = Field(
        title="Country",
        description="ISO 3166-1 alpha-2 code of the country whose public holidays are days off.",
        examples=["DE", "AT", "US"],
        min_length=2,
        max_length=3,
    )
    subdivision: str | None = Field(
        default=None,
        title="Subdivision",
        description="The state, province or region, as the country's code for it (DE: BE for Berlin, BY for "
        "Bavaria). Without it only the holidays of the whole country count.",
        examples=["BE", "BY", "CA"],
        min_length=1,
        max_length=100,
    )

    @field_validator("country")
    @classmethod
    def _known_country(cls, country: str) -> str:
        if country.upper() not in holiday_tables.list_supported_countries():
            raise ValueError(
                f"unknown country '{country}' for public holidays (an ISO 3166-1 alpha-2 code such as DE, AT, CH or US)"
            )
        return country.upper()

    @field_validator("subdivision")
    @classmethod
    def _known_subdivision(cls, subdivision: str | None, info: ValidationInfo) -> str | None:
        country = info.data.get("country")
        if subdivision is None or country is None:  # no country: its own error is reported already
            return subdivision
        return _subdivision_code(country, subdivision)


def _subdivision_code(country: str, subdivision: str) -> str:
    """The holidays package's spelling of ``subdivision`` (a code or a name, any case); a ValueError listing a few
    valid codes if the country has no such subdivision."""
    table = holiday_tables.country_holidays(country)
    spellings = {code.lower(): code for code in table.subdivisions}
    spellings.update({name.lower(): name for name in getattr(table, "subdivisions_aliases", {})})
    found = spellings.get(subdivision.lower())
    if found is not None:
        return found
    codes = list(table.subdivisions)
    if not codes:
        raise ValueError(
            f"unknown subdivision '{subdivision}': {country} has no regions with their own public holidays — leave "
            "subdivision out"
        )
    more = len(codes) - _SHOWN_SUBDIVISIONS
    shown = ", ".join(codes[:_SHOWN_SUBDIVISIONS]) + (f" and {more} more" if more > 0 else "")
    raise ValueError(
        f"unknown subdivision '{subdivision}' of {country} for public holidays; valid ones include {shown}"
    )


@cache
def _time_zone_names() -> frozenset[str]:
    # "localtime" is whatever the machine is set to, not a place a team works in
    return frozenset(available_timezones() - {"localtime", "posixrules", "Factory"})


def _seconds_of_day(hh_mm: str) -> int:
    hours, minutes = hh_mm.split(":")
    return int(hours) * 3600 + int(minutes) * 60


@dataclass(frozen=True, slots=True)
class _Year:
    """One local calendar year of a calendar: per day (index = day of the year - 1) when it opens (a POSIX
    timestamp), how many seconds it is open (0 on a closed day), and the business seconds of the year before it."""

    first_ordinal: int
    opens: list[float]
    open_seconds: list[float]
    before: list[float]  # one longer than the year: before[-1] is the year's total


class BusinessCalendar(_Strict):
    """When the team is open to answer customers: the clock that business-hours response times are measured on."""

    time_zone: str = Field(
        title="Time zone",
        description="IANA name of the time zone the opening hours and days are read in.",
        examples=["Europe/Berlin", "America/New_York"],
    )
    working_days: list[WeekdayName] = Field(
        default=["monday", "tuesday", "wednesday", "thursday", "friday"],
        title="Working days",
        description="Weekdays the team works, in lowercase, full (monday) or short (mon).",
        examples=[["monday", "tuesday", "wednesday", "thursday", "friday"], ["mon", "tue", "wed", "thu"]],
        max_length=7,
    )
    opens: str = Field(
        default="08:00",
        title="Opens at",
        description="Local time (HH:MM, 24-hour clock) the team starts answering on a working day.",
        examples=["08:00", "09:30"],
        json_schema_extra={"pattern": _TIME_PATTERN},
    )
    closes: str = Field(
        default="18:00",
        title="Closes at",
        description='Local time (HH:MM) the team stops answering, after opens; "24:00" is the end of the day.',
        examples=["18:00", "24:00"],
        json_schema_extra={"pattern": _TIME_PATTERN},
    )
    holidays: PublicHolidays | None = Field(
        default=None,
        title="Public holidays",
        description="The country (and region) whose public holidays are days off, from the holidays package.",
        examples=[{"country": "DE", "subdivision": "BE"}],
    )
    closed: list[Day] = Field(
        default_factory=list,
        title="Extra closed days",
        description="Dates the team is closed besides weekends and public holidays, e.g. company days off.",
        examples=[["2026-12-24", "2026-12-31"]],
        max_length=MAX_CLOSED_DAYS,
    )

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, name: str) -> str:
        if name not in _time_zone_names():
            close = difflib.get_close_matches(name, _time_zone_names(), n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            raise ValueError(f"unknown time zone '{name}' (an IANA name such as Europe/Berlin){hint}")
        return name

    @field_validator("working_days", mode="before")
    @classmethod
    def _weekday_names(cls, names: object) -> object:
        if not isinstance(names, list):
            return names  # pydantic says "should be a valid list"
        if not names:
            raise ValueError("a calendar needs at least one working day")
        seen: set[int] = set()
        for name in names:
            if not isinstance(name, str) or name not in _WEEKDAY_NUMBER:
                case = (
                    " (write weekdays in lowercase)"
                    if isinstance(name, str) and name.lower() in _WEEKDAY_NUMBER
                    else ""
                )
                raise ValueError(f"{name!r} is not a weekday{case}: write monday … sunday or mon … sun")
            if _WEEKDAY_NUMBER[name] in seen:
                raise ValueError(f"{WEEKDAYS[_WEEKDAY_NUMBER[name]]} is listed twice")
            seen.add(_WEEKDAY_NUMBER[name])
        return [WEEKDAYS[_WEEKDAY_NUMBER[name]] for name in names]

    @field_validator("opens", "closes")
    @classmethod
    def _time_of_day(cls, value: str, info: ValidationInfo) -> str:
        if not re.fullmatch(_TIME_PATTERN, value):
            raise ValueError(
                f"{info.field_name} '{value}' is not a time of day: write HH:MM on the 24-hour clock, e.g. 08:00 "
                "(00:00–23:59, and 24:00 for the end of the day)"
            )
        if info.field_name == "opens" and value == "24:00":
            raise ValueError("opens '24:00' is the end of the day: a calendar opens between 00:00 and 23:59")
        return value

    @model_validator(mode="after")
    def _hours(self) -> BusinessCalendar:
        if _seconds_of_day(self.closes) <= _seconds_of_day(self.opens):
            raise ValueError(
                f"closes ({self.closes}) must be after opens ({self.opens}); hours past midnight are not supported — "
                'write closes: "24:00" for the end of the day'
            )
        return self


class _Clock:
    """A calendar's working time as tables, one per local year, built on first use: per day (index = day of the
    year - 1) when it opens (a POSIX timestamp), how many seconds it is open (0 on a closed day) and the business
    seconds of the year before it, so a measurement is two look-ups."""

    __slots__ = ("_closed", "_closes", "_holidays", "_opens", "_weekdays", "_years", "zone")

    def __init__(self, calendar: BusinessCalendar) -> None:
        # no reference back to the calendar: _CLOCKS holds the clock, and the clock would keep the calendar alive
        self._holidays = calendar.holidays
        self.zone = ZoneInfo(calendar.time_zone)
        self._weekdays = frozenset(_WEEKDAY_NUMBER[name] for name in calendar.working_days)
        self._closed = frozenset(calendar.closed)
        self._opens, self._closes = _seconds_of_day(calendar.opens), _seconds_of_day(calendar.closes)
        self._years: dict[int, _Year] = {}

    def year(self, year: int) -> _Year:
        table = self._years.get(year)
        if table is None:
            table = self._years[year] = self._build_year(year)
        return table

    def since_new_year(self, at: datetime, moment: float) -> tuple[int, float]:
        """The local year of ``at`` (whose POSIX timestamp is ``moment``) and the business seconds from the start of
        that year until ``at``."""
        local = at.astimezone(self.zone)
        table = self.year(local.year)
        index = local.toordinal() - table.first_ordinal
        into_day = moment - table.opens[index]
        length = table.open_seconds[index]
        return local.year, table.before[index] + (0.0 if into_day <= 0 else length if into_day >= length else into_day)

    def _build_year(self, year: int) -> _Year:
        if not FIRST_DAY.year <= year <= LAST_DAY.year:
            raise ValueError(
                f"year {year} is out of range: business hours are counted between {FIRST_DAY} and {LAST_DAY}"
            )
        off = self._closed | self._public_holidays(year)
        first = date(year, 1, 1)
        opens: list[float] = []
        open_seconds: list[float] = []
        before: list[float] = [0.0]
        day = first
        while day.year == year:
            if day.weekday() in self._weekdays and day not in off:
                start = self._instant(day, self._opens)
                length = self._instant(day, self._closes) - start
            else:
                start, length = 0.0, 0.0
            opens.append(start)
            open_seconds.append(length)
            before.append(before[-1] + length)
            day += timedelta(days=1)
        return _Year(first.toordinal(), opens, open_seconds, before)

    def _instant(self, day: date, seconds_of_day: int) -> float:
        """The POSIX timestamp of a local wall-clock time of ``day`` (24:00 is the next day's midnight)."""
        if seconds_of_day == 86_400:
            day, seconds_of_day = day + timedelta(days=1), 0
        hours, rest = divmod(seconds_of_day, 3600)
        return datetime(day.year, day.month, day.day, hours, rest // 60, tzinfo=self.zone).timestamp()

    def _public_holidays(self, year: int) -> frozenset[date]:
        public = self._holidays
        if public is None:
            return frozenset()
        # the neighbouring years too: a holiday observed on another day can move across New Year (US: 2022-01-01
        # was a Saturday and was observed on Friday 2021-12-31)
        table = holiday_tables.country_holidays(
            public.country, subdiv=public.subdivision, years=range(year - 1, year + 2)
        )
        return frozenset(day for day in table if day.year == year)


# Keyed by the calendar's identity, not its value: a frozen model with list fields has no hash, and a copy made
# with model_copy(update=...) is another object, so it never sees the original's tables. An entry goes when its
# calendar does. Looked up once per call: pydantic's private attributes cost microseconds per access.
_CLOCKS: dict[int, _Clock] = {}


def _clock(calendar: BusinessCalendar) -> _Clock:
    clock = _CLOCKS.get(id(calendar))
    if clock is None:
        clock = _CLOCKS[id(calendar)] = _Clock(calendar)
        weakref.finalize(calendar, _CLOCKS.pop, id(calendar), None)
    return clock


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _moment(at: datetime, name: str) -> float:
    """The POSIX timestamp of an aware datetime. Measured from an aware epoch, which refuses a naive datetime for
    free (``timestamp()`` would read it in the machine's time zone) and orders by instant: two datetimes with the
    same tzinfo compare by wall clock, which puts 02:10 of the repeated hour of a fall-back night before 02:50 of
    the first one."""
    try:
        return (at - _EPOCH).total_seconds()
    except TypeError:
        if not isinstance(at, datetime):
            raise TypeError(f"{name} must be a datetime, not {type(at).__name__}") from None
        raise ValueError(
            f"{name} {at.isoformat()} has no time zone: pass an aware datetime (e.g. tzinfo=UTC)"
        ) from None


def business_seconds(calendar: BusinessCalendar, start: datetime, end: datetime) -> float:
    """Seconds of business hours between ``start`` and ``end`` (aware datetimes, any time zone): time inside the
    opening hours of working days that are neither public holidays nor closed days, read in the calendar's time zone.

    An inquiry that arrives outside hours starts counting at the next opening; ``end`` at or before ``start`` is 0.
    Cost: two look-ups in the calendar's year tables, plus one per year in between.
    """
    start_moment, end_moment = _moment(start, "start"), _moment(end, "end")
    if end_moment <= start_moment:
        return 0.0
    clock = _clock(calendar)
    start_year, before_start = clock.since_new_year(start, start_moment)
    end_year, before_end = clock.since_new_year(end, end_moment)
    if end_year != start_year:
        before_end += sum(clock.year(year).before[-1] for year in range(start_year, end_year))
    return before_end - before_start


def business_seconds_many(calendar: BusinessCalendar, spans: Iterable[tuple[datetime, datetime]]) -> list[float]:
    """``business_seconds`` for each (start, end) pair, in order: the batch form for a cycle's inquiries."""
    return [business_seconds(calendar, start, end) for start, end in spans]


def next_opening(calendar: BusinessCalendar, at: datetime) -> datetime:
    """When the team is next open at or after ``at``: ``at`` itself (in the calendar's time zone) during opening
    hours, else the next opening. Opening hours include their start and exclude their end (18:00 is closed)."""
    moment = _moment(at, "at")
    clock = _clock(calendar)
    local = at.astimezone(clock.zone)
    year, index = local.year, local.toordinal() - date(local.year, 1, 1).toordinal()
    while year <= LAST_DAY.year:
        table = clock.year(year)
        for day in range(index, len(table.opens)):
            opening, length = table.opens[day], table.open_seconds[day]
            if length and moment < opening + length:
                return local if moment >= opening else datetime.fromtimestamp(opening, clock.zone)
        year, index = year + 1, 0
    raise ValueError(f"the calendar has no opening hours after {at.isoformat()} (up to {LAST_DAY})")


def previous_working_day(calendar: BusinessCalendar | None, day: date) -> date:
    """The last working day before ``day``: by the team's calendar (its working days, public holidays and closed
    days), or Monday to Friday without one. A stand-up on Monday looks back to Friday; after a holiday, past it."""
    candidate = day - timedelta(days=1)
    for _ in range(366):
        if calendar is None:
            if candidate.weekday() < 5:
                return candidate
        else:
            year = _clock(calendar).year(candidate.year)
            if year.open_seconds[candidate.toordinal() - year.first_ordinal] > 0:
                return candidate
        candidate -= timedelta(days=1)
    return day - timedelta(days=1)  # a calendar without a working day in a year: yesterday
