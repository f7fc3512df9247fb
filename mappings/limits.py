"""The bounds a mapping file must stay within, in one place: what the YAML loader, the schema and the filter
checks refuse, and what docs/mapping-file.md lists.

Each bound is far beyond what a sales team writes and well inside what the loader, Python's dates and floats and
the databases handle: a file inside them validates and computes; a file outside is refused, with the line, before
anything is expanded or computed. Leaf module (stdlib and pydantic only), so the loader can import it too.
"""

from __future__ import annotations

import math
import re
from datetime import date, datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

MAX_FILE_BYTES = 1_048_576  # 1 MiB of YAML; the shipped examples are 3–6 KB
MAX_DEPTH = 64  # nested lists/mappings, counted through aliases; the examples nest at most 10 deep
MAX_NODES = 20_000  # scalars, lists, mappings, every alias counted in full; the examples have 200–400
MAX_NUMBER = 10**15  # |x| for any number (amounts, hours, counts): floats stay exact below 2**53
MAX_DAYS = 36_500  # a period in days (100 years): date arithmetic from "now" stays inside the calendar
FIRST_DAY = date(1900, 1, 1)
LAST_DAY = date(2999, 12, 31)
MAX_MEMBERS = 1_000  # team members, key-account names or ids: each list becomes one SQL IN (...)
MAX_SPRINTS = 100  # one at a time within a cycle of at most 93 days
MAX_CLOSED_DAYS = 1_000  # a calendar's extra closed days: a few a year; one set looked up per day of a year's table
MAX_RULES = 100  # hygiene rules, KAM criteria, custom fields, stages: each rule or criterion is one query
# A filter becomes one SQL WHERE: SQLite parses a chain of AND/OR as a tree at most 1,000 deep and binds at most
# 32,766 parameters per statement, so a filter stays far below both (conditions include any_of alternatives and
# followed_by's own conditions; values count each item of an in/not_in list).
MAX_CONDITIONS = 100
MAX_VALUES = 1_000

# what YAML lets people type (its reader's set): no control characters but tab and line breaks, no lone surrogates;
# kept out of text that arrives as an escape in quotes ("\0", "\x07", "\ud800") or as JSON through the API
NOT_PRINTABLE = re.compile("[^\x09\x0a\x0d\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")

# Upper bounds only for the integer types: a field's own ``Field(ge=1)`` would lose against a ``ge`` given here.
Number = Annotated[float, Field(ge=-MAX_NUMBER, le=MAX_NUMBER, allow_inf_nan=False)]
Days = Annotated[int, Field(le=MAX_DAYS)]
Count = Annotated[int, Field(le=MAX_NUMBER)]
Day = Annotated[date, Field(ge=FIRST_DAY, le=LAST_DAY)]


def number_problem(value: int | float) -> str | None:
    """Why a number is unusable (not finite, or beyond ±10^15), or None; ints are compared exactly, never floated."""
    if isinstance(value, float) and not math.isfinite(value):
        return f"{value} is not a number that can be compared"
    if abs(value) > MAX_NUMBER:
        # str() of an int of more than 4,300 digits raises, and a long one would bury the message anyway
        shown = "a number of more than 20 digits" if isinstance(value, int) and abs(value) >= 10**20 else str(value)
        return f"{shown} is out of range: numbers lie between -10^15 and 10^15"
    return None


def day_problem(value: date) -> str | None:
    """Why a date (or the day of a timestamp) is out of range, or None."""
    day = value.date() if isinstance(value, datetime) else value
    if not FIRST_DAY <= day <= LAST_DAY:
        return f"{day.isoformat()} is out of range: dates lie between {FIRST_DAY} and {LAST_DAY}"
    return None


def scalar_problem(value: Any) -> str | None:
    """Why a filter value is not one comparable value (text, number, boolean, date), or None."""
    if isinstance(value, bool | str):
        return None
    if value is None:
        return "an empty item: write text, a number, true/false or a date"
    if isinstance(value, int | float):
        return number_problem(value)
    if isinstance(value, date):
        return day_problem(value)
    if isinstance(value, list):
        return "a list inside a list: write the values as one flat list, e.g. [a, b, c]"
    if isinstance(value, dict):
        return "a mapping is not a value: write text, a number, true/false or a date"
    return f"{type(value).__name__} is not a value: write text, a number, true/false or a date"


def text_problem(value: Any) -> str | None:
    """Why text (or the text in a list or mapping) cannot be kept: it has a control character; or None."""
    if isinstance(value, str):
        found = NOT_PRINTABLE.search(value)
        return None if found is None else f"text may not contain control characters: U+{ord(found.group()):04X}"
    items = [*value.keys(), *value.values()] if isinstance(value, dict) else value if isinstance(value, list) else []
    return next((problem for item in items if (problem := text_problem(item))), None)


class PrintableText(BaseModel):
    """A base for the mapping file's models: no field holds text with control characters, however it arrived
    (the YAML loader refuses them at their line first; this covers models built from JSON, e.g. a sprint added
    through the API)."""

    @model_validator(mode="after")
    def _printable_text(self) -> PrintableText:
        for name, value in self.__dict__.items():
            problem = text_problem(value)
            if problem is not None:
                raise ValueError(f"{name}: {problem}")
        return self


class StrictModel(PrintableText):
    """The mapping file's models: unknown keys are refused (a typo is an error, not a silently ignored setting),
    values are frozen, and NaN or infinity are no numbers."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
