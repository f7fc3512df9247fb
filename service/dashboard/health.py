"""Pipeline hygiene and key accounts: the pages about the state of the team's records (open opportunities, key
accounts) rather than its key results, each record linked to the CRM. Plain functions of a session and a mapping,
like ``service.dashboard.service``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

import sqlmodel
from sqlalchemy import func, select
from sqlmodel import Session, col

from service.compute import report as reports
from service.compute.models import HygieneFinding, HygieneSummary, KamAccountScore
from service.compute.repository import table
from service.dashboard.links import RecordLink, RecordLinks
from service.dashboard.service import MappingRow, load_mapping, mapping_row
from service.okrs import service as okrs
from service.okrs.models import OkrMapping

# -- pipeline hygiene -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RuleLine:
    key: str
    kind: str  # the rule's type: close_date_past, no_next_step…
    violations: int
    share: float | None  # of the open opportunities


@dataclass(frozen=True)
class OwnerLine:
    owner: str
    opportunities: int
    violations: int


@dataclass(frozen=True)
class OpportunityLine:
    record: RecordLink
    owner: str
    problems: list[tuple[str, str]]  # (rule key, sentence)


@dataclass
class HygienePage:
    mapping: MappingRow
    score: float | None
    open_opportunities: int
    with_problems: int
    as_of: datetime | None
    rules: list[RuleLine]
    owners: list[OwnerLine]
    worst: list[OpportunityLine]
    offset: int
    limit: int


def hygiene_page(
    session: Session, mapping: OkrMapping, *, today: date, offset: int = 0, limit: int = 50
) -> HygienePage:
    """Violations by rule and by owner, and the opportunities with the most problems first, each with its
    sentences and a link to the CRM record."""
    _mapping, connection = load_mapping(session, mapping.id or 0)
    config = okrs.current_config(session, mapping)
    summary = {
        s.rule_key: s
        for s in session.exec(sqlmodel.select(HygieneSummary).where(HygieneSummary.mapping_id == mapping.id)).all()
    }
    total = summary.get("*")
    opened = total.open_opportunities if total else 0
    rules = [
        RuleLine(r.rule_key, str(r.type), summary[r.rule_key].violations,
                 summary[r.rule_key].violations / opened if opened else None)
        for r in config.hygiene.rules
        if r.rule_key in summary
    ]  # fmt: skip
    names = reports.owner_names(session, connection.id or 0)
    finding = table(HygieneFinding)
    owners = [
        OwnerLine(names.get(owner_id or "", owner_id or "–"), int(opportunities), int(violations))
        for owner_id, opportunities, violations in session.execute(
            select(finding.c.owner_id, func.count(func.distinct(finding.c.opportunity_id)), func.count())
            .where(finding.c.mapping_id == mapping.id)
            .group_by(finding.c.owner_id)
            .order_by(func.count().desc(), finding.c.owner_id)
        ).all()
    ]
    lines = reports.hygiene_by_opportunity(session, mapping, config, names=names, limit=offset + limit)[offset:]
    links = RecordLinks(session, connection)
    links.load(line.opportunity_id for line in lines)
    as_of = total.detail.get("as_of") if total else None
    return HygienePage(
        mapping_row(mapping, connection, today), total.score if total else None, opened,
        sum(o.opportunities for o in owners), datetime.fromisoformat(as_of) if as_of else None, rules, owners,
        [OpportunityLine(links.link(line.opportunity_id), line.owner, list(zip(line.rules, line.problems, strict=True)))
         for line in lines],
        offset, limit,
    )  # fmt: skip


# -- key accounts -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CriterionCell:
    status: str  # met | partly | not_met | not_assessed
    source: str  # derived | assessed
    measured: int | None
    comment: str | None
    assessed_by: str | None


@dataclass(frozen=True)
class KamAccountLine:
    record: RecordLink
    kam: str
    score: float | None  # None: no criterion covered yet
    covered: int  # criteria the score covers (not "not assessed")
    total: int
    criteria: dict[str, CriterionCell]


@dataclass
class KamPage:
    mapping: MappingRow
    criteria: list[tuple[str, str]]  # (key, title) in the file's order
    accounts: list[KamAccountLine]


def kam_page(session: Session, mapping: OkrMapping, *, today: date) -> KamPage:
    """Key accounts, weakest first, with each criterion's result (met / partly / not met) and the score."""
    _mapping, connection = load_mapping(session, mapping.id or 0)
    config = okrs.current_config(session, mapping)
    names = reports.owner_names(session, connection.id or 0)
    cells: dict[str, dict[str, CriterionCell]] = {}
    for c in reports.kam_criteria(session, mapping):
        cells.setdefault(c.account_id, {})[c.criterion_key] = CriterionCell(
            c.status, c.source, c.measured, c.comment, c.assessed_by
        )
    scores = session.exec(
        sqlmodel.select(KamAccountScore)
        .where(KamAccountScore.mapping_id == mapping.id)
        .order_by(col(KamAccountScore.score).is_(None), col(KamAccountScore.score), col(KamAccountScore.name))
    ).all()
    links = RecordLinks(session, connection)
    links.load(s.account_id for s in scores)
    return KamPage(
        mapping_row(mapping, connection, today),
        [(c.key, c.title) for c in config.kam.criteria] if config.kam else [],
        [
            KamAccountLine(links.link(s.account_id), names.get(s.owner_id or "", s.owner_id or "–"), s.score,
                           s.covered, s.criteria, cells.get(s.account_id, {}))
            for s in scores
        ],
    )  # fmt: skip
