"""Alembic's entry point for okrsync's migrations.

okrsync runs it from code (``service.kit.migrate`` hands over an open connection in ``config.attributes``); a
developer's ``alembic revision --autogenerate`` (the root alembic.ini) connects to ``OKRSYNC_DATABASE_URL`` or the
SQLite file in the data dir. ``alembic upgrade head --sql`` prints the SQL for a DBA instead of running it.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from service.kit.migrate import context_options


def _run(connection: Connection) -> None:
    context.configure(connection=connection, **context_options())
    with context.begin_transaction():
        context.run_migrations()


def main() -> None:
    if context.is_offline_mode():
        from service.kit.settings import Settings

        url = context.config.get_main_option("sqlalchemy.url") or Settings().effective_database_url
        context.configure(url=url, literal_binds=True, **context_options())
        with context.begin_transaction():
            context.run_migrations()
        return
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    from service.kit.db import make_engine
    from service.kit.settings import Settings

    engine = make_engine(context.config.get_main_option("sqlalchemy.url") or Settings().effective_database_url)
    try:
        with engine.begin() as connection:
            _run(connection)
    finally:
        engine.dispose()


main()
