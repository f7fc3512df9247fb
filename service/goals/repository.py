"""All SQL of company goals. The version check of an edit is part of its UPDATE (``WHERE version = :read``), so two
edits made from the same version cannot both pass, whatever the database's isolation level."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlmodel
from sqlalchemy import delete, update
from sqlmodel import Session, col

from service.compute.models import ObjectiveValue
from service.crm.models import CrmConnection
from service.goals.models import CompanyGoal


def goals(session: Session) -> list[CompanyGoal]:
    """Every goal: the year's first, halves after the whole year, then by key."""
    query = sqlmodel.select(CompanyGoal).order_by(
        col(CompanyGoal.year), col(CompanyGoal.half).is_not(None), col(CompanyGoal.half), col(CompanyGoal.key)
    )
    return list(session.exec(query).all())


def goal(session: Session, key: str, *, lock: bool = False) -> CompanyGoal | None:
    """The goal; ``lock``: locked for writing until the transaction ends (PostgreSQL; a delete takes it first, so a
    mapping applied meanwhile either sees the goal gone or is seen serving it)."""
    query = sqlmodel.select(CompanyGoal).where(CompanyGoal.key == key)
    return session.exec(query.with_for_update() if lock else query).first()


def existing_keys(session: Session, keys: set[str]) -> set[str]:
    """Which of ``keys`` name a goal, each share-locked until the transaction ends (PostgreSQL: FOR SHARE), so the
    goals an applied mapping serves cannot be deleted before it is committed; several mappings may share a goal."""
    if not keys:
        return set()
    query = sqlmodel.select(CompanyGoal.key).where(col(CompanyGoal.key).in_(sorted(keys))).with_for_update(read=True)
    return set(session.exec(query).all())


def update_if_version(
    session: Session, *, key: str, version: int, values: dict[str, Any], by: str, at: datetime
) -> bool:
    """Write ``values`` and count the version up, only if the goal is still at ``version``; False when it is not
    (someone else's edit came first, or the goal is gone)."""
    statement = (
        update(CompanyGoal)
        .where(col(CompanyGoal.key) == key, col(CompanyGoal.version) == version)
        .values(**values, version=version + 1, updated_by=by, updated_at=at)
        .execution_options(synchronize_session=False)
    )
    done = session.execute(statement).rowcount  # type: ignore[attr-defined]  # a CursorResult for an UPDATE
    return bool(done)


def delete_if_version(session: Session, *, key: str, version: int) -> bool:
    statement = (
        delete(CompanyGoal)
        .where(col(CompanyGoal.key) == key, col(CompanyGoal.version) == version)
        .execution_options(synchronize_session=False)
    )
    return bool(session.execute(statement).rowcount)  # type: ignore[attr-defined]  # a CursorResult for a DELETE


def objective_values(session: Session, mapping_ids: list[int]) -> dict[tuple[int, str], ObjectiveValue]:
    """The stored computed value of every objective of these mappings, by (mapping, objective key)."""
    if not mapping_ids:
        return {}
    rows = session.exec(sqlmodel.select(ObjectiveValue).where(col(ObjectiveValue.mapping_id).in_(mapping_ids)))
    return {(row.mapping_id, row.objective_key): row for row in rows}


def connections(session: Session) -> dict[int, CrmConnection]:
    return {c.id or 0: c for c in session.exec(sqlmodel.select(CrmConnection)).all()}
