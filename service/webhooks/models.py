"""Webhook events as received: stored before the CRM gets its 200, processed later by the worker.

One row per distinct event (``source`` + ``dedupe_key``); a repeat delivery only bumps ``duplicates`` on the row it
repeats, so every delivery is accounted for. An event the worker cannot process keeps its error and stays
``failed`` (never dropped); ``ignored`` events are for objects okrsync does not track. ``connection`` says which of
the CRM's connections the event is for: NULL for the default one, the name of an OKRSYNC_CONNECTIONS entry otherwise
(routed by HubSpot portal id or Salesforce org id when it was received).

``webhook_replay`` is the replay guard of the signed sources (HubSpot, the Flow callout): one row per accepted
request, keyed by the SHA-256 of the bytes its signature covers (``verify.Verified``), written in the transaction
that stores the request's events, so a second request with that content — to this sidecar or another one on the same
database, before or after a restart — conflicts with it and is refused. A row is kept until ``expires_at`` (the
signed time plus twice the 5-minute window, so clocks of the sidecars may differ by up to 5 minutes); by then a copy
of the request fails verification as stale anyway, and expired rows are deleted now and then.
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


class WebhookReplay(SQLModel, table=True):
    __tablename__ = "webhook_replay"
    __table_args__ = (Index("ix_webhook_replay_expires_at", "expires_at"),)

    source: str = Field(primary_key=True, max_length=24, description="hubspot | salesforce_flow")
    digest: str = Field(primary_key=True, max_length=64, description="SHA-256 (hex) of the signed bytes")
    expires_at: datetime = Field(sa_type=UtcDateTime)
