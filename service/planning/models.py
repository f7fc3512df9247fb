"""Bottom-up planning: a team's draft of its next cycle's OKRs, and what happened to it (comments, reviews).

A draft holds the mapping file's content as data (``content``: what the YAML would say, as written, defaults not
filled in), so exporting it gives the YAML a sales-ops user would have written and importing that YAML gives the same
draft back. It may be incomplete while the team drafts (``problems`` say what is missing); it can only be sent to
review and approved when the mapping validation accepts it. ``revision`` counts saves: a save names the revision it
started from and is refused when someone saved in between (optimistic concurrency: no edit silently overwrites
another).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from service.kit.db import JsonType, UtcDateTime

STATUSES = ("drafting", "in_review", "changes_requested", "approved")


class PlanDraft(SQLModel, table=True):
    __tablename__ = "plan_draft"
    __table_args__ = (UniqueConstraint("connection_id", "team", "cycle"),)

    id: int | None = Field(default=None, primary_key=True)
    connection_id: int = Field(foreign_key="crm_connection.id")
    team: str = Field(max_length=200, description="The team whose draft it is (team.name in the content)")
    cycle: str = Field(max_length=200, description="The cycle it plans (cycle.name in the content)")
    content: dict[str, Any] = Field(default_factory=dict, sa_type=JsonType, description="The mapping file as data")
    status: str = Field(default="drafting", max_length=20, description=" | ".join(STATUSES))
    revision: int = Field(default=1, description="Bumped by every save; a save must name the one it started from")
    created_by: str = Field(max_length=200)
    created_at: datetime = Field(sa_type=UtcDateTime)
    updated_by: str = Field(max_length=200)
    updated_at: datetime = Field(sa_type=UtcDateTime)
    mapping_id: int | None = Field(default=None, description="The mapping its approval applied")
    mapping_version: int | None = Field(default=None, description="The mapping version its approval applied")


class DraftEvent(SQLModel, table=True):
    """One thing that happened to a draft: a comment, a review of one objective or key result (feasibility,
    relevance and effort rated 1–5), a request for changes, a submission, an approval."""

    __tablename__ = "plan_draft_event"
    __table_args__ = (Index("ix_plan_draft_event_draft", "draft_id", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    draft_id: int = Field(foreign_key="plan_draft.id")
    kind: str = Field(max_length=20, description="comment | review | submit | request_changes | approve")
    item: str | None = Field(default=None, max_length=64, description="The objective or key result key it is about")
    feasibility: int | None = None
    relevance: int | None = None
    effort: int | None = None
    body: str | None = Field(default=None, sa_type=Text)
    author: str = Field(max_length=200)
    role: str = Field(max_length=16)
    at: datetime = Field(sa_type=UtcDateTime)
    revision: int = Field(description="The draft's revision it was about")
