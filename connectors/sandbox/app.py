"""The sandbox CRM web app: the Salesforce REST API subset plus a small control API under /__sandbox/.

Control API (for tests and demos; never counted as CRM API calls):

- ``GET /__sandbox/stats`` — call counters and daily usage (the HubSpot portal's under ``hubspot``).
- ``POST /__sandbox/faults`` — JSON ``{"kind", "times", "after", "match", ...params}``; see ``faults.py``.
- ``DELETE /__sandbox/faults`` — remove planned faults.
- ``POST /__sandbox/reset-stats`` — zero the call counters (both CRMs').
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, FastAPI, HTTPException

from connectors.sandbox.hubspot_api import create_hubspot_router
from connectors.sandbox.hubspot_portal import HubSpotPortal
from connectors.sandbox.record_pages import create_record_pages_router
from connectors.sandbox.salesforce_api import create_salesforce_router
from connectors.sandbox.store import SandboxOrg


def _control_router(org: SandboxOrg, portal: HubSpotPortal | None) -> APIRouter:
    router = APIRouter(prefix="/__sandbox")

    @router.get("/stats")
    def stats() -> dict[str, Any]:
        return {**org.stats(), **({"hubspot": portal.stats()} if portal is not None else {})}

    @router.post("/faults", status_code=201)
    def add_fault(spec: dict[str, Any] = Body(...)) -> dict[str, Any]:
        params = dict(spec)
        kind = params.pop("kind", None)
        times, after, match = params.pop("times", 1), params.pop("after", 0), params.pop("match", None)
        params.update(params.pop("params", None) or {})
        try:
            fault = org.faults.add(str(kind), times=int(times), after=int(after), match=match, **params)
        except ValueError as exc:
            raise HTTPException(status_code=422, detail=str(exc)) from exc
        return {
            "kind": fault.kind,
            "times": fault.times,
            "after": fault.after,
            "match": fault.match,
            "params": fault.params,
        }

    @router.delete("/faults", status_code=204)
    def clear_faults() -> None:
        org.faults.clear()

    @router.post("/reset-stats", status_code=204)
    def reset_stats() -> None:
        org.reset_stats()
        if portal is not None:
            portal.reset_stats()

    @router.get("/records/{sobject}")
    def records(sobject: str) -> list[dict[str, Any]]:
        """Every record of an SObject type as the org holds it (custom objects too; SOQL knows only the built-in
        schema): for tests that run the sandbox in its own process and check what was written into it."""
        if org.sobject(sobject) is None:
            raise HTTPException(status_code=404, detail=f"no SObject type {sobject} in this org")
        return org.records(sobject)

    return router


def create_app(org: SandboxOrg, portal: HubSpotPortal | None = None) -> FastAPI:
    """Build the sandbox CRM app serving `org` (Salesforce) and, when given, `portal` (HubSpot)."""
    app = FastAPI(title="okrsync sandbox CRM", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.org = org
    app.include_router(_control_router(org, portal))
    app.include_router(create_salesforce_router(org))
    app.include_router(create_record_pages_router(org))
    if portal is not None:
        app.state.portal = portal
        app.include_router(create_hubspot_router(portal))
    return app
