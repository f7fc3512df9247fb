"""A first sync into empty SQLite tables writes them without their secondary indexes and builds those at the end
(service.sync.repository.defer_indexes); every index exists after any sync, also one that failed or was killed
midway. PostgreSQL and tables that already hold rows keep their indexes throughout. Real sandbox Salesforce over
HTTPS, real databases; the sync's progress callback looks at the database's indexes while the sync runs."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.engine import Engine

from connectors.salesforce.config import SalesforceConfig
from connectors.salesforce.connector import SalesforceConnector
from service.kit.db import make_engine
from service.kit.migrate import create_schema
from service.sync import repository
from service.sync.service import run_sync


def _secondary() -> dict[str, set[str]]:
    """table → the names of its secondary (non-unique) indexes, as the models declare them."""
    return {
        model.__table__.name: {str(i.name) for i in model.__table__.indexes if not i.unique}  # type: ignore[attr-defined]
        for model in repository.LOADED_TABLES
    }


def _present(engine: Engine) -> dict[str, set[str]]:
    found = inspect(engine)
    return {table: {str(i["name"]) for i in found.get_indexes(table)} & names for table, names in _secondary().items()}


def _watch(engine: Engine, seen: list[dict[str, set[str]]]):  # type: ignore[no-untyped-def]
    def progress(stream: str, fetched: int, total: int) -> None:
        if stream == "Task":
            seen.append(_present(engine))

    return progress


def test_a_first_sync_builds_the_indexes_at_its_end(engine: Engine, config: SalesforceConfig) -> None:
    wanted = _secondary()
    assert wanted["activity"] and wanted["activity_contact"]
    during: list[dict[str, set[str]]] = []
    report = run_sync(engine, SalesforceConnector(config), connection_name="sandbox", progress=_watch(engine, during))
    assert report.status == "ok" and during
    if engine.dialect.name == "sqlite":
        assert during[0]["activity"] == set(), "activities were written without their secondary indexes"
    else:
        assert during[0] == wanted, "PostgreSQL keeps its indexes"
    assert _present(engine) == wanted

    again: list[dict[str, set[str]]] = []
    run_sync(engine, SalesforceConnector(config), connection_name="sandbox", full=True, progress=_watch(engine, again))
    assert again and all(seen == wanted for seen in again), "tables holding rows keep their indexes"


def test_a_failed_first_sync_leaves_every_index(engine: Engine, config: SalesforceConfig) -> None:
    def fail(stream: str, fetched: int, total: int) -> None:
        if stream == "Task":
            raise RuntimeError("stopped midway")

    with pytest.raises(RuntimeError, match="stopped midway"):
        run_sync(engine, SalesforceConnector(config), connection_name="sandbox", progress=fail)
    assert _present(engine) == _secondary()


def test_indexes_a_killed_sync_left_dropped_are_built_by_the_next(tmp_path: Path, config: SalesforceConfig) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'killed.db'}")  # indexes are deferred on SQLite only
    create_schema(engine)
    run_sync(engine, SalesforceConnector(config), connection_name="sandbox")
    with engine.begin() as conn:  # what a process killed during a first sync leaves behind
        for name in _secondary()["activity"]:
            conn.execute(text(f"DROP INDEX {name}"))
    assert _present(engine)["activity"] == set()
    run_sync(engine, SalesforceConnector(config), connection_name="sandbox")
    assert _present(engine) == _secondary()
