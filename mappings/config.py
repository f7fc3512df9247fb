"""The mapping file sales ops write: one team, one cycle, objectives with key results, hygiene rules, KAM criteria.

Every metric, rule and criterion kind is a model tagged by ``type``; every field has a title, description and
example so the published JSON Schema (``okrsync mappings schema``) lets editors validate the YAML as people type.
Checks that need no database live here (dates, targets, duplicate keys, field names); checks against the synced
CRM data (team members, custom fields present) live in ``mappings.validate``.
"""

from __future__ import annotations

import math
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from mappings.calendar import BusinessCalendar
from mappings.fields import CANONICAL, CRM_NAME_PATTERN, CustomField, FieldType, RecordType, UnknownField, resolve
from mappings.filter_checks import check_filter
from mappings.filters import Condition
from mappings.hygiene_rules import HygieneRule
from mappings.kam_criteria import KamCriterion
from mappings.limits import (
    MAX_MEMBERS,
    MAX_RULES,
    MAX_SPRINTS,
    Day,
    Number,
    StrictModel,
)

KEY_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"


_Strict = StrictModel


class Member(_Strict):
    email: str = Field(
        title="Owner e-mail",
        description="The CRM user's e-mail; the same person is found in Salesforce and HubSpot.",
        examples=["anna.berger@example.com"],
        min_length=3,
    )
    name: str | None = Field(default=None, title="Display name", examples=["Anna Berger"])


class Team(_Strict):
    name: str = Field(title="Team name", examples=["Vertrieb DACH"], min_length=1, max_length=200)
    members: list[Member] = Field(
        min_length=1, max_length=MAX_MEMBERS, title="Members", description="The team's CRM owners."
    )
    calendar: BusinessCalendar | None = Field(
        default=None,
        title="Business hours",
        description="When the team is open to answer customers; response_time key results with `hours: business` "
        "count only this time.",
        examples=[{"time_zone": "Europe/Berlin", "opens": "08:00", "closes": "18:00",
                   "holidays": {"country": "DE", "subdivision": "BE"}}],
    )  # fmt: skip

    @field_validator("members")
    @classmethod
    def _unique(cls, members: list[Member]) -> list[Member]:
        seen: set[str] = set()
        for member in members:
            if member.email.lower() in seen:
                raise ValueError(f"{member.email} is listed twice")
            seen.add(member.email.lower())
        return members


class Cycle(_Strict):
    name: str = Field(title="Cycle name", examples=["Q3 2026"], min_length=1, max_length=200)
    start: Day = Field(title="First day", examples=["2026-07-01"])
    end: Day = Field(title="Last day (inclusive)", examples=["2026-09-30"])

    @model_validator(mode="after")
    def _length(self) -> Cycle:
        if self.end < self.start:
            raise ValueError(f"cycle ends ({self.end}) before it starts ({self.start})")
        days = (self.end - self.start).days + 1
        if days > 93:
            raise ValueError(f"a cycle lasts 1–3 months; this one has {days} days — split it into cycles")
        return self


class Direction(StrEnum):
    """Which way is better. Member names avoid ``str.lower``."""

    higher = "higher"
    lower_is_better = "lower"


class Distinct(StrEnum):
    accounts = "accounts"
    contacts = "contacts"
    opportunities = "opportunities"


class Counted(StrEnum):
    activities = "activities"
    opportunities = "opportunities"
    leads = "leads"


class DateField(StrEnum):
    occurred_at = "occurred_at"
    created_at = "created_at"
    close_date = "close_date"
    completed_at = "completed_at"
    converted_on = "converted_on"
    none = "none"


_WHERE: Any = Field(
    default_factory=list,
    title="Filter",
    description="Conditions that must all hold (see mappings/filters.py for fields and operators).",
    examples=[[{"field": "activity_kind", "op": "eq", "value": "meeting"}]],
)
_DATE_FIELD = Field(
    default=None,
    title="Date field",
    description="Which date must fall in the KR's window. Default: occurred_at for activities, created_at for "
    "opportunities and leads (a lead's created_at is when it became a lead); converted_on for leads converted in the "
    "window; `none` counts the current state (e.g. open opportunities now). An activity's occurred_at is when "
    "it happened: a call's or e-mail's time, a meeting's start, a task's completion. A task that is not completed "
    "has none, so it is not counted by occurred_at; count tasks by `created_at` (with a filter on `status` if "
    "wanted) to include open ones.",
)


class CountMetric(_Strict):
    """How many activities, opportunities or leads match (optionally distinct accounts, contacts or
    opportunities)."""

    type: Literal["count"] = "count"
    of: Counted = Field(title="Records counted", examples=["activities"])
    distinct: Distinct | None = Field(default=None, title="Count distinct", examples=["accounts"])
    where: list[Condition] = _WHERE
    date_field: DateField | None = _DATE_FIELD


class SumMetric(_Strict):
    """The sum of a numeric field, e.g. the amount of new pipeline created."""

    type: Literal["sum"] = "sum"
    of: Counted = Field(title="Records summed", examples=["opportunities"])
    field: str = Field(title="Numeric field", examples=["amount"])
    where: list[Condition] = _WHERE
    date_field: DateField | None = _DATE_FIELD
    unit: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z%€$£¥][A-Za-z%€$£¥ .]{0,15}$",
        title="Unit",
        description="How the sum is shown: a currency code (EUR, USD, GBP, CHF…) shows it as money, compactly"
        " (€16.4M); any other word follows the number (m², seats).",
        examples=["EUR", "USD", "seats"],
    )


Part = Annotated[CountMetric | SumMetric, Field(discriminator="type")]


class RatioMetric(_Strict):
    """numerator / denominator as a fraction 0–1 (targets are fractions too: 0.8 for 80 %)."""

    type: Literal["ratio"] = "ratio"
    numerator: Part = Field(title="Numerator")
    denominator: Part = Field(title="Denominator")


class Statistic(StrEnum):
    median = "median"  # Excel's MEDIAN: the mean of the two middle values for an even count
    p90 = "p90"  # percentile 90, as `percentile` computes it
    percentile = "percentile"  # `percentile: P`, by linear interpolation (Excel's PERCENTILE.INC, numpy's default)
    max = "max"
    share_within = "share_within"


class _WaitMetric(_Strict):
    """What response_time and speed_to_lead share: how a wait is summed up, and what counts as the team's answer."""

    statistic: Statistic = Field(title="Statistic", examples=["share_within"])
    within_hours: Number | None = Field(
        default=None, gt=0, title="Limit (hours)", description="For share_within.", examples=[4]
    )
    percentile: Number | None = Field(
        default=None,
        gt=0,
        lt=100,
        title="Percentile",
        description="For statistic percentile: P of the waits are at or below the value, by linear interpolation "
        "between the closest ranks (Excel's PERCENTILE.INC with P/100, numpy's default). p90 is percentile 90.",
        examples=[75],
    )
    response_kinds: list[Literal["call", "email", "meeting"]] = Field(
        default=["call", "email", "meeting"], min_length=1, max_length=3, title="What counts as a response"
    )
    response: list[Condition] = Field(
        default_factory=list,
        title="Response filter",
        description="Extra conditions on the response: only an activity matching them answers an inquiry (e.g. a "
        "call of at least 60 seconds, or not an automatic reply).",
        examples=[[{"field": "subject", "op": "not_contains", "value": "Automatic reply"}]],
    )
    internal_responses: bool = Field(
        default=False,
        title="Internal activities answer",
        description="Also count internal activities as the response: a forwarded e-mail (HubSpot FORWARDED_EMAIL) "
        "or an internal call (Salesforce CallType Internal). By default only outbound activities and those without "
        "a direction (meetings, e-mails and calls the CRM gives none) answer an inquiry.",
        examples=[True],
    )
    hours: Literal["wall_clock", "business"] = Field(
        default="wall_clock",
        title="Hours counted",
        description="wall_clock: every hour from the inquiry to the response; business: only the team's open hours "
        "(team.calendar), so an inquiry that arrives outside them starts counting at the next opening.",
        examples=["business"],
    )

    @model_validator(mode="after")
    def _limit(self) -> _WaitMetric:
        if (self.statistic == Statistic.share_within) != (self.within_hours is not None):
            raise ValueError("within_hours is needed with statistic share_within, and only there")
        if (self.statistic == Statistic.percentile) != (self.percentile is not None):
            raise ValueError("percentile (e.g. 75) is needed with statistic percentile, and only there")
        return self


class ResponseTimeMetric(_WaitMetric):
    """Time from an inbound customer email/call to the team's first response on the same contact or account."""

    type: Literal["response_time"] = "response_time"
    match: Literal["account", "contact"] = Field(default="account", title="Same account or same contact")
    inquiry_kinds: list[Literal["call", "email"]] = Field(
        default=["call", "email"],
        min_length=1,
        max_length=2,
        title="What counts as an inquiry",
        description="An inquiry is an inbound activity of these kinds: the customer called, or wrote an e-mail.",
        examples=[["email"]],
    )
    inbound: list[Condition] = Field(
        default_factory=list, title="Inbound filter", description="Extra conditions on the customer's inquiry."
    )


class SpeedToLeadMetric(_WaitMetric):
    """Time from a new lead to the team's first call, e-mail or meeting on it: on the lead itself, or on the contact
    or account it was converted to. Each lead created in the window by a member counts once, credited to its owner;
    a lead nobody has answered yet counts with the time it has waited so far (share_within: not yet)."""

    type: Literal["speed_to_lead"] = "speed_to_lead"
    leads: list[Condition] = Field(
        default_factory=list,
        title="Lead filter",
        description="Which leads count (fields of the lead: source, status, company, is_converted, account.…).",
        examples=[[{"field": "source", "op": "in", "value": ["Web", "ORGANIC_SEARCH"]}]],
    )


WAIT_METRICS = (ResponseTimeMetric, SpeedToLeadMetric)
WaitMetric = ResponseTimeMetric | SpeedToLeadMetric


class HygieneScoreMetric(_Strict):
    """Share of the team's open opportunities passing the hygiene rules (all, or the named ones)."""

    type: Literal["hygiene_score"] = "hygiene_score"
    rules: list[str] | None = Field(
        default=None, max_length=MAX_RULES, title="Rules (default: all)", examples=[["no_next_step"]]
    )


class KamCriteriaMetric(_Strict):
    """Share of key accounts that meet their criteria (score at least min_score)."""

    type: Literal["kam_criteria"] = "kam_criteria"
    min_score: float = Field(default=1.0, gt=0, le=1, title="Account score counted as met", examples=[0.75])


class ManualMetric(_Strict):
    """A value the team enters at a check-in (``okrsync kr set``)."""

    type: Literal["manual"] = "manual"
    unit: str | None = Field(default=None, examples=["NPS"])
    min: float | None = Field(
        default=None, ge=-1e15, le=1e15, title="Lowest possible value", description="NPS: -100", examples=[-100]
    )
    max: float | None = Field(
        default=None, ge=-1e15, le=1e15, title="Highest possible value", description="NPS: 100", examples=[100]
    )

    @model_validator(mode="after")
    def _range(self) -> ManualMetric:
        if self.min is not None and self.max is not None and self.min >= self.max:
            raise ValueError(f"min ({self.min:g}) must be below max ({self.max:g})")
        return self

    def out_of_range(self, value: float) -> str | None:
        """Why ``value`` cannot be this key result's (not finite, or outside min…max), or None."""
        if not math.isfinite(value) or abs(value) > 1e15:
            return f"{value!r} is not a finite number within ±10¹⁵"
        low, high = self.min if self.min is not None else -1e15, self.max if self.max is not None else 1e15
        if not low <= value <= high:
            return f"{value:g} is outside the key result's range {low:g} … {high:g} (metric min and max in the file)"
        return None


Metric = Annotated[
    CountMetric
    | SumMetric
    | RatioMetric
    | ResponseTimeMetric
    | SpeedToLeadMetric
    | HygieneScoreMetric
    | KamCriteriaMetric
    | ManualMetric,
    Field(discriminator="type"),
]


class SprintWindow(_Strict):
    sprint: str = Field(title="Sprint key", examples=["acquisition-1"])


CommitmentMetric = Annotated[
    CountMetric | SumMetric | RatioMetric | ResponseTimeMetric | SpeedToLeadMetric | HygieneScoreMetric,
    Field(discriminator="type"),
]


class Commitment(_Strict):
    """What the team commits to for the sprint, measured like a key result over the sprint's days."""

    title: str = Field(min_length=1, title="Commitment", examples=["60 first calls to new prospects"])
    metric: CommitmentMetric
    target: Number = Field(title="Committed value", examples=[60])
    direction: Direction = Field(default=Direction.higher, title="Higher or lower is better")


class Sprint(_Strict):
    """A short push (one day to several weeks) on some key results, ending with a review and a retrospective."""

    key: str = Field(pattern=KEY_PATTERN, title="Sprint key", examples=["acquisition-1"])
    name: str = Field(min_length=1, title="Sprint name", examples=["Acquisition sprint 1"])
    goal: str | None = Field(default=None, title="Sprint goal", examples=["Fill the pipeline for Q4 in the Rhine area"])
    start: Day = Field(title="First day", examples=["2026-08-03"])
    end: Day = Field(title="Last day (inclusive)", examples=["2026-08-14"])
    serves: list[str] = Field(default_factory=list, title="Key results it serves", examples=[["discovery-meetings"]])
    commitment: Commitment | None = Field(default=None, title="Commitment")

    @model_validator(mode="after")
    def _order(self) -> Sprint:
        if self.end < self.start:
            raise ValueError(f"sprint ends ({self.end}) before it starts ({self.start})")
        return self

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1


class KeyResult(_Strict):
    key: str = Field(pattern=KEY_PATTERN, title="Key", description="Stable id; renaming it starts a new KR.")
    title: str = Field(min_length=1, title="Title", examples=["40 discovery meetings with new prospects"])
    metric: Metric
    baseline: Number = Field(default=0, title="Baseline", examples=[0])
    target: Number = Field(title="Target", examples=[40])
    direction: Direction = Field(default=Direction.higher, title="Higher or lower is better")
    window: Literal["cycle"] | SprintWindow = Field(default="cycle", title="Time window")
    weight: Number = Field(default=1.0, gt=0, title="Weight in the objective")

    @model_validator(mode="after")
    def _target(self) -> KeyResult:
        if self.target == self.baseline:
            raise ValueError(f"target equals baseline ({self.target}): progress could never be measured")
        moves_up = self.target > self.baseline
        if moves_up != (self.direction == Direction.higher):
            raise ValueError(
                f"direction is {self.direction.value} but the target ({self.target}) is "
                f"{'above' if moves_up else 'below'} the baseline ({self.baseline})"
            )
        return self


class Objective(_Strict):
    key: str = Field(pattern=KEY_PATTERN, title="Key")
    title: str = Field(min_length=1, title="Objective", examples=["Our customers recommend us"])
    serves: str | None = Field(
        default=None,
        pattern=KEY_PATTERN,
        title="Company goal it serves",
        description="The key of the company goal this objective serves (sales ops enter company goals in the"
        " dashboard's company page or with POST /api/v1/goals). Applying the file checks that the goal exists. The"
        " link may change while the cycle runs (with a reason); the objective itself may not.",
        examples=["new-business-2026"],
    )
    key_results: list[KeyResult] = Field(min_length=1, max_length=5, title="Key results (1–5)")


class Scoring(_Strict):
    on_track: float = Field(
        default=0.9, gt=0, le=2, title="On track from", description="Progress ≥ this × expected-by-now is on track."
    )
    at_risk: float = Field(default=0.6, ge=0, le=2, title="At risk from", description="Below this is off track.")

    @model_validator(mode="after")
    def _order(self) -> Scoring:
        if self.at_risk > self.on_track:
            raise ValueError("at_risk must not be above on_track")
        return self


class CustomFieldSpec(_Strict):
    record: RecordType = Field(title="Record type", examples=["account"])
    type: FieldType = Field(default=FieldType.text, title="Field type", examples=["boolean"])
    salesforce: str | None = Field(
        default=None, pattern=CRM_NAME_PATTERN, title="Salesforce API name", examples=["Key_Account__c"]
    )
    hubspot: str | None = Field(
        default=None, pattern=CRM_NAME_PATTERN, title="HubSpot property", examples=["key_account"]
    )

    def name_in(self, crm: str) -> str | None:
        """The field's name in the CRM called ``crm`` (None when the file gives none)."""
        name = getattr(self, crm, None)
        return name if isinstance(name, str) else None

    @model_validator(mode="after")
    def _somewhere(self) -> CustomFieldSpec:
        if not self.salesforce and not self.hubspot:
            raise ValueError("name the field in salesforce, hubspot or both")
        return self


class Hygiene(_Strict):
    stages: list[str] = Field(
        default_factory=list,
        max_length=MAX_RULES,
        title="Open stages in pipeline order",
        description="Needed by missing_amount (from_stage).",
        examples=[["Prospecting", "Qualification"]],
    )
    rules: list[HygieneRule] = Field(default_factory=list, max_length=MAX_RULES, title="Rules")


class KeyAccounts(_Strict):
    names: list[str] | None = Field(default=None, max_length=MAX_MEMBERS, title="Account names")
    ids: list[str] | None = Field(default=None, max_length=MAX_MEMBERS, title="CRM account ids")
    where: list[Condition] | None = Field(default=None, title="Account filter")

    @model_validator(mode="after")
    def _one(self) -> KeyAccounts:
        if sum(x is not None for x in (self.names, self.ids, self.where)) != 1:
            raise ValueError("select key accounts by exactly one of names, ids or where")
        return self


class Kam(_Strict):
    accounts: KeyAccounts = Field(title="Key accounts")
    criteria: list[KamCriterion] = Field(min_length=1, max_length=MAX_RULES, title="Criteria per key account")


class MappingConfig(_Strict):
    version: Literal[1] = Field(title="File format version")
    team: Team
    cycle: Cycle
    scoring: Scoring = Field(default_factory=Scoring)
    custom_fields: dict[str, CustomFieldSpec] = Field(
        default_factory=dict, max_length=MAX_RULES, title="Custom CRM fields"
    )
    sprints: list[Sprint] = Field(default_factory=list, max_length=MAX_SPRINTS)
    objectives: list[Objective] = Field(min_length=1, max_length=5, title="Objectives (1–5)")
    hygiene: Hygiene = Field(default_factory=Hygiene)
    kam: Kam | None = None

    def custom(self) -> dict[str, CustomField]:
        return {k: CustomField(v.record, v.type, v.salesforce, v.hubspot) for k, v in self.custom_fields.items()}

    def key_results(self) -> list[tuple[Objective, KeyResult]]:
        return [(o, kr) for o in self.objectives for kr in o.key_results]

    def key_result(self, key: str) -> KeyResult:
        for _objective, kr in self.key_results():
            if kr.key == key:
                return kr
        raise KeyError(key)


Loc = tuple[str | int, ...]


NEEDS_CALENDAR = (
    "hours: business needs the team's calendar: add team.calendar with its time_zone (and working_days, opens,"
    " closes, holidays as needed)"
)


def _needs_calendar(metric: Any, config: MappingConfig) -> bool:
    return isinstance(metric, WAIT_METRICS) and metric.hours == "business" and config.team.calendar is None


def check_references(config: MappingConfig) -> list[tuple[Loc, str]]:
    """Problems across sections (keys used twice, unknown sprints/rules/fields), each with its place in the file.

    Kept out of pydantic validators so that each problem keeps its own location.
    """
    problems: list[tuple[Loc, str]] = []
    _unique(problems, ("objectives",), "objective", [o.key for o in config.objectives], "key")
    seen_kr: set[str] = set()
    for i, objective in enumerate(config.objectives):
        for j, kr in enumerate(objective.key_results):
            if kr.key in seen_kr:
                problems.append(
                    (("objectives", i, "key_results", j, "key"), f"key result key {kr.key!r} is used twice")
                )
            seen_kr.add(kr.key)
    _unique(problems, ("sprints",), "sprint", [s.key for s in config.sprints], "key")
    _unique(problems, ("hygiene", "rules"), "hygiene rule", [r.rule_key for r in config.hygiene.rules], "name")
    if config.kam:
        _unique(problems, ("kam", "criteria"), "KAM criterion", [c.key for c in config.kam.criteria], "key")
    sprints = {s.key: s for s in config.sprints}
    rule_keys = {r.rule_key for r in config.hygiene.rules}
    custom = config.custom()
    kr_keys = [kr.key for _o, kr in config.key_results()]
    for n, s in enumerate(config.sprints):
        if s.start < config.cycle.start or s.end > config.cycle.end:
            problems.append((("sprints", n), f"sprint {s.key} ({s.start} to {s.end}) lies outside the cycle"))
        problems.extend((("sprints", n, *at), p) for at, p in check_sprint(s, kr_keys, rule_keys, custom))
    problems.extend((("sprints", n), p) for n, p in sprint_overlaps(config.sprints))
    for n, s in enumerate(config.sprints):
        if s.commitment is not None and _needs_calendar(s.commitment.metric, config):
            problems.append((("sprints", n, "commitment", "metric", "hours"), NEEDS_CALENDAR))
    for i, objective in enumerate(config.objectives):
        for j, kr in enumerate(objective.key_results):
            at: Loc = ("objectives", i, "key_results", j)
            if isinstance(kr.window, SprintWindow) and kr.window.sprint not in sprints:
                problems.append(
                    ((*at, "window", "sprint"), f"sprint {kr.window.sprint!r} is not defined under sprints")
                )
            metric = kr.metric
            if _needs_calendar(metric, config):
                problems.append(((*at, "metric", "hours"), NEEDS_CALENDAR))
            if isinstance(metric, HygieneScoreMetric):
                if not config.hygiene.rules:
                    problems.append(((*at, "metric"), "hygiene_score needs rules under hygiene.rules"))
                for n, name in enumerate(metric.rules or []):
                    if name not in rule_keys:
                        problems.append(
                            ((*at, "metric", "rules", n), f"hygiene rule {name!r} is not defined ({sorted(rule_keys)})")
                        )
            if isinstance(metric, KamCriteriaMetric) and config.kam is None:
                problems.append(((*at, "metric"), "kam_criteria needs a kam section"))
            for record, conditions, sub in metric_filters(metric):
                for n, p in check_filter(conditions, record, custom):
                    problems.append(((*at, "metric", *sub, n), p))
            problems.extend(((*at, "metric", *sub), p) for sub, p in check_parts(metric, custom))
    for n, rule in enumerate(config.hygiene.rules):
        problems.extend((("hygiene", "rules", n), p) for p in rule.check(config.hygiene.stages, custom))
    if config.kam:
        if config.kam.accounts.where:
            problems.extend(
                (("kam", "accounts", "where", n), p)
                for n, p in check_filter(config.kam.accounts.where, RecordType.account, custom)
            )
        for n, criterion in enumerate(config.kam.criteria):
            problems.extend((("kam", "criteria", n), p) for p in criterion.check(custom))
    return problems


def check_sprint(
    sprint: Sprint, kr_keys: list[str], rule_keys: set[str], custom: dict[str, CustomField]
) -> list[tuple[Loc, str]]:
    """A sprint's references: the key results it serves, its commitment's filters, fields and hygiene rules."""
    problems: list[tuple[Loc, str]] = []
    for m, key in enumerate(sprint.serves):
        if key not in kr_keys:
            problems.append((("serves", m), f"key result {key!r} is not defined (key results: {', '.join(kr_keys)})"))
    if sprint.commitment is None:
        return problems
    metric = sprint.commitment.metric
    at: Loc = ("commitment", "metric")
    for record, conditions, sub in metric_filters(metric):
        problems.extend(((*at, *sub, n), p) for n, p in check_filter(conditions, record, custom))
    problems.extend(((*at, *sub), p) for sub, p in check_parts(metric, custom))
    if isinstance(metric, HygieneScoreMetric):
        if not rule_keys:
            problems.append((at, "hygiene_score needs rules under hygiene.rules"))
        for n, name in enumerate(metric.rules or []):
            if name not in rule_keys:
                problems.append(((*at, "rules", n), f"hygiene rule {name!r} is not defined ({sorted(rule_keys)})"))
    return problems


def sprint_overlaps(sprints: list[Sprint]) -> list[tuple[int, str]]:
    """A team runs one sprint at a time: each sprint that overlaps an earlier-listed one, by its index."""
    problems: list[tuple[int, str]] = []
    for n, s in enumerate(sprints):
        for other in sprints[:n]:
            if s.start <= other.end and other.start <= s.end and s.key != other.key:
                problems.append(
                    (
                        n,
                        f"sprint {s.key} ({s.start} to {s.end}) overlaps sprint {other.key} ({other.start} to"
                        f" {other.end}): a team runs one sprint at a time",
                    )
                )
    return problems


def metric_filters(metric: object) -> list[tuple[RecordType, list[Condition], Loc]]:
    """The filters a metric carries, with the record type each applies to and where it sits in the metric."""
    if isinstance(metric, CountMetric | SumMetric):
        return [(RECORD_OF[metric.of], metric.where, ("where",))]
    if isinstance(metric, RatioMetric):
        return [
            (RECORD_OF[metric.numerator.of], metric.numerator.where, ("numerator", "where")),
            (RECORD_OF[metric.denominator.of], metric.denominator.where, ("denominator", "where")),
        ]
    if isinstance(metric, ResponseTimeMetric):
        return [
            (RecordType.activity, metric.inbound, ("inbound",)),
            (RecordType.activity, metric.response, ("response",)),
        ]
    if isinstance(metric, SpeedToLeadMetric):
        return [
            (RecordType.lead, metric.leads, ("leads",)),
            (RecordType.activity, metric.response, ("response",)),
        ]
    return []


RECORD_OF = {
    Counted.activities: RecordType.activity,
    Counted.opportunities: RecordType.opportunity,
    Counted.leads: RecordType.lead,
}


def metric_parts(metric: object) -> list[tuple[Loc, CountMetric | SumMetric]]:
    """The counts and sums a metric is made of, with where each sits in the metric."""
    if isinstance(metric, RatioMetric):
        return [(("numerator",), metric.numerator), (("denominator",), metric.denominator)]
    if isinstance(metric, CountMetric | SumMetric):
        return [((), metric)]
    return []


def check_parts(metric: object, custom: dict[str, CustomField]) -> list[tuple[Loc, str]]:
    """Problems of a metric's counts and sums: a sum of a field that is no number, a date field the records lack."""
    problems: list[tuple[Loc, str]] = []
    for sub, part in metric_parts(metric):
        if isinstance(part, SumMetric):
            problems.extend(((*sub, "field"), p) for p in _numeric(part, custom))
        record = RECORD_OF[part.of]
        if part.date_field not in (None, DateField.none) and part.date_field.value not in CANONICAL[record]:
            dates = sorted(f.value for f in DateField if f == DateField.none or f.value in CANONICAL[record])
            problems.append(
                (
                    (*sub, "date_field"),
                    f"{part.of.value} have no {part.date_field.value}; date_field is one of {', '.join(dates)}",
                )
            )
    return problems


def _numeric(part: SumMetric, custom: dict[str, CustomField]) -> list[str]:
    try:
        resolved = resolve(part.field, RECORD_OF[part.of], custom)
    except UnknownField as exc:
        return [f"sum field: {exc}"]
    if resolved.via is not None:
        return [f"sum field {part.field}: sum a field of the counted record itself"]
    if resolved.type != FieldType.number and resolved.kind != "raw":
        return [f"sum field {part.field} is {resolved.type.value}, not a number"]
    return []


def _unique(problems: list[tuple[Loc, str]], at: Loc, what: str, keys: list[str], field: str) -> None:
    seen: set[str] = set()
    for n, key in enumerate(keys):
        if key in seen:
            problems.append(((*at, n, field), f"{what} key {key!r} is used twice"))
        seen.add(key)
