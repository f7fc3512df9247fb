"""Alembic migrations: the models and the migrations agree, `okrsync db upgrade`, and long-running processes refuse
a database they cannot use (unmigrated, newer, unreachable) before they listen. Real SQLite files and real
PostgreSQL scratch databases (okrsync_mig_*), no mocks."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Column, DateTime, Index, MetaData, String, UniqueConstraint, delete, inspect, make_url, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel, select
from typer.testing import CliRunner, Result

import service.models  # noqa: F401  (every table in SQLModel.metadata)
from service.cli import app
from service.compute import repository
from service.compute.models import KeyResultEvidence
from service.crm.models import Activity, CrmConnection
from service.kit.db import analyze, make_engine, utcnow
from service.kit.migrate import (
    INITIAL,
    SchemaError,
    alembic_config,
    check,
    context_options,
    create_schema,
    current,
    head,
    upgrade,
)
from service.kit.server import free_port
from service.kit.settings import get_settings
from service.okrs.models import OkrMapping
from tests.conftest import BASE_POSTGRES_URL, WORKER
from tests.planner_statistics import owner_index_counted, owner_index_statistics

SECRET = "s3cret-pw"


def _admin() -> Engine:
    return make_engine(BASE_POSTGRES_URL).execution_options(isolation_level="AUTOCOMMIT")


def _scratch_postgres() -> Iterator[str]:
    name = f"okrsync_mig_{WORKER or 'main'}_{uuid.uuid4().hex[:8]}"
    admin = _admin()
    try:
        with admin.connect() as conn:
            conn.execute(text(f'create database "{name}"'))
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"PostgreSQL at {BASE_POSTGRES_URL} is not reachable ({exc}); start it (.ci/run does)")
    try:
        yield make_url(BASE_POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'drop database if exists "{name}" with (force)'))
        admin.dispose()


@pytest.fixture
def pg_url() -> Iterator[str]:
    """An empty PostgreSQL database of its own (dropped afterwards)."""
    yield from _scratch_postgres()


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'okrsync.db'}"
    else:
        yield from _scratch_postgres()


def _differences(engine: Engine, metadata: MetaData) -> list[Any]:
    with engine.connect() as conn:
        return list(compare_metadata(MigrationContext.configure(conn, opts=context_options()), metadata))


def _env(tmp_path: Path, url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OKRSYNC_")}
    env.update(OKRSYNC_DATA_DIR=str(tmp_path / "data"), OKRSYNC_DATABASE_URL=url, OKRSYNC_LOG_LEVEL="WARNING")
    return env


@pytest.fixture
def okrsync(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Callable[..., Result]]:
    """``okrsync(url, "db", "upgrade")``: the command line in this process, with OKRSYNC_DATABASE_URL set (None: the
    embedded SQLite file in a fresh data dir)."""

    def run(url: str | None, *args: str) -> Result:
        for name in [n for n in os.environ if n.startswith("OKRSYNC_")]:
            monkeypatch.delenv(name)
        monkeypatch.setenv("OKRSYNC_DATA_DIR", str(tmp_path / "data"))
        if url is not None:
            monkeypatch.setenv("OKRSYNC_DATABASE_URL", url)
        get_settings.cache_clear()
        return CliRunner().invoke(app, list(args))

    yield run
    get_settings.cache_clear()


def test_migrations_agree_with_the_models(empty_url: str) -> None:
    """`alembic revision --autogenerate` would find nothing to do: the migrations make exactly the models' schema
    (types, nullability, indexes, unique constraints, foreign keys)."""
    engine = make_engine(empty_url)
    try:
        done = upgrade(engine)
        assert (done.before, done.after) == (None, head())
        assert _differences(engine, SQLModel.metadata) == []
        assert {"alembic_version", *SQLModel.metadata.tables} == set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def _index_definitions(engine: Any) -> set[tuple[str, str]]:
    """(table, index name) of every index, read from the catalogue itself: autogenerate skips indexes on
    expressions or with a column direction (ix_evidence_page), so the comparison above cannot see them."""
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            rows = conn.exec_driver_sql(
                "SELECT tbl_name, name FROM sqlite_master WHERE type = 'index' AND name NOT LIKE 'sqlite_autoindex%'"
            ).all()
        else:
            rows = conn.exec_driver_sql(
                "SELECT tablename, indexname FROM pg_indexes WHERE schemaname = current_schema()"
                " AND indexname NOT LIKE '%%_pkey'"
            ).all()
    return {(table, name) for table, name in rows}


def test_migrations_make_every_index_the_models_declare(empty_url: str) -> None:
    engine = make_engine(empty_url)
    try:
        upgrade(engine)
        declared = {(t.name, ix.name) for t in SQLModel.metadata.tables.values() for ix in t.indexes}
        assert ("key_result_evidence", "ix_evidence_page") in declared
        assert declared - _index_definitions(engine) == set()
    finally:
        engine.dispose()


def _partial_indexes(engine: Any) -> set[tuple[str, str]]:
    """(table, index name) of every partial index (one with a WHERE), read from the catalogue: autogenerate does
    not compare an index's condition, so the comparisons above cannot see a migration that left one out."""
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            tables = [r[0] for r in conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'table'")]
            return {
                (table, row[1])
                for table in tables
                for row in conn.exec_driver_sql(f'PRAGMA index_list("{table}")')
                if row[4]  # the "partial" column
            }
        rows = conn.exec_driver_sql(
            "SELECT tablename, indexname FROM pg_indexes WHERE schemaname = current_schema()"
            " AND indexdef LIKE '%%WHERE%%'"
        ).all()
    return {(table, name) for table, name in rows}


def test_migrations_make_the_partial_indexes_partial(empty_url: str) -> None:
    """ix_evidence_wait (0009), ix_activity_lead (0021) and ix_evidence_part_key (0022) hold only the rows their
    condition names, as declared."""
    engine = make_engine(empty_url)
    try:
        upgrade(engine)
        dialect = engine.dialect.name
        declared = {
            (t.name, ix.name)
            for t in SQLModel.metadata.tables.values()
            for ix in t.indexes
            if ix.dialect_options[dialect]["where"] is not None
        }
        assert declared == {
            ("key_result_evidence", "ix_evidence_wait"),
            ("activity", "ix_activity_lead"),
            ("key_result_evidence", "ix_evidence_part_key"),
        }
        assert _partial_indexes(engine) == declared
    finally:
        engine.dispose()


def _collations(engine: Any) -> dict[tuple[str, str], str]:
    """(table, column) → collation of every text column that has one of its own, from PostgreSQL's catalogue:
    autogenerate does not compare collations, so the comparison above cannot see a migration that forgot one."""
    with engine.connect() as conn:
        rows = conn.exec_driver_sql(
            "SELECT table_name, column_name, collation_name FROM information_schema.columns"
            " WHERE table_schema = current_schema() AND collation_name IS NOT NULL"
        ).all()
    return {(table, column): collation for table, column, collation in rows}


def test_migrations_give_text_columns_the_collations_the_models_declare(pg_url: str) -> None:
    """The evidence's ids and keys compare byte by byte on PostgreSQL (``kit.db.byte_text``): a database brought
    up by the migrations has the same collations as one made from the models."""
    declared = {
        (table.name, column.name): collation
        for table in SQLModel.metadata.tables.values()
        for column in table.columns
        if (collation := getattr(column.type.dialect_impl(postgresql.dialect()), "collation", None))
    }
    assert {c for (t, c) in declared if t == "key_result_evidence"} == {
        "kr_key", "part", "record_id", "related_id", "owner_id",
    }  # fmt: skip
    assert set(declared.values()) == {"C"}
    engine = make_engine(pg_url)
    try:
        upgrade(engine)
        assert _collations(engine) == declared
        with engine.begin() as conn:
            command.downgrade(alembic_config(conn), "0015")
        assert _collations(engine) == {}  # and back
    finally:
        engine.dispose()


def _account_index_stats(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        if conn.exec_driver_sql("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_stat1'").first() is None:
            return []
        return sorted(
            r[0]
            for r in conn.exec_driver_sql(
                "SELECT idx FROM sqlite_stat1 WHERE idx IN "
                "('ix_activity_account', 'ix_activity_completed', 'ix_activity_synced')"
            )
        )


@pytest.mark.parametrize("analyzed", [True, False])
def test_the_rebuilt_account_index_has_statistics_where_the_activities_had_them(tmp_path: Path, analyzed: bool) -> None:
    """Migration 0017 rebuilds ix_activity_account; SQLite drops an index's statistics with it, and without them
    took the new index for very selective (an incremental run's look-up by id read the whole index). Migrations 0018
    and 0019 add ix_activity_completed and ix_activity_synced, which need their statistics as well. A database whose
    activities were analyzed has the three indexes' statistics after the upgrade; one never analyzed stays so."""
    engine = make_engine(f"sqlite:///{tmp_path / 'okrsync.db'}")
    try:
        with engine.begin() as conn:
            command.upgrade(alembic_config(conn), "0016")
        with Session(engine) as session:
            connection = CrmConnection(crm="salesforce", name="acme", created_at=utcnow())
            session.add(connection)
            session.flush()
            for n in range(30):
                session.add(
                    Activity(
                        connection_id=connection.id, external_id=f"00T{n:015d}", crm_object="Task",
                        modified_at=utcnow(), synced_at=utcnow(), activity_kind="call", account_id=f"001{n % 3}",
                        occurred_at=utcnow(),
                    )
                )  # fmt: skip
            session.commit()
        if analyzed:
            analyze(engine)
        assert _account_index_stats(engine) == (["ix_activity_account"] if analyzed else [])
        upgrade(engine)
        assert current(engine) == head()
        added = ["ix_activity_account", "ix_activity_completed", "ix_activity_synced"]
        assert _account_index_stats(engine) == (added if analyzed else [])
    finally:
        engine.dispose()


def test_sampled_statistics_are_read_again_in_full(tmp_path: Path) -> None:
    """Migration 0020: a SQLite database analyzed by sampling (as okrsync did until 0020) gets statistics from
    every index entry: those of ix_activity_owner_kind_time equal the ones counted by SELECT DISTINCT
    (``tests.planner_statistics``)."""
    engine = make_engine(f"sqlite:///{tmp_path / 'okrsync.db'}")
    try:
        with engine.begin() as conn:
            command.upgrade(alembic_config(conn), "0019")
        with Session(engine) as session:
            connection = CrmConnection(crm="salesforce", name="acme", created_at=utcnow())
            session.add(connection)
            session.flush()
            start = utcnow()
            for n in range(6_000):
                session.add(
                    Activity(
                        connection_id=connection.id, external_id=f"00T{n:015d}", crm_object="Task",
                        modified_at=start, synced_at=start, activity_kind=("call", "email", "meeting")[n % 3],
                        owner_id=f"005{n % 4}", account_id=f"001{n % 50}", occurred_at=start + timedelta(minutes=n),
                    )
                )  # fmt: skip
            session.commit()
        with engine.begin() as conn:  # how okrsync analyzed before 0020
            conn.exec_driver_sql("PRAGMA analysis_limit=2000")
            conn.exec_driver_sql("ANALYZE")
        expected = owner_index_counted(engine)
        assert expected == [6_000, 6_000, 1_500, 500, 1]
        assert owner_index_statistics(engine) != expected  # the sample's figures
        upgrade(engine)
        assert current(engine) == head()
        assert owner_index_statistics(engine) == expected
    finally:
        engine.dispose()


def test_create_schema_makes_the_same_schema_and_stamps_the_head(empty_url: str) -> None:
    """The fast path (create_all + stamp, used for the embedded database and the tests) equals the migrations."""
    engine = make_engine(empty_url)
    try:
        create_schema(engine)
        assert current(engine) == head()
        assert _differences(engine, SQLModel.metadata) == []
        check(engine)  # a long-running process would start
        create_schema(engine)  # at the head: nothing to do
        assert current(engine) == head()
    finally:
        engine.dispose()


def test_a_version_left_without_its_tables_is_rebuilt(empty_url: str) -> None:
    """Tests drop every table between runs and leave alembic_version behind: both paths start again from nothing."""
    engine = make_engine(empty_url)
    try:
        for bring_back in (create_schema, upgrade):
            create_schema(engine)
            SQLModel.metadata.drop_all(engine)
            with pytest.raises(
                SchemaError, match=rf"has a schema version \({head()}\) but no okrsync tables: run `okrs"
            ):
                check(engine)
            bring_back(engine)
            check(engine)
            assert _differences(engine, SQLModel.metadata) == []
    finally:
        engine.dispose()


def _changed_models() -> MetaData:
    """The models as someone might change them without writing a migration."""
    metadata = MetaData()
    for table in SQLModel.metadata.sorted_tables:
        table.to_metadata(metadata)
    tokens = metadata.tables["api_token"]
    tokens.append_column(Column("last_used_at", DateTime(timezone=True), nullable=True))  # a new field
    tokens.c.name.type = String(300)  # a longer name
    tokens.c.email.nullable = False  # now required
    Index("ix_api_token_role", tokens.c.role)  # a new index
    UniqueConstraint(tokens.c.name, name="uq_api_token_name")  # a new unique constraint
    metadata.tables["webhook_event"].c.attempts.type = String(10)  # another type
    return metadata


def _described(differences: list[Any]) -> set[str]:
    described = set()
    for difference in differences:
        for op in difference if isinstance(difference, list) else [difference]:
            kind = op[0]
            if kind.startswith("modify_"):
                described.add(f"{kind} {op[2]}.{op[3]}")
            elif kind == "add_column":
                described.add(f"{kind} {op[2]}.{op[3].name}")
            else:
                described.add(f"{kind} {op[1].name}")
    return described


def test_a_model_changed_without_a_migration_is_noticed(empty_url: str) -> None:
    """The comparison above fails when a field, type, nullability, index or unique constraint changes without a
    migration (and shows nothing else)."""
    engine = make_engine(empty_url)
    try:
        upgrade(engine)
        assert _described(_differences(engine, _changed_models())) == {
            "add_column api_token.last_used_at",
            "modify_type api_token.name",
            "modify_nullable api_token.email",
            "add_index ix_api_token_role",
            "add_constraint uq_api_token_name",
            "modify_type webhook_event.attempts",
        }
    finally:
        engine.dispose()


def test_db_upgrade_twice_then_current(pg_url: str, okrsync: Callable[..., Result]) -> None:
    before = okrsync(pg_url, "db", "current")
    assert before.exit_code == 0 and before.stdout.strip() == f"none (this okrsync needs {head()})", before.output
    assert "has no okrsync schema: run `okrsync db upgrade`" in before.stderr
    first = okrsync(pg_url, "db", "upgrade")
    assert first.exit_code == 0, first.output
    assert first.stdout.strip() == f"database at {pg_url} upgraded: empty → {head()}"
    second = okrsync(pg_url, "db", "upgrade")
    assert second.exit_code == 0, second.output
    assert second.stdout.strip() == f"database at {pg_url} is up to date (revision {head()})"
    now = okrsync(pg_url, "db", "current")
    assert now.exit_code == 0 and now.stdout.strip() == f"{head()} (head)", now.output


def _newer(url: str) -> str:
    engine = make_engine(url)
    try:
        create_schema(engine)
        with engine.begin() as conn:
            conn.execute(text("update alembic_version set version_num = '9999_from_the_future'"))
    finally:
        engine.dispose()
    return url


@pytest.mark.slow  # okrsync in a subprocess
@pytest.mark.parametrize("case", ["unmigrated", "unreachable"])  # newer: the same path (check), tested below
def test_serve_refuses_a_database_it_cannot_use_before_listening(pg_url: str, tmp_path: Path, case: str) -> None:
    if case == "unmigrated":
        url, message = pg_url, "has no okrsync schema: run `okrsync db upgrade`"
    else:
        url = f"postgresql://postgres:{SECRET}@127.0.0.1:{free_port()}/okrsync"
        message = "cannot open the database at postgresql://postgres:***@127.0.0.1:"
    port = free_port()
    child = subprocess.Popen(
        [sys.executable, "-m", "service.cli", "serve", "--no-worker", "--port", str(port)],
        env=_env(tmp_path, url), cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    listened = False
    deadline = time.monotonic() + 60
    while child.poll() is None and time.monotonic() < deadline:
        with socket.socket() as probe:
            listened = listened or probe.connect_ex(("127.0.0.1", port)) == 0
        time.sleep(0.01)
    if child.poll() is None:
        child.kill()
    out, err = child.communicate(timeout=10)
    assert child.returncode == 1, (out, err)
    assert not listened, "okrsync serve opened its port on a database it cannot use"
    flat = " ".join(err.split())
    assert "okrsync cannot start:" in flat and message in flat, err
    assert SECRET not in out + err
    if case == "unmigrated":
        engine = make_engine(pg_url)
        assert inspect(engine).get_table_names() == [], "serve changed the database"
        engine.dispose()


@pytest.mark.slow  # okrsync in a subprocess
def test_serve_starts_once_the_database_is_upgraded(
    pg_url: str, tmp_path: Path, okrsync: Callable[..., Result]
) -> None:
    assert okrsync(pg_url, "db", "upgrade").exit_code == 0
    port = free_port()
    child = subprocess.Popen(
        [sys.executable, "-m", "service.cli", "serve", "--no-worker", "--port", str(port)],
        env=_env(tmp_path, pg_url), cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            assert child.poll() is None, child.communicate()[1][-2000:]
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert time.monotonic() < deadline, "okrsync serve did not start"
            time.sleep(0.05)
    finally:
        child.terminate()
        child.wait(timeout=20)


def test_a_newer_database_is_refused_by_every_path(empty_url: str, okrsync: Callable[..., Result]) -> None:
    url = _newer(empty_url)
    engine = make_engine(url)
    try:
        for attempt in (check, upgrade, create_schema):
            with pytest.raises(SchemaError, match="it was migrated by a newer okrsync — upgrade okrsync, do not"):
                attempt(engine)
        assert current(engine) == "9999_from_the_future"
    finally:
        engine.dispose()
    refused = okrsync(url, "db", "upgrade")
    assert refused.exit_code == 1 and "does not know: it was migrated by a newer okrsync" in refused.stderr


@pytest.mark.parametrize(
    ("url", "named"),
    [
        (lambda: f"postgresql://postgres:{SECRET}@127.0.0.1:{free_port()}/okrsync", "Connection refused"),
        (lambda: make_url(BASE_POSTGRES_URL).set(password=SECRET, database="okrsync_mig_missing"), "does not exist"),
        (lambda: make_url(BASE_POSTGRES_URL).set(username="okrsync_nobody", password=SECRET), "okrsync_nobody"),
    ],
    ids=["unreachable-port", "no-such-database", "no-such-user"],
)
def test_a_wrong_database_url_is_named_without_its_password(
    url: object, named: str, okrsync: Callable[..., Result]
) -> None:
    target = url()  # type: ignore[operator]
    target = target if isinstance(target, str) else target.render_as_string(hide_password=False)
    engine = make_engine(target)
    try:
        with pytest.raises(SchemaError) as refused:
            check(engine)
    finally:
        engine.dispose()
    message = str(refused.value)
    assert SECRET not in message and "***" in message
    parts = make_url(target)
    assert f"host {parts.host} port {parts.port}, database {parts.database}" in message and named in message, message
    answer = okrsync(target, "db", "current")
    assert answer.exit_code == 1 and "cannot open the database" in answer.stderr, answer.output
    assert SECRET not in answer.output


def _tables_from_before_migrations(engine: Engine) -> None:
    """What create_schema made before migrations (okrsync 0.1's create_all): the first revision's tables, no
    alembic_version. (Today's models have columns added by later revisions.)"""
    with engine.begin() as conn:
        command.upgrade(alembic_config(conn), INITIAL)
        conn.execute(text("drop table alembic_version"))


def test_a_database_from_before_migrations_is_adopted_with_its_data(
    empty_url: str, okrsync: Callable[..., Result]
) -> None:
    engine = make_engine(empty_url)
    try:
        _tables_from_before_migrations(engine)
        with Session(engine) as session:
            session.add(CrmConnection(crm="salesforce", name="acme", created_at=utcnow()))
            session.commit()
        with pytest.raises(SchemaError, match="created by an okrsync from before migrations — run `okrsync db up"):
            check(engine)
    finally:
        engine.dispose()
    adopted = okrsync(empty_url, "db", "upgrade")
    assert adopted.exit_code == 0, adopted.output
    assert f"match revision {INITIAL}: adopted" in adopted.stdout
    engine = make_engine(empty_url)
    try:
        check(engine)
        assert _differences(engine, SQLModel.metadata) == []
        with Session(engine) as session:
            assert [c.name for c in session.exec(select(CrmConnection)).all()] == ["acme"]
    finally:
        engine.dispose()


def test_tables_that_do_not_match_the_first_revision_are_not_adopted(empty_url: str) -> None:
    engine = make_engine(empty_url)
    try:
        SQLModel.metadata.create_all(engine)
        with engine.begin() as conn:
            conn.execute(text("drop table sprint_result"))
            conn.execute(text("alter table api_token drop column revoked_at"))
        with pytest.raises(SchemaError, match=r"lacks what the first migration \(0001\) has: sprint_result, api_tok"):
            upgrade(engine)
        assert current(engine) is None
    finally:
        engine.dispose()


def test_an_embedded_database_is_brought_to_the_head_by_any_command(
    tmp_path: Path, okrsync: Callable[..., Result]
) -> None:
    """No OKRSYNC_DATABASE_URL: the SQLite file in the data dir is okrsync's own, so commands create and migrate it."""
    listed = okrsync(None, "token", "list")
    assert listed.exit_code == 0, listed.output
    engine = make_engine(f"sqlite:///{tmp_path / 'data' / 'okrsync.db'}")
    try:
        assert current(engine) == head()
    finally:
        engine.dispose()


def _plan(conn: Any, statement: Any) -> str:
    sql = str(statement.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
    if conn.dialect.name == "sqlite":
        return " | ".join(row[-1] for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}"))
    conn.exec_driver_sql("SET LOCAL enable_seqscan = off")  # a small table: whether the index can serve, not cost
    return " | ".join(row[0] for row in conn.exec_driver_sql(f"EXPLAIN {sql}"))


def test_the_evidence_key_lookups_use_the_partial_key_index(empty_url: str) -> None:
    """ix_evidence_part_key holds only the rows with a key (0022). Every look-up by key (``related_id IN …``, as
    ``repository._part_rows`` and ``records_with_keys`` ask) implies IS NOT NULL; both planners must see that, or
    a changed opportunity's distinct-count delta would walk the key result's every row."""
    engine = make_engine(empty_url)
    try:
        upgrade(engine)
        with Session(engine) as session:
            connection = CrmConnection(crm="salesforce", name="acme", created_at=utcnow())
            session.add(connection)
            session.flush()
            mapping = OkrMapping(
                connection_id=connection.id, team="t", cycle="c", cycle_start=date(2026, 10, 1),
                cycle_end=date(2026, 12, 31), created_at=utcnow(),
            )  # fmt: skip
            session.add(mapping)
            session.flush()
            for n in range(400):
                session.add(
                    KeyResultEvidence(
                        mapping_id=mapping.id, kr_key="deals-touched" if n % 2 else "talk-time", part="counted",
                        record_id=f"00T{n:015d}", related_id=f"006{n % 40:015d}" if n % 2 else None, value=1.0,
                    )
                )  # fmt: skip
            session.commit()
            mapping_id = mapping.id
        analyze(engine)
        evidence = KeyResultEvidence.__table__  # type: ignore[attr-defined]
        keys = [f"006{n:015d}" for n in (1, 3)]
        where = repository._part_rows(mapping_id, "deals-touched", "counted", None, keys)
        with engine.begin() as conn:
            for statement in (select(evidence.c.record_id).where(*where), delete(evidence).where(*where)):
                assert "ix_evidence_part_key" in _plan(conn, statement), _plan(conn, statement)
    finally:
        engine.dispose()
