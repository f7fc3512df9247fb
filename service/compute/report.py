"""Read stored results back as the check-in sees them: objectives, key results, members' contributions, hygiene
findings with their sentences, KAM accounts, and the evidence behind one key result."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import sqlmodel
from sqlalchemy import func, select
from sqlmodel import Session, col

from mappings.calendar import business_seconds
from mappings.config import WAIT_METRICS, MappingConfig, RatioMetric, Statistic
from mappings.hygiene import Finding, describe
from service.compute.models import (
    HygieneFinding,
    HygieneSummary,
    KamAccountScore,
    KamCriterionResult,
    KeyResultContribution,
    KeyResultEvidence,
    KeyResultValue,
    ObjectiveValue,
)
from service.compute.repository import table
from service.crm.models import Owner
from service.okrs.models import OkrMapping
from service.okrs.service import current_config


@dataclass
class KeyResultLine:
    key: str
    title: str
    metric: str
    value: float | None
    shown: str
    target: str
    progress: float | None
    grade: float | None
    expected: float
    status: str
    achieved: bool
    contributions: list[tuple[str, str]]  # (member, formatted value), largest first


@dataclass
class ObjectiveLine:
    key: str
    title: str
    progress: float
    status: str
    achieved: bool
    key_results: list[KeyResultLine] = field(default_factory=list)


@dataclass
class HygieneLine:
    opportunity_id: str
    owner: str
    problems: list[str]
    rules: list[str] = field(default_factory=list)  # the rule behind each problem, in the same order


@dataclass
class CheckIn:
    team: str
    cycle: str
    start: date
    end: date
    as_of: datetime | None
    objectives: list[ObjectiveLine]
    hygiene_score: float | None
    hygiene_open: int
    hygiene_rules: list[tuple[str, int]]
    worst_opportunities: list[HygieneLine]
    kam_accounts: list[tuple[str, str, float | None]]  # name, KAM, score (None: nothing covered yet)


def owner_names(session: Session, connection_id: int) -> dict[str, str]:
    owner = table(Owner)
    rows = session.execute(
        select(owner.c.external_id, owner.c.name).where(owner.c.connection_id == connection_id)
    ).all()
    return {owner_id: name or owner_id for owner_id, name in rows}


CURRENCY_SYMBOLS = {"EUR": "€", "USD": "$", "GBP": "£", "JPY": "¥", "CNY": "¥"}  # other codes lead: "CHF 1.2M"


def _compact(value: float) -> str:
    """16,355,900 → 16.4M, 401,500 → 401.5k, 6,000,000 → 6M, 950 → 950."""
    for size, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= size * (10 if suffix == "k" else 1):
            return f"{value / size:,.1f}".removesuffix(".0") + suffix
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:g}"


def format_value(metric: Any, value: float | None) -> str:
    if value is None:
        return "–"
    if isinstance(metric, RatioMetric) or metric.type in ("hygiene_score", "kam_criteria"):
        return f"{value:.0%}"
    if isinstance(metric, WAIT_METRICS):
        return f"{value:.0%}" if metric.statistic == Statistic.share_within else f"{value:.1f} h"
    unit = getattr(metric, "unit", None) if metric.type == "sum" else None
    if unit and _currency(metric):  # money: compact
        symbol = CURRENCY_SYMBOLS.get(unit)
        shown = _compact(abs(value))
        return ("−" if value < 0 else "") + (f"{symbol}{shown}" if symbol else f"{unit} {shown}")
    shown = f"{value:,.0f}" if abs(value) >= 100 else f"{value:g}"
    return f"{shown} {unit}" if unit else shown


def _currency(metric: Any) -> str | None:
    """A sum's currency code (three capital letters: EUR, USD, CHF), None for any other unit or none."""
    unit = getattr(metric, "unit", None) if getattr(metric, "type", None) == "sum" else None
    return unit if unit and len(unit) == 3 and unit.isascii() and unit.isalpha() and unit.isupper() else None


def format_exact(metric: Any, value: float | None) -> str | None:
    """The exact figure behind a compact money value (16,355,900 EUR), None where the value is shown exactly."""
    currency = _currency(metric)
    if value is None or currency is None or format_value(metric, value).endswith((f"{value:,.0f}", f"{value:g}")):
        return None
    return f"{value:,.2f}".removesuffix(".00") + f" {currency}"


def is_share(metric: Any) -> bool:
    """A key result whose values are shares (shown as %): its changes are percentage points."""
    return format_value(metric, 0.5).endswith("%")


def format_change(metric: Any, value: float | None) -> str:
    """A change of a key result's value with its sign: a share changes by percentage points ("+6 pp", never
    "+6 %", which reads as relative), anything else in the key result's own format ("+42", "−1.5 h")."""
    if value is None:
        return "–"
    sign = "+" if value >= 0 else "−"
    if is_share(metric):
        return f"{sign}{abs(value) * 100:.0f} pp"
    return sign + format_value(metric, abs(value))


def check_in(session: Session, mapping: OkrMapping, *, worst: int = 10, lang: str = "en") -> CheckIn:
    config = current_config(session, mapping)
    names = owner_names(session, mapping.connection_id)
    values = {
        v.kr_key: v
        for v in session.exec(sqlmodel.select(KeyResultValue).where(KeyResultValue.mapping_id == mapping.id)).all()
    }
    contributions: dict[str, list[tuple[str, float]]] = {}
    for c in session.exec(
        sqlmodel.select(KeyResultContribution).where(KeyResultContribution.mapping_id == mapping.id)
    ).all():
        contributions.setdefault(c.kr_key, []).append((names.get(c.owner_id, c.owner_id), c.value))
    lower_first = {kr.key for _o, kr in config.key_results() if kr.direction.value == "lower"}
    objectives_stored = {
        o.objective_key: o
        for o in session.exec(sqlmodel.select(ObjectiveValue).where(ObjectiveValue.mapping_id == mapping.id)).all()
    }
    objectives = []
    as_of = None
    for objective in config.objectives:
        stored = objectives_stored.get(objective.key)
        line = ObjectiveLine(
            objective.key,
            objective.title,
            stored.progress if stored else 0.0,
            stored.status if stored else "not computed",
            bool(stored and stored.achieved),
        )
        for kr in objective.key_results:
            v = values.get(kr.key)
            as_of = as_of or (v.as_of if v else None)
            line.key_results.append(
                KeyResultLine(
                    kr.key,
                    kr.title,
                    kr.metric.type,
                    v.value if v else None,
                    format_value(kr.metric, v.value if v else None),
                    format_value(kr.metric, kr.target),
                    v.progress if v else None,
                    v.grade if v else None,
                    v.expected if v else 0.0,
                    v.status if v else "not computed",
                    bool(v and v.achieved),
                    [
                        (name, format_value(kr.metric, value))
                        for name, value in sorted(
                            contributions.get(kr.key, []), key=lambda c: c[1] if kr.key in lower_first else -c[1]
                        )
                    ],
                )
            )
        objectives.append(line)
    summary = {
        s.rule_key: s
        for s in session.exec(sqlmodel.select(HygieneSummary).where(HygieneSummary.mapping_id == mapping.id)).all()
    }
    total = summary.get("*")
    lines = hygiene_by_opportunity(session, mapping, config, names=names, limit=worst, lang=lang)
    kam = [
        (row.name or row.account_id, names.get(row.owner_id or "", row.owner_id or ""), row.score)
        for row in session.exec(
            sqlmodel.select(KamAccountScore)
            .where(KamAccountScore.mapping_id == mapping.id)
            .order_by(col(KamAccountScore.score).is_(None), col(KamAccountScore.score), col(KamAccountScore.name))
        ).all()
    ]
    return CheckIn(
        mapping.team,
        mapping.cycle,
        mapping.cycle_start,
        mapping.cycle_end,
        as_of,
        objectives,
        total.score if total else None,
        total.open_opportunities if total else 0,
        [(r.rule_key, summary[r.rule_key].violations) for r in config.hygiene.rules if r.rule_key in summary],
        lines,
        kam,
    )


def hygiene_by_opportunity(
    session: Session,
    mapping: OkrMapping,
    config: MappingConfig,
    *,
    names: dict[str, str] | None = None,
    limit: int | None = None,
    opportunity_id: str | None = None,
    owner_ids: Collection[str] | None = None,
    lang: str = "en",
) -> list[HygieneLine]:
    """Open opportunities with their violated rules as sentences (in ``lang``), most problems first;
    ``owner_ids``: only the opportunities these CRM users own."""
    names = names or {}
    total = session.get(HygieneSummary, (mapping.id, "*"))
    as_of = datetime.fromisoformat(total.detail["as_of"]) if total and total.detail.get("as_of") else None
    medians = total.detail.get("stage_medians", {}) if total else {}
    rules = {r.rule_key: r for r in config.hygiene.rules}
    finding = HygieneFinding
    query = sqlmodel.select(finding).where(finding.mapping_id == mapping.id)
    if opportunity_id is not None:
        query = query.where(finding.opportunity_id == opportunity_id)
    else:
        counts = (
            select(col(finding.opportunity_id), func.count().label("n"))
            .where(col(finding.mapping_id) == mapping.id)
            .group_by(finding.opportunity_id)
            .order_by(func.count().desc(), finding.opportunity_id)
        )
        if owner_ids is not None:
            counts = counts.where(col(finding.owner_id).in_(list(owner_ids)))
        if limit is not None:
            counts = counts.limit(limit)
        chosen = [row[0] for row in session.execute(counts).all()]
        query = query.where(col(finding.opportunity_id).in_(chosen))
    by_opp: dict[str, HygieneLine] = {}
    for row in session.exec(query).all():
        rule = rules.get(row.rule_key)
        if rule is None or as_of is None:
            continue
        line = by_opp.setdefault(
            row.opportunity_id, HygieneLine(row.opportunity_id, names.get(row.owner_id or "", row.owner_id or ""), [])
        )
        line.rules.append(row.rule_key)
        line.problems.append(
            describe(
                rule,
                Finding(
                    row.opportunity_id, row.rule_key, row.detail_number, row.detail_date, row.detail_at, row.detail_text
                ),
                as_of=as_of,
                stage_medians=medians,
                lang=lang,
            )
        )
    for line in by_opp.values():
        _one_per_cause(line, rules)
    return sorted(by_opp.values(), key=lambda line: (-len(line.problems), line.opportunity_id))


def _one_per_cause(line: HygieneLine, rules: dict[str, Any]) -> None:
    """Problems in the file's rule order, and two rules of one type that both flag an opportunity (stuck for 60
    days, and stuck for twice the team's median) as one problem with both reasons: "stuck_in_stage,
    stuck-vs-team" and their sentences joined."""
    merged: dict[str, int] = {}
    keys: list[str] = []
    sentences: list[str] = []
    order = {key: n for n, key in enumerate(rules)}  # the file's order, whatever order the rows came in
    pairs = sorted(zip(line.rules, line.problems, strict=True), key=lambda pair: order[pair[0]])
    for key, sentence in pairs:
        kind = str(rules[key].type)
        if kind in merged:
            at = merged[kind]
            keys[at], sentences[at] = f"{keys[at]}, {key}", f"{sentences[at]}; {sentence}"
        else:
            merged[kind] = len(keys)
            keys.append(key)
            sentences.append(sentence)
    line.rules, line.problems = keys, sentences


def business_wait(
    config: MappingConfig, metric: Any, occurred_at: datetime | None, seconds: float | None
) -> float | None:
    """An answered inquiry's wait in the team's open hours (``team.calendar``), for a key result measured in business
    hours; None for any other key result, and for an inquiry not answered yet. ``seconds`` is the wall-clock wait the
    evidence row holds; the response came at ``occurred_at + seconds``."""
    calendar = config.team.calendar
    if not isinstance(metric, WAIT_METRICS) or metric.hours != "business" or calendar is None:
        return None
    if occurred_at is None or seconds is None:
        return None
    at = occurred_at if occurred_at.tzinfo else occurred_at.replace(tzinfo=UTC)
    return business_seconds(calendar, at, at + timedelta(seconds=seconds))


def evidence(
    session: Session,
    mapping: OkrMapping,
    kr_key: str,
    *,
    limit: int = 50,
    offset: int = 0,
    owner_ids: Collection[str] | None = None,
) -> tuple[int, list[KeyResultEvidence]]:
    """(total, page) of the records behind a key result, newest first; ``owner_ids``: only these CRM users'.

    The page's row ids are found first, in the index that holds the rows in this order (ix_evidence_page, or
    ix_evidence_owner_page for owners; the id is in both), and only those rows are read: reading every row before
    the offset took PostgreSQL 1.3 s (a sort of 728,317 rows) for the last page of the largest key result at a
    million activities."""
    where = [col(KeyResultEvidence.mapping_id) == mapping.id, col(KeyResultEvidence.kr_key) == kr_key]
    if owner_ids is not None:
        where.append(col(KeyResultEvidence.owner_id).in_(list(owner_ids)))
    order = (KeyResultEvidence.part, col(KeyResultEvidence.occurred_at).desc(), KeyResultEvidence.record_id)
    total = session.execute(select(func.count()).select_from(KeyResultEvidence).where(*where)).scalar()
    ids = select(col(KeyResultEvidence.id)).where(*where).order_by(*order).offset(offset).limit(limit)
    page = session.exec(
        sqlmodel.select(KeyResultEvidence)
        .where(col(KeyResultEvidence.id).in_(ids.scalar_subquery()))
        .order_by(*order, col(KeyResultEvidence.id))
    ).all()
    return int(total or 0), list(page)


def kam_criteria(session: Session, mapping: OkrMapping) -> list[KamCriterionResult]:
    return list(
        session.exec(sqlmodel.select(KamCriterionResult).where(KamCriterionResult.mapping_id == mapping.id)).all()
    )
