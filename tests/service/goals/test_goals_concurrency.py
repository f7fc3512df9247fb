"""Two edits of one goal made from the same version, in two real database sessions (SQLite and PostgreSQL): the
version check is part of the UPDATE, so the second is refused even when it read the goal before the first was
committed — the last write never silently wins; and a delete from a stale version is refused the same way."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session

from service.goals import service as goals

AT = datetime(2026, 12, 6, 10, 0, tzinfo=UTC)


def _fields(title: str) -> goals.GoalFields:
    return goals.GoalFields(title=title, owner="Clara", measure="120 new customers", period="2026-H1")


def test_the_second_of_two_edits_from_one_version_is_refused(engine: Engine) -> None:
    with Session(engine) as session:
        goals.create(session, key="new-business", fields=_fields("Win new customers"), by="setup", at=AT)
        session.commit()
    with Session(engine) as anna, Session(engine) as ben:
        assert goals.get(anna, "new-business").version == 1
        assert goals.get(ben, "new-business").version == 1  # Ben's page was loaded now too
        goals.update(anna, "new-business", version=1, fields=_fields("Title by Anna"), by="Anna", at=AT)
        anna.commit()
        with pytest.raises(goals.GoalConflictError) as refused:
            goals.update(ben, "new-business", version=1, fields=_fields("Title by Ben"), by="Ben", at=AT)
        ben.rollback()
        assert str(refused.value).startswith(
            "company goal new-business ('Title by Anna') was changed by Anna at 2026-12-06 10:00 UTC (it is at version"
            " 2; your edit started from version 1)"
        )
        assert refused.value.status == 409
        with pytest.raises(goals.GoalConflictError):
            goals.delete(ben, "new-business", version=1)
        ben.rollback()
    with Session(engine) as session:
        stored = goals.get(session, "new-business")
        assert (stored.title, stored.version, stored.updated_by, stored.half) == ("Title by Anna", 2, "Anna", "H1")
