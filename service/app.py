"""The sidecar: one FastAPI app with the API for sales ops, reps and KAMs, the CRM webhooks, health and metrics,
and (by default) the background worker in the same process.

Errors are answered by one handler as ``{"error": "...", "detail": "..."}`` with the status that says what
happened; an expected conflict is never a 500.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import fastapi_offline
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from pydantic import BaseModel, Field
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import Session
from starlette.exceptions import HTTPException as StarletteHTTPException

from service.checkins.endpoints import router as checkin_router
from service.crm.clients import CrmAccess
from service.dashboard.api import router as my_work_router
from service.dashboard.company import router as company_router
from service.dashboard.endpoints import STATIC_DIR
from service.dashboard.endpoints import router as dashboard_router
from service.dashboard.planning import router as planning_pages_router
from service.goals.endpoints import router as goals_router
from service.kit.errors import ServiceError
from service.kit.limits import BodyLimit
from service.kit.metrics import Metrics
from service.kit.settings import Settings
from service.notifications.service import Notifier
from service.okrs.endpoints import card_routes
from service.okrs.endpoints import router as api_router
from service.planning.endpoints import router as planning_router
from service.sprints.endpoints import router as sprint_router
from service.webhooks.endpoints import webhook_routes
from service.webhooks.tasks import Worker
from service.writeback.repository import outbox_depth

log = logging.getLogger(__name__)
# fastapi-offline ships Swagger UI's bundle and style inside its wheel; only its static folder is used
DOCS_ASSETS = Path(fastapi_offline.__file__).parent / "static"


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str
    database: str
    last_sync_age_seconds: dict[str, float | None]


def create_app(
    *, settings: Settings, engine: Engine, crms: dict[str, CrmAccess] | None = None, worker: bool = True
) -> FastAPI:
    """The sidecar for ``engine``; ``crms`` are the CRM connections the worker refreshes (none: API only)."""
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
        docs_url=None,  # served below from the package's own copy of Swagger UI: /docs works offline, no CDN
        redoc_url=None,
    )
    app.add_middleware(BodyLimit, limit=settings.serve.max_body_bytes)
    app.state.settings = settings
    app.state.engine = engine
    app.state.metrics = metrics
    app.state.worker = background
    app.state.notifier = notifier

    # starlette's HTTPException, not only FastAPI's subclass: unknown routes (404) and wrong methods (405) come
    # from starlette's router and get the same {"error", "detail"} shape as every other error
    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        error = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
                 405: "method_not_allowed", 409: "conflict", 413: "too_large", 422: "invalid",
                 503: "unavailable"}.get(exc.status_code, "error")  # fmt: skip
        return JSONResponse({"error": error, "detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)

    # every error service/ raises for a caller carries its status (service.kit.errors): one place renders them
    @app.exception_handler(ServiceError)
    async def service_error(request: Request, exc: ServiceError) -> JSONResponse:
        return await http_error(request, StarletteHTTPException(exc.status, str(exc)))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        return JSONResponse({"error": "invalid", "detail": "; ".join(problems)}, status_code=422)

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        """Swagger UI over /openapi.json, its script and style from the installed fastapi-offline package."""
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title="okrsync API",
            swagger_js_url="/docs/static/swagger-ui-bundle.js",
            swagger_css_url="/docs/static/swagger-ui.css",
            swagger_favicon_url="/docs/static/favicon.png",
        )

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

    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    app.include_router(webhook_routes())
    app.include_router(api_router)
    app.include_router(card_routes())
    app.include_router(checkin_router)
    app.include_router(sprint_router)
    app.include_router(goals_router)
    app.include_router(planning_router)
    app.include_router(my_work_router)
    app.include_router(company_router)
    app.include_router(planning_pages_router)
    app.include_router(dashboard_router)
    app.mount("/dashboard/static", StaticFiles(directory=STATIC_DIR), name="dashboard-static")
    app.mount("/docs/static", StaticFiles(directory=DOCS_ASSETS), name="docs-static")
    return app


class ErrorBody(BaseModel):
    """Every error the sidecar answers (one handler renders them all)."""

    error: str = Field(description="What kind: unauthorized, forbidden, not_found, invalid, too_large, conflict …")
    detail: str = Field(description="What is wrong, where, and what to do")


# Answers any route may give whatever it declares: a missing token on the API, a body over the size limit, a
# parameter or body FastAPI refuses.
_ALWAYS = {
    413: "the request body is larger than OKRSYNC_SERVE__MAX_BODY_BYTES",
    422: "a parameter or the body is invalid",
}
_API_ALWAYS = {401: "no or unknown API token", **_ALWAYS}


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document with the truth about errors: every 4xx a route declares without content of its own, and
    those any route may give, carry the ``{"error", "detail"}`` body, not FastAPI's default validation schema."""
    if app.openapi_schema is not None:
        return app.openapi_schema
    document = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas["ErrorBody"] = ErrorBody.model_json_schema()
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
    for path, operations in document.get("paths", {}).items():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            for status, description in (_API_ALWAYS if path.startswith("/api/v1/") else _ALWAYS).items():
                responses.setdefault(str(status), {"description": description})
            for status, response in responses.items():
                if not status.startswith("4"):
                    continue
                content = response.get("content") or {}
                refs = [media.get("schema", {}).get("$ref", "") for media in content.values()]
                if not content or any(ref.endswith("/HTTPValidationError") for ref in refs):
                    response["content"] = error
                response.setdefault("description", "error")
    app.openapi_schema = document
    return document
