"""Pipeline hygiene and key accounts: the pages about the state of the team's records (open opportunities, key
accounts) rather than its key results, each record linked to the CRM. Plain functions of a session and a mapping,
like ``service.dashboard.service``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

import sqlmodel
from sqlalchemy import func, select
from sqlmodel import Session, col

from mappings.kam_criteria import ActivityOnAccount, DistinctContacts, KamCriterion, TaskCompleted
from service.compute import report as reports
from service.compute.models import HygieneFinding, HygieneSummary, KamAccountScore
from service.compute.repository import latest_assessments, table
from service.dashboard import me
from service.dashboard.links import RecordLink, RecordLinks
from service.dashboard.service import MappingRow, load_mapping, mapping_row
from service.kit.auth import Caller, Role
from service.okrs import service as okrs
from service.okrs.models import OkrMapping

FAR_FUTURE = datetime(9999, 1, 1, tzinfo=UTC)

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
    owner_id: str = ""


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
    owner: str = ""  # the filter as asked: "", "me" or a CRM user id
    owner_label: str | None = None  # whose opportunities the list shows (None: everyone's)
    shown_total: int = 0  # opportunities with problems in the list (all, or the owner's)


def hygiene_page(
    session: Session, mapping: OkrMapping, *, today: date, offset: int = 0, limit: int = 50,
    owner: str = "", caller: Caller | None = None, lang: str = "en",
) -> HygienePage:  # fmt: skip
    """Violations by rule and by owner, and the opportunities with the most problems first, each with its
    sentences and a link to the CRM record; ``owner``: only the opportunities of "me" (the caller's CRM user) or
    of one CRM user id. The score and the tables by rule and owner stay the team's."""
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
        OwnerLine(names.get(owner_id or "", owner_id or "–"), int(opportunities), int(violations), owner_id or "")
        for owner_id, opportunities, violations in session.execute(
            select(finding.c.owner_id, func.count(func.distinct(finding.c.opportunity_id)), func.count())
            .where(finding.c.mapping_id == mapping.id)
            .group_by(finding.c.owner_id)
            .order_by(func.count().desc(), finding.c.owner_id)
        ).all()
    ]
    owner_ids: set[str] | None = None
    label = None
    if owner == "me":
        owner_ids = set(me.who(session, connection.id or 0, caller).owner_ids)
        label = caller.name if caller else owner
    elif owner:
        owner_ids, label = {owner}, names.get(owner, owner)
    lines = reports.hygiene_by_opportunity(
        session, mapping, config, names=names, limit=offset + limit, owner_ids=owner_ids, lang=lang
    )[offset:]
    links = RecordLinks(session, connection)
    links.load(line.opportunity_id for line in lines)
    as_of = total.detail.get("as_of") if total else None
    with_problems = sum(o.opportunities for o in owners)
    shown_total = with_problems
    if owner_ids is not None:
        shown_total = int(
            session.execute(
                select(func.count(func.distinct(finding.c.opportunity_id))).where(
                    finding.c.mapping_id == mapping.id, finding.c.owner_id.in_(sorted(owner_ids))
                )
            ).scalar()
            or 0
        )
    return HygienePage(
        mapping_row(mapping, connection, today), total.score if total else None, opened,
        with_problems, datetime.fromisoformat(as_of) if as_of else None, rules, owners,
        [OpportunityLine(links.link(line.opportunity_id), line.owner, list(zip(line.rules, line.problems, strict=True)))
         for line in lines],
        offset, limit, owner, label, shown_total,
    )  # fmt: skip


# -- key accounts -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CriterionCell:
    status: str  # met | partly | not_met | not_assessed
    source: str  # derived | assessed
    measured: int | None
    comment: str | None
    assessed_by: str | None
    assessed_at: datetime | None = None
    evidence_url: str | None = None


@dataclass(frozen=True)
class CriterionColumn:
    key: str
    title: str
    type: str  # distinct_contacts | activity | task_completed | assessed
    needs: tuple[str, dict[str, object]] | None  # a derived criterion: what satisfies it (i18n key, parameters)


@dataclass(frozen=True)
class KamAccountLine:
    account_id: str
    record: RecordLink
    kam: str
    score: float | None  # None: no criterion covered yet
    covered: int  # criteria the score covers (not "not assessed")
    total: int
    criteria: dict[str, CriterionCell]
    mine: bool  # the signed-in person is this account's KAM
    may_assess: bool  # ... or may assess any account (sales ops)

    @property
    def anchor(self) -> str:
        return account_anchor(self.account_id)


def account_anchor(account_id: str) -> str:
    """The HTML id of an account's row (CRM ids are letters and digits; anything else becomes "-")."""
    return "account-" + "".join(c if c.isascii() and c.isalnum() else "-" for c in account_id)


@dataclass
class KamPage:
    mapping: MappingRow
    criteria: list[CriterionColumn]  # in the file's order
    accounts: list[KamAccountLine]
    only_mine: bool = False
    all_accounts: int = 0
    my_accounts: int = 0


def criterion_needs(criterion: KamCriterion) -> tuple[str, dict[str, object]] | None:
    """What satisfies a derived criterion, as an i18n key and its parameters (None for an assessed one)."""
    period: dict[str, object] = {"days": getattr(criterion, "days", None)}
    if isinstance(criterion, DistinctContacts):
        return "kam_needs_contacts", {"min": criterion.min, "days": criterion.days, "kinds": list(criterion.kinds)}
    if isinstance(criterion, ActivityOnAccount):
        return "kam_needs_activities", {"min": criterion.min_count, **period}
    if isinstance(criterion, TaskCompleted):
        return "kam_needs_task", {"subject": criterion.subject, **period}
    return None


def kam_page(
    session: Session, mapping: OkrMapping, *, today: date, caller: Caller | None = None, only_mine: bool = False
) -> KamPage:
    """Key accounts, weakest first, with each criterion's result (met / partly / not met), who assessed it and
    when, and the score. ``caller``: which accounts are theirs (their CRM e-mail is the account owner's) and which
    they may assess (their own as KAM; every one as sales ops); ``only_mine`` keeps their accounts only."""
    _mapping, connection = load_mapping(session, mapping.id or 0)
    config = okrs.current_config(session, mapping)
    names = reports.owner_names(session, connection.id or 0)
    evidence = {
        key: row.evidence_url
        for key, row in latest_assessments(session, mapping_id=mapping.id or 0, as_of=FAR_FUTURE).items()
    }
    cells: dict[str, dict[str, CriterionCell]] = {}
    for c in reports.kam_criteria(session, mapping):
        cells.setdefault(c.account_id, {})[c.criterion_key] = CriterionCell(
            c.status, c.source, c.measured, c.comment, c.assessed_by, c.assessed_at,
            evidence.get((c.account_id, c.criterion_key)) if c.source == "assessed" else None,
        )  # fmt: skip
    scores = session.exec(
        sqlmodel.select(KamAccountScore)
        .where(KamAccountScore.mapping_id == mapping.id)
        .order_by(col(KamAccountScore.score).is_(None), col(KamAccountScore.score), col(KamAccountScore.name))
    ).all()
    own = me.who(session, connection.id or 0, caller).owner_ids
    any_account = caller is not None and caller.may(Role.sales_ops)
    may_assess_own = caller is not None and caller.may(Role.kam)
    mine = [s for s in scores if s.owner_id in own]
    shown = mine if only_mine else scores
    links = RecordLinks(session, connection)
    links.load(s.account_id for s in shown)
    criteria = config.kam.criteria if config.kam else []
    return KamPage(
        mapping_row(mapping, connection, today),
        [CriterionColumn(c.key, c.title, c.type, criterion_needs(c)) for c in criteria],
        [
            KamAccountLine(s.account_id, links.link(s.account_id), names.get(s.owner_id or "", s.owner_id or "–"),
                           s.score, s.covered, s.criteria, cells.get(s.account_id, {}), s.owner_id in own,
                           any_account or (may_assess_own and s.owner_id in own))
            for s in shown
        ],
        only_mine, len(scores), len(mine),
    )  # fmt: skip
