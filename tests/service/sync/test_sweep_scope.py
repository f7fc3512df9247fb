"""After a full read of a stream, the sync sweeps (marks deleted) the stream's stored rows the read did not see; it
sweeps only the tables that can hold such rows (service.sync.service._StoredObjects): those holding rows of the
stream's CRM object when the run's first sweep looks, and those the run wrote with an earlier ``seen_at`` than the
read's start. A first sync sweeps no table but the first stream's; a full sync over stored rows sweeps each table
that holds them, and still finds a row the CRM no longer lists. Real sandbox Salesforce over HTTPS, real databases;
the sweeps are seen through SQLAlchemy's statement events."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from sqlalchemy import event, select, text
from sqlalchemy.engine import Engine
from sqlmodel import Session

from connectors.records import Activity, ActivityKind
from connectors.salesforce.config import SalesforceConfig
from connectors.salesforce.connector import SalesforceConnector
from service.kit.db import utcnow
from service.sync import repository
from service.sync.service import _StoredObjects, run_sync

SWEEP = re.compile(r"FROM (\w+)\s+WHERE .*seen_at IS NULL OR \w+\.seen_at < ", re.S)


@contextmanager
def _sweeps(engine: Engine) -> Iterator[list[str]]:
    """The tables the sweep's SELECTs read, in order."""
    tables: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        found = SWEEP.search(statement)
        if found:
            tables.append(found.group(1))

    event.listen(engine, "before_cursor_execute", seen)
    try:
        yield tables
    finally:
        event.remove(engine, "before_cursor_execute", seen)


def test_a_first_sync_sweeps_only_its_first_stream_and_a_full_sync_every_stored_table(
    engine: Engine, config: SalesforceConfig
) -> None:
    with _sweeps(engine) as first:
        report = run_sync(engine, SalesforceConnector(config), connection_name="sandbox")
    assert report.status == "ok" and sum(c.written for c in report.counts.values()) > 100
    assert first == ["owner"], "a first sync swept tables it had only just written"

    # a task the CRM no longer lists (hard-deleted past its recycle bin), stored by an earlier sync
    with Session(engine) as session:
        connection_id = int(repository.get_or_create_connection(session, crm_name="salesforce", name="sandbox").id)  # type: ignore[arg-type]
        phantom = Activity(
            external_id="00T000000000GONE",
            modified_at=utcnow() - timedelta(days=3),
            activity_kind=ActivityKind.call,
            subject="gone from the CRM",
        )
        repository.upsert_records(
            session, [phantom], connection_id=connection_id, crm_object="Task", seen_at=utcnow() - timedelta(days=3)
        )
        session.commit()

    with _sweeps(engine) as full:
        report = run_sync(engine, SalesforceConnector(config), connection_name="sandbox", full=True)
    assert report.status == "ok"
    assert set(full) == _tables_holding_rows(engine, connection_id), "a full sync must sweep every table with rows"
    with Session(engine) as session:
        table: Any = repository.TABLES["activity"]
        row = session.execute(select(table.is_deleted).where(table.external_id == phantom.external_id)).one()
        assert row[0] is True, "the task the CRM no longer lists was not swept"


def _tables_holding_rows(engine: Engine, connection_id: int) -> set[str]:
    """The record tables with rows of the connection, asked in plain SQL (not through the code under test)."""
    names = {model.__tablename__ for model in repository.TABLES.values()}  # type: ignore[attr-defined]
    with engine.connect() as conn:
        return {
            name
            for name in names
            if conn.execute(
                text(f"SELECT 1 FROM {name} WHERE connection_id = :c LIMIT 1"), {"c": connection_id}
            ).first()
        }


def test_rows_written_before_the_reads_start_or_without_seen_at_are_swept(engine: Engine) -> None:
    """The decision itself, over a real (empty) database: a pair the run wrote only at or after the read's start
    holds nothing to sweep; one it wrote earlier, or without seen_at (an incremental page), does."""
    start = utcnow()
    with Session(engine) as session:
        connection_id = int(repository.get_or_create_connection(session, crm_name="salesforce", name="x").id)  # type: ignore[arg-type]
        session.commit()
        objects = _StoredObjects(connection_id)
        assert objects.kinds_to_sweep(session, "User", full_started_at=start) == []  # reads what is stored: nothing
        task = Activity(external_id="00T1", modified_at=start, activity_kind=ActivityKind.call)
        objects.written([task], "Task", seen_at=start)
        assert objects.kinds_to_sweep(session, "Task", full_started_at=start) == []
        objects.written([task], "Event", seen_at=start - timedelta(seconds=1))
        assert objects.kinds_to_sweep(session, "Event", full_started_at=start) == ["activity"]
        objects.written([task], "EmailMessage", seen_at=None)
        objects.written([task], "EmailMessage", seen_at=start)
        assert objects.kinds_to_sweep(session, "EmailMessage", full_started_at=start) == ["activity"]
