"""The sidecar: one FastAPI app with the API for sales ops, reps and KAMs, the CRM webhooks, health and metrics,
and (by default) the background worker in the same process.

Errors are answered by one handler as ``{"error": "...", "detail": "..."}`` with the status that says what
happened; an expected conflict is never a 500.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import Session

from service.crm.clients import CrmAccess
from service.kit.metrics import Metrics
from service.kit.settings import Settings
from service.notifications.service import Notifier
from service.webhooks.tasks import Worker
from service.writeback.repository import outbox_depth

log = logging.getLogger(__name__)


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str
    database: str
    last_sync_age_seconds: dict[str, float | None]


def get_session(request: Request) -> Iterator[Session]:
    """A database session per request; the endpoint commits what it changes."""
    with Session(request.app.state.engine) as session:
        yield session


def app_settings(request: Request) -> Settings:
    """The app's settings (one object, set when the app is built)."""
    return request.app.state.settings  # type: ignore[no-any-return]


def create_app(
    *, settings: Settings, engine: Engine, crms: dict[str, CrmAccess] | None = None, worker: bool = True
) -> FastAPI:
    """The sidecar for ``engine``; ``crms`` are the CRM connections the worker refreshes (none: API only)."""
    from service.checkins.endpoints import router as checkin_router
    from service.dashboard.endpoints import STATIC_DIR
    from service.dashboard.endpoints import router as dashboard_router
    from service.okrs.endpoints import card_router
    from service.okrs.endpoints import router as api_router
    from service.sprints.endpoints import router as sprint_router
    from service.webhooks.endpoints import router as webhook_router

    metrics = Metrics()
    notifier = Notifier(settings.notifications) if settings.notifications_enabled else None
    background = Worker(engine, settings, crms or {}, metrics, notifier=notifier) if crms else None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if background is not None and worker:
            background.start()
        yield
        if background is not None and worker:
            background.stop()
        if notifier is not None:
            notifier.close()

    app = FastAPI(
        title="okrsync",
        version="1",
        description="Activity-based OKRs from your CRM: key results, contributions, hygiene, KAM criteria.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.metrics = metrics
    app.state.worker = background
    app.state.notifier = notifier

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        error = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 409: "conflict",
                 413: "too_large", 422: "invalid", 503: "unavailable"}.get(exc.status_code, "error")  # fmt: skip
        return JSONResponse({"error": error, "detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        return JSONResponse({"error": "invalid", "detail": "; ".join(problems)}, status_code=422)

    @app.get("/healthz", response_model=Health, tags=["health"])
    def healthz() -> Health:
        """The process is alive."""
        return Health(status="ok")

    @app.get("/readyz", response_model=Readiness, tags=["health"], responses={503: {"model": Readiness}})
    def readyz() -> Any:
        """The database answers; how long ago each CRM connection (``hubspot``, ``hubspot/west``…) was last synced
        by the worker."""
        try:
            with engine.connect() as conn:
                conn.execute(text("select 1"))
            database = "ok"
        except Exception as exc:  # noqa: BLE001
            database = f"unreachable: {type(exc).__name__}"
        ages: dict[str, float | None] = {}
        if background is not None:
            import time

            for crm in background.crms:
                last = background.last_sync.get(crm)
                ages[crm] = round(time.monotonic() - last, 1) if last is not None else None
        body = Readiness(
            status="ok" if database == "ok" else "unavailable", database=database, last_sync_age_seconds=ages
        )
        return JSONResponse(body.model_dump(), status_code=200 if database == "ok" else 503)

    @app.get("/metrics", tags=["health"], response_class=Response)
    def prometheus() -> Response:
        """Prometheus metrics."""
        if background is not None:
            import time

            for crm, last in background.last_sync.items():
                metrics.sync_lag.labels(crm).set(time.monotonic() - last)
        with Session(engine) as session:
            depths = outbox_depth(session)
        for crm in {*depths, *(access.crm for access in (background.crms.values() if background else ()))}:
            metrics.outbox_depth.labels(crm).set(depths.get(crm, 0))
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    app.include_router(webhook_router)
    app.include_router(api_router)
    app.include_router(card_router)
    app.include_router(checkin_router)
    app.include_router(sprint_router)
    app.include_router(dashboard_router)
    app.mount("/dashboard/static", StaticFiles(directory=STATIC_DIR), name="dashboard-static")
    return app
