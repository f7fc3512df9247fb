"""SQLite upserts (and link-row inserts) of 50 rows or more go to sqlite3's executemany as tuples
(service.kit.db._sqlite_executemany), the rest through SQLAlchemy's own executemany. Both must store exactly the
same: every canonical record kind of a sandbox quarter is upserted twice, once in pages of 49 (SQLAlchemy) and once
in one page (tuples), into two SQLite files whose tables (the records' and their links') are then compared value by
value, as SQLite stores them (text datetimes, JSON, booleans)."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.dialects import sqlite
from sqlmodel import Session

from connectors.records import CanonicalRecord
from connectors.salesforce import mapping as sf_mapping
from connectors.sandbox.generator import generate_org
from service.kit.db import FAST_ROWS, UtcDateTime, _bind_processor, make_engine
from service.kit.migrate import create_schema
from service.sync import repository
from tests.conftest import ANCHOR

SKIP_COLUMNS = {"synced_at"}  # the time of the write itself


def _records() -> dict[str, list[CanonicalRecord]]:
    data = generate_org(anchor=ANCHOR, seed=5, accounts=30, opportunities=80, activities=400)
    by_kind: dict[str, list[CanonicalRecord]] = {}
    for sobject in sf_mapping.OBJECTS:
        for row in data.get(sobject, ()):
            record = sf_mapping.to_record(sobject, row, currency="EUR")
            by_kind.setdefault(record.kind, []).append(record)
    return by_kind


def _store(path: Path, pages: list[tuple[str, list[CanonicalRecord]]]) -> None:
    engine = make_engine(f"sqlite:///{path}")
    create_schema(engine)
    with Session(engine) as session:
        connection = repository.get_or_create_connection(session, crm_name="salesforce", name="sandbox")
        assert connection.id is not None
        for stream, records in pages:
            stored = repository.stored_stamps(
                session,
                repository.TABLES[records[0].kind],
                connection_id=connection.id,
                ids=[r.external_id for r in records],
            )
            repository.upsert_records(
                session,
                records,
                connection_id=connection.id,
                crm_object=stream,
                seen_at=ANCHOR,
                stored_ids=stored.keys(),
            )
        session.commit()
    engine.dispose()


def _tables(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    db = sqlite3.connect(path)
    out = {}
    for model in repository.LOADED_TABLES:  # the records' tables and their link tables
        table = model.__tablename__  # type: ignore[attr-defined]
        columns = [r[1] for r in db.execute(f"PRAGMA table_info({table})") if r[1] not in SKIP_COLUMNS]
        out[table] = db.execute(f"SELECT {', '.join(columns)} FROM {table} ORDER BY {', '.join(columns)}").fetchall()
    db.close()
    return out


def test_tuples_and_sqlalchemy_store_the_same(tmp_path: Path) -> None:
    records = _records()
    assert all(len(r) >= FAST_ROWS for k, r in records.items() if k in ("activity", "contact", "opportunity"))
    # a second, older version of some activities: neither path may let it replace the newer row
    older = [r.model_copy(update={"modified_at": r.modified_at - timedelta(days=1), "subject": "stale"}) for r in
             records["activity"][: FAST_ROWS * 2]]  # fmt: skip
    small = [(k, chunk) for k, rows in records.items() for chunk in _chunks(rows, FAST_ROWS - 1)]
    large = [(k, rows) for k, rows in records.items()]
    _store(tmp_path / "sqlalchemy.db", [*small, *[("activity", c) for c in _chunks(older, FAST_ROWS - 1)]])
    _store(tmp_path / "tuples.db", [*large, ("activity", older)])
    slow, fast = _tables(tmp_path / "sqlalchemy.db"), _tables(tmp_path / "tuples.db")
    assert sum(len(rows) for rows in fast.values()) > 800
    assert len(fast["activity_contact"]) >= FAST_ROWS, "the links were not inserted as tuples"
    for table, rows in slow.items():
        assert fast[table] == rows, table
    subjects = {row for row in fast["activity"] if "stale" in row}
    assert not subjects, "an older version replaced a newer row"


def test_row_values_are_the_records_dump_without_kind_and_links() -> None:
    """upsert_records takes a record's column values from its ``__dict__``: the same as pydantic's ``model_dump``
    (no field is a nested model, none is computed), for every kind a connector maps."""
    records = _records()
    assert set(records) == set(repository.TABLES)
    links = {"kind", "contact_ids", "account_ids", "opportunity_ids", "merged_ids"}
    for kind, rows in records.items():
        columns = {c.name for c in repository.TABLES[kind].__table__.columns}  # type: ignore[attr-defined]
        for record in rows:
            values = repository.row_values(record)
            assert values == record.model_dump(exclude=links), (kind, record.external_id)
            assert set(values) <= columns, set(values) - columns


def _chunks(rows: list[CanonicalRecord], size: int) -> list[list[CanonicalRecord]]:
    return [rows[i : i + size] for i in range(0, len(rows), size)]


_NOON = datetime(2026, 9, 30, 12, tzinfo=UTC)


@settings(max_examples=300, derandomize=True, deadline=None, database=None)
@given(
    values=st.lists(
        st.one_of(
            st.none(),
            st.datetimes(timezones=st.just(UTC)),
            st.datetimes(timezones=st.timezones()),
            st.datetimes(
                timezones=st.builds(
                    timezone, st.timedeltas(min_value=-timedelta(hours=23), max_value=timedelta(hours=23))
                )
            ),
            st.just(_NOON),
        ),
        max_size=6,
    )
)
def test_utc_datetimes_as_sqlite_text_equal_sqlalchemys(values: list[datetime | None]) -> None:
    """The tuple path's UtcDateTime processor gives SQLAlchemy's own text for every aware datetime, in UTC or another
    zone, repeated (the remembered last value) or not, and None for None."""
    dialect = sqlite.dialect()
    general = UtcDateTime().dialect_impl(dialect).bind_processor(dialect)
    fast = _bind_processor(UtcDateTime(), dialect)
    assert general is not None and fast is not None and fast is not general
    for value in [*values, *values]:
        try:
            expected = general(value)
        except (OverflowError, ValueError) as exc:  # a zone that pushes datetime.max past the calendar
            with pytest.raises(type(exc)):
                fast(value)
            continue
        assert fast(value) == expected, value


def test_naive_datetime_is_refused_on_the_tuple_path_too() -> None:
    fast = _bind_processor(UtcDateTime(), sqlite.dialect())
    assert fast is not None
    with pytest.raises(ValueError, match="naive datetime"):
        fast(datetime(2026, 9, 30, 12))
