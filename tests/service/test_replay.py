"""Replays across sidecar processes on PostgreSQL: the replay guard is the database's, not a process's.

Two real `okrsync serve --no-worker` processes share one scratch PostgreSQL database and one public URL (as behind a
load balancer). A captured HubSpot delivery and a Flow callout, accepted by sidecar A, are sent again to sidecar B —
exactly, and rewritten the ways that used to get through an in-memory guard keyed on the header text (a trailing NBSP
or space in the HubSpot signature; upper-case hex, reordered entries, an extra ``v1=00`` or ``x=1`` in the Flow
header) — then to A once restarted, and once more to both at the same moment: every copy gets 401, and
``webhook_event`` holds each event once, with no duplicate counted.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import sqlmodel
from sqlalchemy import make_url, text
from sqlmodel import Session

from connectors.hubspot.webhooks import sign_hubspot_v3
from connectors.webhooks import sign_shared_hmac
from service.kit.db import make_engine
from service.kit.migrate import create_schema
from service.kit.server import free_port
from service.webhooks.models import WebhookEvent, WebhookReplay
from tests import loopback
from tests.conftest import BASE_POSTGRES_URL, WORKER
from tests.service.deployment import OKRSYNC, wait_for
from tests.service.webhooks.raw_http import raw_post

PUBLIC_URL = "https://okrsync.example.com"  # both sidecars' public URL: HubSpot signs it, not the socket's
SECRET = "replay-test-client-secret"
FLOW_SECRET = "replay-test-flow-secret"
ORG = "00D5e000000AbCdEAK"
REPLAY = "this request was already received (replay)"
MALFORMED = "malformed signature header"


@pytest.fixture
def scratch_url() -> Iterator[str]:
    """A PostgreSQL database of this test's own, with okrsync's schema (dropped afterwards)."""
    name = f"okrsync_replay_{WORKER or 'main'}_{uuid.uuid4().hex[:8]}"
    admin = make_engine(BASE_POSTGRES_URL).execution_options(isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'create database "{name}"'))
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"PostgreSQL at {BASE_POSTGRES_URL} is not reachable ({exc}); start it (.ci/run does)")
    url = make_url(BASE_POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    engine = make_engine(url)
    try:
        create_schema(engine)
        yield url
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'drop database if exists "{name}" with (force)'))
        admin.dispose()


class Sidecars:
    """`okrsync serve --no-worker` processes on one database; each answers on its own loopback port."""

    def __init__(self, tmp: Path, url: str) -> None:
        self.tmp = tmp
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("OKRSYNC_")}
        self.env.update(
            OKRSYNC_DATA_DIR=str(tmp / "data"), OKRSYNC_DATABASE_URL=url, OKRSYNC_LOG_LEVEL="WARNING",
            OKRSYNC_WEBHOOKS__PUBLIC_BASE_URL=PUBLIC_URL, OKRSYNC_WEBHOOKS__HUBSPOT_CLIENT_SECRET=SECRET,
            OKRSYNC_WEBHOOKS__FLOW_SECRET=FLOW_SECRET, OKRSYNC_WEBHOOKS__SALESFORCE_ORG_ID=ORG, PYTHONUNBUFFERED="1",
        )  # fmt: skip
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str) -> str:
        port = free_port()
        with (self.tmp / f"{name}.log").open("ab") as log:
            self.processes[name] = subprocess.Popen(
                [OKRSYNC, "serve", "--no-worker", "--port", str(port)], env=self.env, stdout=log,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        try:
            wait_for(lambda: loopback.get(f"{base}/healthz", timeout=1).status_code == 200, f"sidecar {name}")
        except AssertionError:
            raise AssertionError(self.logs()) from None
        return base

    def stop(self, name: str) -> None:
        process = self.processes.pop(name)
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)

    def stop_all(self) -> None:
        for name in list(self.processes):
            self.stop(name)

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-1500:]}" for p in self.tmp.glob("*.log"))


@pytest.fixture
def sidecars(tmp_path: Path, scratch_url: str) -> Iterator[Sidecars]:
    world = Sidecars(tmp_path, scratch_url)
    try:
        yield world
    finally:
        world.stop_all()


def _hubspot_delivery() -> tuple[bytes, dict[str, bytes]]:
    """A HubSpot batch as HubSpot signs it for the public URL, with its headers as sent."""
    now = int(time.time() * 1000)
    body = json.dumps([
        {"eventId": n, "subscriptionId": 3, "portalId": 145000001, "occurredAt": now - n, "objectId": 42 + n,
         "subscriptionType": "deal.propertyChange", "propertyName": "amount", "propertyValue": str(n)}
        for n in range(3)
    ]).encode()  # fmt: skip
    uri = f"{PUBLIC_URL}/webhooks/hubspot"
    signature = sign_hubspot_v3(client_secret=SECRET, method="POST", uri=uri, body=body, timestamp=now)
    headers = {"X-HubSpot-Signature-v3": signature.encode(), "X-HubSpot-Request-Timestamp": str(now).encode(),
               "Content-Type": b"application/json"}  # fmt: skip
    return body, headers


def _flow_callout(first_id: int) -> tuple[bytes, str, int, str]:
    """A Flow callout body, its header as signed, and the header's parts (timestamp, MAC)."""
    events = [{"id": f"evt-{first_id + n}", "sobject": "Opportunity", "recordId": f"0065e00000Qw3r{n}AAR",
               "changeType": "update", "occurredAt": "2026-09-30T12:00:00Z"} for n in range(2)]  # fmt: skip
    body = json.dumps({"organizationId": ORG, "events": events}).encode()
    t = int(time.time())
    header = sign_shared_hmac(secret=FLOW_SECRET, body=body, timestamp=t)
    return body, header, t, header.partition("v1=")[2]


def _post(base: str, path: str, headers: dict[str, bytes], body: bytes) -> tuple[int, Any]:
    return raw_post(base, path, headers=headers, body=body)


def _stored(url: str) -> list[WebhookEvent]:
    engine = make_engine(url)
    try:
        with Session(engine) as session:
            return list(session.exec(sqlmodel.select(WebhookEvent)).all())
    finally:
        engine.dispose()


def _replay_rows(url: str) -> Counter[str]:
    engine = make_engine(url)
    try:
        with Session(engine) as session:
            return Counter(r.source for r in session.exec(sqlmodel.select(WebhookReplay)).all())
    finally:
        engine.dispose()


@pytest.mark.slow
def test_a_request_taken_by_one_sidecar_is_refused_by_every_other_and_after_a_restart(
    sidecars: Sidecars, scratch_url: str
) -> None:
    a, b = sidecars.start("a"), sidecars.start("b")
    hub_body, hub_headers = _hubspot_delivery()
    flow_body, flow_header, t, mac = _flow_callout(1)

    # 1. sidecar A takes both
    taken = _post(a, "/webhooks/hubspot", hub_headers, hub_body)
    assert taken == (200, {"accepted": 3, "duplicates": 0, "ignored": 0}), sidecars.logs()
    flow_headers = {"X-Okrsync-Signature": flow_header.encode(), "Content-Type": b"application/json"}
    assert _post(a, "/webhooks/salesforce/flow", flow_headers, flow_body) == (
        200, {"accepted": 2, "duplicates": 0, "ignored": 0},
    )  # fmt: skip

    # 2. sidecar B sees every copy, as captured and as rewritten, for what it is
    signature = hub_headers["X-HubSpot-Signature-v3"]
    hubspot_copies = {
        "exact": (signature, REPLAY),
        "trailing-nbsp": (signature + b"\xa0", MALFORMED),
        "trailing-space": (signature + b" ", REPLAY),  # HTTP drops it: the exact request again
    }
    for name, (value, reason) in hubspot_copies.items():
        answer = _post(b, "/webhooks/hubspot", {**hub_headers, "X-HubSpot-Signature-v3": value}, hub_body)
        assert (name, answer) == (
            name,
            (401, {"error": "unauthorized", "detail": f"HubSpot signature refused: {reason}"}),
        )
    flow_copies = {
        "exact": (flow_header, REPLAY),
        "upper-case-hex": (f"t={t},v1={mac.upper()}", REPLAY),
        "reordered": (f"v1={mac},t={t}", REPLAY),
        "extra-v1=00": (f"t={t},v1={mac},v1=00", MALFORMED),
        "extra-x=1": (f"t={t},v1={mac},x=1", MALFORMED),
    }
    for name, (value, reason) in flow_copies.items():
        answer = _post(
            b, "/webhooks/salesforce/flow", {**flow_headers, "X-Okrsync-Signature": value.encode()}, flow_body
        )
        assert (name, answer) == (name, (401, {"error": "unauthorized", "detail": f"signature refused: {reason}"}))

    # 3. a restart forgets nothing: the guard is in the database
    sidecars.stop("a")
    a = sidecars.start("a-restarted")
    assert _post(a, "/webhooks/hubspot", hub_headers, hub_body)[0] == 401
    assert _post(a, "/webhooks/salesforce/flow", flow_headers, flow_body)[0] == 401

    # 4. a new callout sent to both sidecars at the same moment: the database lets one of them take it
    race_body, race_header, _t, _mac = _flow_callout(100)
    race_headers = {"X-Okrsync-Signature": race_header.encode(), "Content-Type": b"application/json"}
    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(lambda base: _post(base, "/webhooks/salesforce/flow", race_headers, race_body)[0],
                                [a, b] * 3))  # fmt: skip
    assert Counter(answers) == {200: 1, 401: 5}, sidecars.logs()

    # 5. each event stored once, no copy counted as a duplicate delivery
    stored = _stored(scratch_url)
    assert Counter((e.source, e.duplicates) for e in stored) == {("hubspot", 0): 3, ("salesforce_flow", 0): 4}
    assert len({(e.source, e.dedupe_key) for e in stored}) == 7
    assert _replay_rows(scratch_url) == {"hubspot": 1, "salesforce_flow": 2}
