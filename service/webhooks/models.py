"""Webhook events as received: stored before the CRM gets its 200, processed later by the worker.

One row per distinct event (``source`` + ``dedupe_key``); a repeat delivery only bumps ``duplicates`` on the row it
repeats, so every delivery is accounted for. An event the worker cannot process keeps its error and stays
``failed`` (never dropped); ``ignored`` events are for objects okrsync does not track. ``connection`` says which of
the CRM's connections the event is for: NULL for the default one, the name of an OKRSYNC_CONNECTIONS entry otherwise
(routed by HubSpot portal id or Salesforce org id when it was received).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from service.kit.db import JsonType, UtcDateTime


class WebhookEvent(SQLModel, table=True):
    __tablename__ = "webhook_event"
    __table_args__ = (
        UniqueConstraint("source", "dedupe_key"),
        Index("ix_webhook_event_status", "status", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    source: str = Field(max_length=24, description="hubspot | salesforce | salesforce_flow")
    crm: str = Field(max_length=16, description="salesforce | hubspot")
    connection: str | None = Field(
        default=None, max_length=40, description="NULL: the CRM's default connection; else an extra one's name"
    )
    dedupe_key: str = Field(max_length=400)
    object_type: str | None = Field(default=None, max_length=64)
    object_id: str | None = Field(default=None, max_length=64)
    kind: str | None = Field(default=None, max_length=32)
    occurred_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    payload: dict[str, Any] = Field(default_factory=dict, sa_type=JsonType)
    received_at: datetime = Field(sa_type=UtcDateTime)
    duplicates: int = 0
    status: str = Field(default="pending", max_length=12, description="pending | processed | ignored | failed")
    attempts: int = 0
    error: str | None = Field(default=None, sa_type=Text)
    processed_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    processed_by: str | None = Field(default=None, max_length=200, description="the worker that finished it")
