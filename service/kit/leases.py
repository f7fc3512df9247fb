"""Leases: one worker at a time per CRM connection, whatever the number of worker processes.

A lease is a row (``work_lease``) that a worker takes with one conditional UPDATE — free, expired or already its
own — so two workers racing for it cannot both win (PostgreSQL re-checks the condition on the locked row; SQLite
serialises writers). The holder renews it while it works; a worker killed with ``kill -9`` stops renewing and its
lease expires after ``ttl`` seconds, so another worker picks the job up. The row also keeps when the connection's
last periodic sync finished: scheduled syncs run once per interval across all workers, not once per worker.
"""

from __future__ import annotations

import os
import socket
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

from sqlalchemy import insert, or_, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, SQLModel

from service.kit.db import UtcDateTime, utcnow


class WorkLease(SQLModel, table=True):
    __tablename__ = "work_lease"

    name: str = Field(primary_key=True, max_length=200, description="e.g. crm:salesforce/sandbox")
    holder: str | None = Field(default=None, max_length=200, description="host:pid:random of the worker holding it")
    expires_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    last_sync_at: datetime | None = Field(default=None, sa_type=UtcDateTime, description="last periodic sync done")
    passes: int = Field(default=0, description="passes completed under this lease (all workers)")


TABLE = WorkLease.__table__  # type: ignore[attr-defined]  # SQLModel does not type __table__


def worker_id() -> str:
    """Who holds a lease: host, process and a random part (a restarted process with the same pid is another)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def acquire(engine: Engine, name: str, holder: str, *, ttl: float) -> bool:
    """Take the lease if it is free, expired or already ours; True when we hold it now."""
    now = utcnow()
    with engine.begin() as conn:
        exists = conn.execute(select(TABLE.c.name).where(TABLE.c.name == name)).first()
        if exists is None:
            try:
                with conn.begin_nested():
                    conn.execute(insert(TABLE).values(name=name, passes=0))
            except IntegrityError:
                pass  # another worker created it at the same moment
        taken = conn.execute(
            update(TABLE)
            .where(
                TABLE.c.name == name,
                or_(TABLE.c.holder.is_(None), TABLE.c.expires_at < now, TABLE.c.holder == holder),
            )
            .values(holder=holder, expires_at=now + timedelta(seconds=ttl))
        )
        return taken.rowcount == 1


def renew(engine: Engine, name: str, holder: str, *, ttl: float) -> bool:
    """Extend our lease; False when it is no longer ours (it expired and another worker took it)."""
    with engine.begin() as conn:
        renewed = conn.execute(
            update(TABLE)
            .where(TABLE.c.name == name, TABLE.c.holder == holder)
            .values(expires_at=utcnow() + timedelta(seconds=ttl))
        )
        return renewed.rowcount == 1


def release(engine: Engine, name: str, holder: str, *, synced: bool = False, passed: bool = False) -> None:
    """Give the lease back; ``synced``: the periodic sync finished now; ``passed``: count a completed pass."""
    values: dict[str, object] = {"holder": None, "expires_at": None}
    if synced:
        values["last_sync_at"] = utcnow()
    if passed:
        values["passes"] = TABLE.c.passes + 1
    with engine.begin() as conn:
        conn.execute(update(TABLE).where(TABLE.c.name == name, TABLE.c.holder == holder).values(**values))


def last_sync(engine: Engine, name: str) -> datetime | None:
    with engine.connect() as conn:
        return conn.execute(select(TABLE.c.last_sync_at).where(TABLE.c.name == name)).scalar()


@contextmanager
def held(engine: Engine, name: str, holder: str, *, ttl: float) -> Iterator[threading.Event]:
    """Renew the lease every ttl/3 seconds while the body runs; the yielded event is set if the lease was lost."""
    lost = threading.Event()
    done = threading.Event()

    def keep() -> None:
        while not done.wait(ttl / 3):
            try:
                if not renew(engine, name, holder, ttl=ttl):
                    lost.set()
                    return
            except Exception:  # noqa: BLE001 — a database blip: try again at the next tick, the ttl has room
                continue

    thread = threading.Thread(target=keep, name=f"lease {name}", daemon=True)
    thread.start()
    try:
        yield lost
    finally:
        done.set()
        thread.join(timeout=5)
