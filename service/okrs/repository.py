"""SQL the OKR API needs beyond the computed tables: what one CRM record feeds."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import and_, func, or_, select
from sqlmodel import Session

from service.compute.models import KeyResultEvidence
from service.crm.models import Activity, Opportunity


@dataclass(frozen=True)
class RecordFeed:
    mapping_id: int
    kr_key: str
    records: int
    value: float | None


def record_feeds(session: Session, *, connection_id: int, record: str, record_id: str) -> list[RecordFeed]:
    """Per mapping and key result, the evidence that came from this opportunity (its activities or itself) or
    account (its activities and opportunities). Counted parts only (numerators, pairs)."""
    ev = KeyResultEvidence.__table__  # type: ignore[attr-defined]  # SQLModel does not type __table__
    act = Activity.__table__  # type: ignore[attr-defined]  # SQLModel does not type __table__
    opp = Opportunity.__table__  # type: ignore[attr-defined]  # SQLModel does not type __table__
    column = "opportunity_id" if record == "opportunity" else "account_id"
    activities = select(act.c.external_id).where(act.c.connection_id == connection_id, act.c[column] == record_id)
    if record == "opportunity":
        opportunities = select(opp.c.external_id).where(
            opp.c.connection_id == connection_id, opp.c.external_id == record_id
        )
    else:
        opportunities = select(opp.c.external_id).where(
            opp.c.connection_id == connection_id, opp.c.account_id == record_id
        )
    query = (
        select(ev.c.mapping_id, ev.c.kr_key, func.count(), func.sum(ev.c.value))
        .where(
            and_(
                ev.c.part.in_(("counted", "numerator", "pair")),
                or_(ev.c.record_id.in_(activities), ev.c.record_id.in_(opportunities)),
            )
        )
        .group_by(ev.c.mapping_id, ev.c.kr_key)
    )
    return [RecordFeed(int(m), str(k), int(n), v) for m, k, n, v in session.execute(query).all()]
