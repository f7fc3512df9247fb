"""The few SQL pieces that differ between SQLite and PostgreSQL, as SQLAlchemy constructs compiled per dialect.

Building them is pure (no connection); the service executes the statements that contain them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Date, DateTime, Float, String, Table, cast, func, null
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement


class epoch_seconds(FunctionElement[float]):  # noqa: N801 (reads like the SQL function it stands for)
    """Seconds since 1970 of a timestamp column."""

    type = Float()
    inherit_cache = True


@compiles(epoch_seconds)
def _epoch_default(element: epoch_seconds, compiler: Any, **kw: Any) -> str:
    return f"EXTRACT(EPOCH FROM {compiler.process(list(element.clauses)[0], **kw)})"


@compiles(epoch_seconds, "sqlite")
def _epoch_sqlite(element: epoch_seconds, compiler: Any, **kw: Any) -> str:
    # whole seconds from strftime('%s') plus the stored fraction ('YYYY-MM-DD HH:MM:SS.ffffff'): exact, where
    # julianday() arithmetic made a 4-hour answer 14400.00003 s and so not "within 4 hours"
    column = compiler.process(list(element.clauses)[0], **kw)
    return f"(CAST(strftime('%s', {column}) AS REAL) + COALESCE(CAST(substr({column}, 20) AS REAL), 0.0))"


class plus_days(FunctionElement[datetime]):  # noqa: N801
    """A timestamp column plus a fixed number of days (the second argument must be an integer literal)."""

    inherit_cache = True


@compiles(plus_days)
def _plus_days_default(element: plus_days, compiler: Any, **kw: Any) -> str:
    column, days = list(element.clauses)
    return f"({compiler.process(column, **kw)} + make_interval(days => {compiler.process(days, **kw)}))"


@compiles(plus_days, "sqlite")
def _plus_days_sqlite(element: plus_days, compiler: Any, **kw: Any) -> str:
    column, days = list(element.clauses)
    # SQLAlchemy stores 'YYYY-MM-DD HH:MM:SS.ffffff'; strftime's %f has 3 decimals, so pad to 6 to keep text
    # comparison exact at the boundary (CRM timestamps carry milliseconds at most)
    return (
        f"(strftime('%Y-%m-%d %H:%M:%f', {compiler.process(column, **kw)}, "
        f"'+' || {compiler.process(days, **kw)} || ' days') || '000')"
    )


@dataclass(frozen=True)
class Tables:
    """The local model's tables, handed in by the service (mappings never imports it)."""

    activity: Table
    opportunity: Table
    account: Table
    contact: Table
    owner: Table
    opportunity_contact: Table
    activity_contact: Table
    lead: Table


@dataclass(frozen=True)
class Scope:
    """What one computation looks at: one CRM connection, the team's owners, a time window and 'now'."""

    connection_id: int
    crm: str  # the CRM's name: which name of a custom field applies (custom_fields.<name>.<crm>)
    owner_ids: tuple[str, ...]
    start: datetime  # inclusive
    end: datetime  # exclusive: the day after the window's last day, or as_of if earlier
    last_day: date  # the window's last day (close dates are compared with it)
    as_of: datetime
    raw_prefix: tuple[str, ...] = ()  # where a record's fields sit in its stored raw payload (the CRM adapter's)

    @property
    def window_end(self) -> datetime:
        """The end of the window's last day (not cut at as_of): 'expected by now' runs against it."""
        return datetime.combine(self.last_day + timedelta(days=1), datetime.min.time(), tzinfo=UTC)

    @classmethod
    def for_window(
        cls,
        *,
        connection_id: int,
        crm: str,
        owner_ids: tuple[str, ...],
        first_day: date,
        last_day: date,
        as_of: datetime,
        raw_prefix: tuple[str, ...] = (),
    ) -> Scope:
        """The window [first_day, last_day] in UTC, cut at ``as_of`` (records dated after 'now' do not count)."""
        start = datetime.combine(first_day, datetime.min.time(), tzinfo=UTC)
        end = datetime.combine(last_day + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
        return cls(connection_id, crm, owner_ids, start, max(start, min(end, as_of)), last_day, as_of, raw_prefix)


def text_of(expr: ColumnElement[Any]) -> ColumnElement[str]:
    return cast(expr, String)


def number_of(text: ColumnElement[Any]) -> ColumnElement[float]:
    # HubSpot sends numbers as text and empty values as ""; NULLIF keeps the cast from failing on PostgreSQL
    return cast(func.nullif(cast(text, String), ""), Float)


_NULL_TYPES: dict[str, Any] = {
    "text": String(),
    "number": Float(),
    "date": Date(),
    "datetime": DateTime(timezone=True),
}


def typed_null(kind: str) -> ColumnElement[Any]:
    """A NULL PostgreSQL can insert into a typed column (an untyped NULL in a sub-select is text there)."""
    return cast(null(), _NULL_TYPES[kind])
