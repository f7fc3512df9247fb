"""A weekly check-in, frozen: what every key result showed when the team met, who was there, what they said."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Text
from sqlmodel import Field, SQLModel

from service.kit.db import JsonType, UtcDateTime


class CheckIn(SQLModel, table=True):
    __tablename__ = "check_in"

    id: int | None = Field(default=None, primary_key=True)
    mapping_id: int = Field(foreign_key="okr_mapping.id", index=True)
    held_at: datetime = Field(sa_type=UtcDateTime)
    author: str = Field(max_length=200)
    attendees: list[str] = Field(default_factory=list, sa_type=JsonType)
    note: str | None = Field(default=None, sa_type=Text)
    key_results: dict[str, Any] = Field(
        default_factory=dict, sa_type=JsonType, description="kr key -> values as computed then, confidence, note"
    )
    hygiene_score: float | None = None
    corrects_id: int | None = Field(
        default=None,
        description="The check-in of the same day this one corrects; that one is kept, as it was, for the record",
    )
