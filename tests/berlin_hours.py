"""An independent oracle for business hours in the tests: the seconds of a wait inside 08:00–18:00 Berlin time on
working days (Monday–Friday, not a public holiday in Berlin), found day by day with zoneinfo and the holidays
package — plain Python over the calendar, nothing of mappings.calendar's yearly tables."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import holidays

BERLIN = ZoneInfo("Europe/Berlin")


def berlin_open_seconds(start: datetime, end: datetime) -> float:
    """Seconds of [start, end] (aware datetimes) inside the team's open hours."""
    if end <= start:
        return 0.0
    off = holidays.country_holidays("DE", subdiv="BE", years=range(start.year - 1, end.year + 2))
    total = 0.0
    day = start.astimezone(BERLIN).date()
    while day <= end.astimezone(BERLIN).date():
        if day.weekday() < 5 and day not in off:
            opens = datetime.combine(day, time(8), tzinfo=BERLIN)
            closes = datetime.combine(day, time(18), tzinfo=BERLIN)
            total += max(0.0, (min(end, closes) - max(start, opens)).total_seconds())
        day += timedelta(days=1)
    return total
