""" "You" in the dashboard: who the signed-in person is in the CRM, and their own work on one team's cycle.

A token may carry the person's CRM e-mail (``okrsync token create --role rep --email …``). The CRM users (owners)
of the mapping's connection with that e-mail, compared case-insensitively, are "you": your name is marked in the
contributions and evidence, your key accounts and opportunities can be filtered, and the overview opens with
"my work": your opportunities with hygiene problems, your share of each key result, and what you logged since the
last working day (by the team's calendar, else Monday to Friday).

A token without an e-mail, or one no CRM user has, sees the team's pages as before plus a sentence saying what to
ask sales ops for; nothing is guessed from the token's name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time

import sqlmodel
from sqlalchemy import func, select
from sqlmodel import Session, col

from mappings.calendar import previous_working_day
from mappings.config import MappingConfig
from service.compute import report as reports
from service.compute.models import HygieneFinding, KeyResultContribution, KeyResultEvidence, KeyResultValue
from service.compute.repository import table
from service.crm.models import Activity, CrmConnection, Owner
from service.dashboard.links import RecordLink, RecordLinks
from service.kit.auth import Caller
from service.okrs import service as okrs
from service.okrs.models import OkrMapping

MY_PROBLEMS = 5  # opportunities with problems shown on the overview (the hygiene page has them all)


@dataclass(frozen=True)
class Me:
    """The signed-in person as the CRM knows them on one connection."""

    email: str | None
    owner_ids: frozenset[str] = frozenset()
    names: frozenset[str] = frozenset()

    @property
    def known(self) -> bool:
        return bool(self.owner_ids)

    @property
    def problem(self) -> str | None:
        """Why "you" cannot be shown (an i18n key), or None."""
        if not self.email:
            return "me_no_email"
        return None if self.owner_ids else "me_unknown_email"


NOBODY = Me(None)


def who(session: Session, connection_id: int, caller: Caller | None) -> Me:
    if caller is None or not caller.email:
        return NOBODY
    email = caller.email.strip().lower()
    rows = session.exec(
        sqlmodel.select(Owner.external_id, Owner.name).where(
            Owner.connection_id == connection_id, func.lower(Owner.email) == email
        )
    ).all()
    return Me(caller.email, frozenset(r[0] for r in rows), frozenset(r[1] or r[0] for r in rows))


def hygiene_source(session: Session, mapping: OkrMapping, config: MappingConfig, today: date) -> OkrMapping | None:
    """The mapping whose hygiene findings speak for this team's pipeline: this one when it has rules, else the
    applied mapping on the same CRM connection with hygiene rules whose cycle runs today (else the latest one)."""
    if config.hygiene.rules:
        return mapping
    candidates = session.exec(
        sqlmodel.select(OkrMapping)
        .where(
            OkrMapping.connection_id == mapping.connection_id,
            OkrMapping.current_version > 0,
            OkrMapping.id != mapping.id,
        )
        .order_by(col(OkrMapping.cycle_start).desc(), col(OkrMapping.id))
    ).all()
    with_rules = [m for m in candidates if okrs.current_config(session, m).hygiene.rules]
    running = [m for m in with_rules if m.cycle_start <= today <= m.cycle_end]
    chosen = running or with_rules
    return chosen[0] if chosen else None


@dataclass(frozen=True)
class MyShare:
    kr_key: str
    title: str
    shown_mine: str
    share: float | None  # of the team's value (None: the team has none, or the metric is not a sum of parts)
    counted_since: int  # records of mine that counted for it since the last working day


@dataclass(frozen=True)
class MyProblem:
    record: RecordLink
    problems: list[tuple[str, str]]  # (rule key, sentence)


@dataclass
class MyWork:
    me: Me
    since: date
    logged: list[tuple[str, int]] = field(default_factory=list)  # (activity kind, count) since the last working day
    shares: list[MyShare] = field(default_factory=list)
    problems: list[MyProblem] = field(default_factory=list)
    problem_total: int = 0  # my opportunities with at least one problem
    hygiene_mapping_id: int | None = None


ADDITIVE = ("count", "sum")  # metrics whose members' contributions add up to the team's value


def my_work(session: Session, mapping: OkrMapping, me: Me, *, today: date, lang: str = "en") -> MyWork:
    """The signed-in person's own part of the cycle (see the module's doc). A handful of queries, each over an
    index: contributions and evidence of one mapping, activities of a few owners since a day, findings of one."""
    connection = session.get(CrmConnection, mapping.connection_id)
    assert connection is not None
    config = okrs.current_config(session, mapping)
    since = previous_working_day(config.team.calendar, today)
    work = MyWork(me, since)
    if not me.known:
        return work
    mine = sorted(me.owner_ids)
    start = datetime.combine(since, time(0), tzinfo=UTC)
    activity = table(Activity)
    work.logged = [
        (str(kind), int(n))
        for kind, n in session.execute(
            select(activity.c.activity_kind, func.count())
            .where(
                activity.c.connection_id == connection.id,
                activity.c.owner_id.in_(mine),
                activity.c.occurred_at >= start,
                activity.c.is_deleted.is_(False),
            )
            .group_by(activity.c.activity_kind)
            .order_by(func.count().desc(), activity.c.activity_kind)
        ).all()
    ]
    contribution = table(KeyResultContribution)
    by_kr: dict[str, dict[str, float]] = {}
    for kr_key, owner_id, value in session.execute(
        select(contribution.c.kr_key, contribution.c.owner_id, contribution.c.value).where(
            contribution.c.mapping_id == mapping.id
        )
    ).all():
        by_kr.setdefault(kr_key, {})[owner_id] = value
    evidence = table(KeyResultEvidence)
    counted = dict(
        session.execute(
            select(evidence.c.kr_key, func.count())
            .where(evidence.c.mapping_id == mapping.id, evidence.c.owner_id.in_(mine), evidence.c.occurred_at >= start)
            .group_by(evidence.c.kr_key)
        ).all()
    )
    values = {v.kr_key: v for v in session.exec(sqlmodel.select(KeyResultValue).where(
        KeyResultValue.mapping_id == mapping.id)).all()}  # fmt: skip
    for _objective, kr in config.key_results():
        parts = by_kr.get(kr.key, {})
        my_parts = [v for owner, v in parts.items() if owner in me.owner_ids]
        if not my_parts and kr.key not in counted:
            continue
        mine_value = sum(my_parts) if my_parts else None
        team = values[kr.key].value if kr.key in values else None
        share = (
            mine_value / team
            if kr.metric.type in ADDITIVE and mine_value is not None and team not in (None, 0)
            else None
        )
        work.shares.append(
            MyShare(kr.key, kr.title, reports.format_value(kr.metric, mine_value), share, int(counted.get(kr.key, 0)))
        )
    source = hygiene_source(session, mapping, config, today)
    if source is not None:
        work.hygiene_mapping_id = source.id
        finding = table(HygieneFinding)
        work.problem_total = int(
            session.execute(
                select(func.count(func.distinct(finding.c.opportunity_id))).where(
                    finding.c.mapping_id == source.id, finding.c.owner_id.in_(mine)
                )
            ).scalar()
            or 0
        )
        lines = reports.hygiene_by_opportunity(
            session, source, okrs.current_config(session, source), limit=MY_PROBLEMS, owner_ids=mine, lang=lang
        )
        links = RecordLinks(session, connection)
        links.load(line.opportunity_id for line in lines)
        work.problems = [
            MyProblem(links.link(line.opportunity_id), list(zip(line.rules, line.problems, strict=True)))
            for line in lines
        ]
    return work
