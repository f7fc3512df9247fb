"""Database plumbing: engine from the one settings object, a UTC-aware datetime column type, JSON that is JSONB on
PostgreSQL, and upserts that work on SQLite and PostgreSQL alike."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import orjson
from sqlalchemy import JSON, DateTime, String, Table, event, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.types import TypeDecorator
from sqlmodel import Session, create_engine


class UtcDateTime(TypeDecorator[datetime]):
    """Stores timezone-aware datetimes as UTC and always hands back aware UTC values (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r} given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


JsonType = JSON().with_variant(postgresql.JSONB(), "postgresql")


def byte_text(length: int) -> Any:
    """A short text column (an id, a key) compared byte by byte on PostgreSQL too, as SQLite always does.

    PostgreSQL compares text in the database's collation unless a column says otherwise: through the C library's
    ``strcoll`` for anything but "C" (``C.UTF-8`` included, and ``en_US.utf8``, the official image's default).
    Every entry a row puts into an index on such columns pays those comparisons. For ids and keys, which nobody
    reads in a language's alphabetical order, "C" gives the same equality and SQLite's order, and made a full
    compute's evidence INSERTs about a quarter cheaper (bench/REFERENCE.md, 2026-12-07)."""
    return String(length).with_variant(String(length, collation="C"), "postgresql")


def json_text(value: Any) -> str:
    """The text of a JSON column, written by orjson (a fifth of ``json.dumps``'s time on raw CRM payloads; no
    spaces, non-ASCII characters as they are, NaN as null, which PostgreSQL's JSON refuses anyway). What orjson
    refuses (an integer beyond 64 bits) goes to ``json.dumps`` as before."""
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return json.dumps(value)


def utcnow() -> datetime:
    return datetime.now(UTC)


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite gets WAL and a busy timeout so a reader never blocks the sync."""
    if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
        Path(url.removeprefix("sqlite:///")).expanduser().parent.mkdir(parents=True, exist_ok=True)
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    connect_args: dict[str, Any] = {}
    if url.startswith("postgresql+psycopg://"):
        # psycopg prepares a statement after 5 runs and PostgreSQL may then keep a generic plan made while a table
        # was nearly empty: "external_id IN (1,000 ids)" became a 3-second sequential scan during a first sync
        connect_args["prepare_threshold"] = None
        # a wrong host fails in seconds, not after the operating system's two-minute TCP timeout
        connect_args["connect_timeout"] = 10
    engine = create_engine(url, pool_pre_ping=True, connect_args=connect_args, json_serializer=json_text)
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

    return engine


def analyze(engine: Engine, tables: Sequence[str] | None = None) -> None:
    """Refresh the planner's statistics (of ``tables``, or of every table). After a large sync the tables are many
    times what the planner last saw: unanalyzed, PostgreSQL picked a nested scan that made one key result take
    minutes.

    SQLite reads every index entry (``full_statistics``): sampled statistics misled its planner."""
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            full_statistics(conn)
        if tables is None:
            conn.exec_driver_sql("ANALYZE")
        for name in tables or ():  # names of okrsync's own tables, never user input
            conn.exec_driver_sql(f'ANALYZE "{name}"')


def full_statistics(bind: Connection | Session) -> None:
    """SQLite: let the next ANALYZE on this connection read every entry of each index (``PRAGMA analysis_limit=0``,
    SQLite's default, set explicitly: the setting lives as long as a pooled connection).

    Until 2026-12, okrsync sampled (``analysis_limit=2000``). SQLite's sampled ANALYZE reads about 2,000 entries of
    an index from its start, and every index of a CRM table starts with the connection and then an owner, an account
    or a kind. The sample therefore saw one connection and one owner, and sqlite_stat1 said "2,001 rows per
    connection" and "2,001 rows per owner" at a million activities (in truth 1,014,895 and 101,490). With that the
    planner took any index that starts with the connection for cheap. An incremental run's response-time
    statement for 101 accounts walked every inquiry of the team through ix_activity_owner_kind_time (2 s a statement)
    instead of 5,000 entries of ix_activity_account, and a distinct contacts count scanned all 1,010,152 contact
    links. Reading in full took 0.74 s for the 1,014,895 activities and 2.54 s for 3.9 million evidence rows on this
    2-core machine (the whole 2.5 GB file: 4.7 s); see docs/operations.md."""
    bind.execute(text("PRAGMA analysis_limit=0"))


def vacuum(engine: Engine, tables: Sequence[str]) -> None:
    """After a bulk write to ``tables`` (a full compute writes millions of evidence rows): on PostgreSQL, VACUUM
    (ANALYZE) them, which marks their pages all-visible so that index-only scans need not visit each row (the
    evidence pages walk an index to their offset: 1.3 s for the last page of 728,317 rows before, 0.18 s after) and
    refreshes the planner's statistics. Autovacuum would get there too, later, where it is on. SQLite: nothing (no
    visibility map; its covering indexes answer as they are)."""
    if engine.dialect.name != "postgresql":
        return
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for name in tables:  # names of okrsync's own tables, never user input
            conn.exec_driver_sql(f'VACUUM (ANALYZE) "{name}"')


def upsert(
    conn: Connection | Session,
    table: Table,
    rows: Sequence[dict[str, Any]],
    *,
    keys: Sequence[str],
    newer_than: str | None = None,
) -> None:
    """INSERT … ON CONFLICT (keys) DO UPDATE for SQLite and PostgreSQL.

    With ``newer_than`` (a column name) an existing row is only replaced by a row whose value in that column is at
    least as new, so a late, stale write never overwrites a newer one.
    """
    if not rows:
        return
    dialect = conn.get_bind().dialect if isinstance(conn, Session) else conn.dialect
    module = postgresql if dialect.name == "postgresql" else sqlite
    # executemany of one compiled statement: SQLAlchemy compiles it once (a multi-row VALUES clause would be
    # compiled anew for every chunk, which costs more than the database work)
    stmt = module.insert(table)
    update = {c.name: stmt.excluded[c.name] for c in table.columns if c.name not in keys and c.name in rows[0]}
    where = table.c[newer_than] <= stmt.excluded[newer_than] if newer_than else None
    statement = stmt.on_conflict_do_update(index_elements=list(keys), set_=update, where=where)
    if dialect.name == "sqlite" and len(rows) >= FAST_ROWS:
        _sqlite_executemany(conn, statement, table, rows, dialect, key=(table.name, tuple(keys), newer_than))
        return
    conn.execute(statement, list(rows))


def insert_rows(conn: Connection | Session, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """A plain INSERT of ``rows`` (all with the same keys); on SQLite, 50 rows or more as tuples to sqlite3's
    executemany like ``upsert`` (a first sync inserts a link row for every activity: 100,000 of them)."""
    if not rows:
        return
    dialect = conn.get_bind().dialect if isinstance(conn, Session) else conn.dialect
    if dialect.name == "sqlite" and len(rows) >= FAST_ROWS:
        _sqlite_executemany(conn, sqlite.insert(table), table, rows, dialect, key=(table.name, "insert"))
        return
    conn.execute(table.insert(), list(rows))


FAST_ROWS = 50  # below this, SQLAlchemy's own executemany costs too little to matter
# (table, conflict keys, newer_than, row keys) -> (SQL, [(row key, bind processor or None)] in parameter order)
_COMPILED: dict[tuple[Any, ...], tuple[str, list[tuple[str, Callable[[Any], Any] | None]]]] = {}


def _sqlite_executemany(
    conn: Connection | Session,
    statement: Any,
    table: Table,
    rows: Sequence[dict[str, Any]],
    dialect: Any,
    *,
    key: tuple[Any, ...],
) -> None:
    """The same statement and the same bound values as ``conn.execute(statement, rows)``, handed to sqlite3's
    executemany as tuples: each value goes through the bind processor SQLAlchemy itself applies to its column
    (``type.dialect_impl(dialect).bind_processor``: UTC datetimes as SQLite text, JSON — None included, stored as
    'null' —, booleans, enums), without SQLAlchemy's per-row parameter dictionaries, which cost more than
    SQLite's own work in a first sync (bench/REFERENCE.md, ingest). Runs in the caller's transaction."""
    names = tuple(rows[0])
    key = (*key, names)  # the statement is fixed by the table, its conflict keys, newer_than and the row keys
    found = _COMPILED.get(key)
    if found is None:
        compiled = statement.compile(dialect=dialect, column_keys=list(names))
        order = list(compiled.positiontup or ())
        if any(name not in table.c or name not in names for name in order):
            raise AssertionError(f"upsert of {table.name}: parameters {order} are not all columns of the rows")
        found = _COMPILED[key] = (
            compiled.string,
            [(name, _bind_processor(table.c[name].type, dialect)) for name in order],
        )
    sql, pairs = found
    params = [tuple(row[n] if p is None else p(row[n]) for n, p in pairs) for row in rows]
    connection = conn.connection() if isinstance(conn, Session) else conn
    cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.executemany(sql, params)
    finally:
        cursor.close()


def _bind_processor(column_type: Any, dialect: Any) -> Callable[[Any], Any] | None:
    """The bind processor SQLAlchemy applies to a column of ``column_type`` (``dialect_impl(...).bind_processor``),
    except for UtcDateTime on SQLite: its chain (process_bind_param, then SQLite's DATETIME formatting through a
    dictionary and ``%``) was the largest part of a first sync's storing after SQLite itself (py-spy: 2.8 s of
    samples in a 13 s sync of 128,000 Salesforce records; this path took 0.9 s off it; bench/REFERENCE.md, ingest).
    ``utc_sqlite_text`` gives the same text."""
    processor = column_type.dialect_impl(dialect).bind_processor(dialect)
    if isinstance(column_type, UtcDateTime) and dialect.name == "sqlite" and processor is not None:
        return utc_sqlite_text(processor)
    return processor


def utc_sqlite_text(general: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """A UtcDateTime value as SQLite stores it, "YYYY-MM-DD HH:MM:SS.ffffff" in UTC, for an aware datetime whose zone
    is UTC itself (what the connectors parse, and ``utcnow``); any other value goes through ``general``, the
    SQLAlchemy chain, unchanged (errors included). A page writes one time for each of its rows (``seen_at``,
    ``synced_at``): the last value given is remembered by identity."""
    last: list[Any] = [None, None]

    def process(value: Any) -> Any:
        if value is last[0]:
            return last[1]
        if type(value) is datetime and value.tzinfo is UTC:
            text = value.isoformat(" ", "microseconds")[:26]
        else:
            text = general(value)
        last[0], last[1] = value, text
        return text

    return process


T = TypeVar("T")


def retry_on_conflict(work: Callable[[], T], *, attempts: int = 6) -> T:
    """Run ``work`` (a whole transaction) again when PostgreSQL broke a deadlock (40P01) or a serialization
    conflict (40001) by aborting it: both say "try again", and the transaction left no trace."""
    for attempt in range(1, attempts + 1):
        try:
            return work()
        except OperationalError as exc:
            code = getattr(exc.orig, "sqlstate", None)
            if code not in ("40P01", "40001") or attempt == attempts:
                raise
            time.sleep(0.01 * 2**attempt * (0.5 + random.random()))
    raise AssertionError("unreachable")  # pragma: no cover
