"""CRM webhooks: verify, store, answer fast; the worker (``tasks.py``) processes later.

Each CRM's adapter lists its inbound routes (``CrmAdapter.receivers``: ``connectors/<crm>/webhooks.py``), and
``webhook_routes()`` serves each as ``POST /webhooks{path}``: the body is read within OKRSYNC_WEBHOOKS__MAX_BODY_BYTES
(413 beyond), the receiver verifies, parses and routes it (``connectors.webhooks.Receiver``), and what it accepted is
stored here. Today: HubSpot's signed batches (``/webhooks/hubspot``), Salesforce Outbound Messages
(``/webhooks/salesforce``, answered with the SOAP Ack, refusals with a SOAP fault) and okrsync's Salesforce Flow
callout (``/webhooks/salesforce/flow``); duplicates by each event's dedupe key (within a connection).

Replays of the signed sources: a request whose signed content (``connectors.webhooks.Verified.digest``: the bytes
the MAC covers, not the header text) was accepted before is refused with 401, like a forged one. The guard is the
``webhook_replay`` table, written in the transaction that stores the events: every sidecar on the database shares it,
a restart keeps it, and two copies arriving at once at two sidecars are decided by the database (the second waits,
then conflicts). Expired rows are pruned now and then, at most once a minute per process (``_prune_replays``). A
refused request (bad signature, replay, malformed body) leaves nothing behind, not even its replay row; everything
accepted is stored before the 2xx is sent.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from connectors.registry import ADAPTERS
from connectors.webhooks import (
    MAX_AGE_MS,
    WEBHOOKS_PREFIX,
    Event,
    Inbound,
    Received,
    Receiver,
    Refused,
    Verified,
    public_uri,
)
from service.kit.db import retry_on_conflict, utcnow
from service.kit.metrics import Metrics
from service.kit.settings import Settings
from service.webhooks import repository as repo
from service.webhooks.routing import routes

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


def _row(crm: str, event: Event) -> dict[str, Any]:
    """A webhook_event row; an event okrsync does not track is stored as ``ignored`` with the reason."""
    return {
        "crm": crm, "connection": event.connection, "dedupe_key": event.dedupe_key, "object_type": event.object_type,
        "object_id": event.object_id, "kind": event.kind, "occurred_at": event.occurred_at, "payload": event.payload,
        "received_at": utcnow(), "status": "ignored" if event.ignored else "pending", "error": event.ignored,
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


def _endpoint(crm: str, receiver: Receiver) -> Callable[[Request], Awaitable[Any]]:
    async def receive(request: Request) -> Any:
        settings: Settings = request.app.state.settings
        routed = routes(settings, crm)
        problem = receiver.not_set_up(routed)
        if problem is not None:
            raise HTTPException(503, problem)
        body = await _body(request, settings, receiver.source)
        base = settings.webhooks.public_base_url or str(request.base_url)
        inbound = Inbound(
            method=request.method, public_uri=public_uri(base, raw_path(request), request.url.query),
            headers=request.headers, body=body, now=time.time(),
        )  # fmt: skip
        try:
            received: Received = receiver.receive(inbound, routed)
        except Refused as refused:
            if refused.reason is not None:
                _reject(request, receiver.source, refused.reason)
            if refused.body is not None:
                return Response(refused.body, status_code=refused.status, media_type=refused.media_type)
            raise HTTPException(refused.status, refused.message) from None
        rows = [_row(crm, event) for event in received.events]
        try:
            new, duplicates = await run_in_threadpool(_store, request, receiver.source, rows, received.verified)
        except ReplayError:
            _reject(request, receiver.source, "replay")
            raise HTTPException(401, receiver.replay_message) from None
        if received.reply is not None:
            return Response(received.reply, media_type=received.media_type)
        return Accepted(accepted=new, duplicates=duplicates, ignored=sum(1 for e in received.events if e.ignored))

    receive.__doc__ = receiver.description
    return receive


def webhook_routes() -> APIRouter:
    """``POST /webhooks{path}`` for every receiver of every registered CRM adapter."""
    router = APIRouter(prefix=WEBHOOKS_PREFIX, tags=["webhooks"])
    for crm, adapter in ADAPTERS.items():
        for receiver in adapter.receivers:
            json_reply = receiver.replies == "json"
            router.add_api_route(
                receiver.path, _endpoint(crm, receiver), methods=["POST"], name=receiver.name,
                response_model=Accepted if json_reply else None,
                response_class=JSONResponse if json_reply else Response,
                responses=receiver.responses, description=receiver.description,
            )  # fmt: skip
    return router
