"""CRM webhooks: verify, store, answer fast; the worker (``tasks.py``) processes later.

- ``POST /webhooks/hubspot``: HubSpot signature v3 over method, the public URI, body and timestamp (5 minutes),
  batches of up to 100 events. Each event goes to the connection of its ``portalId`` (``routing.py``); one client
  secret for every portal.
- ``POST /webhooks/salesforce``: Outbound Messages (SOAP), checked against the configured org ids (the default
  org's or an extra connection's, which it then goes to), answered with the SOAP ``Ack`` (refusals with a SOAP
  fault, which Salesforce shows in its delivery status); duplicates by Notification Id (within a connection).
- ``POST /webhooks/salesforce/flow``: the JSON variant for a Flow HTTP callout, signed with a shared secret; for the
  default Salesforce connection only.

Replays of the signed sources: a request whose signed content (``verify.Verified.digest``: the bytes the MAC covers,
not the header text) was accepted before is refused with 401, like a forged one. The guard is the ``webhook_replay``
table, written in the transaction that stores the events: every sidecar on the database shares it, a restart keeps
it, and two copies arriving at once at two sidecars are decided by the database (the second waits, then conflicts).
Expired rows are pruned now and then, at most once a minute per process (``_prune_replays``). A refused request
(bad signature, replay, malformed body) leaves nothing behind, not even its replay row; everything accepted is stored
before the 2xx is sent.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response
from pydantic import BaseModel
from sqlalchemy.exc import SQLAlchemyError
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
from service.webhooks.verify import (
    MAX_AGE_MS,
    SignatureError,
    Verified,
    hubspot_signed_uri,
    verify_hubspot_v3,
    verify_shared_hmac,
)

router = APIRouter(prefix="/webhooks", tags=["webhooks"])
log = logging.getLogger(__name__)

# a replay row outlives the window in which its request can verify (5 minutes after the signed time) by another
# 5 minutes, so sidecars whose clocks differ by that much still see it
REPLAY_KEPT_MS = 2 * MAX_AGE_MS
PRUNE_EVERY_S = 60


class Accepted(BaseModel):
    accepted: int
    duplicates: int
    ignored: int


class ReplayError(Exception):
    """This signed request was accepted before (by this sidecar or another one on the database)."""


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


def _store(
    request: Request, source: str, rows: list[dict[str, Any]], verified: Verified | None = None
) -> tuple[int, int]:
    """Store the events and, for a signed request, claim it in the replay guard, in one transaction: ReplayError
    (and nothing stored) when the request was accepted before."""
    # rows in key order, so concurrent deliveries lock existing events in one order; the worker's updates can
    # still collide with them, and PostgreSQL then aborts one side: that transaction is simply run again
    ordered = sorted(rows, key=lambda row: row["dedupe_key"])

    def once() -> tuple[int, int]:
        with Session(request.app.state.engine) as session:
            if verified is not None:
                expires_at = datetime.fromtimestamp((verified.signed_at_ms + REPLAY_KEPT_MS) / 1000, UTC)
                if not repo.claim_request(session, source=source, digest=verified.digest, expires_at=expires_at):
                    raise ReplayError(source)
            counted = repo.store(session, source=source, rows=ordered)
            session.commit()
            return counted

    new, duplicates = retry_on_conflict(once)
    _metrics(request).webhooks_received.labels(source).inc(new)
    _metrics(request).webhooks_duplicate.labels(source).inc(duplicates)
    if verified is not None:
        _prune_replays(request)
    return new, duplicates


def _prune_replays(request: Request) -> None:
    """Delete expired replay rows, at most once a minute per process, in a transaction of its own: a failure here
    is logged and never fails a delivery (the rows only cost space until the next prune)."""
    state = request.app.state
    now = time.monotonic()
    if now - getattr(state, "webhook_replays_pruned_at", -PRUNE_EVERY_S) < PRUNE_EVERY_S:
        return
    state.webhook_replays_pruned_at = now
    try:
        with Session(state.engine) as session:
            repo.prune_replays(session, now=utcnow())
            session.commit()
    except SQLAlchemyError as exc:
        log.warning("pruning expired webhook replay rows failed (tried again in a minute): %s", type(exc).__name__)


async def _store_signed(request: Request, source: str, rows: list[dict[str, Any]], verified: Verified) -> Accepted:
    try:
        new, duplicates = await run_in_threadpool(_store, request, source, rows, verified)
    except ReplayError:
        _reject(request, source, "replay")
        who = "HubSpot signature" if source == "hubspot" else "signature"
        raise HTTPException(401, f"{who} refused: this request was already received (replay)") from None
    return Accepted(accepted=new, duplicates=duplicates, ignored=sum(1 for row in rows if row["status"] == "ignored"))


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
    try:
        verified = verify_hubspot_v3(
            client_secret=secret.get_secret_value(),
            method=request.method,
            uri=hubspot_signed_uri(base, raw_path(request), request.url.query),
            body=body,
            timestamp=request.headers.get("x-hubspot-request-timestamp"),
            signature=request.headers.get("x-hubspot-signature-v3"),
            now_ms=int(time.time() * 1000),
        )
    except SignatureError as exc:
        _reject(request, "hubspot", "signature")
        raise HTTPException(401, f"HubSpot signature refused: {exc}") from None
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
    return await _store_signed(request, "hubspot", rows, verified)


@router.post(
    "/salesforce",
    response_class=Response,
    responses={
        200: {"content": {"text/xml": {}}, "description": "the SOAP Ack"},
        400: {"content": {"text/xml": {}}, "description": "a SOAP fault: the message is malformed"},
        401: {"content": {"text/xml": {}}, "description": "a SOAP fault: the message is from an org not configured"},
        413: {},
    },
)
async def salesforce(request: Request) -> Response:
    """Salesforce Outbound Message (SOAP notifications, up to 100); answered with the Ack envelope."""
    settings: Settings = request.app.state.settings
    body = await _body(request, settings, "salesforce")
    try:
        # the org is checked as soon as it is read: a message from another org is refused as such (401)
        message = parse_outbound_message(body, check_organization=lambda org: salesforce_connection(settings, org))
    except PayloadError as exc:
        _reject(request, "salesforce", "payload")
        return Response(soap_fault(str(exc)), status_code=400, media_type="text/xml")
    except UnknownOrgError as exc:
        _reject(request, "salesforce", "organization")
        return Response(soap_fault(str(exc)), status_code=401, media_type="text/xml")
    connection = salesforce_connection(settings, message.organization_id)
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
    try:
        verified = verify_shared_hmac(
            secret=secret.get_secret_value(),
            body=body,
            header=request.headers.get("x-okrsync-signature"),
            now_s=time.time(),
        )
    except SignatureError as exc:
        _reject(request, "salesforce_flow", "signature")
        raise HTTPException(401, f"signature refused: {exc}") from None
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
    return await _store_signed(request, "salesforce_flow", rows, verified)
