"""The planning API's request and response bodies."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, Field


class DraftCreate(BaseModel):
    connection: str | None = Field(default=None, description="crm/name, e.g. salesforce/default")
    team: str = Field(min_length=1, max_length=200, description="The team (team.name in the mapping file)")
    cycle: str = Field(min_length=1, max_length=200, description="The cycle's name, e.g. Q4 2026")
    start: date = Field(ge=date(2000, 1, 1), le=date(2100, 12, 31), description="The cycle's first day")
    end: date = Field(
        ge=date(2000, 1, 1), le=date(2100, 12, 31), description="The cycle's last day (inclusive; 1–3 months)"
    )
    members: list[dict[str, Any]] | None = Field(
        default=None, description="Team members ({email, name}) when the team has no mapping yet"
    )


class DraftImport(BaseModel):
    yaml: str = Field(description="A mapping file's text", max_length=1_000_000)
    connection: str | None = Field(default=None, description="crm/name, e.g. salesforce/default")


class DraftSave(BaseModel):
    content: dict[str, Any] = Field(description="The whole mapping file as data (what GET returns as content)")
    revision: int = Field(ge=1, le=2**31 - 1, description="The revision the edit started from (GET returns it)")


class CommentIn(BaseModel):
    body: str = Field(max_length=10_000)
    item: str | None = Field(default=None, max_length=64, description="The objective or key result key it is about")


class ReviewIn(BaseModel):
    item: str = Field(max_length=64, description="The objective or key result key reviewed")
    feasibility: int = Field(description="1 (poor) to 5 (good)")
    relevance: int = Field(description="1 (poor) to 5 (good)")
    effort: int = Field(description="1 (too much) to 5 (well worth it)")
    body: str | None = Field(default=None, max_length=10_000)


class RequestChangesIn(BaseModel):
    body: str = Field(max_length=10_000, description="What should change")


class ApproveIn(BaseModel):
    reason: str | None = Field(default=None, max_length=2_000, description="Needed when the cycle already runs")


class ProblemOut(BaseModel):
    line: int | None
    column: int | None
    message: str


class EventOut(BaseModel):
    kind: str
    item: str | None
    feasibility: int | None
    relevance: int | None
    effort: int | None
    body: str | None
    author: str
    role: str
    at: datetime
    revision: int


class DraftSummary(BaseModel):
    id: int
    connection: str
    team: str
    cycle: str
    status: str
    revision: int
    updated_by: str
    updated_at: datetime
    mapping_id: int | None
    mapping_version: int | None


class DraftDetail(DraftSummary):
    content: dict[str, Any]
    problems: list[ProblemOut]
    events: list[EventOut]


class PreviewIn(BaseModel):
    draft_id: int = Field(
        ge=1, le=2**31 - 1, description="The draft whose team, members, calendar and custom fields it uses"
    )
    key_result: dict[str, Any] = Field(description="The key result as in the file (title, metric, target…)")
    as_of: date | None = Field(
        default=None, ge=date(2000, 1, 1), le=date(2100, 12, 31), description="Preview as of this day (default: today)"
    )


class PreviewValueOut(BaseModel):
    window: str = Field(description="The running cycle's name, or 'the cycle before'")
    start: date
    end: date
    value: float | None
    records: int
    target: float | None
    progress: float | None
    status: str | None


class PreviewOut(BaseModel):
    running: PreviewValueOut
    before: PreviewValueOut
    suggested_baseline: float | None = Field(description="The value of the cycle before: a baseline to start from")
