"""Pipeline hygiene: a query per rule for the team's open opportunities that violate it, and the sentence a rep reads.

Violation rows carry the facts the sentence needs (a date, a number, a stage) rather than the sentence itself, so
the text can be rendered in the reader's language and always with the computation's own 'now'.
Columns: ``opportunity_id``, ``owner_id``, ``rule_key``, ``detail_number``, ``detail_date``, ``detail_at``,
``detail_text``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Select, case, false, func, literal, or_, select
from sqlalchemy.sql.elements import ColumnElement

from mappings.fields import CustomField, RecordType
from mappings.hygiene_rules import (
    CloseDatePast,
    CloseDatePushed,
    CustomRule,
    MissingAmount,
    NoActivity,
    NoNextStep,
    ProbabilityMismatch,
    SingleThreaded,
    StuckInStage,
)
from mappings.query import FilterCompiler
from mappings.sql import Scope, Tables, epoch_seconds, typed_null


def open_opportunity_clauses(opp: Any, scope: Scope, ids: Sequence[str] | None = None) -> list[ColumnElement[bool]]:
    """The team's open opportunities (optionally only some of them, for an incremental recheck)."""
    clauses = [
        opp.c.connection_id == scope.connection_id,
        opp.c.is_deleted == false(),
        opp.c.is_closed == false(),
        opp.c.owner_id.in_(scope.owner_ids),
    ]
    if ids is not None:
        clauses.append(opp.c.external_id.in_(list(ids)))
    return clauses


def days_in_stage(opp: Any, scope: Scope) -> ColumnElement[float]:
    return (literal(scope.as_of.timestamp()) - epoch_seconds(opp.c.stage_entered_at)) / 86400.0


def stage_ages(tables: Tables, scope: Scope) -> Select[Any]:
    """(stage, days in stage) of every open team opportunity: the service takes the median per stage."""
    opp = tables.opportunity
    return select(opp.c.stage, days_in_stage(opp, scope).label("days")).where(
        *open_opportunity_clauses(opp, scope), opp.c.stage_entered_at.is_not(None)
    )


def violations(
    rule: Any,
    *,
    tables: Tables,
    scope: Scope,
    custom: dict[str, CustomField],
    stages: list[str],
    stage_medians: dict[str, float] | None = None,
    ids: Sequence[str] | None = None,
) -> Select[Any]:
    """The open opportunities violating ``rule``; ``stage_medians`` (days) is needed by stuck_in_stage×median."""
    opp = tables.opportunity.alias("opp")
    today = scope.as_of.date()
    number: Any = typed_null("number")
    on_date: Any = typed_null("date")
    at: Any = typed_null("datetime")
    text: Any = typed_null("text")
    if isinstance(rule, CloseDatePast):
        test: Any = opp.c.close_date < today - timedelta(days=rule.grace_days)
        on_date = opp.c.close_date
    elif isinstance(rule, NoNextStep):
        test = or_(opp.c.next_step.is_(None), func.trim(opp.c.next_step) == "")
    elif isinstance(rule, NoActivity):
        cutoff = today - timedelta(days=rule.days)
        act = tables.activity
        latest = (
            select(func.max(act.c.occurred_at))
            .where(
                act.c.connection_id == opp.c.connection_id,
                act.c.opportunity_id == opp.c.external_id,
                act.c.is_deleted == false(),
                act.c.occurred_at <= scope.as_of,
            )
            .correlate_except(act)
            .scalar_subquery()
        )
        midnight = datetime.combine(cutoff, datetime.min.time(), tzinfo=UTC)
        test = (func.coalesce(latest < midnight, True)) & (
            or_(opp.c.last_activity_date.is_(None), opp.c.last_activity_date < cutoff)
        )
        at, on_date = latest, opp.c.last_activity_date
    elif isinstance(rule, StuckInStage):
        age = days_in_stage(opp, scope)
        text, number = opp.c.stage, age
        if rule.days is not None:
            test = opp.c.stage_entered_at < scope.as_of - timedelta(days=rule.days)
        else:
            assert rule.median_factor is not None
            limits = {s: m * rule.median_factor for s, m in (stage_medians or {}).items()}
            if not limits:
                test = false()
            else:
                test = age > case(*((opp.c.stage == s, literal(v)) for s, v in limits.items()), else_=None)
    elif isinstance(rule, CloseDatePushed):
        test = opp.c.close_date_pushes >= rule.times
        number = opp.c.close_date_pushes
    elif isinstance(rule, MissingAmount):
        test = or_(opp.c.amount.is_(None), opp.c.amount == 0)
        if rule.from_stage is not None:
            test = test & opp.c.stage.in_(stages[stages.index(rule.from_stage) :])
        text = opp.c.stage
    elif isinstance(rule, SingleThreaded):
        link = tables.opportunity_contact
        contacts = (
            select(func.count(func.distinct(link.c.contact_id)))
            .where(
                link.c.connection_id == opp.c.connection_id,
                link.c.opportunity_id == opp.c.external_id,
                link.c.is_deleted == false(),
            )
            .correlate_except(link)
            .scalar_subquery()
        )
        test = contacts < rule.min_contacts
        number = contacts
    elif isinstance(rule, ProbabilityMismatch):
        expected = case(*((opp.c.stage == s, literal(p)) for s, p in rule.expected.items()), else_=None)
        test = opp.c.stage.in_(list(rule.expected)) & or_(
            opp.c.probability.is_(None), func.abs(opp.c.probability - expected) > rule.tolerance
        )
        number, text = opp.c.probability, opp.c.stage
    elif isinstance(rule, CustomRule):
        compiler = FilterCompiler(tables=tables, scope=scope, custom=custom)
        test = True
        for clause in compiler.where(rule.where, opp, RecordType.opportunity):
            test = clause if test is True else test & clause
    else:  # pragma: no cover - the config's discriminated union lists every rule
        raise TypeError(f"unknown hygiene rule {rule!r}")
    return select(
        opp.c.external_id.label("opportunity_id"),
        opp.c.owner_id.label("owner_id"),
        literal(rule.rule_key).label("rule_key"),
        number.label("detail_number"),
        on_date.label("detail_date"),
        at.label("detail_at"),
        text.label("detail_text"),
    ).where(*open_opportunity_clauses(opp, scope, ids), test)


@dataclass(frozen=True)
class Finding:
    opportunity_id: str
    rule_key: str
    detail_number: float | None = None
    detail_date: date | None = None
    detail_at: datetime | None = None
    detail_text: str | None = None


def median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def beyond(value: float, limit: float) -> tuple[str, str]:
    """``value`` and ``limit`` written with the fewest decimals (0 to 3) that still show ``value`` beyond ``limit``
    (so a sentence never reads "83 days, more than 83 days"); with 3 decimals when even those are equal. The value
    is cut, never rounded up (75.6 days in a stage are "75 days", as a spreadsheet's whole days count them); the
    limit is rounded."""
    for decimals in range(4):
        scale = 10**decimals
        shown, bound = math.floor(value * scale) / scale, round(limit, decimals)
        if shown > bound or decimals == 3:
            return f"{shown:.{decimals}f}", f"{bound:.{decimals}f}"
    raise AssertionError("unreachable")


def describe(rule: Any, finding: Finding, *, as_of: datetime, stage_medians: dict[str, float] | None = None) -> str:
    """The sentence a rep reads on the opportunity, e.g. "Close date 2026-10-02 is 23 days in the past"."""
    today = as_of.date()
    if isinstance(rule, CloseDatePast) and finding.detail_date:
        days = (today - finding.detail_date).days
        return f"Close date {finding.detail_date.isoformat()} is {days} day{'s' * (days != 1)} in the past"
    if isinstance(rule, NoNextStep):
        return "No next step"
    if isinstance(rule, NoActivity):
        last = max(
            (d for d in (finding.detail_at.date() if finding.detail_at else None, finding.detail_date) if d),
            default=None,
        )
        if last is None:
            return "No activity logged"
        return f"No activity for {(today - last).days} days (last: {last.isoformat()}; limit {rule.days} days)"
    if isinstance(rule, StuckInStage):
        age = float(finding.detail_number or 0)
        if rule.days is not None:
            shown, limit = beyond(age, rule.days)
            return f"In stage {finding.detail_text} for {shown} days (limit {limit} days)"
        assert rule.median_factor is not None
        team = (stage_medians or {}).get(finding.detail_text or "", 0.0)
        shown, limit = beyond(age, rule.median_factor * team)
        decimals = len(shown.partition(".")[2])
        return (
            f"In stage {finding.detail_text} for {shown} days, more than {limit} days"
            f" ({rule.median_factor:g}× the team's median of {team:.{decimals + 1}f} days)"
        )
    if isinstance(rule, CloseDatePushed):
        pushes = int(finding.detail_number or 0)
        return f"Close date pushed {pushes} time{'s' * (pushes != 1)} (flagged from {rule.times})"
    if isinstance(rule, MissingAmount):
        return f"No amount in stage {finding.detail_text}"
    if isinstance(rule, SingleThreaded):
        count = int(finding.detail_number or 0)
        return f"Single-threaded: {count} contact{'s' * (count != 1)} (at least {rule.min_contacts} expected)"
    if isinstance(rule, ProbabilityMismatch):
        expected = rule.expected.get(finding.detail_text or "")
        shown = "no probability" if finding.detail_number is None else f"Probability {finding.detail_number:g}%"
        allowed = f" ± {rule.tolerance:g} points" if rule.tolerance else ""
        return f"{shown} does not match stage {finding.detail_text} ({expected:g}%{allowed} expected)"
    if isinstance(rule, CustomRule):
        return rule.message
    return rule.rule_key
