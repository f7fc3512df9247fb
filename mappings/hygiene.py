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


def day_start(scope: Scope) -> datetime:
    """What hygiene counts days up to: the start (00:00 UTC) of the computation's day, as a spreadsheet's
    ``=TODAY() - entered`` does. The same all day, so an opportunity's days in stage, the stage medians and the
    findings do not move between the day's computations (nor the sentences the CRM shows)."""
    return datetime.combine(scope.as_of.date(), datetime.min.time(), tzinfo=UTC)


def days_in_stage(opp: Any, scope: Scope) -> ColumnElement[float]:
    """Days from the stage's entry to the start of the computation's day (``day_start``)."""
    return (literal(day_start(scope).timestamp()) - epoch_seconds(opp.c.stage_entered_at)) / 86400.0


def _aged(opp: Any, scope: Scope) -> list[ColumnElement[bool]]:
    """The open team opportunities that have an age in their stage (an entry time)."""
    return [*open_opportunity_clauses(opp, scope), opp.c.stage_entered_at.is_not(None)]


def stage_ages(tables: Tables, scope: Scope) -> Select[Any]:
    """(stage, days in stage) of every open team opportunity: a stage's median is ``median`` of its ages."""
    opp = tables.opportunity
    return select(opp.c.stage, days_in_stage(opp, scope).label("days")).where(*_aged(opp, scope))


def stage_counts(tables: Tables, scope: Scope) -> Select[Any]:
    """(stage, how many) of the open team opportunities ``stage_ages`` gives an age; a stage without a name and one
    named "" are one stage, ""."""
    opp = tables.opportunity
    stage = func.coalesce(opp.c.stage, "")
    count: Any = func.count()
    return select(stage, count).where(*_aged(opp, scope)).group_by(stage)


def stage_middle(tables: Tables, scope: Scope, stage: str, count: int) -> Select[Any]:
    """The middle days in stage of a stage's ``count`` ages (``stage_ages``; stage "" also holds those without a
    stage) in ascending order: the one at position (count − 1) / 2 when count is odd, the two at count / 2 − 1 and
    count / 2 when even. The stage's median is ``median`` of them, which equals ``median`` of all its ages.

    Ages ascending are entry times descending (an opportunity that entered later has spent fewer days in it; equal
    entry times have equal ages), so the middle is an index walk of ix_opportunity_stage_open to it: fetching all
    60,000 open opportunities' ages to take their medians took a fifth of an incremental run at a million
    activities."""
    opp = tables.opportunity
    return (
        select(days_in_stage(opp, scope))
        .where(*_aged(opp, scope), opp.c.stage == stage if stage else or_(opp.c.stage.is_(None), opp.c.stage == ""))
        .order_by(opp.c.stage_entered_at.desc())
        .limit(2 - count % 2)
        .offset((count - 1) // 2)
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
            test = opp.c.stage_entered_at < day_start(scope) - timedelta(days=rule.days)
        else:
            assert rule.median_factor is not None
            limits = {s: m * rule.median_factor for s, m in (stage_medians or {}).items()}
            if not limits:
                test = false()
            else:
                # the IN names the stages that have a limit (the CASE gives the others none): an index on the
                # stage can then serve a recheck of the few stages whose median moved
                test = opp.c.stage.in_(list(limits)) & (
                    age > case(*((opp.c.stage == s, literal(v)) for s, v in limits.items()), else_=None)
                )
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


SENTENCES: dict[str, dict[str, str]] = {
    "en": {
        "close_date_past": "Close date {date} is {days} day{s} in the past",
        "no_next_step": "No next step",
        "no_activity_ever": "No activity logged",
        "no_activity": "No activity for {days} days (last: {last}; limit {limit} days)",
        "stuck_days": "In stage {stage} for {shown} days (limit {limit} days)",
        "stuck_median": "In stage {stage} for {shown} days, more than {limit} days ({factor}× the team's median of"
        " {median} days)",
        "close_date_pushed": "Close date pushed {pushes} time{s} (flagged from {times})",
        "missing_amount": "No amount in stage {stage}",
        "single_threaded": "Single-threaded: {count} contact{s} (at least {min} expected)",
        "probability_none": "no probability",
        "probability": "Probability {value}%",
        "probability_mismatch": "{shown} does not match stage {stage} ({expected}%{allowed} expected)",
        "tolerance": " ± {points} points",
    },
    "de": {
        "close_date_past": "Abschlussdatum {date} liegt {days} Tag{s} zurück",
        "no_next_step": "Kein nächster Schritt",
        "no_activity_ever": "Keine Aktivität erfasst",
        "no_activity": "Seit {days} Tagen keine Aktivität (zuletzt: {last}; Grenze {limit} Tage)",
        "stuck_days": "Seit {shown} Tagen in der Phase {stage} (Grenze {limit} Tage)",
        "stuck_median": "Seit {shown} Tagen in der Phase {stage}, mehr als {limit} Tage ({factor}× der Median des"
        " Teams von {median} Tagen)",
        "close_date_pushed": "Abschlussdatum {pushes}-mal verschoben (markiert ab {times})",
        "missing_amount": "Kein Betrag in der Phase {stage}",
        "single_threaded": "Nur {count} Kontakt{s} (mindestens {min} erwartet)",
        "probability_none": "Keine Wahrscheinlichkeit",
        "probability": "Wahrscheinlichkeit {value} %",
        "probability_mismatch": "{shown} passt nicht zur Phase {stage} ({expected} %{allowed} erwartet)",
        "tolerance": " ± {points} Punkte",
    },
}
PLURAL = {"en": {True: "s", False: ""}, "de": {True: "e", False: ""}}


def describe(
    rule: Any,
    finding: Finding,
    *,
    as_of: datetime,
    stage_medians: dict[str, float] | None = None,
    lang: str = "en",
) -> str:
    """The sentence a rep reads on the opportunity, e.g. "Close date 2026-10-02 is 23 days in the past", in
    English or German (``lang``); a custom rule's message is the file's own text."""
    words = SENTENCES.get(lang, SENTENCES["en"])
    plural = PLURAL.get(lang, PLURAL["en"])
    today = as_of.date()
    if isinstance(rule, CloseDatePast) and finding.detail_date:
        days = (today - finding.detail_date).days
        return words["close_date_past"].format(date=finding.detail_date.isoformat(), days=days, s=plural[days != 1])
    if isinstance(rule, NoNextStep):
        return words["no_next_step"]
    if isinstance(rule, NoActivity):
        last = max(
            (d for d in (finding.detail_at.date() if finding.detail_at else None, finding.detail_date) if d),
            default=None,
        )
        if last is None:
            return words["no_activity_ever"]
        return words["no_activity"].format(days=(today - last).days, last=last.isoformat(), limit=rule.days)
    if isinstance(rule, StuckInStage):
        age = float(finding.detail_number or 0)
        if rule.days is not None:
            shown, limit = beyond(age, rule.days)
            return words["stuck_days"].format(stage=finding.detail_text, shown=shown, limit=limit)
        assert rule.median_factor is not None
        team = (stage_medians or {}).get(finding.detail_text or "", 0.0)
        shown, limit = beyond(age, rule.median_factor * team)
        decimals = len(shown.partition(".")[2])
        return words["stuck_median"].format(
            stage=finding.detail_text, shown=shown, limit=limit, factor=f"{rule.median_factor:g}",
            median=f"{team:.{decimals + 1}f}",
        )  # fmt: skip
    if isinstance(rule, CloseDatePushed):
        pushes = int(finding.detail_number or 0)
        return words["close_date_pushed"].format(pushes=pushes, s=plural[pushes != 1], times=rule.times)
    if isinstance(rule, MissingAmount):
        return words["missing_amount"].format(stage=finding.detail_text)
    if isinstance(rule, SingleThreaded):
        count = int(finding.detail_number or 0)
        return words["single_threaded"].format(count=count, s=plural[count != 1], min=rule.min_contacts)
    if isinstance(rule, ProbabilityMismatch):
        expected = rule.expected.get(finding.detail_text or "")
        shown = (
            words["probability_none"]
            if finding.detail_number is None
            else words["probability"].format(value=f"{finding.detail_number:g}")
        )
        allowed = words["tolerance"].format(points=f"{rule.tolerance:g}") if rule.tolerance else ""
        return words["probability_mismatch"].format(
            shown=shown, stage=finding.detail_text, expected=f"{expected:g}", allowed=allowed
        )
    if isinstance(rule, CustomRule):
        return rule.message
    return rule.rule_key
