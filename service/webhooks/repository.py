"""All SQL of the webhooks domain: storing events with their duplicates counted, the replay guard of signed requests,
and the worker's queue."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlmodel
from sqlalchemy import delete, func, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col

from service.webhooks.models import WebhookEvent, WebhookReplay


def claim_request(session: Session, *, source: str, digest: str, expires_at: datetime) -> bool:
    """Record a verified signed request in the session's transaction; False when it was recorded before (a replay).

    INSERT … ON CONFLICT DO NOTHING RETURNING, on SQLite and PostgreSQL alike: on PostgreSQL a transaction claiming
    the same request at the same moment (another sidecar) waits for this one, then gets no row back once it commits
    (or claims it after all if this one rolls back); no exception, no aborted transaction."""
    table = WebhookReplay.__table__  # type: ignore[attr-defined]  # SQLModel does not type __table__
    module = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    stmt = (
        module.insert(table)
        .values(source=source, digest=digest, expires_at=expires_at)
        .on_conflict_do_nothing(index_elements=["source", "digest"])
        .returning(table.c.digest)
    )
    return session.execute(stmt).first() is not None


def prune_replays(session: Session, *, now: datetime, limit: int = 5000) -> int:
    """Delete up to ``limit`` expired replay-guard rows; returns how many. On PostgreSQL rows another sidecar is
    deleting at the same time are skipped (SKIP LOCKED), so concurrent prunes never wait for or deadlock with each
    other."""
    table = WebhookReplay.__table__  # type: ignore[attr-defined]  # SQLModel does not type __table__
    expired = select(table.c.source, table.c.digest).where(table.c.expires_at < now).limit(limit)
    if session.get_bind().dialect.name == "postgresql":
        expired = expired.with_for_update(skip_locked=True)
    result = session.execute(delete(table).where(tuple_(table.c.source, table.c.digest).in_(expired)))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]  # Session.execute() is typed Result, not CursorResult


def store(session: Session, *, source: str, rows: Sequence[dict[str, Any]]) -> tuple[int, int]:
    """Insert events; a repeat (same source and dedupe key, in the database or earlier in ``rows``) only bumps the
    stored row's ``duplicates``. Returns (new, duplicates)."""
    if not rows:
        return 0, 0
    table = WebhookEvent.__table__  # type: ignore[attr-defined]  # SQLModel does not type __table__
    keys = [row["dedupe_key"] for row in rows]
    known = set(
        session.execute(
            select(table.c.dedupe_key).where(table.c.source == source, table.c.dedupe_key.in_(keys))
        ).scalars()
    )
    new = duplicates = 0
    for key in keys:
        if key in known:
            duplicates += 1
        else:
            new += 1
            known.add(key)
    dialect = session.get_bind().dialect.name
    module = postgresql if dialect == "postgresql" else sqlite
    stmt = module.insert(table)
    stmt = stmt.on_conflict_do_update(
        index_elements=["source", "dedupe_key"], set_={"duplicates": table.c.duplicates + 1}
    )
    session.execute(stmt, [{**row, "source": source} for row in rows])
    return new, duplicates


def pending_connections(session: Session) -> dict[tuple[str, str | None], datetime]:
    """(crm, connection) with pending events (connection None: the CRM's default one), each with its oldest
    event's arrival."""
    rows = session.execute(
        select(col(WebhookEvent.crm), col(WebhookEvent.connection), func.min(WebhookEvent.received_at))
        .where(col(WebhookEvent.status) == "pending")
        .group_by(col(WebhookEvent.crm), col(WebhookEvent.connection))
    ).all()
    return {(crm, connection): oldest for crm, connection, oldest in rows}


def pending(
    session: Session, *, crm: str | None = None, connection: str | None = None, limit: int = 10_000
) -> list[WebhookEvent]:
    """Pending events, oldest first: all of them, or (with ``crm``) those of one connection of that CRM — the
    default one when ``connection`` is None."""
    query = sqlmodel.select(WebhookEvent).where(WebhookEvent.status == "pending")
    if crm is not None:
        query = query.where(WebhookEvent.crm == crm)
        query = query.where(
            col(WebhookEvent.connection).is_(None) if connection is None else col(WebhookEvent.connection) == connection
        )
    return list(session.exec(query.order_by(col(WebhookEvent.id)).limit(limit)).all())


def finish(
    session: Session, *, ids: Sequence[int], status: str, now: datetime, error: str | None = None, by: str | None = None
) -> None:
    for start in range(0, len(ids), 5000):
        part = list(ids[start : start + 5000])
        session.execute(
            update(WebhookEvent)
            .where(col(WebhookEvent.id).in_(part))
            .values(status=status, processed_at=now, error=error, attempts=WebhookEvent.attempts + 1, processed_by=by)
        )


def retry_later(session: Session, *, ids: Sequence[int], error: str, max_attempts: int) -> None:
    """Keep events pending with the error for another try; after ``max_attempts`` they become failed (kept)."""
    for start in range(0, len(ids), 5000):
        part = list(ids[start : start + 5000])
        session.execute(
            update(WebhookEvent)
            .where(col(WebhookEvent.id).in_(part))
            .values(
                error=error,
                attempts=WebhookEvent.attempts + 1,
                status=sqlmodel.case((WebhookEvent.attempts + 1 >= max_attempts, "failed"), else_="pending"),
            )
        )


def counts(session: Session) -> dict[tuple[str, str], tuple[int, int]]:
    """(source, status) -> (events, duplicates)."""
    query = select(
        col(WebhookEvent.source),
        col(WebhookEvent.status),
        func.count(),
        func.coalesce(func.sum(WebhookEvent.duplicates), 0),
    ).group_by(WebhookEvent.source, WebhookEvent.status)
    return {(s, st): (int(n), int(d)) for s, st, n, d in session.execute(query).all()}
