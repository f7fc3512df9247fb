"""API models of the OKR domain (``/api/v1``)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, Field


class MappingPublic(BaseModel):
    id: int
    crm: str
    connection: str
    team: str
    cycle: str
    start: date
    end: date
    version: int


class Contribution(BaseModel):
    owner_id: str
    owner: str | None
    value: float


class TrendPoint(BaseModel):
    as_of: datetime
    value: float | None
    progress: float | None
    status: str


class KeyResultPublic(BaseModel):
    key: str
    title: str
    metric: str
    value: float | None
    target: float
    progress: float | None
    grade: float | None
    expected: float
    status: str
    achieved: bool
    records: int
    contributions: list[Contribution]
    trend: list[TrendPoint] = Field(description="The last values, oldest first (one per computation)")


class ObjectivePublic(BaseModel):
    key: str
    title: str
    progress: float | None
    status: str | None
    achieved: bool
    key_results: list[KeyResultPublic]


class MappingDetail(MappingPublic):
    objectives: list[ObjectivePublic]
    computed_at: datetime | None


class EvidenceItem(BaseModel):
    part: str
    record_id: str
    related_id: str | None
    owner_id: str | None
    value: float | None
    occurred_at: datetime | None
    business_seconds: float | None = Field(
        default=None,
        description="For a response time measured in business hours: the answered inquiry's wait (value, in "
        "seconds on the wall clock) counted in the team's open hours (team.calendar).",
    )


class EvidencePage(BaseModel):
    total: int
    limit: int
    offset: int
    items: list[EvidenceItem]


class RecordContribution(BaseModel):
    mapping_id: int
    team: str
    cycle: str
    key_result: str
    title: str
    team_progress: float | None
    expected: float
    status: str
    records: int
    value: float | None


class HygieneIssue(BaseModel):
    mapping_id: int
    rule: str
    problem: str


class KamCriterionPublic(BaseModel):
    mapping_id: int
    criterion: str
    title: str
    status: str
    source: str
    measured: int | None
    comment: str | None


class RecordView(BaseModel):
    crm: str
    connection: str = Field(description="The connection (org or portal) holding the record, e.g. default or west")
    object: Literal["opportunity", "account"]
    id: str
    name: str | None
    key_results: list[RecordContribution]
    hygiene: list[HygieneIssue]
    kam_score: float | None
    kam_criteria: list[KamCriterionPublic]


class MappingSource(BaseModel):
    yaml: str = Field(description="The mapping file's text")
    connection: str | None = Field(default=None, description="crm/name, e.g. salesforce/default")
    reason: str | None = Field(default=None, description="Why (required for changes within a running cycle)")


class Problem(BaseModel):
    line: int | None = Field(description="1-based line in the YAML, when known")
    column: int | None
    message: str = Field(description="Where in the file (e.g. objectives[0].key_results[0].target) and what is wrong")


class Validation(BaseModel):
    valid: bool
    problems: list[Problem]


class Applied(BaseModel):
    mapping: MappingPublic
    version: int
    changed: bool
    changes: list[str]


class VersionPublic(BaseModel):
    version: int
    author: str
    reason: str | None
    changes: list[str]
    applied_at: datetime


class AssessmentIn(BaseModel):
    account_id: str
    criterion: str
    status: Literal["met", "partly", "not_met"]
    comment: str | None = Field(default=None, max_length=10_000)
    evidence_url: str | None = Field(default=None, max_length=1000, pattern=r"^https?://")


class AssessmentPublic(BaseModel):
    id: int
    account_id: str
    criterion: str
    status: str
    comment: str | None
    evidence_url: str | None
    author: str
    assessed_at: datetime


class CheckInIn(BaseModel):
    value: float | None = Field(
        default=None,
        allow_inf_nan=False,
        ge=-1e15,
        le=1e15,
        description="A manual key result's value: a finite number within ±10¹⁵",
    )
    confidence: int | None = Field(default=None, ge=1, le=10, description="The team's confidence, 1–10")
    note: str | None = Field(default=None, max_length=10_000)


class CheckInPublic(BaseModel):
    key_result: str
    value: float | None
    confidence: int | None
    note: str | None
    author: str
    entered_at: datetime


class CardRecord(BaseModel):
    objectType: str  # noqa: N815 — the app card's JSON contract (camelCase, as React code reads it)
    objectId: str  # noqa: N815
    name: str | None


class CardContribution(BaseModel):
    records: int
    value: float | None
    summary: str


class CardKeyResult(BaseModel):
    title: str
    team: str
    progress: float | None
    expected: float
    status: str
    value: float | None
    target: float
    contributed: CardContribution
    dashboardUrl: str | None = None  # noqa: N815 — the key result's page in okrsync's dashboard


class CardHygiene(BaseModel):
    score: float | None
    issues: list[str]
    checked: datetime | None


class CardKamCriterion(BaseModel):
    title: str
    status: str
    source: str
    comment: str | None


class CardKam(BaseModel):
    score: float | None
    criteria: list[CardKamCriterion]


class Card(BaseModel):
    """What the HubSpot app card (deploy/hubspot/app) shows on a deal or company record."""

    record: CardRecord
    keyResults: list[CardKeyResult]  # noqa: N815
    hygiene: CardHygiene | None
    kam: CardKam | None
