"""CRM webhooks: verify, store, answer fast; the worker (``tasks.py``) processes later.

- ``POST /webhooks/hubspot``: HubSpot signature v3 over method, the public URI, body and timestamp (5 minutes),
  batches of up to 100 events. A request whose signature was already seen is a replay: 401, like a forged one.
  Each event goes to the connection of its ``portalId`` (``routing.py``); one client secret for every portal.
- ``POST /webhooks/salesforce``: Outbound Messages (SOAP), checked against the configured org ids (the default
  org's or an extra connection's, which it then goes to), answered with the SOAP ``Ack``; duplicates by
  Notification Id (within a connection).
- ``POST /webhooks/salesforce/flow``: the JSON variant for a Flow HTTP callout, signed with a shared secret; for the
  default Salesforce connection only.

Nothing is stored for a refused request; everything accepted is stored before the 2xx is sent.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response
from pydantic import BaseModel
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from service.kit.db import retry_on_conflict, utcnow
from service.kit.metrics import Metrics
from service.kit.settings import Settings
from service.webhooks import repository as repo
from service.webhooks.parse import (
    PayloadError,
    outbound_ack,
    parse_flow_events,
    parse_hubspot_events,
    parse_outbound_message,
    soap_fault,
)
from service.webhooks.routing import UnknownOrgError, hubspot_connection, salesforce_connection
from service.webhooks.verify import SignatureError, hubspot_signed_uri, verify_hubspot_v3, verify_shared_hmac

router = APIRouter(prefix="/webhooks", tags=["webhooks"])


class Accepted(BaseModel):
    accepted: int
    duplicates: int
    ignored: int


class _ReplayGuard:
    """Signatures seen in the last 10 minutes (twice the timestamp tolerance): a second request with one is a
    replay. In memory, per process."""

    def __init__(self, seconds: float = 600, limit: int = 100_000) -> None:
        self.seconds, self.limit = seconds, limit
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def first_time(self, signature: str) -> bool:
        now = time.monotonic()
        with self._lock:
            while self._seen and (next(iter(self._seen.values())) < now - self.seconds or len(self._seen) > self.limit):
                self._seen.popitem(last=False)
            if signature in self._seen:
                return False
            self._seen[signature] = now
            return True


_replays = _ReplayGuard()


async def _body(request: Request, settings: Settings, source: str) -> bytes:
    limit = settings.webhooks.max_body_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        _reject(request, source, "too_large")
        raise HTTPException(413, f"the body is larger than {limit} bytes")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            _reject(request, source, "too_large")
            raise HTTPException(413, f"the body is larger than {limit} bytes")
    return body


def raw_path(request: Request) -> str:
    # the path as sent (escapes intact): HubSpot signs it so, and Starlette's url.path is already decoded
    raw = request.scope.get("raw_path")
    return raw.decode("latin-1") if isinstance(raw, bytes) else request.url.path


def _metrics(request: Request) -> Metrics:
    return request.app.state.metrics  # type: ignore[no-any-return]


def _reject(request: Request, source: str, reason: str) -> None:
    _metrics(request).webhooks_rejected.labels(source, reason).inc()


def _row(
    crm: str, dedupe_key: str, object_type: str | None, object_id: Any, kind: str | None, occurred_at: Any,
    payload: dict[str, Any], *, ignored: str | None = None, connection: str | None = None,
) -> dict[str, Any]:  # fmt: skip
    """A webhook_event row; an event okrsync does not track is stored as ``ignored`` with the reason;
    ``connection`` None: the CRM's default connection."""
    return {
        "crm": crm, "connection": connection, "dedupe_key": dedupe_key, "object_type": object_type,
        "object_id": str(object_id) if object_id is not None else None, "kind": kind, "occurred_at": occurred_at,
        "payload": payload, "received_at": utcnow(), "status": "ignored" if ignored else "pending", "error": ignored,
    }  # fmt: skip


def _store(request: Request, source: str, rows: list[dict[str, Any]]) -> tuple[int, int]:
    # rows in key order, so concurrent deliveries lock existing events in one order; the worker's updates can
    # still collide with them, and PostgreSQL then aborts one side: that transaction is simply run again
    ordered = sorted(rows, key=lambda row: row["dedupe_key"])

    def once() -> tuple[int, int]:
        with Session(request.app.state.engine) as session:
            counted = repo.store(session, source=source, rows=ordered)
            session.commit()
            return counted

    new, duplicates = retry_on_conflict(once)
    _metrics(request).webhooks_received.labels(source).inc(new)
    _metrics(request).webhooks_duplicate.labels(source).inc(duplicates)
    return new, duplicates


@router.post(
    "/hubspot",
    response_model=Accepted,
    responses={400: {"description": "malformed batch"}, 401: {"description": "bad signature"}, 413: {}},
)
async def hubspot(request: Request) -> Accepted:
    """HubSpot webhook batch (CRM subscriptions, up to 100 events)."""
    settings: Settings = request.app.state.settings
    secret = settings.webhooks.hubspot_client_secret
    if secret is None:
        raise HTTPException(503, "HubSpot webhooks are not set up: set OKRSYNC_WEBHOOKS__HUBSPOT_CLIENT_SECRET")
    body = await _body(request, settings, "hubspot")
    base = settings.webhooks.public_base_url or str(request.base_url)
    signature = request.headers.get("x-hubspot-signature-v3")
    try:
        verify_hubspot_v3(
            client_secret=secret.get_secret_value(),
            method=request.method,
            uri=hubspot_signed_uri(base, raw_path(request), request.url.query),
            body=body,
            timestamp=request.headers.get("x-hubspot-request-timestamp"),
            signature=signature,
            now_ms=int(time.time() * 1000),
        )
    except SignatureError as exc:
        _reject(request, "hubspot", "signature")
        raise HTTPException(401, f"HubSpot signature refused: {exc}") from None
    if not _replays.first_time(f"hubspot:{signature}"):
        _reject(request, "hubspot", "replay")
        raise HTTPException(401, "HubSpot signature refused: this request was already received (replay)")
    try:
        events = parse_hubspot_events(body)
    except PayloadError as exc:
        _reject(request, "hubspot", "payload")
        raise HTTPException(400, str(exc)) from None
    rows = [
        _row("hubspot", e.dedupe_key, e.object_type, e.object_id, e.kind, e.occurred_at, e.raw,
             ignored=None if e.tracked else e.untracked_reason, connection=hubspot_connection(settings, e.portal_id))
        for e in events
    ]  # fmt: skip
    new, duplicates = await run_in_threadpool(_store, request, "hubspot", rows)
    return Accepted(accepted=new, duplicates=duplicates, ignored=sum(1 for e in events if not e.tracked))


@router.post(
    "/salesforce",
    response_class=Response,
    responses={200: {"content": {"text/xml": {}}}, 400: {}, 401: {}, 413: {}},
)
async def salesforce(request: Request) -> Response:
    """Salesforce Outbound Message (SOAP notifications, up to 100); answered with the Ack envelope."""
    settings: Settings = request.app.state.settings
    body = await _body(request, settings, "salesforce")
    try:
        message = parse_outbound_message(body)
    except PayloadError as exc:
        _reject(request, "salesforce", "payload")
        return Response(soap_fault(str(exc)), status_code=400, media_type="text/xml")
    try:
        connection = salesforce_connection(settings, message.organization_id)
    except UnknownOrgError as exc:
        _reject(request, "salesforce", "organization")
        return Response(soap_fault(str(exc)), status_code=401, media_type="text/xml")
    # each org numbers its own notifications: an extra org's are keyed with its connection, never to collide
    prefix = "" if connection is None else f"{connection}:"
    rows = [
        _row("salesforce", prefix + n.notification_id, n.sobject_type, n.record_id, "change", None,
             {"fields": n.fields, "action": message.action_id}, connection=connection)
        for n in message.notifications
    ]  # fmt: skip
    await run_in_threadpool(_store, request, "salesforce", rows)
    return Response(outbound_ack(), media_type="text/xml")


@router.post("/salesforce/flow", response_model=Accepted, responses={400: {}, 401: {}, 413: {}})
async def salesforce_flow(request: Request) -> Accepted:
    """JSON events from a Salesforce Flow HTTP callout, signed with the shared secret (X-Okrsync-Signature); for the
    default Salesforce connection only (the secret is its org's)."""
    settings: Settings = request.app.state.settings
    secret = settings.webhooks.flow_secret
    if secret is None:
        raise HTTPException(503, "Flow callouts are not set up: set OKRSYNC_WEBHOOKS__FLOW_SECRET")
    body = await _body(request, settings, "salesforce_flow")
    signature = request.headers.get("x-okrsync-signature")
    try:
        verify_shared_hmac(secret=secret.get_secret_value(), body=body, header=signature, now_s=time.time())
    except SignatureError as exc:
        _reject(request, "salesforce_flow", "signature")
        raise HTTPException(401, f"signature refused: {exc}") from None
    if not _replays.first_time(f"flow:{signature}"):
        _reject(request, "salesforce_flow", "replay")
        raise HTTPException(401, "signature refused: this request was already received (replay)")
    try:
        events = parse_flow_events(body)
    except PayloadError as exc:
        _reject(request, "salesforce_flow", "payload")
        raise HTTPException(400, str(exc)) from None
    rows = [
        _row("salesforce", e.dedupe_key, e.sobject, e.record_id, e.change_type, e.occurred_at,
             {"sobject": e.sobject, "recordId": e.record_id, "changeType": e.change_type})
        for e in events
    ]  # fmt: skip
    new, duplicates = await run_in_threadpool(_store, request, "salesforce_flow", rows)
    return Accepted(accepted=new, duplicates=duplicates, ignored=0)
