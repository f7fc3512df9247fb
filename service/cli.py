"""The ``okrsync`` command line."""

from __future__ import annotations

import json
import logging
import sys
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from pydantic import SecretStr
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from connectors.errors import ConnectorError
from connectors.salesforce.config import SalesforceConfig
from connectors.salesforce.connector import SalesforceConnector
from service.kit.db import create_schema, make_engine
from service.kit.settings import Settings, get_settings
from service.sync.service import run_sync

app = typer.Typer(help="okrsync: activity-based OKRs from your CRM.", no_args_is_help=True)
sync_app = typer.Typer(help="Pull CRM data into the local model.", no_args_is_help=True)
app.add_typer(sync_app, name="sync")
console = Console(stderr=True)


def _setup_logging(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    for noisy in ("urllib3", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def sandbox_config(base_url: str, ca_path: str) -> SalesforceConfig:
    """Connector settings for the built-in sandbox CRM (its published demo credentials, not secrets)."""
    from connectors.sandbox.store import SandboxOrg

    defaults = SandboxOrg(data={})
    return SalesforceConfig(
        instance_url=base_url,
        login_url=base_url,
        consumer_key=defaults.consumer_key,
        consumer_secret=SecretStr(defaults.consumer_secret),
        username=defaults.username,
        password=SecretStr(defaults.password),
        security_token=SecretStr(defaults.security_token),
        ca_bundle=Path(ca_path),
        custom_fields={"Opportunity": ["Segment__c"], "Account": ["Key_Account__c", "Tier__c"]},
    )


def sandbox_org(settings: Settings):  # type: ignore[no-untyped-def]
    """The sandbox org, generated deterministically; its anchor date is kept in data_dir so restarts match."""
    from connectors.sandbox.generator import generate_org
    from connectors.sandbox.store import SandboxOrg

    state_file = settings.data_dir / "sandbox" / "org.json"
    state_file.parent.mkdir(parents=True, exist_ok=True)
    sizes = settings.sandbox
    wanted = {
        "seed": sizes.seed,
        "accounts": sizes.accounts,
        "opportunities": sizes.opportunities,
        "activities": sizes.activities,
    }
    saved = json.loads(state_file.read_text()) if state_file.exists() else {}
    if {k: saved.get(k) for k in wanted} != wanted:
        anchor = datetime.now(UTC).replace(second=0, microsecond=0)
        saved = {**wanted, "anchor": anchor.isoformat()}
        state_file.write_text(json.dumps(saved, indent=2))
    anchor = datetime.fromisoformat(saved["anchor"])
    return SandboxOrg(generate_org(anchor=anchor, **wanted))


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
    org = sandbox_org(settings)
    port = port if port is not None else settings.sandbox.port
    cert_dir = settings.data_dir / "sandbox"
    console.print(
        f"sandbox CRM on https://{settings.sandbox.host}:{port} — "
        f"{', '.join(f'{len(org.records(t))} {t}' for t in ('Account', 'Opportunity', 'Task', 'Event'))}\n"
        f"sync it from another terminal: okrsync sync salesforce --sandbox-url https://{settings.sandbox.host}:{port}"
    )
    serve_forever(org, host=settings.sandbox.host, port=port, cert_dir=cert_dir)


@sync_app.command("salesforce")
def sync_salesforce(
    full: Annotated[bool, typer.Option("--full", help="Re-read everything and sweep deleted records.")] = False,
    use_sandbox: Annotated[
        bool, typer.Option("--sandbox", help="Start the built-in sandbox CRM in this process and sync from it.")
    ] = False,
    sandbox_url: Annotated[
        str | None, typer.Option(help="Sync from a running `okrsync sandbox`, e.g. https://127.0.0.1:8765.")
    ] = None,
) -> None:
    """Pull Opportunity, Account, Contact, User, Task, Event and OpportunityContactRole into the local model."""
    settings = get_settings()
    _setup_logging(settings)
    engine = make_engine(settings.effective_database_url)
    create_schema(engine)
    with ExitStack() as stack:
        connection_name = settings.connection_name
        if use_sandbox or sandbox_url:
            connection_name = "sandbox"
            if sandbox_url:
                config = sandbox_config(sandbox_url, str(settings.data_dir / "sandbox" / "ca.pem"))
            else:
                from connectors.sandbox.server import SandboxServer

                server = stack.enter_context(
                    SandboxServer(sandbox_org(settings), cert_dir=settings.data_dir / "sandbox")
                )
                config = sandbox_config(server.base_url, server.ca_path or "")
        elif settings.salesforce is None:
            console.print(
                "[red]Salesforce is not configured.[/] Set OKRSYNC_SALESFORCE__INSTANCE_URL and credentials"
                " (see README: 'Connecting a real Salesforce org'), or try it with --sandbox."
            )
            raise typer.Exit(2)
        else:
            config = settings.salesforce
        connector = SalesforceConnector(config)
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
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
