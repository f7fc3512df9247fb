"""The sidecar end to end: a real uvicorn server on loopback, the worker in its thread, the sandbox CRM over HTTPS.

A rep logs a meeting in HubSpot; HubSpot's signed webhook reaches the sidecar; the worker refreshes, recomputes and
writes back; the key result's custom-object record in the portal counts one more meeting.
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlmodel
from pydantic import SecretStr
from sqlalchemy.engine import Engine
from sqlmodel import Session

from connectors.hubspot.adapter import ADAPTER as HUBSPOT
from connectors.hubspot.config import HubSpotConfig
from connectors.hubspot.connector import HubSpotConnector
from connectors.hubspot.webhooks import sign_hubspot_v3
from connectors.hubspot.writer import HubSpotWriter
from connectors.sandbox.generator import generate_org
from connectors.sandbox.hubspot_portal import HubSpotPortal
from connectors.sandbox.hubspot_seed import portal_from_org
from connectors.sandbox.hubspot_webhooks import merge_event
from connectors.sandbox.server import SandboxServer
from connectors.sandbox.store import SandboxOrg
from service.app import create_app
from service.compute.models import KeyResultEvidence, KeyResultValue
from service.crm.clients import CrmAccess
from service.crm.models import ActivityContact, Contact, Opportunity
from service.kit.server import ThreadedServer, free_port
from service.kit.settings import ServeSettings, Settings, WebhookSettings
from service.loop import run_pass
from service.sync.service import run_sync
from service.webhooks.models import WebhookEvent
from service.writeback.service import send
from tests import loopback
from tests.conftest import ANCHOR
from tests.service.sidecar_process import okrsync_serve
from tests.service.writeback.world import apply_examples, connection

pytestmark = pytest.mark.slow  # every test starts the sidecar and its worker on loopback and waits for the worker

SECRET = "sidecar-test-client-secret"


@dataclass
class Sidecar:
    base_url: str
    portal: HubSpotPortal
    engine: Engine
    app: Any

    def post_hubspot(self, events: list[dict[str, Any]], *, secret: str = SECRET, timestamp: int | None = None,
                     tamper: bool = False) -> httpx.Response:  # fmt: skip
        body = json.dumps(events).encode()
        stamp = str(timestamp if timestamp is not None else int(time.time() * 1000))
        uri = f"{self.base_url}/webhooks/hubspot"
        signature = sign_hubspot_v3(client_secret=secret, method="POST", uri=uri, body=body, timestamp=stamp)
        headers = {"X-HubSpot-Signature-v3": signature, "X-HubSpot-Request-Timestamp": stamp,
                   "Content-Type": "application/json"}  # fmt: skip
        return loopback.post(uri, content=body + (b" " if tamper else b""), headers=headers, timeout=10)


def _config(server: SandboxServer) -> HubSpotConfig:
    base = HUBSPOT.sandbox_config(server.base_url, server.ca_path or "").model_dump()
    base.update(retry_wait_base=0.01, retry_wait_max=0.05, max_attempts=4, timeout_seconds=5)
    return HubSpotConfig.model_validate(base)


@pytest.fixture
def sidecar(engine: Engine, tmp_path: Path) -> Iterator[Sidecar]:
    data = generate_org(anchor=ANCHOR, seed=7, accounts=30, opportunities=80, activities=3200)
    portal, _ids = portal_from_org(data)
    port = free_port()
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        webhooks=WebhookSettings(hubspot_client_secret=SecretStr(SECRET), public_base_url=f"http://127.0.0.1:{port}"),
        serve=ServeSettings(sync_interval_seconds=3600, worker_poll_seconds=0.05, coalesce_seconds=0.2),
    )
    with ExitStack() as stack:
        server = stack.enter_context(SandboxServer(SandboxOrg(data), portal=portal, cert_dir=tmp_path / "sandbox"))
        config = _config(server)
        HubSpotWriter(config).provision()
        run_sync(engine, HubSpotConnector(config), connection_name="sandbox")
        apply_examples(engine, "hubspot", ("acquisition",), as_of=ANCHOR)
        with Session(engine) as session:
            conn_id = connection(session, "hubspot").id or 0
        send(engine, HubSpotWriter(config), connection_id=conn_id)
        app = create_app(settings=settings, engine=engine, crms={"hubspot": CrmAccess("hubspot", "sandbox", config)})
        worker = app.state.worker
        worker.last_sync["hubspot"] = time.monotonic()  # just synced: no periodic sync in the test
        with ThreadedServer(app, port=port) as http:
            yield Sidecar(http.base_url, portal, engine, app)


def _discovery(portal: HubSpotPortal) -> dict[str, Any]:
    return next(r for r in portal.records("okr_key_result") if r["properties"]["kr_key"] == "discovery-meetings")


def _events(engine: Engine) -> list[WebhookEvent]:
    with Session(engine) as session:
        return list(session.exec(sqlmodel.select(WebhookEvent)).all())


def test_a_logged_meeting_moves_the_key_result_in_the_crm(sidecar: Sidecar) -> None:
    before = int(_discovery(sidecar.portal)["properties"]["records"])
    with Session(sidecar.engine) as session:
        counted = session.exec(
            sqlmodel.select(KeyResultEvidence.record_id).where(
                KeyResultEvidence.kr_key == "discovery-meetings", KeyResultEvidence.part == "counted"
            )
        ).first()
    meeting = sidecar.portal.get("meetings", counted or "")
    assert meeting is not None
    skip = {"hs_object_id", "hs_createdate", "hs_lastmodifieddate"}
    links = [(kind, to) for kind in ("deals", "companies", "contacts")
             for to, _type in sidecar.portal.associations("meetings", meeting["id"], kind)]  # fmt: skip
    logged = sidecar.portal.insert(
        "meetings", {k: v for k, v in meeting["properties"].items() if k not in skip}, associations=links
    )
    event = {
        "eventId": 101, "subscriptionId": 7, "portalId": sidecar.portal.portal_id, "appId": 1,
        "occurredAt": int(time.time() * 1000), "subscriptionType": "object.creation", "objectTypeId": "0-47",
        "objectId": int(logged["id"]), "attemptNumber": 0, "changeSource": "CRM_UI",
    }  # fmt: skip
    started = time.perf_counter()
    calls = sidecar.portal.api_calls_total
    answer = sidecar.post_hubspot([event, event])  # HubSpot delivers duplicates
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"accepted": 1, "duplicates": 1, "ignored": 0}
    deadline = time.monotonic() + 30
    while int(_discovery(sidecar.portal)["properties"]["records"]) != before + 1:
        assert time.monotonic() < deadline, [(e.status, e.error) for e in _events(sidecar.engine)]
        time.sleep(0.05)
    elapsed = time.perf_counter() - started
    # targeted: the meeting and its associations are read by id, not a sync of every object type
    refresh_calls = sidecar.portal.api_calls_total - calls
    assert refresh_calls <= 12, sidecar.portal.api_calls
    [stored] = _events(sidecar.engine)
    deadline = time.monotonic() + 5
    while _events(sidecar.engine)[0].status != "processed":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert stored.duplicates == 1 and stored.object_type == "meetings"
    assert elapsed < 30  # measured in bench/; here only a bound that the worker got there
    metrics = loopback.get(f"{sidecar.base_url}/metrics").text
    assert 'okrsync_webhook_events_received_total{source="hubspot"} 1.0' in metrics
    assert 'okrsync_webhook_events_duplicate_total{source="hubspot"} 1.0' in metrics
    assert 'okrsync_outbox_pending{crm="hubspot"} 0.0' in metrics  # everything written
    assert (
        "okrsync_compute_seconds_count 1.0" in metrics and 'okrsync_refresh_seconds_count{crm="hubspot"} 1.0' in metrics
    )


@pytest.mark.parametrize(
    "case",
    ["forged", "tampered", "stale", "replayed"],
)
def test_bad_signatures_are_refused_and_nothing_is_stored(sidecar: Sidecar, case: str) -> None:
    event = {"eventId": 1, "subscriptionId": 1, "portalId": 1, "occurredAt": int(time.time() * 1000),
             "subscriptionType": "deal.creation", "objectId": 5}  # fmt: skip
    if case == "forged":
        answer = sidecar.post_hubspot([event], secret="not-the-secret")
    elif case == "tampered":
        answer = sidecar.post_hubspot([event], tamper=True)
    elif case == "stale":
        answer = sidecar.post_hubspot([event], timestamp=int(time.time() * 1000) - 6 * 60 * 1000)
    else:
        stamp = int(time.time() * 1000)
        assert sidecar.post_hubspot([event], timestamp=stamp).status_code == 200
        before = len(_events(sidecar.engine))
        answer = sidecar.post_hubspot([event], timestamp=stamp)
        assert len(_events(sidecar.engine)) == before
    assert answer.status_code == 401, answer.text
    assert answer.json()["error"] == "unauthorized" and "signature" in answer.json()["detail"]
    if case != "replayed":
        assert _events(sidecar.engine) == []


def test_health_and_readiness(sidecar: Sidecar) -> None:
    assert loopback.get(f"{sidecar.base_url}/healthz").json() == {"status": "ok"}
    ready = loopback.get(f"{sidecar.base_url}/readyz").json()
    assert ready["status"] == "ok" and ready["database"] == "ok" and "hubspot" in ready["last_sync_age_seconds"]


@pytest.mark.slow  # 5,000 deliveries, then waits for the worker
def test_a_burst_of_5000_events_is_accounted_for_and_coalesced(sidecar: Sidecar) -> None:
    portal = sidecar.portal
    deals = [d["id"] for d in portal.records("deals")][:60]
    meetings = [m["id"] for m in portal.records("meetings")][:400]
    rng = random.Random(5)
    calls_before = portal.api_calls_total
    events: list[dict[str, Any]] = []
    for number in range(4600):
        deal = number % 3 == 0
        events.append({
            "eventId": number, "subscriptionId": 3 if deal else 4, "portalId": portal.portal_id,
            "occurredAt": int(time.time() * 1000) - rng.randint(0, 60_000),
            "subscriptionType": "deal.propertyChange" if deal else "object.propertyChange",
            **({} if deal else {"objectTypeId": "0-47"}),
            "objectId": int(rng.choice(deals if deal else meetings)),
            "propertyName": "amount" if deal else "hs_meeting_outcome", "propertyValue": str(number),
        })  # fmt: skip
    events += [
        {**e, "eventId": 10_000 + i, "subscriptionType": "ticket.propertyChange"} for i, e in enumerate(events[:40])
    ]
    deliveries = events + rng.sample(events, 360)  # HubSpot delivers some twice
    rng.shuffle(deliveries)  # and in no particular order
    for deal in deals[:10]:  # the CRM really changed while the events were on their way
        portal.update("deals", deal, {"amount": "123456"})
    answers = Counter()
    for start in range(0, len(deliveries), 100):
        answer = sidecar.post_hubspot(deliveries[start : start + 100])
        assert answer.status_code == 200, answer.text
        answers.update(answer.json())
    distinct = {json.dumps(e, sort_keys=True) for e in events}
    assert len(deliveries) == 5000
    assert answers["accepted"] + answers["duplicates"] == 5000 and answers["accepted"] == len(distinct)
    deadline = time.monotonic() + 60
    while any(e.status == "pending" for e in _events(sidecar.engine)):
        assert time.monotonic() < deadline, "the worker did not finish the burst"
        time.sleep(0.1)
    stored = _events(sidecar.engine)
    assert len(stored) == len(distinct) and sum(e.duplicates for e in stored) == 360
    assert Counter(e.status for e in stored) == {"processed": 4600, "ignored": 40}
    refreshes = sidecar.app.state.worker.refreshes
    calls = portal.api_calls_total - calls_before
    # coalesced: a few passes, not 5,000 fetches. How many passes depends on how the posts interleave with the
    # worker's 0.2 s coalescing window, which a loaded CI machine stretches (11 seen once): bound the order of
    # magnitude, and the API calls, not the exact count
    assert refreshes <= 25 and calls < 5000 / 20, (refreshes, calls)

    # the state the events led to is the state a full sync and a full compute give
    with Session(sidecar.engine) as session:
        incremental = {
            (v.mapping_id, v.kr_key): (v.value, v.records) for v in session.exec(sqlmodel.select(KeyResultValue))
        }
    with sidecar.app.state.worker.lock:
        worker = sidecar.app.state.worker
        run_pass(sidecar.engine, connector=worker.connectors["hubspot"], writer=worker.writers["hubspot"],
                 connection_name="sandbox", settings=worker.settings, full=True)  # fmt: skip
    with Session(sidecar.engine) as session:
        full = {(v.mapping_id, v.kr_key): (v.value, v.records) for v in session.exec(sqlmodel.select(KeyResultValue))}
    assert incremental == full


@pytest.mark.parametrize(
    ("body", "status", "detail"),
    [
        (b"{not json", 400, "JSON"),
        (b'{"eventId": 1}', 400, "array"),
        (json.dumps([{"eventId": 1, "portalId": 1}]).encode(), 400, "event 0"),
        (json.dumps([{"eventId": n, "subscriptionId": 1, "portalId": 1, "occurredAt": 1, "objectId": n,
                      "subscriptionType": "deal.creation"} for n in range(101)]).encode(), 400, "100"),
        (b"[" + b" " * 1_100_000 + b"]", 413, "larger"),
    ],
    ids=["not-json", "not-an-array", "field-missing", "over-100-events", "huge"],
)  # fmt: skip
def test_malformed_hubspot_batches_are_refused_with_a_reason(
    sidecar: Sidecar, body: bytes, status: int, detail: str
) -> None:
    stamp = str(int(time.time() * 1000))
    uri = f"{sidecar.base_url}/webhooks/hubspot"
    signature = sign_hubspot_v3(client_secret=SECRET, method="POST", uri=uri, body=body, timestamp=stamp)
    answer = loopback.post(
        uri, content=body, headers={"X-HubSpot-Signature-v3": signature, "X-HubSpot-Request-Timestamp": stamp}
    )
    assert answer.status_code == status, answer.text
    assert detail.lower() in answer.json()["detail"].lower()
    assert _events(sidecar.engine) == []


def test_the_hubspot_card_answers_signed_requests_only(sidecar: Sidecar) -> None:
    with Session(sidecar.engine) as session:
        deal = session.exec(
            sqlmodel.select(KeyResultEvidence.record_id).where(KeyResultEvidence.kr_key == "new-pipeline")
        ).first()
    path = f"/api/v1/hubspot/card?objectType=deals&objectId={deal}&userId=1&portalId={sidecar.portal.portal_id}"
    stamp = str(int(time.time() * 1000))
    signature = sign_hubspot_v3(
        client_secret=SECRET, method="GET", uri=f"{sidecar.base_url}{path}", body=b"", timestamp=stamp
    )
    headers = {"X-HubSpot-Signature-v3": signature, "X-HubSpot-Request-Timestamp": stamp}
    card = loopback.get(f"{sidecar.base_url}{path}", headers=headers)
    assert card.status_code == 200, card.text
    body = card.json()
    assert body["record"]["objectId"] == deal and body["keyResults"]
    assert {"title", "progress", "expected", "status", "contributed"} <= set(body["keyResults"][0])
    assert loopback.get(f"{sidecar.base_url}{path}").status_code == 401
    tampered = loopback.get(f"{sidecar.base_url}{path.replace('deals', 'companies')}", headers=headers)
    assert tampered.status_code == 401


@pytest.mark.slow  # okrsync in a subprocess
def test_okrsync_serve_starts_on_the_sandbox(tmp_path: Path) -> None:
    with okrsync_serve(tmp_path) as served:
        secret = served.token(name="ops", role="sales_ops")
        answer = loopback.get(f"{served.base_url}/api/v1/mappings", headers={"Authorization": f"Bearer {secret}"})
        assert answer.status_code == 200 and answer.json() == []
        assert loopback.get(f"{served.base_url}/docs").status_code == 200


def test_a_deletion_event_marks_the_record_deleted(sidecar: Sidecar) -> None:
    deal = sidecar.portal.records("deals")[0]["id"]
    sidecar.portal.archive("deals", deal)
    event = {
        "eventId": 7, "subscriptionId": 9, "portalId": sidecar.portal.portal_id, "occurredAt": int(time.time() * 1000),
        "subscriptionType": "deal.deletion", "objectId": int(deal),
    }  # fmt: skip
    assert sidecar.post_hubspot([event]).status_code == 200
    deadline = time.monotonic() + 30
    while True:
        with Session(sidecar.engine) as session:
            row = session.exec(sqlmodel.select(Opportunity).where(Opportunity.external_id == deal)).one()
        if row.is_deleted:
            break
        assert time.monotonic() < deadline, [(e.status, e.error) for e in _events(sidecar.engine)]
        time.sleep(0.05)


def test_an_event_that_cannot_be_processed_keeps_its_error_and_is_retried(sidecar: Sidecar) -> None:
    meeting = sidecar.portal.records("meetings")[0]["id"]
    sidecar.portal.faults.add("http", match="batch_read", status=503, times=10**6)  # HubSpot is down for a while
    event = {
        "eventId": 8, "subscriptionId": 2, "portalId": sidecar.portal.portal_id, "occurredAt": int(time.time() * 1000),
        "subscriptionType": "object.propertyChange", "objectTypeId": "0-47", "objectId": int(meeting),
        "propertyName": "hs_meeting_outcome", "propertyValue": "COMPLETED",
    }  # fmt: skip
    assert sidecar.post_hubspot([event]).status_code == 200
    deadline = time.monotonic() + 30
    while not (_events(sidecar.engine)[0].error or ""):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    [kept] = _events(sidecar.engine)
    assert kept.status in ("pending", "failed") and "503" in (kept.error or ""), kept.error
    sidecar.portal.faults.clear()  # HubSpot is back
    deadline = time.monotonic() + 30
    while _events(sidecar.engine)[0].status != "processed":
        assert time.monotonic() < deadline, _events(sidecar.engine)[0].error
        time.sleep(0.05)


def test_a_merge_event_retires_the_merged_contacts_and_moves_their_activities(sidecar: Sidecar) -> None:
    """``contact.merge`` (issue 18, item 4): HubSpot gave the result a new id; the worker reads every id the event
    names, so both old contacts stop counting and their calls count for the new one."""
    portal = sidecar.portal
    old = [str(r["id"]) for r in portal.snapshot("contacts") if portal.associations("contacts", r["id"], "calls")][:2]
    calls = {str(c) for contact in old for c, _t in portal.associations("contacts", contact, "calls")}
    new = str(portal.merge("contacts", old[0], old[1])["id"])
    event = merge_event(portal.merges[-1], portal_id=portal.portal_id, event_id=11)
    unknown = {**merge_event(portal.merges[-1], portal_id=portal.portal_id, event_id=12),
               "objectId": 999_999_001, "primaryObjectId": 999_999_001, "mergedObjectIds": [999_999_002],
               "newObjectId": 999_999_003}  # fmt: skip
    assert sidecar.post_hubspot([event, unknown]).status_code == 200
    deadline = time.monotonic() + 30
    while True:
        with Session(sidecar.engine) as session:
            contacts = {c.external_id: c.is_deleted for c in session.exec(sqlmodel.select(Contact))}
            linked = set(session.exec(sqlmodel.select(ActivityContact.activity_id).where(
                ActivityContact.contact_id == new)))  # fmt: skip
        statuses = {e.status for e in _events(sidecar.engine)}
        if contacts.get(new) is False and all(contacts[c] for c in old) and statuses == {"processed"}:
            break
        assert time.monotonic() < deadline, [(e.status, e.error) for e in _events(sidecar.engine)]
        time.sleep(0.05)
    assert calls <= linked  # the unknown ids' event was processed too: nothing to retire, a log line
