"""All SQL of the planning domain."""

from __future__ import annotations

import sqlmodel
from sqlmodel import Session, col

from service.okrs.models import OkrMapping, OkrMappingVersion
from service.planning.models import DraftEvent, PlanDraft


def draft_for(session: Session, *, connection_id: int, team: str, cycle: str) -> PlanDraft | None:
    return session.exec(
        sqlmodel.select(PlanDraft).where(
            PlanDraft.connection_id == connection_id, PlanDraft.team == team, PlanDraft.cycle == cycle
        )
    ).first()


def drafts(session: Session) -> list[PlanDraft]:
    return list(session.exec(sqlmodel.select(PlanDraft).order_by(col(PlanDraft.id))).all())


def events(session: Session, *, draft_id: int) -> list[DraftEvent]:
    return list(
        session.exec(sqlmodel.select(DraftEvent).where(DraftEvent.draft_id == draft_id).order_by(col(DraftEvent.id)))
    )


def team_mappings(session: Session, *, connection_id: int, team: str) -> list[OkrMapping]:
    return list(
        session.exec(
            sqlmodel.select(OkrMapping)
            .where(OkrMapping.connection_id == connection_id, OkrMapping.team == team, OkrMapping.current_version > 0)
            .order_by(col(OkrMapping.cycle_start))
        ).all()
    )


def latest_mapping(session: Session, *, connection_id: int, team: str) -> tuple[OkrMapping, OkrMappingVersion] | None:
    """The team's mapping of the latest cycle, with its current version."""
    found = team_mappings(session, connection_id=connection_id, team=team)
    if not found:
        return None
    mapping = found[-1]
    version = session.get(OkrMappingVersion, (mapping.id, mapping.current_version))
    return (mapping, version) if version is not None else None
