"""The ``okrsync`` command line."""

from __future__ import annotations

import logging
import sys
from contextlib import ExitStack
from typing import Annotated

import typer
from pydantic import ValidationError
from pydantic_settings import SettingsError
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from connectors.errors import ConnectorError
from connectors.registry import BUILT_IN
from connectors.registry import adapter as crm_adapter
from service.crm.clients import NotConfiguredError, open_crm, sandbox_crms
from service.demo import register as register_demo_command
from service.kit.db import make_engine
from service.kit.db_commands import register as register_db_commands
from service.kit.migrate import SchemaError, create_schema
from service.kit.settings import Settings, get_settings, settings_problems, settings_source_problem
from service.okrs.commands import register as register_okr_commands
from service.sidecar import register as register_sidecar_commands
from service.sync.service import run_sync
from service.writeback.commands import register as register_writeback_commands

app = typer.Typer(help="okrsync: activity-based OKRs from your CRM.", no_args_is_help=True)
sync_app = typer.Typer(help="Pull CRM data into the local model.", no_args_is_help=True)
app.add_typer(sync_app, name="sync")
register_okr_commands(app)
register_writeback_commands(app)
register_sidecar_commands(app)
register_demo_command(app)
register_db_commands(app)
console = Console(stderr=True)


def _setup_logging(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    for noisy in ("urllib3", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


@app.command()
def sandbox(
    port: Annotated[int | None, typer.Option(help="Port on 127.0.0.1 (default OKRSYNC_SANDBOX__PORT, 8765).")] = None,
    activities: Annotated[int | None, typer.Option(help="Number of activities to generate.")] = None,
) -> None:
    """Run the sandbox CRM (a fake Salesforce org speaking the REST API over TLS) on 127.0.0.1."""
    from connectors.sandbox.server import serve_forever

    settings = get_settings()
    _setup_logging(settings)
    if activities is not None:
        settings.sandbox.activities = activities
    org, portal = sandbox_crms(settings)
    if settings.sandbox.latency_seconds:
        for plan in (org.faults, portal.faults):
            plan.add("latency", times=10**9, seconds=settings.sandbox.latency_seconds)
    port = port if port is not None else settings.sandbox.port
    cert_dir = settings.data_dir / "sandbox"
    console.print(
        f"sandbox CRM on https://{settings.sandbox.host}:{port} — "
        f"{', '.join(f'{len(org.records(t))} {t}' for t in ('Account', 'Opportunity', 'Task', 'Event'))};"
        f" HubSpot portal {portal.portal_id}\n"
        f"sync it from another terminal: okrsync sync {'|'.join(BUILT_IN)} --sandbox-url"
        f" https://{settings.sandbox.host}:{port}"
    )
    serve_forever(org, host=settings.sandbox.host, port=port, cert_dir=cert_dir, portal=portal)


FullOption = Annotated[bool, typer.Option("--full", help="Re-read everything and sweep deleted records.")]
SandboxOption = Annotated[
    bool, typer.Option("--sandbox", help="Start the built-in sandbox CRM in this process and sync from it.")
]
SandboxUrlOption = Annotated[
    str | None, typer.Option(help="Sync from a running `okrsync sandbox`, e.g. https://127.0.0.1:8765.")
]


def _sync_command(crm: str) -> None:
    """``okrsync sync <crm>``, its help the CRM adapter's ``pulls``."""

    def sync_crm(
        full: FullOption = False, use_sandbox: SandboxOption = False, sandbox_url: SandboxUrlOption = None
    ) -> None:
        _sync(crm, full=full, use_sandbox=use_sandbox, sandbox_url=sandbox_url)

    sync_crm.__name__ = f"sync_{crm}"
    sync_app.command(crm, help=crm_adapter(crm).pulls)(sync_crm)


for _crm in BUILT_IN:
    _sync_command(_crm)


def _sync(crm: str, *, full: bool, use_sandbox: bool, sandbox_url: str | None) -> None:
    settings = get_settings()
    _setup_logging(settings)
    engine = make_engine(settings.effective_database_url)
    create_schema(engine)
    with ExitStack() as stack:
        try:
            access = open_crm(stack, crm, settings, use_sandbox=use_sandbox, sandbox_url=sandbox_url)
        except NotConfiguredError as exc:
            console.print(f"[red]{exc}[/]")
            raise typer.Exit(2) from None
        connector = access.connector()
        connection_name = access.connection_name
        progress = None
        if sys.stderr.isatty():
            bar = stack.enter_context(
                Progress(
                    TextColumn("{task.description:<24}"),
                    BarColumn(),
                    MofNCompleteColumn(),
                    TimeElapsedColumn(),
                    console=console,
                )
            )
            tasks: dict[str, int] = {}

            def progress(stream: str, done: int, total: int) -> None:
                if stream not in tasks:
                    tasks[stream] = bar.add_task(stream, total=total)
                bar.update(tasks[stream], completed=done, total=total)  # type: ignore[arg-type]

        try:
            report = run_sync(engine, connector, connection_name=connection_name, full=full, progress=progress)
        except ConnectorError as exc:
            console.print(f"[red]sync stopped:[/] {exc}")
            raise typer.Exit(1) from None
    print(report.summary())
    for warning in report.warnings:
        console.print(f"[yellow]warning:[/] {warning}")


def main() -> None:  # pragma: no cover
    try:
        app()
    except SchemaError as exc:
        # any command on a database it cannot use (unreachable, newer than this okrsync…): the message, no traceback
        console.print(f"[red]{escape(str(exc))}[/]", soft_wrap=True)
        sys.exit(1)
    except SettingsError as exc:
        console.print(f"[red]okrsync settings are invalid:[/] {escape(settings_source_problem(exc))}", soft_wrap=True)
        sys.exit(2)
    except ValidationError as exc:
        if exc.title != Settings.__name__:
            raise
        # what is wrong and where, never the value (a token, a password)
        console.print("[red]okrsync settings are invalid:[/]")
        for line in settings_problems(exc):
            console.print(f"  {escape(line)}", soft_wrap=True, highlight=False)
        sys.exit(2)


if __name__ == "__main__":  # pragma: no cover
    main()
