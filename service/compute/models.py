"""Computed results: current values per key result, each member's contribution, the evidence behind them, hygiene
findings and KAM criteria, all keyed by mapping; plus a history row per key result and computation."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import BigInteger, Index, Text, text
from sqlmodel import Field, SQLModel, col

from service.kit.db import JsonType, UtcDateTime, byte_text


def _ts(*, nullable: bool = True) -> Any:
    return Field(default=None, sa_type=UtcDateTime, nullable=nullable)


class Computation(SQLModel, table=True):
    __tablename__ = "computation"

    id: int | None = Field(default=None, primary_key=True)
    mapping_id: int = Field(foreign_key="okr_mapping.id", index=True)
    version: int
    kind: str = Field(max_length=16, description="full | incremental")
    as_of: datetime = Field(sa_type=UtcDateTime)
    started_at: datetime = Field(sa_type=UtcDateTime)
    finished_at: datetime | None = _ts()
    key_results: int = 0
    opportunities: int | None = Field(default=None, description="Opportunities rechecked; None: all")
    detail: dict[str, Any] = Field(default_factory=dict, sa_type=JsonType)


class KeyResultValue(SQLModel, table=True):
    __tablename__ = "key_result_value"

    mapping_id: int = Field(foreign_key="okr_mapping.id", primary_key=True)
    kr_key: str = Field(primary_key=True, max_length=64)
    objective_key: str = Field(max_length=64)
    metric: str = Field(max_length=32)
    value: float | None = None
    progress: float | None = None
    grade: float | None = None
    expected: float = 0.0
    status: str = Field(max_length=16)
    achieved: bool = False
    records: int = 0
    numerator: float | None = None
    denominator: float | None = None
    detail: dict[str, Any] = Field(default_factory=dict, sa_type=JsonType)
    window_start: datetime = Field(sa_type=UtcDateTime)
    window_end: datetime = Field(sa_type=UtcDateTime)
    version: int
    as_of: datetime = Field(sa_type=UtcDateTime)
    computed_at: datetime = Field(sa_type=UtcDateTime)


class KeyResultHistory(SQLModel, table=True):
    """One row per key result and computation: the time series behind trends and burn-up charts."""

    __tablename__ = "key_result_history"
    __table_args__ = (Index("ix_key_result_history_kr", "mapping_id", "kr_key", "as_of"),)

    id: int | None = Field(default=None, primary_key=True)
    mapping_id: int = Field(foreign_key="okr_mapping.id")
    kr_key: str = Field(max_length=64)
    computation_id: int
    as_of: datetime = Field(sa_type=UtcDateTime)
    value: float | None = None
    progress: float | None = None
    grade: float | None = None
    status: str = Field(max_length=16)


class KeyResultContribution(SQLModel, table=True):
    __tablename__ = "key_result_contribution"

    mapping_id: int = Field(foreign_key="okr_mapping.id", primary_key=True)
    kr_key: str = Field(primary_key=True, max_length=64)
    owner_id: str = Field(primary_key=True, max_length=64)
    value: float


class KeyResultPartTotal(SQLModel, table=True):
    """A count, sum or ratio key result's evidence summed up per part and owner: how many rows, and their values
    added up in millionths (each row's value times 1,000,000, rounded to a whole number). Integers add up exactly
    in any order, so a change's rows taken out and put back give the very totals a full recompute sums up, and an
    incremental run reads these few rows instead of grouping all the key result's evidence again."""

    __tablename__ = "key_result_part_total"

    mapping_id: int = Field(foreign_key="okr_mapping.id", primary_key=True)
    kr_key: str = Field(primary_key=True, max_length=64)
    part: str = Field(primary_key=True, max_length=16)
    owner_id: str = Field(primary_key=True, max_length=64)  # "" for rows without an owner
    records: int
    micros: int = Field(sa_type=BigInteger)


class KeyResultEvidence(SQLModel, table=True):
    """A record that counted: for a ratio its part, for a response time the (inquiry, response) pair."""

    __tablename__ = "key_result_evidence"
    # Every lookup names the mapping, the key result and the part, so each index starts with them; without that the
    # planner read a whole key result's rows (100,000 at a million activities) to find the rows of one record.
    # ix_evidence_value also answers the totals per owner from the index alone and holds each owner's values in
    # order (percentiles of response times by OFFSET).
    __table_args__ = (
        Index("ix_evidence_value", "mapping_id", "kr_key", "part", "owner_id", "value"),
        Index("ix_evidence_part_record", "mapping_id", "kr_key", "part", "record_id"),
        # only the rows counted under a key (a distinct count's key, a pair's answer, a KAM activity's account):
        # 78 % of the rows of a million activities have none and were one index insertion each in a full compute
        # (migration 0022); every look-up names keys (``related_id IN …``), which implies IS NOT NULL
        Index(
            "ix_evidence_part_key",
            "mapping_id",
            "kr_key",
            "part",
            "related_id",
            sqlite_where=text("related_id IS NOT NULL"),
            postgresql_where=text("related_id IS NOT NULL"),
        ),
        # a response time's waits in order across owners (a team percentile by OFFSET; the unanswered ones, NULL,
        # first), for its rows only; covering, since reading 2,800 rows by rowid took 0.24 s at a million activities
        Index(
            "ix_evidence_wait",
            "mapping_id",
            "kr_key",
            "value",
            "owner_id",
            "occurred_at",
            sqlite_where=text("part = 'pair'"),
            postgresql_where=text("part = 'pair'"),
        ),
    )

    # the text columns every index holds compare byte by byte on PostgreSQL (``byte_text``): 3.9 million rows of
    # a full compute at a million activities enter six indexes each
    id: int | None = Field(default=None, primary_key=True)
    mapping_id: int = Field(foreign_key="okr_mapping.id")
    kr_key: str = Field(max_length=64, sa_type=byte_text(64))
    part: str = Field(max_length=16, sa_type=byte_text(16))
    record_id: str = Field(max_length=64, sa_type=byte_text(64))
    related_id: str | None = Field(default=None, max_length=64, sa_type=byte_text(64))
    owner_id: str | None = Field(default=None, max_length=64, sa_type=byte_text(64))
    value: float | None = None
    occurred_at: datetime | None = _ts()


# the evidence pages' order (report.evidence: part, newest first, record): a page at any offset is an index walk
# instead of a sort of the key result's rows (0.7 s for 450,000 rows at a million activities)
Index(
    "ix_evidence_page",
    KeyResultEvidence.mapping_id,  # type: ignore[arg-type]  # SQLModel's class attributes are columns here
    KeyResultEvidence.kr_key,  # type: ignore[arg-type]
    KeyResultEvidence.part,  # type: ignore[arg-type]
    col(KeyResultEvidence.occurred_at).desc(),
    KeyResultEvidence.record_id,  # type: ignore[arg-type]
    # PostgreSQL: the row id in the index too, so a page's rows are found by an index-only walk (report.evidence);
    # SQLite's indexes hold the rowid (= id) anyway
    postgresql_include=["id"],
)
# the same order per owner: a rep's own page of evidence (dashboard) walks their rows only (387 ms -> 12 ms for the
# last page of 80,724 rows at a million activities)
Index(
    "ix_evidence_owner_page",
    KeyResultEvidence.mapping_id,  # type: ignore[arg-type]  # SQLModel's class attributes are columns here
    KeyResultEvidence.kr_key,  # type: ignore[arg-type]
    KeyResultEvidence.owner_id,  # type: ignore[arg-type]
    KeyResultEvidence.part,  # type: ignore[arg-type]
    col(KeyResultEvidence.occurred_at).desc(),
    KeyResultEvidence.record_id,  # type: ignore[arg-type]
    postgresql_include=["id"],
)


class ObjectiveValue(SQLModel, table=True):
    __tablename__ = "objective_value"

    mapping_id: int = Field(foreign_key="okr_mapping.id", primary_key=True)
    objective_key: str = Field(primary_key=True, max_length=64)
    title: str = Field(sa_type=Text)
    progress: float
    status: str = Field(max_length=16)
    achieved: bool
    computed_at: datetime = Field(sa_type=UtcDateTime)


class HygieneFinding(SQLModel, table=True):
    __tablename__ = "hygiene_finding"
    # covering for the summaries (findings per rule, opportunities with findings per owner): 0.14 s per count at
    # 100,000 opportunities when each finding's row had to be read
    __table_args__ = (Index("ix_hygiene_finding_owner", "mapping_id", "rule_key", "owner_id", "opportunity_id"),)

    mapping_id: int = Field(foreign_key="okr_mapping.id", primary_key=True)
    opportunity_id: str = Field(primary_key=True, max_length=64)
    rule_key: str = Field(primary_key=True, max_length=64)
    owner_id: str | None = Field(default=None, max_length=64)
    detail_number: float | None = None
    detail_date: date | None = None
    detail_at: datetime | None = _ts()
    detail_text: str | None = Field(default=None, sa_type=Text)


class HygieneSummary(SQLModel, table=True):
    """Per rule (and ``*`` for all rules): violations among the team's open opportunities and the passing share."""

    __tablename__ = "hygiene_summary"

    mapping_id: int = Field(foreign_key="okr_mapping.id", primary_key=True)
    rule_key: str = Field(primary_key=True, max_length=64)
    violations: int
    open_opportunities: int
    score: float | None = None
    detail: dict[str, Any] = Field(default_factory=dict, sa_type=JsonType)
    computed_at: datetime = Field(sa_type=UtcDateTime)


class KamCriterionResult(SQLModel, table=True):
    __tablename__ = "kam_criterion_result"

    mapping_id: int = Field(foreign_key="okr_mapping.id", primary_key=True)
    account_id: str = Field(primary_key=True, max_length=64)
    criterion_key: str = Field(primary_key=True, max_length=64)
    owner_id: str | None = Field(default=None, max_length=64)
    status: str = Field(max_length=16)
    source: str = Field(max_length=16, description="derived | assessed")
    measured: int | None = None
    comment: str | None = Field(default=None, sa_type=Text)
    assessed_by: str | None = Field(default=None, max_length=200)
    assessed_at: datetime | None = _ts()


class KamAccountScore(SQLModel, table=True):
    __tablename__ = "kam_account_score"

    mapping_id: int = Field(foreign_key="okr_mapping.id", primary_key=True)
    account_id: str = Field(primary_key=True, max_length=64)
    owner_id: str | None = Field(default=None, max_length=64)
    name: str | None = Field(default=None, sa_type=Text)
    score: float | None = None  # over the criteria it covers; None while it covers none (nothing assessed yet)
    covered: int = Field(
        default=0, sa_column_kwargs={"server_default": "0"}
    )  # criteria with a status: not "not assessed"
    criteria: int = Field(default=0, sa_column_kwargs={"server_default": "0"})  # the key account's criteria
    computed_at: datetime = Field(sa_type=UtcDateTime)


class HygieneHistory(SQLModel, table=True):
    """One row per computation with hygiene rules: the team's pipeline-hygiene score over time."""

    __tablename__ = "hygiene_history"
    __table_args__ = (Index("ix_hygiene_history_mapping", "mapping_id", "as_of"),)

    id: int | None = Field(default=None, primary_key=True)
    mapping_id: int = Field(foreign_key="okr_mapping.id")
    computation_id: int
    as_of: datetime = Field(sa_type=UtcDateTime)
    violations: int
    open_opportunities: int
    score: float | None = None
