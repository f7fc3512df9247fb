"""OKR mappings as applied: one row per (connection, team, cycle), and every version of its mapping file.

A version records who applied it, when and why, and which key results changed, so a number at a past check-in can
be traced to the definition that produced it.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from service.kit.db import JsonType, UtcDateTime


class OkrMapping(SQLModel, table=True):
    __tablename__ = "okr_mapping"
    __table_args__ = (UniqueConstraint("connection_id", "team", "cycle"),)

    id: int | None = Field(default=None, primary_key=True)
    connection_id: int = Field(foreign_key="crm_connection.id", index=True)
    team: str = Field(max_length=200)
    cycle: str = Field(max_length=200)
    cycle_start: date
    cycle_end: date
    current_version: int = 0
    created_at: datetime = Field(sa_type=UtcDateTime)


class OkrMappingVersion(SQLModel, table=True):
    __tablename__ = "okr_mapping_version"

    mapping_id: int = Field(foreign_key="okr_mapping.id", primary_key=True)
    version: int = Field(primary_key=True)
    config: dict[str, Any] = Field(sa_type=JsonType, description="The validated mapping, as JSON")
    source: str = Field(sa_type=Text, description="The YAML as applied")
    source_name: str | None = Field(default=None, max_length=500)
    author: str = Field(max_length=200)
    reason: str | None = Field(default=None, sa_type=Text)
    changes: list[str] = Field(default_factory=list, sa_type=JsonType)
    applied_at: datetime = Field(sa_type=UtcDateTime)


class ManualValue(SQLModel, table=True):
    """A value of a manual key result, entered at a check-in. The latest one counts; all are kept."""

    __tablename__ = "manual_value"

    id: int | None = Field(default=None, primary_key=True)
    mapping_id: int = Field(foreign_key="okr_mapping.id", index=True)
    kr_key: str = Field(max_length=64)
    value: float
    note: str | None = Field(default=None, sa_type=Text)
    author: str = Field(max_length=200)
    entered_at: datetime = Field(sa_type=UtcDateTime)


class KamAssessment(SQLModel, table=True):
    """A KAM's assessment of one criterion on one key account. The latest one counts; all are kept."""

    __tablename__ = "kam_assessment"

    id: int | None = Field(default=None, primary_key=True)
    mapping_id: int = Field(foreign_key="okr_mapping.id", index=True)
    account_id: str = Field(max_length=64)
    criterion_key: str = Field(max_length=64)
    status: str = Field(max_length=16, description="met | partly | not_met")
    comment: str | None = Field(default=None, sa_type=Text)
    evidence_url: str | None = Field(default=None, max_length=1000)
    author: str = Field(max_length=200)
    assessed_at: datetime = Field(sa_type=UtcDateTime)


class CheckInNote(SQLModel, table=True):
    """A confidence note on a key result at a weekly check-in (1–10), with who said it and when."""

    __tablename__ = "check_in_note"

    id: int | None = Field(default=None, primary_key=True)
    mapping_id: int = Field(foreign_key="okr_mapping.id", index=True)
    kr_key: str = Field(max_length=64)
    confidence: int | None = None
    note: str | None = Field(default=None, sa_type=Text)
    author: str = Field(max_length=200)
    entered_at: datetime = Field(sa_type=UtcDateTime)
