"""All SQL of the write-back domain: what the computations hold per CRM record, and the outbox."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlmodel
from sqlalchemy import and_, case, delete, func, literal, or_, select, update
from sqlmodel import Session, col

from service.compute.models import (
    Computation,
    HygieneFinding,
    HygieneSummary,
    KamAccountScore,
    KamCriterionResult,
    KeyResultEvidence,
    KeyResultValue,
    ObjectiveValue,
)
from service.crm.models import Activity, CrmConnection, Opportunity
from service.okrs.models import OkrMapping, OkrMappingVersion
from service.writeback.models import OutboxRow

CHUNK = 5000  # ids per IN (...) list


def chunks(items: Sequence[Any], size: int = CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# -- what the computations hold ---------------------------------------------------------------------------------
def computed_mappings(session: Session, *, connection_id: int) -> list[tuple[OkrMapping, OkrMappingVersion]]:
    """Mappings of the connection with an applied version and at least one computation, oldest cycle first."""
    rows = session.exec(
        sqlmodel.select(OkrMapping, OkrMappingVersion)
        .join(
            OkrMappingVersion,
            and_(
                col(OkrMappingVersion.mapping_id) == OkrMapping.id,
                col(OkrMappingVersion.version) == OkrMapping.current_version,
            ),
        )
        .where(OkrMapping.connection_id == connection_id)
        .where(sqlmodel.exists().where(col(Computation.mapping_id) == OkrMapping.id))
        .order_by(col(OkrMapping.cycle_end), col(OkrMapping.id))
    ).all()
    return [(m, v) for m, v in rows]


def last_owners(session: Session, *, mapping_id: int) -> list[str]:
    last = session.exec(
        sqlmodel.select(Computation).where(Computation.mapping_id == mapping_id).order_by(col(Computation.id).desc())
    ).first()
    return [o for o in (last.detail.get("owners") or []) if o] if last else []


def objective_values(session: Session, *, mapping_id: int) -> list[ObjectiveValue]:
    return list(session.exec(sqlmodel.select(ObjectiveValue).where(ObjectiveValue.mapping_id == mapping_id)).all())


def key_result_values(session: Session, *, mapping_id: int) -> list[KeyResultValue]:
    return list(session.exec(sqlmodel.select(KeyResultValue).where(KeyResultValue.mapping_id == mapping_id)).all())


@dataclass(frozen=True)
class ContributionTotal:
    kr_key: str
    opportunity_id: str | None
    account_id: str | None
    records: int
    distinct_keys: int
    value_sum: float | None


def contributions(
    session: Session,
    *,
    mapping_id: int,
    connection_id: int,
    activity_krs: Sequence[str],
    opportunity_krs: Sequence[str],
    only: Records | None = None,
) -> list[ContributionTotal]:
    """Per key result and CRM record (the opportunity, else the account), the evidence that counted: rows,
    distinct keys and the sum of values. Evidence records are activities or opportunities, depending on the key
    result (HubSpot ids are unique per object type only, so each is joined to its own table). ``only``: just these
    CRM records' totals (each one whole: all the evidence of the activities on it)."""
    ev = KeyResultEvidence.__table__  # type: ignore[attr-defined]  # SQLModel does not type __table__
    totals: list[ContributionTotal] = []
    for model, kr_keys in ((Activity, activity_krs), (Opportunity, opportunity_krs)):
        if not kr_keys:
            continue
        rec = model.__table__  # type: ignore[union-attr]  # SQLModel does not type __table__
        opportunity_id = rec.c.opportunity_id if model is Activity else rec.c.external_id
        for narrowing in _record_narrowings(rec, connection_id, model is Activity, only):
            query = (
                select(
                    ev.c.kr_key,
                    opportunity_id.label("opportunity_id"),
                    rec.c.account_id,
                    func.count().label("records"),
                    func.count(func.distinct(ev.c.related_id)).label("distinct_keys"),
                    func.sum(ev.c.value).label("value_sum"),
                )
                .select_from(
                    ev.join(rec, and_(rec.c.connection_id == connection_id, rec.c.external_id == ev.c.record_id))
                )
                .where(
                    ev.c.mapping_id == mapping_id,
                    ev.c.kr_key.in_(list(kr_keys)),
                    ev.c.part.in_(("counted", "numerator", "pair")),
                    or_(opportunity_id.is_not(None), rec.c.account_id.is_not(None)),
                )
                .group_by(ev.c.kr_key, opportunity_id, rec.c.account_id)
            )
            if narrowing is not None:  # the evidence of the records' activities, each found by its index
                query = query.where(ev.c.record_id.in_(narrowing))
            totals += [ContributionTotal(*row) for row in session.execute(query).all()]
    return totals


@dataclass(frozen=True)
class Records:
    """Some CRM records by id: what a staging after an incremental computation re-reads."""

    opportunities: frozenset[str]
    accounts: frozenset[str]


def activity_links(
    session: Session, *, connection_id: int, ids: Iterable[str]
) -> dict[str, tuple[str | None, str | None]]:
    """Activity id → (opportunity id, account id) as stored now, for the stored ones among ``ids``."""
    act = Activity.__table__  # type: ignore[attr-defined]  # SQLModel does not type __table__
    links: dict[str, tuple[str | None, str | None]] = {}
    for chunk in chunks(sorted(ids)):
        query = select(act.c.external_id, act.c.opportunity_id, act.c.account_id).where(
            act.c.connection_id == connection_id, act.c.external_id.in_(list(chunk))
        )
        links.update({row[0]: (row[1], row[2]) for row in session.execute(query).all()})
    return links


def _record_narrowings(rec: Any, connection_id: int, activities: bool, only: Records | None) -> list[Any]:
    """Sub-selects of the evidence record ids on some CRM records, a chunk of records each ([None]: no narrowing).
    An activity counts for its opportunity, else for its account; an opportunity for itself."""
    if only is None:
        return [None]
    rec = rec.alias("on_record")  # not correlated with the outer query's table
    found: list[Any] = []
    for chunk in chunks(sorted(only.opportunities)):
        column = rec.c.opportunity_id if activities else rec.c.external_id
        found.append(select(rec.c.external_id).where(rec.c.connection_id == connection_id, column.in_(list(chunk))))
    if activities:
        for chunk in chunks(sorted(only.accounts)):
            found.append(
                select(rec.c.external_id).where(
                    rec.c.connection_id == connection_id,
                    rec.c.opportunity_id.is_(None),
                    rec.c.account_id.in_(list(chunk)),
                )
            )
    return found


def kam_results(
    session: Session, *, mapping_id: int, accounts: frozenset[str] | None = None
) -> tuple[list[KamCriterionResult], list[KamAccountScore]]:
    """The KAM criteria results and account scores of a mapping (``accounts``: of these accounts only)."""
    if accounts is None:
        criteria = session.exec(sqlmodel.select(KamCriterionResult).where(KamCriterionResult.mapping_id == mapping_id))
        scores = session.exec(sqlmodel.select(KamAccountScore).where(KamAccountScore.mapping_id == mapping_id))
        return list(criteria.all()), list(scores.all())
    found: tuple[list[KamCriterionResult], list[KamAccountScore]] = ([], [])
    for chunk in chunks(sorted(accounts)):
        found[0].extend(
            session.exec(
                sqlmodel.select(KamCriterionResult).where(
                    KamCriterionResult.mapping_id == mapping_id, col(KamCriterionResult.account_id).in_(list(chunk))
                )
            ).all()
        )
        found[1].extend(
            session.exec(
                sqlmodel.select(KamAccountScore).where(
                    KamAccountScore.mapping_id == mapping_id, col(KamAccountScore.account_id).in_(list(chunk))
                )
            ).all()
        )
    return found


def hygiene_total(session: Session, *, mapping_id: int) -> HygieneSummary | None:
    return session.get(HygieneSummary, (mapping_id, "*"))


def open_opportunities(
    session: Session, *, connection_id: int, owner_ids: Sequence[str], only: frozenset[str] | None = None
) -> list[str]:
    """Ids of the team's open, live opportunities: the ones the hygiene rules checked (``only``: among these)."""
    opp = Opportunity.__table__  # type: ignore[attr-defined]  # SQLModel does not type __table__
    found: list[str] = []
    for owners in chunks(list(owner_ids)):
        query = select(opp.c.external_id).where(
            opp.c.connection_id == connection_id,
            opp.c.is_deleted == literal(False),
            opp.c.is_closed == literal(False),
            opp.c.owner_id.in_(list(owners)),
        )
        if only is None:
            found += [row[0] for row in session.execute(query).all()]
            continue
        for ids in chunks(sorted(only)):
            found += [row[0] for row in session.execute(query.where(opp.c.external_id.in_(list(ids)))).all()]
    return found


def findings(session: Session, *, mapping_id: int, only: frozenset[str] | None = None) -> list[HygieneFinding]:
    """A mapping's hygiene findings (``only``: on these opportunities)."""
    query = sqlmodel.select(HygieneFinding).where(HygieneFinding.mapping_id == mapping_id)
    if only is None:
        return list(session.exec(query).all())
    found: list[HygieneFinding] = []
    for ids in chunks(sorted(only)):
        found += session.exec(query.where(col(HygieneFinding.opportunity_id).in_(list(ids)))).all()
    return found


def live_records(session: Session, *, connection_id: int, model: Any, ids: Sequence[str]) -> set[str]:
    """The ids among ``ids`` of records that exist locally and are not deleted."""
    table = model.__table__
    live: set[str] = set()
    for part in chunks(list(ids)):
        query = select(table.c.external_id).where(
            table.c.connection_id == connection_id,
            table.c.external_id.in_(list(part)),
            table.c.is_deleted == literal(False),
        )
        live |= {row[0] for row in session.execute(query).all()}
    return live


# -- the outbox -------------------------------------------------------------------------------------------------
def outbox_rows(
    session: Session, *, connection_id: int, whole: Sequence[str] | None = None, keys: Iterable[tuple[str, str]] = ()
) -> list[OutboxRow]:
    """The connection's outbox rows; with ``whole``, only the rows of those targets and those named by ``keys``
    (target, record key)."""
    query = sqlmodel.select(OutboxRow).where(OutboxRow.connection_id == connection_id)
    if whole is None:
        return list(session.exec(query).all())
    found = list(session.exec(query.where(col(OutboxRow.target).in_(list(whole)))).all())
    by_target: dict[str, list[str]] = {}
    for target, record_key in keys:
        by_target.setdefault(target, []).append(record_key)
    for target, record_keys in sorted(by_target.items()):
        for chunk in chunks(sorted(set(record_keys))):
            found += session.exec(
                query.where(OutboxRow.target == target, col(OutboxRow.record_key).in_(list(chunk)))
            ).all()
    return found


def pending(
    session: Session, *, connection_id: int, target: str, op: str, limit: int, after_id: int = 0
) -> list[OutboxRow]:
    """Pending rows of one target and operation, in id order, after ``after_id`` (keyset paging)."""
    return list(
        session.exec(
            sqlmodel.select(OutboxRow)
            .where(
                OutboxRow.connection_id == connection_id,
                OutboxRow.status == "pending",
                OutboxRow.target == target,
                OutboxRow.op == op,
                col(OutboxRow.id) > after_id,
            )
            .order_by(col(OutboxRow.id))
            .limit(limit)
        ).all()
    )


def acknowledge(
    session: Session,
    *,
    row_id: int,
    seq: int,
    status: str,
    crm_id: str | None = None,
    error_code: str | None = None,
    error: str | None = None,
    now: datetime,
) -> bool:
    """Record the CRM's answer for the values staged as ``seq``; False when newer values were staged meanwhile
    (the row stays pending and the newer values are sent next)."""
    values: dict[str, Any] = {
        "status": status,
        "attempts": OutboxRow.attempts + 1,
        "error_code": error_code,
        "error": error,
    }
    if status == "sent":
        values["sent_at"] = now
    if crm_id is not None:
        values["crm_id"] = crm_id
    result = session.execute(
        update(OutboxRow).where(col(OutboxRow.id) == row_id, col(OutboxRow.seq) == seq).values(**values)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]  # Session.execute() is typed Result, not CursorResult


def note_error(session: Session, *, row_ids: Sequence[int], error_code: str, error: str) -> None:
    """Keep rows pending but say why the last attempt failed (the whole call was refused)."""
    for part in chunks(list(row_ids)):
        session.execute(
            update(OutboxRow)
            .where(col(OutboxRow.id).in_(list(part)))
            .values(error_code=error_code, error=error, attempts=OutboxRow.attempts + 1)
        )


def retry_failed(session: Session, *, connection_id: int) -> int:
    """Make failed rows pending again (after the cause was fixed); returns how many."""
    result = session.execute(
        update(OutboxRow)
        .where(col(OutboxRow.connection_id) == connection_id, col(OutboxRow.status) == "failed")
        .values(status="pending", seq=OutboxRow.seq + 1)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]  # Session.execute() is typed Result, not CursorResult


def forget_written(session: Session, *, connection_id: int) -> int:
    """Forget what was written to the connection's CRM (a sandbox CRM that started anew has none of okrsync's
    records): the next staging stages everything again. Returns how many rows were forgotten."""
    result = session.execute(delete(OutboxRow).where(col(OutboxRow.connection_id) == connection_id))
    return int(result.rowcount)  # type: ignore[attr-defined]  # Session.execute() is typed Result, not CursorResult


def counts(session: Session, *, connection_id: int) -> dict[tuple[str, str, str], int]:
    """(target, op, status) -> rows."""
    query = (
        select(col(OutboxRow.target), col(OutboxRow.op), col(OutboxRow.status), func.count())
        .where(col(OutboxRow.connection_id) == connection_id)
        .group_by(OutboxRow.target, OutboxRow.op, OutboxRow.status)
    )
    return {(t, o, s): int(n) for t, o, s, n in session.execute(query).all()}


def failures(session: Session, *, connection_id: int, limit: int = 20) -> list[OutboxRow]:
    return list(
        session.exec(
            sqlmodel.select(OutboxRow)
            .where(OutboxRow.connection_id == connection_id, col(OutboxRow.error).is_not(None))
            .order_by(case((col(OutboxRow.status) == "failed", 0), else_=1), col(OutboxRow.id))
            .limit(limit)
        ).all()
    )


def outbox_depth(session: Session) -> dict[str, int]:
    """CRM -> outbox rows waiting to be written (pending), over every connection."""
    query = (
        select(col(CrmConnection.crm), func.count())
        .join(OutboxRow, col(OutboxRow.connection_id) == CrmConnection.id)
        .where(col(OutboxRow.status) == "pending")
        .group_by(CrmConnection.crm)
    )
    return {crm: int(n) for crm, n in session.execute(query).all()}
