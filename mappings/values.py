"""What a filter may compare a field with, decided once for validation and for SQL.

``mappings.filter_checks.check_filter`` reports a value that does not fit its field (:func:`value_problem`), and
``mappings.query`` turns the same value into the SQL parameter (:func:`sql_value`) through the same function: a
filter that validates is a filter that computes. "notadate" for a timestamp, "abc" for a number or ``1`` for a
boolean is a located problem in the file, never an error while computing.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import Any

from mappings.fields import FieldType, ResolvedField
from mappings.filters import FieldCondition, Op
from mappings.limits import day_problem, number_problem

ORDERED = {Op.gt, Op.gte, Op.lt, Op.lte}
# the operators whose value becomes a typed SQL parameter (contains & co. compare text; is_set & co. take none)
COMPARED = {Op.eq, Op.ne, Op.in_, Op.not_in, *ORDERED}
_A = {
    FieldType.text: "a text",
    FieldType.number: "a number",
    FieldType.boolean: "a true/false",
    FieldType.date: "a date",
    FieldType.datetime: "a date-and-time",
}


def compared_type(field: ResolvedField, condition: FieldCondition) -> FieldType:
    """The type a condition compares in: a canonical column's own; a custom or raw field is text in the CRM payload,
    compared as a boolean or number when declared so (or asked for by is_true/is_false, or gt… with a number)."""
    if field.kind == "canonical":
        return field.type
    if field.type == FieldType.boolean or condition.op in (Op.is_true, Op.is_false):
        return FieldType.boolean
    if field.type == FieldType.number or (
        condition.op in ORDERED and isinstance(condition.value, int | float) and not isinstance(condition.value, bool)
    ):
        return FieldType.number
    return FieldType.text


def sql_value(value: Any, ftype: FieldType) -> Any:
    """``value`` (one, or a list for in/not_in) as a parameter compared with a column of ``ftype``.

    A date compared with a timestamp means midnight UTC, and a time without an offset is UTC (windows are in UTC).
    Raises ValueError saying what would fit instead.
    """
    if isinstance(value, list):
        return [sql_value(item, ftype) for item in value]
    if ftype == FieldType.datetime:
        return _instant(value)
    if ftype == FieldType.date:
        return _day(value)
    if ftype == FieldType.number:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{_shown(value)} is not a number")
        problem = number_problem(value)
        if problem is not None:
            raise ValueError(problem)
        return float(value)
    if ftype == FieldType.boolean:
        if not isinstance(value, bool):
            raise ValueError(f"{_shown(value)} is not true or false")
        return value
    return value.isoformat() if isinstance(value, date) else str(value)


def value_problem(condition: FieldCondition, field: ResolvedField) -> str | None:
    """Why the condition's value cannot be compared with the field, or None.

    A custom field is checked against its declared type (a date field needs dates even though the payload holds
    text); canonical and raw fields against the type they are compared in.
    """
    if condition.op not in COMPARED or condition.value is None:
        return None
    expected = field.type if field.kind == "custom" else compared_type(field, condition)
    try:
        sql_value(condition.value, expected)
    except ValueError as exc:
        return f"{condition.field} is {_A[expected]} field: {exc}"
    return None


def _instant(value: Any) -> datetime:
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime.combine(value, time.min)
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"{_shown(value)} is not a date; write e.g. 2026-07-01 or 2026-07-01T09:30:00Z") from None
    else:
        raise ValueError(f"{_shown(value)} is not a date; write e.g. 2026-07-01 or 2026-07-01T09:30:00Z")
    problem = day_problem(moment)  # checked before moving to UTC, which overflows near year 1 and 9999
    if problem is not None:
        raise ValueError(problem)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _day(value: Any) -> date:
    if isinstance(value, date):
        day = value
    elif isinstance(value, str):
        try:
            day = date.fromisoformat(value)
        except ValueError:
            raise ValueError(f"{_shown(value)} is not a date; write e.g. 2026-07-01") from None
    else:
        raise ValueError(f"{_shown(value)} is not a date; write e.g. 2026-07-01")
    problem = day_problem(day)
    if problem is not None:
        raise ValueError(problem)
    return day


def _shown(value: Any) -> str:
    if isinstance(value, str):
        text = f'"{value}"'
    elif isinstance(value, bool):
        text = str(value).lower()
    else:
        text = value.isoformat() if isinstance(value, date) else repr(value)
    return text if len(text) <= 40 else text[:39] + "…"
