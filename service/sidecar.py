"""``okrsync serve`` (the sidecar: API, webhooks, worker) and ``okrsync token`` (API tokens with roles)."""

from __future__ import annotations

import logging
from contextlib import ExitStack
from typing import Annotated

import sqlmodel
import typer
import uvicorn
from pydantic import SecretStr
from rich.console import Console
from sqlmodel import Session

from service.app import create_app
from service.crm.clients import CrmAccess, NotConfiguredError, open_crm
from service.kit.auth import ApiToken, Role, create_token, revoke_token
from service.kit.db import create_schema, make_engine
from service.kit.settings import Settings, get_settings

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


def serve(
    sandbox: Annotated[
        bool, typer.Option("--sandbox", help="Serve against the built-in sandbox CRM (both CRMs).")
    ] = False,
    host: Annotated[str | None, typer.Option(help="Interface (default OKRSYNC_SERVE__HOST, 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default OKRSYNC_SERVE__PORT, 8080).")] = None,
    worker: Annotated[bool, typer.Option("--worker/--no-worker", help="Run the background worker here.")] = True,
) -> None:
    """Run the sidecar: API for sales ops/reps/KAMs (/docs), CRM webhooks, /healthz, /readyz, /metrics, and the
    worker that refreshes, recomputes and writes back after webhooks and on a timer."""
    settings = get_settings()
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    engine = make_engine(settings.effective_database_url)
    create_schema(engine)
    with ExitStack() as stack:
        crms: dict[str, CrmAccess] = {}
        if sandbox:
            crms["salesforce"] = open_crm(stack, "salesforce", settings, use_sandbox=True)
            server = crms["salesforce"].sandbox
            crms["hubspot"] = open_crm(stack, "hubspot", settings, sandbox_url=server.base_url)
            settings = sandbox_webhooks(settings, server.org.org_id)
            err.print(f"sandbox CRM on {server.base_url}; webhook secrets: the sandbox's demo values")
        else:
            for crm in ("salesforce", "hubspot"):
                try:
                    crms[crm] = open_crm(stack, crm, settings)
                except NotConfiguredError:
                    continue
            if not crms:
                err.print("[yellow]no CRM configured: serving the API only (no sync, no write-back)[/]")
        app = create_app(settings=settings, engine=engine, crms=crms, worker=worker)
        uvicorn.run(
            app,
            host=host or settings.serve.host,
            port=port if port is not None else settings.serve.port,
            log_level=settings.log_level.lower(),
        )


@token_app.command("create")
def token_create(
    name: Annotated[str, typer.Option(help="Who or what uses it, e.g. 'anna (KAM)' or 'hubspot-card'.")],
    role: Annotated[Role, typer.Option(help="admin, sales_ops, kam, rep or viewer.")],
    email: Annotated[str | None, typer.Option(help="kam: the KAM's CRM e-mail (their key accounts).")] = None,
) -> None:
    """Create a token and print it once (only its hash is stored)."""
    settings = get_settings()
    engine = make_engine(settings.effective_database_url)
    create_schema(engine)
    with Session(engine) as session:
        try:
            row, token = create_token(session, name=name, role=role, email=email)
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
    app.add_typer(token_app, name="token")
