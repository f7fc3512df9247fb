"""What a sprint achieved (written by each computation) and its retrospectives (written by the team).

The sprint's definition lives in the mapping config (a file or the API adds a version); these rows hang off
(mapping, sprint key), so a later mapping version that changes a sprint's commitment keeps its retrospectives.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Text
from sqlmodel import Field, SQLModel

from service.kit.db import JsonType, UtcDateTime


class SprintResult(SQLModel, table=True):
    __tablename__ = "sprint_result"

    mapping_id: int = Field(foreign_key="okr_mapping.id", primary_key=True)
    sprint_key: str = Field(max_length=64, primary_key=True)
    achieved: float | None = Field(default=None, description="The commitment's metric over the sprint's days")
    records: int = 0
    gains: dict[str, Any] = Field(
        default_factory=dict, sa_type=JsonType, description="kr key -> what it gained during the sprint"
    )
    as_of: datetime = Field(sa_type=UtcDateTime)
    computed_at: datetime = Field(sa_type=UtcDateTime)


class SprintRetrospective(SQLModel, table=True):
    """One retrospective of a sprint; a sprint may get it corrected later — the newest counts, older ones stay."""

    __tablename__ = "sprint_retrospective"

    id: int | None = Field(default=None, primary_key=True)
    mapping_id: int = Field(foreign_key="okr_mapping.id", index=True)
    sprint_key: str = Field(max_length=64)
    improvement: str = Field(sa_type=Text, description="The one improvement item carried into the next sprint")
    went_well: str | None = Field(default=None, sa_type=Text)
    carried_done: bool | None = Field(default=None, description="Was the previous sprint's improvement done?")
    note: str | None = Field(default=None, sa_type=Text)
    author: str = Field(max_length=200)
    recorded_at: datetime = Field(sa_type=UtcDateTime)
