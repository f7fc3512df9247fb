"""Request and response bodies of the company goals API (``/api/v1/goals``, ``/api/v1/company``)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

_PERIOD = Field(
    max_length=40,
    description="A year (2026) or a half-year (2026-H1, 2026-H2)",
    examples=["2026", "2026-H2"],
)


class GoalFieldsIn(BaseModel):
    title: str = Field(
        max_length=1_000, description="What the company wants to achieve", examples=["Win new customers"]
    )
    owner: str = Field(
        max_length=1_000, description="Who answers for it: a name or an e-mail", examples=["ceo@example.com"]
    )
    measure: str = Field(
        max_length=10_000,
        description="How the company measures it",
        examples=["120 new customers with a first order over €10,000"],
    )
    period: str = _PERIOD


class GoalIn(GoalFieldsIn):
    key: str = Field(
        max_length=200,
        description="Stable slug that mapping files name in an objective's `serves:`; it never changes",
        examples=["new-business-2026"],
    )


class GoalUpdate(GoalFieldsIn):
    version: int = Field(
        ge=1,
        le=2**31 - 1,
        description="The version you read (GET): an edit made from an older version is refused with 409",
    )


class GoalPublic(BaseModel):
    key: str
    title: str
    owner: str
    measure: str
    period: str = Field(description="2026 or 2026-H1")
    year: int
    half: str | None
    version: int = Field(description="Send it back with an edit")
    created_by: str
    created_at: datetime
    updated_by: str
    updated_at: datetime


class GoalDeleted(BaseModel):
    key: str
    deleted: bool


class ServingObjectivePublic(BaseModel):
    mapping_id: int
    team: str
    cycle: str
    connection: str = Field(description="crm/name of the CRM connection")
    objective: str = Field(description="The objective's key")
    title: str
    progress: float | None = Field(description="As last computed; null before the first computation")
    status: str | None
    achieved: bool


class GoalWithObjectives(GoalPublic):
    teams: list[str] = Field(description="The teams whose objectives serve the goal")
    objectives: list[ServingObjectivePublic]


class CompanyPublic(BaseModel):
    goals: list[GoalWithObjectives]
    unserved: list[str] = Field(description="Keys of the goals no objective serves")
    unlinked: list[ServingObjectivePublic] = Field(description="Objectives that serve no company goal")
    unknown: list[ServingObjectivePublic] = Field(
        description="Objectives naming a goal that does not exist (only if it was removed outside okrsync)"
    )
