"""Webhooks of several CRM connections, through the real sidecar on loopback (SQLite): HubSpot events go to the
connection of their portalId (one client secret verifies all), Outbound Messages to the connection of their org id
(anything else refused without naming the configured ones), Flow callouts to the default one; the app card answers
only for a portal okrsync has a connection for; a worker marks events for a connection it has not got as failed,
saying how to configure it."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlmodel
from pydantic import SecretStr
from sqlalchemy.engine import Engine
from sqlmodel import Session

from connectors.hubspot.config import HubSpotConfig
from connectors.hubspot.webhooks import portal_of_record_pages, sign_hubspot_v3
from connectors.salesforce.config import SalesforceConfig
from connectors.webhooks import sign_shared_hmac
from service.app import create_app
from service.crm.models import CrmConnection, Opportunity
from service.kit.db import make_engine, utcnow
from service.kit.metrics import Metrics
from service.kit.migrate import create_schema
from service.kit.server import ThreadedServer, free_port
from service.kit.settings import ConnectionSettings, ServeSettings, Settings, WebhookSettings
from service.webhooks.models import WebhookEvent
from service.webhooks.tasks import Worker
from tests import loopback

SECRET = "one-app-secret-for-every-portal"
FLOW_SECRET = "flow-secret"
DEFAULT_PORTAL, WEST_PORTAL, UNKNOWN_PORTAL = 145000001, 145000002, 999
DEFAULT_ORG, EMEA_ORG, UNKNOWN_ORG = "00D000000000001AAA", "00D000000000002AAA", "00D000000000009AAA"
SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
OUTBOUND = "http://soap.sforce.com/2005/09/outbound"


@dataclass
class Sidecar:
    base_url: str
    engine: Engine
    settings: Settings

    def hubspot(self, events: list[dict[str, Any]]) -> httpx.Response:
        body, stamp = json.dumps(events).encode(), str(int(time.time() * 1000))
        uri = f"{self.base_url}/webhooks/hubspot"
        signature = sign_hubspot_v3(client_secret=SECRET, method="POST", uri=uri, body=body, timestamp=stamp)
        headers = {"X-HubSpot-Signature-v3": signature, "X-HubSpot-Request-Timestamp": stamp,
                   "Content-Type": "application/json"}  # fmt: skip
        return loopback.post(uri, content=body, headers=headers, timeout=10)

    def outbound(self, org_id: str, notification_id: str, record_id: str) -> httpx.Response:
        body = f"""<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="{SOAP_ENV}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body>
 <notifications xmlns="{OUTBOUND}"><OrganizationId>{org_id}</OrganizationId><ActionId>04k000000000001AAA</ActionId>
  <SessionId xsi:nil="true"/><EnterpriseUrl>https://x/e</EnterpriseUrl><PartnerUrl>https://x/p</PartnerUrl>
  <Notification><Id>{notification_id}</Id>
   <sObject xsi:type="sf:Opportunity" xmlns:sf="urn:sobject.enterprise.soap.sforce.com"><sf:Id>{record_id}</sf:Id>
   </sObject></Notification></notifications></soapenv:Body></soapenv:Envelope>""".encode()
        return loopback.post(f"{self.base_url}/webhooks/salesforce", content=body, headers={"Content-Type": "text/xml"})

    def flow(self, org_id: str, record_id: str) -> httpx.Response:
        event = {"id": "e1", "sobject": "Opportunity", "recordId": record_id, "changeType": "update",
                 "occurredAt": "2026-09-30T12:00:00Z"}  # fmt: skip
        body = json.dumps({"organizationId": org_id, "events": [event]}).encode()
        signature = sign_shared_hmac(secret=FLOW_SECRET, body=body, timestamp=int(time.time()))
        headers = {"X-Okrsync-Signature": signature, "Content-Type": "application/json"}
        return loopback.post(f"{self.base_url}/webhooks/salesforce/flow", content=body, headers=headers)

    def card(self, path: str) -> httpx.Response:
        stamp = str(int(time.time() * 1000))
        uri = f"{self.base_url}{path}"
        signature = sign_hubspot_v3(client_secret=SECRET, method="GET", uri=uri, body=b"", timestamp=stamp)
        headers = {"X-HubSpot-Signature-v3": signature, "X-HubSpot-Request-Timestamp": stamp}
        return loopback.get(
            uri, headers=headers, timeout=30
        )  # the first request of a fresh app, on a loaded CI machine

    def stored(self) -> list[WebhookEvent]:
        with Session(self.engine) as session:
            return list(session.exec(sqlmodel.select(WebhookEvent).order_by(WebhookEvent.id)).all())  # type: ignore[arg-type]


def _settings(port: int, *, default_org: str | None = DEFAULT_ORG) -> Settings:
    return Settings(  # type: ignore[call-arg]
        _env_file=None,
        webhooks=WebhookSettings(
            public_base_url=f"http://127.0.0.1:{port}",
            hubspot_client_secret=SecretStr(SECRET),
            salesforce_org_id=default_org,
            flow_secret=SecretStr(FLOW_SECRET),
        ),  # fmt: skip
        serve=ServeSettings(coalesce_seconds=0),
        connections=[
            ConnectionSettings(
                name="west", hubspot=HubSpotConfig(access_token=SecretStr("pat-west")), hubspot_portal_id=WEST_PORTAL
            ),
            ConnectionSettings(
                name="emea",
                salesforce=SalesforceConfig(access_token=SecretStr("t"), instance_url="https://emea.my.salesforce.com"),
                salesforce_org_id=EMEA_ORG[:15],  # the 15-character form: an 18-character one in a message matches
            ),
        ],
    )


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'okrsync.db'}")
    create_schema(engine)
    yield engine
    engine.dispose()


@contextmanager
def _serve(engine: Engine, **options: Any) -> Iterator[Sidecar]:
    port = free_port()
    settings = _settings(port, **options)
    with ThreadedServer(create_app(settings=settings, engine=engine, crms=None), port=port) as http:
        yield Sidecar(http.base_url, engine, settings)


@pytest.fixture
def sidecar(sqlite_engine: Engine) -> Iterator[Sidecar]:
    """The sidecar with the extra connections hubspot/west (portal 145000002) and salesforce/emea; no worker."""
    with _serve(sqlite_engine) as served:
        yield served


def _event(number: int, portal_id: int, object_id: int) -> dict[str, Any]:
    return {"eventId": number, "subscriptionId": 3, "portalId": portal_id, "occurredAt": 1790000000000 + number,
            "subscriptionType": "deal.propertyChange", "objectId": object_id, "propertyName": "amount"}  # fmt: skip


def test_hubspot_events_go_to_the_connection_of_their_portal(sidecar: Sidecar) -> None:
    # one batch, three portals, the same deal id in each: three events, each filed with its own connection
    batch = [_event(1, DEFAULT_PORTAL, 42), _event(2, WEST_PORTAL, 42), _event(3, UNKNOWN_PORTAL, 42)]
    answer = sidecar.hubspot(batch + [_event(2, WEST_PORTAL, 42)])  # and a repeat delivery of west's
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"accepted": 3, "duplicates": 1, "ignored": 0}
    stored = {e.payload["portalId"]: e for e in sidecar.stored()}
    assert {portal: (e.crm, e.connection, e.object_id) for portal, e in stored.items()} == {
        DEFAULT_PORTAL: ("hubspot", None, "42"),
        WEST_PORTAL: ("hubspot", "west", "42"),
        UNKNOWN_PORTAL: ("hubspot", None, "42"),  # a portal no extra connection claims: the default one's, as before
    }
    assert stored[WEST_PORTAL].duplicates == 1


def test_outbound_messages_go_to_the_connection_of_their_org(sidecar: Sidecar) -> None:
    for org in (DEFAULT_ORG, EMEA_ORG, EMEA_ORG[:15]):
        answer = sidecar.outbound(org, "04l000000000001AAA", "006000000000001AAA")  # the same ids from both orgs
        assert answer.status_code == 200, answer.text
        assert b"<Ack>true</Ack>" in answer.content
    refused = sidecar.outbound(UNKNOWN_ORG, "04l000000000002AAA", "006000000000001AAA")
    assert refused.status_code == 401
    assert f"Outbound Message from org {UNKNOWN_ORG} refused: no connection of this okrsync is for that org" in (
        refused.text
    )
    assert DEFAULT_ORG[:15] not in refused.text and EMEA_ORG[:15] not in refused.text  # what is expected stays unsaid
    stored = sidecar.stored()
    assert [(e.source, e.connection, e.object_id, e.duplicates) for e in stored] == [
        ("salesforce", None, "006000000000001AAA", 0),
        ("salesforce", "emea", "006000000000001AAA", 1),  # 15 and 18 characters: the same org, a repeat
    ]
    # a Flow callout is the default connection's, whichever org it names (its shared secret is the default org's)
    assert sidecar.flow(EMEA_ORG, "006000000000001AAA").status_code == 200
    assert [(e.source, e.connection) for e in sidecar.stored()][-1] == ("salesforce_flow", None)


def test_an_extra_org_alone_takes_outbound_messages(sqlite_engine: Engine) -> None:
    with _serve(sqlite_engine, default_org=None) as sidecar:
        assert sidecar.outbound(EMEA_ORG, "04l000000000001AAA", "006000000000001AAA").status_code == 200
        refused = sidecar.outbound(DEFAULT_ORG, "04l000000000002AAA", "006000000000001AAA")
        assert refused.status_code == 401 and "no connection of this okrsync is for that org" in refused.text
        assert EMEA_ORG[:15] not in refused.text and "expected" not in refused.text
        assert [e.connection for e in sidecar.stored()] == ["emea"]


@pytest.mark.parametrize(
    ("org", "reason"),
    [
        (
            DEFAULT_ORG + "-anything",
            "Outbound Message refused: OrganizationId is not a Salesforce id (15 or 18 letters and digits)",
        ),
        (
            DEFAULT_ORG[:15] + "ZZZ-anything",
            "Outbound Message refused: OrganizationId is not a Salesforce id (15 or 18 letters and digits)",
        ),
        (DEFAULT_ORG[:15] + "ZZZ", f"Outbound Message from org {DEFAULT_ORG[:15]}ZZZ refused"),
        (DEFAULT_ORG.lower(), f"Outbound Message from org {DEFAULT_ORG.lower()} refused"),
        (DEFAULT_ORG[:14], "Outbound Message refused: OrganizationId is not a Salesforce id"),
        (DEFAULT_ORG[:15] + "\u00e9", "Outbound Message refused: OrganizationId is not a Salesforce id"),
        ("0" * 100_000, "Outbound Message refused: OrganizationId is not a Salesforce id"),
    ],
    ids=["18-plus-anything", "15-plus-anything", "other-suffix", "lower-cased", "14-characters", "non-ascii", "huge"],
)
def test_an_org_id_that_is_not_exactly_a_configured_one_is_refused(sidecar: Sidecar, org: str, reason: str) -> None:
    refused = sidecar.outbound(org, "04l000000000001AAA", "006000000000001AAA")
    assert refused.status_code == 401 and refused.headers["content-type"].startswith("text/xml")
    assert f"<faultstring>{reason}" in refused.text, refused.text[:500]
    assert "expected" not in refused.text and DEFAULT_ORG not in refused.text and EMEA_ORG[:15] not in refused.text
    assert len(refused.content) < 1000  # a huge id is not echoed
    assert sidecar.stored() == []


def _synced(engine: Engine, name: str, record_pages: str | None, deal_name: str) -> None:
    """A HubSpot connection as a sync leaves it: record pages learned (or not), deal 42 with ``deal_name``."""
    with Session(engine) as session:
        connection = CrmConnection(crm="hubspot", name=name, instance_url=record_pages, created_at=utcnow())
        session.add(connection)
        session.flush()
        session.add(
            Opportunity(connection_id=connection.id or 0, external_id="42", crm_object="deals", name=deal_name,
                        modified_at=utcnow(), synced_at=utcnow())
        )  # fmt: skip
        session.commit()


def _card_path(portal: int | None) -> str:
    return "/api/v1/hubspot/card?objectType=deals&objectId=42&userId=1" + (f"&portalId={portal}" if portal else "")


def test_the_app_card_answers_only_for_a_portal_okrsync_has(sidecar: Sidecar) -> None:
    # deal 42 exists in both portals; the default connection's sync learned its portal id from the account details
    _synced(sidecar.engine, "sandbox", f"https://app-eu1.hubspot.com/contacts/{DEFAULT_PORTAL}", "Default deal")
    _synced(sidecar.engine, "west", f"https://app.hubspot.com/contacts/{WEST_PORTAL}", "West deal")
    names = {}
    for portal in (DEFAULT_PORTAL, WEST_PORTAL):
        answer = sidecar.card(_card_path(portal))
        assert answer.status_code == 200, answer.text
        names[portal] = answer.json()["record"]["name"]
    assert names == {DEFAULT_PORTAL: "Default deal", WEST_PORTAL: "West deal"}
    # correctly signed, but from a portal the app is installed in and okrsync has no connection for
    unknown = sidecar.card(_card_path(UNKNOWN_PORTAL))
    assert unknown.status_code == 404, unknown.text
    assert unknown.json() == {
        "error": "not_found",
        "detail": f"HubSpot portal {UNKNOWN_PORTAL} is not connected to this okrsync (an extra portal needs its"
        " hubspot_portal_id in OKRSYNC_CONNECTIONS; the default portal is known after its first sync)",
    }
    missing = sidecar.card(_card_path(None))
    assert missing.status_code == 400 and missing.json()["detail"].startswith("portalId missing")
    assert loopback.get(f"{sidecar.base_url}{_card_path(UNKNOWN_PORTAL)}").status_code == 401  # unsigned: 401 first


def test_the_app_card_of_the_default_portal_waits_for_its_first_sync(sidecar: Sidecar) -> None:
    _synced(sidecar.engine, "sandbox", None, "Default deal")  # the account details call was refused, or no sync yet
    answer = sidecar.card(_card_path(DEFAULT_PORTAL))
    assert answer.status_code == 404 and "Default deal" not in answer.text


@pytest.mark.parametrize(
    ("pages", "portal"),
    [
        ("https://app.hubspot.com/contacts/145000001", 145000001),
        ("https://app-eu1.hubspot.com/contacts/62515/", 62515),
        ("https://api.hubapi.com", None),
        ("https://app.hubspot.com/contacts/abc", None),
        (None, None),
    ],
    ids=["app", "eu-trailing-slash", "api-host-of-an-older-okrsync", "not-a-number", "unknown"],
)
def test_portal_of_record_pages(pages: str | None, portal: int | None) -> None:
    assert portal_of_record_pages(pages) == portal


def test_a_worker_fails_the_events_of_a_connection_it_has_not_got(sidecar: Sidecar) -> None:
    assert sidecar.hubspot([_event(1, DEFAULT_PORTAL, 42), _event(2, WEST_PORTAL, 42)]).status_code == 200
    worker = Worker(sidecar.engine, sidecar.settings, {}, Metrics())  # configured with neither HubSpot connection
    worker.run_once(wait_for_burst=False)
    errors = {e.connection: (e.status, e.error) for e in sidecar.stored()}
    assert errors[None] == ("failed", "no hubspot connection is configured: set OKRSYNC_HUBSPOT__…")
    assert errors["west"] == (
        "failed",
        "no hubspot connection 'west' is configured in this worker: add"
        ' {"name": "west", "hubspot": {…}, "hubspot_portal_id": …} to OKRSYNC_CONNECTIONS'
        " (the same value in every sidecar and worker)",
    )
