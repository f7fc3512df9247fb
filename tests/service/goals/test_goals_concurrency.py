"""Two edits of one goal made from the same version, in two real database sessions (SQLite and PostgreSQL): the
version check is part of the UPDATE, so the second is refused even when it read the goal before the first was
committed — the last write never silently wins; and a delete from a stale version is refused the same way."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
import yaml
from sqlalchemy.engine import Engine
from sqlmodel import Session

from mappings.source import MappingFileError
from service.goals import service as goals
from service.okrs import service as okrs
from tests.service.compute import world

AT = datetime(2026, 12, 6, 10, 0, tzinfo=UTC)
CALLS = {"field": "activity_kind", "op": "eq", "value": "call"}
KR = {
    "key": "calls",
    "title": "20 calls",
    "target": 20,
    "metric": {"type": "count", "of": "activities", "where": [CALLS]},
}


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


def _apply_serving(engine: Engine, key: str) -> tuple[Session, Any]:
    """A session that has applied (not yet committed) a mapping whose objective serves ``key``."""
    data = yaml.safe_load(world.mapping_text([KR]))
    data["objectives"][0]["serves"] = key
    session = Session(engine)
    loaded = okrs.load(yaml.safe_dump(data, sort_keys=False), filename="team.yaml")
    okrs.apply(session, loaded, connection=okrs.resolve_connection(session, None), author="lead", now=AT)
    return session, loaded


def _in_thread(work: Callable[[], object]) -> tuple[threading.Thread, list[object]]:
    outcome: list[object] = []

    def run() -> None:
        try:
            outcome.append(work())
        except Exception as exc:  # noqa: BLE001  (the test looks at it)
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def test_a_goal_and_a_mapping_serving_it_never_cross(engine: Engine) -> None:
    """PostgreSQL: a delete waits for a mapping being applied that serves the goal, then sees it (409); a mapping
    applied while the goal is being deleted waits, then finds the goal gone (refused). SQLite has no row locks (one
    writer at a time, and a read does not lock): there the check and the write are not atomic."""
    if engine.dialect.name != "postgresql":
        pytest.skip("row locks: PostgreSQL only (see the docstring)")
    world.build(engine)
    with Session(engine) as session:
        for key in ("served", "deleted"):
            goals.create(session, key=key, fields=_fields(key.title()), by="setup", at=AT)
        session.commit()

    applying, _loaded = _apply_serving(engine, "served")  # holds the goal share-locked
    with Session(engine) as deleting:
        thread, outcome = _in_thread(lambda: goals.delete(deleting, "served"))
        thread.join(timeout=1.0)
        assert thread.is_alive(), f"the delete did not wait for the mapping being applied: {outcome}"
        applying.commit()
        applying.close()
        thread.join(timeout=30)
        assert not thread.is_alive() and isinstance(outcome[0], goals.GoalConflictError), outcome
        assert "World team / Q3 2026: objective objective" in str(outcome[0])
        deleting.rollback()

    with Session(engine) as deleting:
        goals.delete(deleting, "deleted")  # not committed yet: the goal is locked
        thread, outcome = _in_thread(lambda: _apply_serving(engine, "deleted"))
        thread.join(timeout=1.0)
        assert thread.is_alive(), f"the apply did not wait for the goal being deleted: {outcome}"
        deleting.commit()
        thread.join(timeout=30)
    assert not thread.is_alive() and isinstance(outcome[0], MappingFileError), outcome
    assert "serves company goal 'deleted', which does not exist" in str(outcome[0])
    with Session(engine) as session:
        assert [g.key for g in goals.listed(session)] == ["served"]
