"""The write-back outbox: one row per CRM record okrsync writes, holding the latest values staged for it.

A computation stages its results here in its own transaction (``stage``); the writer sends pending rows and marks
a row sent only when the CRM acknowledged exactly the values it sent (``seq`` unchanged), so a crash at any point
leaves the row pending and the next run sends it again. Replays are safe because object targets are upserted by
their okrsync id and field targets are plain updates of the same values. Because a row holds only the newest
values, an older value can never be sent after a newer one.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from service.kit.db import JsonType, UtcDateTime


class OutboxRow(SQLModel, table=True):
    __tablename__ = "writeback_outbox"
    __table_args__ = (
        UniqueConstraint("connection_id", "target", "record_key"),
        Index("ix_writeback_outbox_pending", "connection_id", "status", "target"),
    )

    id: int | None = Field(default=None, primary_key=True)
    connection_id: int = Field(foreign_key="crm_connection.id")
    target: str = Field(
        max_length=32, description="objective | key_result | contribution | kam_criterion | opportunity | account"
    )
    record_key: str = Field(max_length=255, description="okrsync id (object targets) or CRM record id (fields)")
    mapping_id: int | None = Field(default=None, description="The mapping an object target belongs to")
    op: str = Field(default="upsert", max_length=8, description="upsert | delete")
    payload: dict[str, Any] = Field(default_factory=dict, sa_type=JsonType, description="Neutral field values")
    digest: str = Field(max_length=64, description="Hash of the values without time stamps: what 'changed' means")
    seq: int = Field(default=1, description="Bumped on every staging; an acknowledgement counts only for its seq")
    status: str = Field(default="pending", max_length=8, description="pending | sent | failed")
    attempts: int = 0
    error_code: str | None = Field(default=None, max_length=64)
    error: str | None = Field(default=None, sa_type=Text)
    crm_id: str | None = Field(default=None, max_length=64, description="The CRM's id of the written record")
    staged_at: datetime = Field(sa_type=UtcDateTime)
    as_of: datetime = Field(sa_type=UtcDateTime, description="as_of of the computation that staged the values")
    sent_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
