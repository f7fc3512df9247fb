"""The ``okrsync`` command line."""

from __future__ import annotations

import json
import logging
import sys
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import SecretStr
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from connectors.errors import ConnectorError
from connectors.hubspot.config import HubSpotConfig
from connectors.hubspot.connector import HubSpotConnector
from connectors.salesforce.config import SalesforceConfig
from connectors.salesforce.connector import SalesforceConnector
from connectors.salesforce.mapping import OBJECTS
from service.kit.db import create_schema, make_engine
from service.kit.settings import Settings, get_settings
from service.okrs.commands import register as register_okr_commands
from service.sync.service import run_sync

app = typer.Typer(help="okrsync: activity-based OKRs from your CRM.", no_args_is_help=True)
sync_app = typer.Typer(help="Pull CRM data into the local model.", no_args_is_help=True)
app.add_typer(sync_app, name="sync")
register_okr_commands(app)
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
    wanted: dict[str, Any] = {
        "seed": sizes.seed,
        "accounts": sizes.accounts,
        "opportunities": sizes.opportunities,
        "activities": sizes.activities,
    }
    if sizes.anchor is not None:
        wanted["anchor"] = sizes.anchor.astimezone(UTC).isoformat()
    saved = json.loads(state_file.read_text()) if state_file.exists() else {}
    if {k: saved.get(k) for k in wanted} != wanted:
        anchor = sizes.anchor or datetime.now(UTC).replace(second=0, microsecond=0)
        saved = {**wanted, "anchor": anchor.isoformat()}
        state_file.write_text(json.dumps(saved, indent=2))
    anchor = datetime.fromisoformat(saved["anchor"])
    sizes_only = {k: v for k, v in wanted.items() if k != "anchor"}
    return SandboxOrg(generate_org(anchor=anchor, **sizes_only))


def sandbox_crms(settings: Settings):  # type: ignore[no-untyped-def]
    """The sandbox Salesforce org and the HubSpot portal telling the same quarter."""
    from connectors.sandbox.hubspot_seed import portal_from_org

    org = sandbox_org(settings)
    portal, _ids = portal_from_org({t: org.records(t, include_deleted=True) for t in OBJECTS})
    return org, portal


def hubspot_sandbox_config(base_url: str, ca_path: str) -> HubSpotConfig:
    from connectors.sandbox.hubspot_portal import HubSpotPortal

    return HubSpotConfig(
        access_token=SecretStr(HubSpotPortal().access_token),
        host=base_url,
        ca_bundle=Path(ca_path),
        custom_properties={"deals": ["segment"], "companies": ["key_account", "tier"]},
        close_date_pushes_property="close_date_pushes",
    )


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
    port = port if port is not None else settings.sandbox.port
    cert_dir = settings.data_dir / "sandbox"
    console.print(
        f"sandbox CRM on https://{settings.sandbox.host}:{port} — "
        f"{', '.join(f'{len(org.records(t))} {t}' for t in ('Account', 'Opportunity', 'Task', 'Event'))}\n"
        f"sync it from another terminal: okrsync sync salesforce|hubspot --sandbox-url"
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


@sync_app.command("salesforce")
def sync_salesforce(
    full: FullOption = False, use_sandbox: SandboxOption = False, sandbox_url: SandboxUrlOption = None
) -> None:
    """Pull Opportunity, Account, Contact, User, Task, Event and OpportunityContactRole into the local model."""
    _sync("salesforce", full=full, use_sandbox=use_sandbox, sandbox_url=sandbox_url)


@sync_app.command("hubspot")
def sync_hubspot(
    full: FullOption = False, use_sandbox: SandboxOption = False, sandbox_url: SandboxUrlOption = None
) -> None:
    """Pull owners, companies, contacts, deals, calls, emails, meetings, notes and tasks with their associations."""
    _sync("hubspot", full=full, use_sandbox=use_sandbox, sandbox_url=sandbox_url)


def _connector(crm: str, base_url: str, ca_path: str) -> SalesforceConnector | HubSpotConnector:
    if crm == "salesforce":
        return SalesforceConnector(sandbox_config(base_url, ca_path))
    return HubSpotConnector(hubspot_sandbox_config(base_url, ca_path))


def _sync(crm: str, *, full: bool, use_sandbox: bool, sandbox_url: str | None) -> None:
    settings = get_settings()
    _setup_logging(settings)
    engine = make_engine(settings.effective_database_url)
    create_schema(engine)
    with ExitStack() as stack:
        connection_name = settings.connection_name
        connector: SalesforceConnector | HubSpotConnector
        if use_sandbox or sandbox_url:
            connection_name = "sandbox"
            if sandbox_url:
                connector = _connector(crm, sandbox_url, str(settings.data_dir / "sandbox" / "ca.pem"))
            else:
                from connectors.sandbox.server import SandboxServer

                org, portal = sandbox_crms(settings)
                server = stack.enter_context(SandboxServer(org, portal=portal, cert_dir=settings.data_dir / "sandbox"))
                connector = _connector(crm, server.base_url, server.ca_path or "")
        elif crm == "salesforce" and settings.salesforce is not None:
            connector = SalesforceConnector(settings.salesforce)
        elif crm == "hubspot" and settings.hubspot is not None:
            connector = HubSpotConnector(settings.hubspot)
        else:
            first = "INSTANCE_URL" if crm == "salesforce" else "ACCESS_TOKEN"
            console.print(
                f"[red]{crm} is not configured.[/] Set OKRSYNC_{crm.upper()}__{first} and the other settings"
                f" (see README: 'Connecting a real {crm.capitalize()}'), or try it with --sandbox."
            )
            raise typer.Exit(2)
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
