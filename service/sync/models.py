"""Sync bookkeeping: a cursor per CRM object, a log of runs, and records that could not be mapped."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Text
from sqlmodel import Field, SQLModel

from service.kit.db import JsonType, UtcDateTime


class SyncState(SQLModel, table=True):
    """Where the incremental sync of one CRM object stands. Moves only in the transaction that stored the data."""

    __tablename__ = "sync_state"

    connection_id: int = Field(foreign_key="crm_connection.id", primary_key=True)
    stream: str = Field(primary_key=True, max_length=64, description="CRM object, e.g. Opportunity or deals")
    cursor_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    cursor_id: str | None = Field(default=None, max_length=64)
    full_started_at: datetime | None = Field(
        default=None, sa_type=UtcDateTime, description="Set while a full sync of this stream is under way"
    )
    deleted_checked_at: datetime | None = Field(
        default=None, sa_type=UtcDateTime, description="Deletions are known up to here"
    )
    updated_at: datetime | None = Field(default=None, sa_type=UtcDateTime)


class SyncRun(SQLModel, table=True):
    __tablename__ = "sync_run"

    id: int | None = Field(default=None, primary_key=True)
    connection_id: int = Field(foreign_key="crm_connection.id", index=True)
    full: bool = False
    status: str = Field(default="running", max_length=16, description="running | ok | failed | stopped")
    started_at: datetime = Field(sa_type=UtcDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    counts: dict[str, Any] = Field(default_factory=dict, sa_type=JsonType)
    api_calls: int = 0
    api_usage: str | None = Field(default=None, max_length=64, description="used/limit after the run")
    error: str | None = Field(default=None, sa_type=Text)


class SyncSkip(SQLModel, table=True):
    """A CRM record the connector could not map, kept with its payload so nothing received is lost."""

    __tablename__ = "sync_skip"

    connection_id: int = Field(foreign_key="crm_connection.id", primary_key=True)
    stream: str = Field(primary_key=True, max_length=64)
    external_id: str = Field(primary_key=True, max_length=64)
    reason: str = Field(sa_type=Text)
    raw: dict[str, Any] = Field(default_factory=dict, sa_type=JsonType)
    run_id: int | None = None
    skipped_at: datetime = Field(sa_type=UtcDateTime)
