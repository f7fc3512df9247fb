"""``okrsync writeback``, ``okrsync run`` (sync + compute + write-back once) and ``okrsync provision hubspot``."""

from __future__ import annotations

import logging
import sys
from contextlib import ExitStack
from enum import StrEnum
from typing import Annotated

import typer
from rich.console import Console
from sqlalchemy.engine import Engine
from sqlmodel import Session

from connectors.errors import ConnectorError
from connectors.registry import BUILT_IN
from connectors.registry import adapter as crm_adapter
from service.crm.clients import CrmAccess, NotConfiguredError, open_crm
from service.crm.models import CrmConnection
from service.kit.db import make_engine
from service.kit.migrate import create_schema
from service.kit.settings import Settings, get_settings
from service.loop import find_connection, run_pass
from service.writeback import repository as repo
from service.writeback.service import WritebackReport, send, stage_connection

out = Console() if Console().is_terminal else Console(width=160)
err = Console(stderr=True)


# the CLI's choice of CRM: the registry's built-in CRMs (a functional enum: its members come from the registry)
Crm = StrEnum("Crm", [(name, name) for name in BUILT_IN])  # type: ignore[misc]
CrmArg = Annotated[Crm, typer.Argument(help=f"{' or '.join(BUILT_IN)}.")]
SandboxOpt = Annotated[bool, typer.Option("--sandbox", help="Use the built-in sandbox CRM, started in this process.")]
SandboxUrlOpt = Annotated[
    str | None, typer.Option(help="Use a running `okrsync sandbox`, e.g. https://127.0.0.1:8765.")
]


def _setup(settings: Settings) -> Engine:
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    for noisy in ("urllib3", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    engine = make_engine(settings.effective_database_url)
    create_schema(engine)
    return engine


def _open(stack: ExitStack, crm: Crm, settings: Settings, sandbox: bool, sandbox_url: str | None) -> CrmAccess:
    try:
        access = open_crm(stack, crm.value, settings, use_sandbox=sandbox, sandbox_url=sandbox_url)
    except NotConfiguredError as exc:
        err.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from None
    if access.sandbox is not None and access.adapter.provision_hint is None:
        # a sandbox CRM started here is new: provision it as an admin would have (a real one keeps its objects)
        access.adapter.provision(access.config)
    return access


def _connection(session: Session, access: CrmAccess) -> CrmConnection:
    connection = find_connection(session, crm=access.crm, name=access.connection_name)
    if connection is None or connection.id is None:
        err.print(
            f"[red]nothing synced from {access.crm}/{access.connection_name} yet:[/] run `okrsync sync {access.crm}"
            f"{' --sandbox' if access.connection_name == 'sandbox' else ''}` and apply a mapping first"
        )
        raise typer.Exit(2)
    return connection


def _write(engine: Engine, access: CrmAccess, connection_id: int) -> WritebackReport:
    return _print_writeback(send(engine, access.writer(), connection_id=connection_id))


def _print_writeback(report: WritebackReport) -> WritebackReport:
    out.print(report.summary(), markup=False, highlight=False)
    if report.superseded:
        out.print(f"  {report.superseded} record(s) changed again while being sent: the newer values go next time")
    for problem in report.problems[:20]:
        err.print(f"[yellow]not written:[/] {problem}", markup=True, highlight=False)
    if len(report.problems) > 20:
        err.print(f"… and {len(report.problems) - 20} more (okrsync writeback --status lists them)")
    if report.stopped:
        err.print(f"[red]write-back stopped:[/] {report.stopped}")
    return report


def _exit_code(report: WritebackReport) -> None:
    if report.stopped or report.problems:
        raise typer.Exit(1)


def writeback(
    crm: CrmArg,
    sandbox: SandboxOpt = False,
    sandbox_url: SandboxUrlOpt = None,
    retry_failed: Annotated[
        bool, typer.Option("--retry-failed", help="Send records that failed before again (after fixing the cause).")
    ] = False,
    status: Annotated[
        bool, typer.Option("--status", help="Show the outbox and its last failures; send nothing.")
    ] = False,
) -> None:
    """Write OKR status (objectives, key results, contributions, KAM criteria, hygiene) back to the CRM.

    Only what changed since the last write-back is sent; a run with nothing new makes no API call."""
    settings = get_settings()
    engine = _setup(settings)
    with ExitStack() as stack:
        access = _open(stack, crm, settings, sandbox, sandbox_url)
        with Session(engine) as session:
            connection = _connection(session, access)
            assert connection.id is not None
            if status:
                _print_status(session, connection.id)
                return
            if retry_failed:
                again = repo.retry_failed(session, connection_id=connection.id)
                out.print(f"{again} failed record(s) queued again")
            stage_connection(session, connection=connection, settings=settings)
            session.commit()
            connection_id = connection.id
        report = _write(engine, access, connection_id)
    _exit_code(report)


def _print_status(session: Session, connection_id: int) -> None:
    for (target, op, state), count in sorted(repo.counts(session, connection_id=connection_id).items()):
        out.print(f"{target:<14} {op:<7} {state:<8} {count}")
    for row in repo.failures(session, connection_id=connection_id):
        out.print(f"[{row.status}] {row.error}", markup=False, highlight=False)


def run(
    crm: CrmArg,
    sandbox: SandboxOpt = False,
    sandbox_url: SandboxUrlOpt = None,
    full: Annotated[bool, typer.Option("--full", help="Full sync and full recompute.")] = False,
) -> None:
    """Sync, recompute what changed, and write back what changed: one pass of the loop the sidecar runs."""
    settings = get_settings()
    engine = _setup(settings)
    with ExitStack() as stack:
        access = _open(stack, crm, settings, sandbox, sandbox_url)
        try:
            result = run_pass(
                engine,
                connector=access.connector(),
                writer=access.writer(),
                connection_name=access.connection_name,
                settings=settings,
                full=full,
            )
        except ConnectorError as exc:
            err.print(f"[red]stopped:[/] {exc}")
            raise typer.Exit(1) from None
    out.print(result.sync.summary(), markup=False, highlight=False)
    for name, computed in result.computed:
        recomputed = len(computed.recomputed)
        out.print(f"{name}: {computed.kind} compute, {recomputed} key result(s) in {computed.seconds:.2f} s")
    assert result.staged is not None and result.writeback is not None
    out.print(f"{result.staged.total()} record(s) staged for write-back")
    report = _print_writeback(result.writeback)
    _exit_code(report)


def provision(
    crm: Annotated[str, typer.Argument(help="hubspot (Salesforce metadata is deployed with the sf CLI).")],
    sandbox: SandboxOpt = False,
    sandbox_url: SandboxUrlOpt = None,
) -> None:
    """Create okrsync's custom objects (Enterprise) or properties in the HubSpot portal; safe to run again."""
    try:
        hint = crm_adapter(crm).provision_hint
    except LookupError as exc:
        err.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from None
    if hint is not None:
        err.print(hint)
        raise typer.Exit(2)
    settings = get_settings()
    _setup(settings)
    with ExitStack() as stack:
        access = _open(stack, Crm(crm), settings, sandbox, sandbox_url)
        try:
            report = access.adapter.provision(access.config)
        except ConnectorError as exc:
            err.print(f"[red]provisioning stopped:[/] {exc}")
            raise typer.Exit(1) from None
    out.print(f"write-back mode: {report.mode}")
    if report.custom_objects is not None:
        out.print(f"custom objects: {'supported' if report.custom_objects else 'NOT available in this portal'}")
    for line in report.created:
        out.print(f"  created {line}")
    for line in report.present:
        out.print(f"  present {line}")
    for problem in report.problems:
        err.print(f"[red]{problem}[/]")
    if report.problems:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("writeback")(writeback)
    app.command("run")(run)
    app.command("provision")(provision)
