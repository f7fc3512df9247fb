"""All SQL of the sync domain. Functions take a Session and never commit: the sync job commits once per page."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from datetime import datetime
from typing import Any

import sqlmodel
from sqlalchemy import bindparam, delete, or_, select, update
from sqlmodel import Session, SQLModel

from connectors import records as crm
from service.crm.models import (
    Account,
    Activity,
    ActivityContact,
    Contact,
    CrmConnection,
    Opportunity,
    OpportunityContact,
    Owner,
)
from service.kit.db import upsert, utcnow
from service.sync.models import SyncRun, SyncSkip, SyncState

TABLES: dict[str, type[SQLModel]] = {
    "owner": Owner,
    "account": Account,
    "contact": Contact,
    "opportunity": Opportunity,
    "opportunity_contact": OpportunityContact,
    "activity": Activity,
}

# Chunk size for IN (...) lists: well under SQLite's and PostgreSQL's parameter limits.
ID_CHUNK = 1000


def _chunks(items: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), ID_CHUNK):
        yield items[start : start + ID_CHUNK]


def get_or_create_connection(session: Session, *, crm_name: str, name: str) -> CrmConnection:
    connection = session.exec(
        sqlmodel.select(CrmConnection).where(CrmConnection.crm == crm_name, CrmConnection.name == name)
    ).first()
    if connection is None:
        connection = CrmConnection(crm=crm_name, name=name, created_at=utcnow())
        session.add(connection)
        session.flush()
    return connection


def set_instance_url(connection: CrmConnection, instance_url: str | None) -> None:
    """The connection's base URL for record links; an unknown one (None) keeps what is stored."""
    if instance_url and connection.instance_url != instance_url:
        connection.instance_url = instance_url


def get_state(session: Session, *, connection_id: int, stream: str) -> SyncState:
    state = session.get(SyncState, (connection_id, stream))
    if state is None:
        state = SyncState(connection_id=connection_id, stream=stream)
        session.add(state)
        session.flush()
    return state


def stored_stamps(session: Session, table: type[SQLModel], *, connection_id: int, ids: Sequence[str]) -> dict:
    """external_id → (modified_at, is_deleted) of the rows already stored among ``ids``."""
    cols: Any = table
    found: dict[str, tuple[datetime, bool]] = {}
    for chunk in _chunks(ids):
        rows = session.execute(
            select(cols.external_id, cols.modified_at, cols.is_deleted).where(
                cols.connection_id == connection_id, cols.external_id.in_(chunk)
            )
        )
        found.update({r[0]: (r[1], r[2]) for r in rows})
    return found


def upsert_records(
    session: Session,
    records: Sequence[crm.CanonicalRecord],
    *,
    connection_id: int,
    crm_object: str,
    seen_at: datetime | None,
    stored_ids: Collection[str] = (),
) -> None:
    """Insert or update canonical records (all of one kind). Older CRM versions never replace newer rows.

    ``stored_ids``: which of them are already in the table (their activity↔contact links are replaced)."""
    if not records:
        return
    table: Any = TABLES[records[0].kind]
    now = utcnow()
    rows: list[dict[str, Any]] = []
    for record in records:
        values = record.model_dump(exclude={"kind", "contact_ids"})
        values.update(
            connection_id=connection_id,
            crm_object=crm_object,
            synced_at=now,
            seen_at=seen_at,
            deleted_at=record.modified_at if record.is_deleted else None,
        )
        rows.append(values)
    upsert(session, table.__table__, rows, keys=("connection_id", "external_id"), newer_than="modified_at")
    if records[0].kind == "activity":
        _replace_activity_contacts(session, records, connection_id=connection_id, stored_ids=stored_ids)  # type: ignore[arg-type]


def _replace_activity_contacts(
    session: Session, activities: Sequence[crm.Activity], *, connection_id: int, stored_ids: Collection[str]
) -> None:
    # new activities have no links yet: deleting only for stored ones keeps a first sync insert-only
    ids = [a.external_id for a in activities if a.external_id in stored_ids]
    for chunk in _chunks(ids):
        session.execute(
            delete(ActivityContact).where(
                ActivityContact.connection_id == connection_id,  # type: ignore[arg-type]
                ActivityContact.activity_id.in_(chunk),  # type: ignore[attr-defined]
            )
        )
    links = {(a.external_id, contact_id) for a in activities for contact_id in a.contact_ids}
    if links:
        session.execute(
            ActivityContact.__table__.insert(),  # type: ignore[attr-defined]
            [{"connection_id": connection_id, "activity_id": a, "contact_id": c} for a, c in sorted(links)],
        )


def mark_seen(session: Session, kind: str, *, connection_id: int, ids: Sequence[str], seen_at: datetime) -> None:
    table: Any = TABLES[kind]
    for chunk in _chunks(ids):
        session.execute(
            update(table)
            .where(table.connection_id == connection_id, table.external_id.in_(chunk))
            .values(seen_at=seen_at)
        )


def sweep_unseen(session: Session, kind: str, *, connection_id: int, crm_object: str, full_started_at: datetime) -> int:
    """After a full sync of one CRM object: its rows the CRM no longer lists are marked deleted (kept)."""
    table: Any = TABLES[kind]
    result = session.execute(
        update(table)
        .where(
            table.connection_id == connection_id,
            table.crm_object == crm_object,
            table.is_deleted.is_(False),
            or_(table.seen_at.is_(None), table.seen_at < full_started_at),
        )
        .values(is_deleted=True, deleted_at=utcnow())
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def mark_deleted(session: Session, kind: str, *, connection_id: int, deletions: Sequence[crm.Deletion]) -> int:
    """Mark the listed records deleted (rows are kept); returns how many were live before."""
    table: Any = TABLES[kind]
    stored = stored_stamps(session, table, connection_id=connection_id, ids=[d.external_id for d in deletions])
    live = [d for d in deletions if d.external_id in stored and not stored[d.external_id][1]]
    if live:
        core = table.__table__  # Core table: executemany UPDATE with per-row parameters
        session.execute(
            update(core)
            .where(core.c.connection_id == connection_id, core.c.external_id == bindparam("b_id"))
            .values(is_deleted=True, deleted_at=bindparam("b_at")),
            [{"b_id": d.external_id, "b_at": d.deleted_at or utcnow()} for d in live],
        )
    return len(live)


def record_skips(
    session: Session,
    skipped: Sequence[crm.SkippedRecord],
    *,
    connection_id: int,
    stream: str,
    run_id: int | None,
) -> None:
    rows = [
        {
            "connection_id": connection_id,
            "stream": stream,
            "external_id": item.external_id or "<no id>",
            "reason": item.reason,
            "raw": item.raw,
            "run_id": run_id,
            "skipped_at": utcnow(),
        }
        for item in skipped
    ]
    upsert(session, SyncSkip.__table__, rows, keys=("connection_id", "stream", "external_id"))  # type: ignore[attr-defined]


def start_run(session: Session, *, connection_id: int, full: bool) -> SyncRun:
    run = SyncRun(connection_id=connection_id, full=full, started_at=utcnow())
    session.add(run)
    session.flush()
    return run
