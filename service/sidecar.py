"""``okrsync serve`` (the sidecar: API, webhooks, worker) and ``okrsync token`` (API tokens with roles)."""

from __future__ import annotations

import logging
from contextlib import ExitStack
from typing import Annotated

import sqlmodel
import typer
from pydantic import SecretStr
from rich.console import Console
from rich.markup import escape
from sqlalchemy.engine import Engine
from sqlmodel import Session

from connectors.registry import BUILT_IN
from connectors.sandbox.world import sandbox_org
from service.crm.clients import CrmAccess, NotConfiguredError, extra_crms, open_crm
from service.kit.auth import ApiToken, Role, create_token, revoke_token
from service.kit.db import make_engine
from service.kit.migrate import SchemaError, create_schema, ensure_ready
from service.kit.settings import Settings, get_settings, production_problems

token_app = typer.Typer(help="API tokens for the sidecar (stored hashed; shown once).", no_args_is_help=True)
out = Console()
err = Console(stderr=True)

# the sandbox's published demo secrets (not secrets: the sandbox CRM signs its webhooks with them)
SANDBOX_HUBSPOT_CLIENT_SECRET = "okrsync-sandbox-client-secret"
SANDBOX_FLOW_SECRET = "okrsync-sandbox-flow-secret"


def sandbox_webhooks(settings: Settings, org_id: str) -> Settings:
    """Settings whose webhook secrets match the sandbox CRM's (unless set explicitly)."""
    hooks = settings.webhooks.model_copy(
        update={
            "hubspot_client_secret": settings.webhooks.hubspot_client_secret
            or SecretStr(SANDBOX_HUBSPOT_CLIENT_SECRET),
            "flow_secret": settings.webhooks.flow_secret or SecretStr(SANDBOX_FLOW_SECRET),
            "salesforce_org_id": settings.webhooks.salesforce_org_id or org_id,
        }
    )
    return settings.model_copy(update={"webhooks": hooks})


SandboxUrl = Annotated[
    str | None,
    typer.Option(help="Use a running `okrsync sandbox` (e.g. https://127.0.0.1:8765) for both CRMs."),
]


def _open_crms(stack: ExitStack, settings: Settings, *, sandbox: bool, sandbox_url: str | None) -> dict[str, CrmAccess]:
    """The CRM connections to work on: the default ones — the sandbox (started here or at ``sandbox_url``) or the
    configured ones — keyed ``salesforce``/``hubspot``, and the extra ones of OKRSYNC_CONNECTIONS keyed
    ``crm/name``."""
    crms: dict[str, CrmAccess] = {}
    if sandbox or sandbox_url:
        url = sandbox_url  # the first CRM starts the sandbox server (one for all), the others reach it there
        for crm in BUILT_IN:
            crms[crm] = open_crm(stack, crm, settings, use_sandbox=sandbox and url is None, sandbox_url=url)
            server = crms[crm].sandbox
            if server is not None:
                url = server.base_url
                err.print(f"sandbox CRM on {server.base_url}; webhook secrets: the sandbox's demo values")
    else:
        for crm in BUILT_IN:
            try:
                crms[crm] = open_crm(stack, crm, settings)
            except NotConfiguredError:
                continue
    return crms | extra_crms(settings)


def _sandbox_org_id(crms: dict[str, CrmAccess], settings: Settings) -> str:
    server = next((access.sandbox for access in crms.values() if access.sandbox is not None), None)
    if server is not None:
        return str(server.org.org_id)
    return sandbox_org(settings.data_dir / "sandbox", settings.sandbox).org_id


def refuse_production_gaps(settings: Settings, *, sandbox: bool) -> None:
    """OKRSYNC_MODE=production: every missing or placeholder setting a real deployment needs, listed at once, and
    exit code 1 before anything starts (no half-started service)."""
    if settings.mode != "production":
        return
    problems = production_problems(settings, sandbox=sandbox)
    if problems:
        err.print("[red]okrsync cannot start in production mode (OKRSYNC_MODE=production):[/]", soft_wrap=True)
        for problem in problems:
            err.print(f"  - {escape(problem)}", soft_wrap=True)
        raise typer.Exit(1)


def refuse_unready_database(settings: Settings, engine: Engine) -> None:
    """Before a long-running process opens a port or takes work: the embedded database is brought to the schema
    head; a configured one that is not there (unmigrated, behind, newer, unreachable) stops the process with what to
    do and exit code 1 — never a half-started service (``okrsync serve``, ``okrsync worker``)."""
    try:
        ensure_ready(settings, engine)
    except SchemaError as exc:
        err.print(f"[red]okrsync cannot start:[/] {escape(str(exc))}", soft_wrap=True)
        raise typer.Exit(1) from None


def serve(
    sandbox: Annotated[
        bool, typer.Option("--sandbox", help="Serve against the built-in sandbox CRM (both CRMs).")
    ] = False,
    sandbox_url: SandboxUrl = None,
    host: Annotated[str | None, typer.Option(help="Interface (default OKRSYNC_SERVE__HOST, 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default OKRSYNC_SERVE__PORT, 8080).")] = None,
    worker: Annotated[
        bool, typer.Option("--worker/--no-worker", help="Run a background worker in this process too.")
    ] = True,
) -> None:
    """Run the sidecar: API for sales ops/reps/KAMs (/docs), the team dashboard (/dashboard), CRM webhooks,
    /healthz, /readyz, /metrics, and (unless --no-worker) a worker that refreshes, recomputes and writes back after
    webhooks and on a timer. Several sidecars and `okrsync worker` processes may share one PostgreSQL."""
    settings = get_settings()
    refuse_production_gaps(settings, sandbox=sandbox or bool(sandbox_url))
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    engine = make_engine(settings.effective_database_url)
    refuse_unready_database(settings, engine)
    with ExitStack() as stack:
        crms = _open_crms(stack, settings, sandbox=sandbox, sandbox_url=sandbox_url)
        if sandbox or sandbox_url:
            settings = sandbox_webhooks(settings, _sandbox_org_id(crms, settings))
        elif not crms:
            err.print("[yellow]no CRM configured: serving the API only (no sync, no write-back)[/]")
        # imported here: the API app (FastAPI and every router) and uvicorn cost ~0.2 s to import, which every
        # other okrsync command, a sync included, would otherwise pay at its start
        import uvicorn

        from service.app import create_app

        app = create_app(settings=settings, engine=engine, crms=crms, worker=worker)
        uvicorn.run(
            app,
            host=host or settings.serve.host,
            port=port if port is not None else settings.serve.port,
            log_level=settings.log_level.lower(),
            proxy_headers=True,
            forwarded_allow_ips=settings.serve.trusted_proxies,
        )


def worker(
    sandbox_url: SandboxUrl = None,
    passes: Annotated[
        int | None, typer.Option(help="Stop after this many passes (default: run until stopped).")
    ] = None,
) -> None:
    """Run a background worker without HTTP: webhook events stored by any sidecar, periodic syncs, recompute and
    write-back. Run any number against one PostgreSQL: a lease keeps one worker per CRM connection at a time, a
    worker killed mid-pass leaves its work to another after OKRSYNC_SERVE__LEASE_SECONDS, and periodic syncs run
    once per interval whatever the number of workers. Stops cleanly on SIGTERM/SIGINT (after the current pass)."""
    import signal
    import threading

    from service.kit.metrics import Metrics
    from service.notifications.service import Notifier
    from service.webhooks.tasks import Worker

    settings = get_settings()
    refuse_production_gaps(settings, sandbox=bool(sandbox_url))
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    engine = make_engine(settings.effective_database_url)
    refuse_unready_database(settings, engine)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    with ExitStack() as stack:
        crms = _open_crms(stack, settings, sandbox=False, sandbox_url=sandbox_url)
        if not crms:
            err.print(
                "[red]no CRM configured: a worker needs OKRSYNC_SALESFORCE__… or OKRSYNC_HUBSPOT__… settings,"
                " OKRSYNC_CONNECTIONS (see docs/configuration.md), or --sandbox-url[/]"
            )
            raise typer.Exit(2)
        notifier = Notifier(settings.notifications) if settings.notifications_enabled else None
        if notifier is not None:
            stack.callback(notifier.close)
        background = Worker(engine, settings, crms, Metrics(), notifier=notifier)
        err.print(f"worker {background.holder} on {', '.join(sorted(crms))}")
        done = 0
        while not stop.is_set() and (passes is None or done < passes):
            try:
                background.run_once()
            except Exception:  # noqa: BLE001 — the worker must outlive any one failure; events keep the error
                logging.getLogger(__name__).exception("worker pass failed")
            done += 1
            stop.wait(settings.serve.worker_poll_seconds)
    err.print("worker stopped")


@token_app.command("create")
def token_create(
    name: Annotated[str, typer.Option(help="Who or what uses it, e.g. 'anna (KAM)' or 'hubspot-card'.")],
    role: Annotated[Role, typer.Option(help="admin, sales_ops, lead, kam, rep or viewer.")],
    email: Annotated[
        str | None,
        typer.Option(
            help="The person's CRM e-mail: the dashboard shows them their own work ('You'); a kam token needs it"
            " (their key accounts)."
        ),
    ] = None,
    team: Annotated[
        str | None,
        typer.Option(help="A lead token's team (team.name in the mapping file): the planning drafts they review."),
    ] = None,
) -> None:
    """Create a token and print it once (only its hash is stored)."""
    settings = get_settings()
    engine = make_engine(settings.effective_database_url)
    create_schema(engine)
    with Session(engine) as session:
        try:
            row, token = create_token(session, name=name, role=role, email=email, team=team)
        except ValueError as exc:
            err.print(f"[red]{exc}[/]")
            raise typer.Exit(2) from None
        session.commit()
        err.print(f"token {row.id} for {name} ({role.value}) — shown once, keep it safe:")
    print(token)


@token_app.command("list")
def token_list() -> None:
    """Tokens (never the token itself)."""
    engine = make_engine(get_settings().effective_database_url)
    create_schema(engine)
    with Session(engine) as session:
        for row in session.exec(sqlmodel.select(ApiToken).order_by(ApiToken.id)).all():  # type: ignore[arg-type]
            state = f"revoked {row.revoked_at:%Y-%m-%d}" if row.revoked_at else "active"
            out.print(f"{row.id:>4}  {row.role:<9}  {row.name}  {row.email or ''}  {state}")


@token_app.command("revoke")
def token_revoke(token_id: Annotated[int, typer.Argument(help="The token's id (okrsync token list).")]) -> None:
    """Revoke a token at once."""
    engine = make_engine(get_settings().effective_database_url)
    with Session(engine) as session:
        if not revoke_token(session, token_id=token_id):
            err.print(f"[red]no active token {token_id}[/]")
            raise typer.Exit(2)
        session.commit()
    out.print(f"token {token_id} revoked")


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
    app.command("worker")(worker)
    app.add_typer(token_app, name="token")
