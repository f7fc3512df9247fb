"""The webhook endpoints through real HTTP, on SQLite and PostgreSQL (the ``engine`` fixture).

Bodies a correctly signed sender could send that okrsync cannot store — numbers out of range, NaN, nesting 100,000
deep, NUL characters, unpaired surrogates, text longer than its column — get a 4xx saying what is wrong and where,
and leave nothing behind (no event, no replay row). A request accepted once is refused as a replay however its
signature header is rewritten, also when copies race; expired replay rows are pruned. (Two sidecar processes sharing
the guard: ``tests/service/test_replay.py``.)
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import sqlmodel
from pydantic import SecretStr
from sqlalchemy.engine import Engine
from sqlmodel import Session

from connectors.hubspot.webhooks import sign_hubspot_v3
from connectors.webhooks import sign_shared_hmac
from service.app import create_app
from service.kit.server import ThreadedServer, free_port
from service.kit.settings import Settings, WebhookSettings
from service.webhooks.models import WebhookEvent, WebhookReplay
from tests import loopback
from tests.service.webhooks.raw_http import raw_post

SECRET = "endpoint-test-client-secret"
FLOW_SECRET = "endpoint-test-flow-secret"
ORG = "00D5e000000AbCdEAK"
SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
OUTBOUND = "http://soap.sforce.com/2005/09/outbound"
HEADER = "X-HubSpot-Signature-v3"


@dataclass
class Hooks:
    base_url: str
    engine: Engine

    def hubspot(self, body: bytes, *, stamp: int | None = None) -> tuple[httpx.Response, dict[str, Any]]:
        """POST a signed batch; returns the answer and the headers sent (to replay them)."""
        stamp = stamp if stamp is not None else int(time.time() * 1000)
        uri = f"{self.base_url}/webhooks/hubspot"
        signature = sign_hubspot_v3(client_secret=SECRET, method="POST", uri=uri, body=body, timestamp=stamp)
        headers = {HEADER: signature, "X-HubSpot-Request-Timestamp": str(stamp), "Content-Type": "application/json"}
        return self.resend_hubspot(body, headers), headers

    def resend_hubspot(self, body: bytes, headers: dict[str, Any]) -> httpx.Response:
        return loopback.post(f"{self.base_url}/webhooks/hubspot", content=body, headers=headers, timeout=30)

    def flow(self, body: bytes, header: str | None = None) -> httpx.Response:
        header = header or sign_shared_hmac(secret=FLOW_SECRET, body=body, timestamp=int(time.time()))
        return loopback.post(
            f"{self.base_url}/webhooks/salesforce/flow", content=body, headers={"X-Okrsync-Signature": header}
        )

    def outbound(self, body: bytes) -> httpx.Response:
        # 30 s as for HubSpot: httpx's default 5 s timed out in CI (4 workers on 2 cores) while the server refused
        # a 100,000-deep message, which takes about a second alone
        return loopback.post(
            f"{self.base_url}/webhooks/salesforce", content=body, headers={"Content-Type": "text/xml"}, timeout=30
        )

    def stored(self) -> list[WebhookEvent]:
        with Session(self.engine) as session:
            return list(session.exec(sqlmodel.select(WebhookEvent).order_by(WebhookEvent.id)).all())  # type: ignore[arg-type]

    def replays(self) -> list[WebhookReplay]:
        with Session(self.engine) as session:
            return list(session.exec(sqlmodel.select(WebhookReplay)).all())


@pytest.fixture
def hooks(engine: Engine) -> Iterator[Hooks]:
    port = free_port()
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        webhooks=WebhookSettings(
            public_base_url=f"http://127.0.0.1:{port}", hubspot_client_secret=SecretStr(SECRET),
            flow_secret=SecretStr(FLOW_SECRET), salesforce_org_id=ORG,
        ),
    )  # fmt: skip
    with ThreadedServer(create_app(settings=settings, engine=engine, crms=None), port=port) as http:
        yield Hooks(http.base_url, engine)


def _event(number: int, **fields: Any) -> dict[str, Any]:
    return {"eventId": number, "subscriptionId": 3, "portalId": 145000001, "occurredAt": 1790000000000 + number,
            "subscriptionType": "deal.propertyChange", "objectId": 42, "propertyName": "amount",
            "propertyValue": str(number), **fields}  # fmt: skip


def _raw(event: dict[str, Any], key: str, raw: str) -> bytes:
    """A batch of [event] whose ``key`` has the raw JSON text ``raw`` (1e30, NaN: what json.dumps cannot write)."""
    text = json.dumps([event])
    return text.replace(f'"{key}": {json.dumps(event[key])}', f'"{key}": {raw}', 1).encode()


def _deep(depth: int) -> str:
    return "[" * depth + "]" * depth


def _refused_and_nothing_stored(hooks: Hooks, answer: httpx.Response, status: int, detail: str) -> None:
    assert answer.status_code == status, answer.text[:500]
    error = {400: "bad_request", 401: "unauthorized"}[status]
    assert answer.json()["error"] == error and answer.json()["detail"].startswith(detail), answer.text[:500]
    assert hooks.stored() == [] and hooks.replays() == []


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (_raw(_event(1), "occurredAt", "1e30"), "event 0: occurredAt: Value error, 1e+30 is out of range"),
        (_raw(_event(1), "occurredAt", "1e17"), "event 0: occurredAt: Value error, 1e+17 is out of range"),
        (_raw(_event(1), "occurredAt", str(10**17)), "event 0: occurredAt: Input should be less than or equal to"),
        (_raw(_event(1), "eventId", str(10**30)), "event 0: eventId: Input should be less than or equal to"),
        (_raw(_event(1), "objectId", "4.2"), "event 0: objectId: Input should be a valid integer"),
        (_raw(_event(1), "occurredAt", "NaN"), "not JSON: NaN is not a number JSON allows"),
        (_raw(_event(1), "propertyValue", "1e999"), "event 0: propertyValue: a number too large for a float"),
        (_raw(_event(1), "eventId", "9" * 5000), "not JSON okrsync accepts: an integer of more than 100 digits"),
        (_deep(100_000).encode(), "not JSON okrsync accepts: nested deeper than 32 levels"),
        (json.dumps([_event(1), _event(2, propertyValue=json.loads(_deep(40)))]).encode(), "event 1: propertyValue"),
        (json.dumps([_event(1, propertyValue="a\x00b")]).encode(), "event 0: propertyValue: contains a NUL char"),
        (_raw(_event(1), "propertyValue", '"\\ud800"'), "event 0: propertyValue: contains an unpaired surrogate"),
        (json.dumps([_event(1, propertyName="p" * 1000)]).encode(), "event 0: propertyName: String should have at"),
    ],
    ids=["occurredAt-1e30", "occurredAt-1e17", "occurredAt-10**17", "eventId-over-64-bits", "objectId-fraction",
         "nan", "float-overflow", "5000-digits", "nested-100000-deep", "nested-40-deep", "nul", "unpaired-surrogate",
         "property-name-1000-chars"],
)  # fmt: skip
def test_a_signed_hubspot_body_okrsync_cannot_store_is_a_400(hooks: Hooks, body: bytes, detail: str) -> None:
    answer, _headers = hooks.hubspot(body)
    _refused_and_nothing_stored(hooks, answer, 400, detail)


def _flow_body(**fields: Any) -> bytes:
    event = {"id": "evt-1", "sobject": "Opportunity", "recordId": "0065e00000Qw3rTAAR", "changeType": "update",
             "occurredAt": "2026-09-30T12:00:00Z", **fields}  # fmt: skip
    return json.dumps({"organizationId": ORG, "events": [event]}).encode()


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (_flow_body(occurredAt="0001-01-01T00:00:00+01:00"), "events[0].occurredAt: Value error, datetime out of r"),
        (_flow_body(sobject="O" * 81), "events[0].sobject: String should match pattern"),
        (_flow_body(id="evt\x00"), "events[0].id: contains a NUL character"),
        (_flow_body(recordId=10**30), "events[0].recordId: Input should be a valid string"),
        (_flow_body(changeType="upsert").replace(b'"upsert"', b"-Infinity"), "not JSON: -Infinity is not a numbe"),
        (b'{"organizationId": "x", "events": ' + _deep(100_000).encode() + b"}", "not JSON okrsync accepts: nested"),
        (_flow_body(extra=json.loads(_deep(40))), "events[0].extra[0]"),
    ],
    ids=["datetime-out-of-range", "sobject-too-long", "nul", "record-id-a-number", "infinity", "nested-100000-deep",
         "nested-40-deep"],
)  # fmt: skip
def test_a_signed_flow_body_okrsync_cannot_store_is_a_400(hooks: Hooks, body: bytes, detail: str) -> None:
    _refused_and_nothing_stored(hooks, hooks.flow(body), 400, detail)


def _outbound(notification_id: str = "04l5e00000A1b2cAAB", record_id: str = "0065e00000Qw3rTAAR",
              sobject: str = "Opportunity", field: str = "<sf:Name>Acme</sf:Name>") -> bytes:  # fmt: skip
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="{SOAP_ENV}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body>
 <notifications xmlns="{OUTBOUND}"><OrganizationId>{ORG}</OrganizationId><ActionId>04k5e000000XyZ1AAK</ActionId>
  <SessionId xsi:nil="true"/><EnterpriseUrl>https://x/e</EnterpriseUrl><PartnerUrl>https://x/p</PartnerUrl>
  <Notification><Id>{notification_id}</Id>
   <sObject xsi:type="sf:{sobject}" xmlns:sf="urn:sobject.enterprise.soap.sforce.com"><sf:Id>{record_id}</sf:Id>
   {field}</sObject></Notification></notifications></soapenv:Body></soapenv:Envelope>""".encode()


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (_outbound(notification_id="04l" + "0" * 500), "Notification 0: Id is not a Salesforce id"),
        (_outbound(record_id="006" + "0" * 100), "Notification 0: sObject Id is not a Salesforce id"),
        (_outbound(sobject="O" * 100), "Notification 0: sObject xsi:type is not an object's API name"),
        (_outbound(field="<sf:Name>" + "<a>" * 100_000 + "</a>" * 100_000 + "</sf:Name>"),
         "Notification 0: field Name holds elements, expected a simple value"),
    ],
    ids=["notification-id-too-long", "record-id-too-long", "type-too-long", "field-nested-100000-deep"],
)  # fmt: skip
def test_an_outbound_message_okrsync_cannot_store_is_a_400_soap_fault(hooks: Hooks, body: bytes, detail: str) -> None:
    answer = hooks.outbound(body)
    assert answer.status_code == 400 and answer.headers["content-type"].startswith("text/xml")
    assert f"<faultcode>soapenv:Client</faultcode><faultstring>{detail}" in answer.text
    assert hooks.stored() == []
    assert hooks.outbound(_outbound()).status_code == 200  # the same message, well formed, is taken
    assert [e.object_id for e in hooks.stored()] == ["0065e00000Qw3rTAAR"]


def test_a_hubspot_request_is_taken_once_however_its_header_is_written(hooks: Hooks) -> None:
    body = json.dumps([_event(1), _event(2)]).encode()
    before_ms = int(time.time() * 1000)
    first, headers = hooks.hubspot(body, stamp=before_ms)
    assert first.status_code == 200 and first.json() == {"accepted": 2, "duplicates": 0, "ignored": 0}
    signature, stamp = headers[HEADER].encode(), headers["X-HubSpot-Request-Timestamp"].encode()
    replay = "HubSpot signature refused: this request was already received (replay)"
    variants = {
        "exact": (signature, replay),
        "trailing-nbsp": (signature + b"\xa0", "HubSpot signature refused: malformed signature header"),
        "leading-nbsp": (b"\xa0" + signature, "HubSpot signature refused: malformed signature header"),
        # HTTP drops spaces and tabs around a header value: these are the exact request again
        "trailing-space": (signature + b" ", replay),
        "leading-tab": (b"\t" + signature, replay),
    }
    for name, (value, detail) in variants.items():
        sent = {HEADER: value, "X-HubSpot-Request-Timestamp": stamp, "Content-Type": b"application/json"}
        answer = raw_post(hooks.base_url, "/webhooks/hubspot", headers=sent, body=body)
        assert (name, answer) == (name, (401, {"error": "unauthorized", "detail": detail}))
    stored = hooks.stored()
    assert [(e.payload["eventId"], e.duplicates) for e in stored] == [(1, 0), (2, 0)]
    [row] = hooks.replays()
    assert row.source == "hubspot" and len(row.digest) == 64
    assert row.expires_at == datetime.fromtimestamp(before_ms / 1000, UTC) + timedelta(minutes=10)


def test_a_flow_callout_is_taken_once_however_its_header_is_written(hooks: Hooks) -> None:
    body = _flow_body()
    t = int(time.time())
    header = sign_shared_hmac(secret=FLOW_SECRET, body=body, timestamp=t)
    mac = header.partition("v1=")[2]
    assert hooks.flow(body, header).status_code == 200
    replay, malformed = (
        "signature refused: this request was already received (replay)",
        ("signature refused: malformed signature header"),
    )
    variants = {
        "exact": (header, replay),
        "upper-case-hex": (f"t={t},v1={mac.upper()}", replay),
        "reordered": (f"v1={mac},t={t}", replay),
        "second-full-length-mac": (f"t={t},v1={'0' * 64},v1={mac}", replay),
        "extra-v0": (f"t={t},v1={mac},v0=x", replay),
        "extra-short-v1": (f"t={t},v1={mac},v1=00", malformed),
        "extra-unknown-key": (f"t={t},v1={mac},x=1", malformed),
        "second-t": (f"t={t},v1={mac},t={t}", malformed),
    }
    variants["trailing-nbsp"] = (header + "\xa0", malformed)
    for name, (value, detail) in variants.items():
        sent = {"X-Okrsync-Signature": value.encode("latin-1"), "Content-Type": b"application/json"}
        answer = raw_post(hooks.base_url, "/webhooks/salesforce/flow", headers=sent, body=body)
        assert (name, answer) == (name, (401, {"error": "unauthorized", "detail": detail}))
    assert [(e.source, e.duplicates) for e in hooks.stored()] == [("salesforce_flow", 0)]
    assert [r.source for r in hooks.replays()] == ["salesforce_flow"]


def test_copies_sent_at_once_are_taken_once(hooks: Hooks) -> None:
    body = json.dumps([_event(n) for n in range(20)]).encode()
    stamp = int(time.time() * 1000)
    uri = f"{hooks.base_url}/webhooks/hubspot"
    signature = sign_hubspot_v3(client_secret=SECRET, method="POST", uri=uri, body=body, timestamp=stamp)
    headers = {HEADER: signature, "X-HubSpot-Request-Timestamp": str(stamp)}
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: hooks.resend_hubspot(body, headers).status_code, range(8)))
    assert Counter(answers) == {200: 1, 401: 7}
    assert len(hooks.stored()) == 20 and all(e.duplicates == 0 for e in hooks.stored())


def test_expired_replay_rows_are_pruned(hooks: Hooks) -> None:
    now = datetime.now(UTC)
    with Session(hooks.engine) as session:
        session.add(WebhookReplay(source="hubspot", digest="e" * 64, expires_at=now - timedelta(seconds=1)))
        session.add(WebhookReplay(source="salesforce_flow", digest="f" * 64, expires_at=now + timedelta(minutes=5)))
        session.commit()
    answer, _headers = hooks.hubspot(json.dumps([_event(1)]).encode())
    assert answer.status_code == 200
    assert sorted(r.digest[0] for r in hooks.replays() if r.digest in ("e" * 64, "f" * 64)) == ["f"]
    assert len(hooks.replays()) == 2  # the live row and the new request's
