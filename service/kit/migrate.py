"""Schema versions: the Alembic migrations shipped inside the package (``service/kit/migrations``), driven from code
(no alembic.ini at run time).

Who does what:

* ``create_schema(engine)`` (the embedded SQLite database, tests, one-shot commands) brings any database to the head:
  an empty one is created from the models and stamped, an older one is migrated, one made by an okrsync from before
  migrations is adopted.
* ``ensure_ready(settings, engine)`` (``okrsync serve``, ``okrsync worker``): the same for the embedded database; a
  configured ``OKRSYNC_DATABASE_URL`` is only checked — a long-running process never changes a shared schema, it
  refuses to start and says to run ``okrsync db upgrade``.
* ``upgrade(engine)`` (``okrsync db upgrade``) applies the migrations.

Errors::

    SchemaError    the database cannot be used as it is (unreachable, no schema, behind, newer than this okrsync,
                   tables that cannot be adopted); the message names the database without its password and says
                   what to do
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from alembic.config import Config
from alembic.runtime.environment import EnvironmentContext
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import JSON, MetaData, create_engine, inspect, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import DBAPIError
from sqlmodel import SQLModel
from sqlmodel.sql.sqltypes import AutoString

import service.models  # noqa: F401  (registers every table in SQLModel.metadata)
from service.kit.db import UtcDateTime

if TYPE_CHECKING:
    from service.kit.settings import Settings

MIGRATIONS = Path(__file__).with_name("migrations")
INITIAL = "0001"
UPGRADE_HINT = "run `okrsync db upgrade`"
# PostgreSQL advisory lock held while a process changes the schema: two `okrsync db upgrade` (or a sidecar and a
# test fixture) at once wait for each other instead of both creating the same tables
_LOCK_KEY = 0x6F6B7273  # "okrs"


class SchemaError(Exception):
    """The database cannot be used by this okrsync as it is; the message says what to do."""


def _metadata() -> MetaData:
    return SQLModel.metadata  # every table: service.models imports them all


def render_item(type_: str, obj: Any, autogen_context: Any) -> str | bool:
    """Render okrsync's column types as the plain SQLAlchemy types the database sees, so migrations import nothing
    from okrsync (UtcDateTime's UTC handling is Python-side only; AutoString is SQLModel's VARCHAR)."""
    if type_ == "type":
        if isinstance(obj, UtcDateTime):
            return "sa.DateTime(timezone=True)"
        if isinstance(obj, AutoString):
            return f"sa.String(length={obj.length})" if obj.length else "sa.String()"
        if isinstance(obj, JSON) and isinstance(obj._variant_mapping.get("postgresql"), postgresql.JSONB):
            # JsonType (JSONB on PostgreSQL); Alembic's own rendering of the variant forgets the "sa." of Text
            autogen_context.imports.add("from sqlalchemy.dialects import postgresql")
            return 'sa.JSON().with_variant(postgresql.JSONB(), "postgresql")'
    return False


def context_options() -> dict[str, Any]:
    """Options for Alembic's migration context: used by env.py and by the test comparing models with migrations."""
    return {
        "target_metadata": _metadata(),
        "render_item": render_item,
        "compare_type": True,
        "compare_server_default": False,
        # every migration runs on SQLite too, which cannot ALTER most things: autogenerate writes batch operations
        # (on SQLite: copy, change, swap the table; on PostgreSQL plain ALTERs)
        "render_as_batch": True,
    }


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    config.attributes["connection"] = connection
    return config


@lru_cache
def _scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


def head() -> str:
    """The newest revision this okrsync knows."""
    heads = _scripts().get_heads()
    if len(heads) != 1:
        raise RuntimeError(f"the migrations have {len(heads)} heads {heads}: merge them (alembic merge)")
    return heads[0]


def _known(revision: str) -> bool:
    return any(script.revision == revision for script in _scripts().walk_revisions())


def safe_url(engine: Engine | str) -> str:
    """The database's URL with the password masked, fit for messages and logs."""
    url = engine.url if isinstance(engine, Engine) else make_url(engine)
    # as the user wrote it (postgresql://), not as make_engine completed it (postgresql+psycopg://)
    return url.set(drivername=url.get_backend_name()).render_as_string(hide_password=True)


def _unreachable(engine: Engine, exc: DBAPIError) -> SchemaError:
    url = engine.url
    reason = " ".join(str(exc.orig or exc).split())
    if url.password:
        reason = reason.replace(str(url.password), "***")
    if url.get_backend_name() == "sqlite":
        where = f"the SQLite file {url.database}"
    else:
        where = (
            f"host {url.host or 'localhost'} port {url.port or 'default'}, database {url.database}, user {url.username}"
        )
    return SchemaError(
        f"cannot open the database at {safe_url(engine)} ({where}): {reason} — check OKRSYNC_DATABASE_URL"
    )


@dataclass(frozen=True)
class _State:
    revision: str | None
    tables: frozenset[str]

    @property
    def okrsync_tables(self) -> frozenset[str]:
        return self.tables & frozenset(_metadata().tables)


def _state(conn: Connection) -> _State:
    return _State(MigrationContext.configure(conn).get_current_revision(), frozenset(inspect(conn).get_table_names()))


def _lock(conn: Connection) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(text("select pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})


def _problem(engine: Engine, state: _State) -> str | None:
    """What keeps this okrsync from using the database as it is (None: it is at the head)."""
    where = f"database at {safe_url(engine)}"
    if state.revision is None:
        if not state.okrsync_tables:
            return f"{where} has no okrsync schema: {UPGRADE_HINT}"
        return (
            f"{where} has okrsync tables but no schema version: it was created by an okrsync from before migrations"
            f" — {UPGRADE_HINT}, which adopts it when its tables match the first migration ({INITIAL})"
        )
    if not _known(state.revision):
        return (
            f"{where} is at revision {state.revision}, which this okrsync (head {head()}) does not know: it was"
            " migrated by a newer okrsync — upgrade okrsync, do not downgrade the database"
        )
    if not state.okrsync_tables:
        return f"{where} has a schema version ({state.revision}) but no okrsync tables: {UPGRADE_HINT}"
    if state.revision != head():
        return f"{where} is at revision {state.revision}, this okrsync needs {head()}: {UPGRADE_HINT}"
    return None


def _connect(engine: Engine) -> Connection:
    try:
        return engine.connect()
    except DBAPIError as exc:
        raise _unreachable(engine, exc) from None


def current(engine: Engine) -> str | None:
    """The database's revision (None: never migrated)."""
    with _connect(engine) as conn:
        return _state(conn).revision


def check(engine: Engine) -> None:
    """Raise SchemaError unless the database is at this okrsync's head. Changes nothing."""
    with _connect(engine) as conn:
        problem = _problem(engine, _state(conn))
    if problem is not None:
        raise SchemaError(problem)


@dataclass(frozen=True)
class Upgrade:
    """What an upgrade did: from ``before`` (None: an empty database) to ``after``; ``adopted``: tables from before
    migrations were stamped with the first revision on the way."""

    before: str | None
    after: str
    adopted: bool = False


def upgrade(engine: Engine) -> Upgrade:
    """Apply the migrations up to the head, in one transaction on PostgreSQL. A database with okrsync's tables but no
    version (made by create_all before migrations) is stamped with the first revision when it has all of that
    revision's tables and columns, then upgraded."""
    return _to_head(engine, create_all=False)


def bring_to_head(engine: Engine) -> Upgrade:
    """``create_schema``: like ``upgrade``, but an empty database is created from the models and stamped with the
    head (as the migrations would make it, a test proves it; several times faster on SQLite)."""
    return _to_head(engine, create_all=True)


def create_schema(engine: Engine) -> None:
    """Bring the database to this okrsync's schema version (the embedded SQLite database, tests, one-shot commands):
    an empty database is created and stamped, an older one migrated, one from before migrations adopted. Raises
    ``SchemaError`` (unreachable, newer than this okrsync, not adoptable). Long-running processes against a configured
    database use ``ensure_ready``, which only checks."""
    bring_to_head(engine)


def ensure_ready(settings: Settings, engine: Engine) -> None:
    """For long-running processes, before they open a port or take work: the embedded SQLite database (no
    OKRSYNC_DATABASE_URL) is brought to the head; a configured database must already be there (SchemaError)."""
    if settings.database_url is None:
        bring_to_head(engine)
    else:
        check(engine)


def _to_head(engine: Engine, *, create_all: bool) -> Upgrade:
    with _connect(engine) as conn, conn.begin():
        _lock(conn)
        state = _state(conn)
        target = head()
        if state.revision == target and state.okrsync_tables:
            return Upgrade(target, target)
        if state.revision is not None and not _known(state.revision):
            raise SchemaError(_problem(engine, state) or "")
        if not state.okrsync_tables:
            # empty, or a version left without its tables (tests drop every table between runs): from nothing
            if create_all:
                _metadata().create_all(conn)
                MigrationContext.configure(conn).stamp(_scripts(), target)
            else:
                if state.revision is not None:
                    conn.execute(text("delete from alembic_version"))
                _run_migrations(conn, target)
            return Upgrade(None, target)
        adopted = state.revision is None
        if adopted:
            _adopt(engine, conn)
        _run_migrations(conn, target)
        return Upgrade(state.revision, target, adopted)


def _run_migrations(conn: Connection, destination: str) -> None:
    script = _scripts()
    with EnvironmentContext(
        alembic_config(conn),
        script,
        fn=lambda revision, _context: script._upgrade_revs(destination, revision),
        destination_rev=destination,
    ):
        script.run_env()


def _adopt(engine: Engine, conn: Connection) -> None:
    """Stamp a database made by ``create_all`` before migrations with the first revision, if it has every table and
    column that revision creates (compared with the revision applied to an in-memory SQLite database)."""
    reference = create_engine("sqlite://")
    try:
        with reference.begin() as ref:
            _run_migrations(ref, INITIAL)
            wanted = {t: {c["name"] for c in inspect(ref).get_columns(t)} for t in inspect(ref).get_table_names()}
    finally:
        reference.dispose()
    wanted.pop("alembic_version", None)
    found = inspect(conn)
    have = set(found.get_table_names())
    missing = [t for t in sorted(wanted) if t not in have]
    missing += [
        f"{t}.{c}"
        for t in sorted(wanted)
        if t in have
        for c in sorted(wanted[t] - {c["name"] for c in found.get_columns(t)})
    ]
    if missing:
        raise SchemaError(
            f"database at {safe_url(engine)} has okrsync tables but no schema version, and it lacks what the first"
            f" migration ({INITIAL}) has: {', '.join(missing[:20])}{' …' if len(missing) > 20 else ''}. okrsync cannot"
            " adopt it: start from an empty database (`okrsync db upgrade` creates the schema) and sync again"
        )
    MigrationContext.configure(conn).stamp(_scripts(), INITIAL)
