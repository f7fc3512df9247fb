"""``okrsync db upgrade`` and ``okrsync db current``: the schema version of the configured database."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.markup import escape

from service.kit.db import make_engine
from service.kit.migrate import INITIAL, SchemaError, check, current, head, safe_url, upgrade
from service.kit.settings import get_settings

db_app = typer.Typer(
    help="The database schema: okrsync's migrations (Alembic), shipped with okrsync.", no_args_is_help=True
)
err = Console(stderr=True)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply okrsync's migrations to the database (OKRSYNC_DATABASE_URL or the SQLite file in the data dir). Safe to
    run again and from several places at once; a database made by an okrsync from before migrations is adopted."""
    engine = make_engine(get_settings().effective_database_url)
    try:
        done = upgrade(engine)
    except SchemaError as exc:
        err.print(f"[red]{escape(str(exc))}[/]", soft_wrap=True)
        raise typer.Exit(1) from None
    finally:
        engine.dispose()
    where = safe_url(engine)
    before = done.before or "empty"
    if done.adopted:
        print(f"database at {where}: its tables (from an okrsync before migrations) match revision {INITIAL}: adopted")
        before = INITIAL
    if before == done.after:
        print(f"database at {where} is up to date (revision {done.after})")
    else:
        print(f"database at {where} upgraded: {before} → {done.after}")


@db_app.command("current")
def db_current() -> None:
    """Print the database's schema revision and whether it is this okrsync's head (and what to do if not)."""
    engine = make_engine(get_settings().effective_database_url)
    try:
        try:
            revision = current(engine)
        except SchemaError as exc:
            err.print(f"[red]{escape(str(exc))}[/]", soft_wrap=True)
            raise typer.Exit(1) from None
        target = head()
        print(f"{revision or 'none'} ({'head' if revision == target else f'this okrsync needs {target}'})")
        if revision != target:
            try:
                check(engine)
            except SchemaError as exc:
                err.print(escape(str(exc)), soft_wrap=True)
    finally:
        engine.dispose()


def register(app: typer.Typer) -> None:
    app.add_typer(db_app, name="db")
