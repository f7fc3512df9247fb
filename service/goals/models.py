"""Company goals: the annual or half-year goals a team's objectives serve (``serves: <key>`` in the mapping file).

A goal is entered by sales ops or an admin; its ``key`` is a stable slug the mapping files name, so it never
changes. ``version`` counts the edits: an edit names the version it started from, and one made from an older version
is refused (optimistic concurrency: the last write never silently wins).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Text
from sqlmodel import Field, SQLModel

from service.kit.db import UtcDateTime


class CompanyGoal(SQLModel, table=True):
    __tablename__ = "company_goal"

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=64, unique=True, description="Stable slug named by `serves:` in mapping files")
    title: str = Field(max_length=200)
    owner: str = Field(max_length=320, description="Who answers for it: a name or an e-mail")
    measure: str = Field(sa_type=Text, description="How the company measures it")
    year: int
    half: str | None = Field(default=None, max_length=2, description="H1 or H2; none: the whole year")
    version: int = Field(default=1, description="1 when created, +1 with every edit")
    created_by: str = Field(max_length=200)
    created_at: datetime = Field(sa_type=UtcDateTime)
    updated_by: str = Field(max_length=200)
    updated_at: datetime = Field(sa_type=UtcDateTime)
