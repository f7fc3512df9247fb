"""The sidecar with Salesforce: an Outbound Message (SOAP) for a newly logged meeting moves the key result in the
org's OKR_Key_Result__c; a Flow callout signed with the shared secret does the same; bad input is refused."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlmodel
from pydantic import SecretStr
from sqlalchemy.engine import Engine
from sqlmodel import Session

from connectors.salesforce.writer import SalesforceWriter
from connectors.sandbox.store import SandboxOrg
from connectors.webhooks import sign_shared_hmac
from service.app import create_app
from service.crm.clients import CrmAccess
from service.kit.server import ThreadedServer
from service.kit.settings import ServeSettings, Settings, WebhookSettings
from service.webhooks.models import WebhookEvent
from service.writeback.service import send
from tests import loopback
from tests.conftest import fast_config
from tests.service.writeback.world import (
    apply_examples,
    connection,
    deployed_org,
    log_counted_meeting,
    start_salesforce,
)

pytestmark = pytest.mark.slow  # every test starts the sidecar and its worker on loopback and waits for the worker

FLOW_SECRET = "flow-test-secret"
SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
OUTBOUND = "http://soap.sforce.com/2005/09/outbound"


@dataclass
class SalesforceSidecar:
    base_url: str
    org: SandboxOrg
    engine: Engine


@pytest.fixture
def sidecar(engine: Engine, tmp_path: Path) -> Iterator[SalesforceSidecar]:
    with ExitStack() as stack:
        world = start_salesforce(stack, engine, tmp_path, deployed_org(), fast_config)
        apply_examples(engine, "salesforce", ("acquisition",))
        with Session(engine) as session:
            conn_id = connection(session, "salesforce").id or 0
        send(engine, SalesforceWriter(fast_config(world.server)), connection_id=conn_id)
        settings = Settings(  # type: ignore[call-arg]
            _env_file=None,
            webhooks=WebhookSettings(
                salesforce_org_id=world.org.org_id, flow_secret=SecretStr(FLOW_SECRET), max_body_bytes=200_000
            ),
            serve=ServeSettings(sync_interval_seconds=3600, worker_poll_seconds=0.05, coalesce_seconds=0.1),
        )
        access = CrmAccess("salesforce", "sandbox", fast_config(world.server))
        app = create_app(settings=settings, engine=engine, crms={"salesforce": access})
        app.state.worker.last_sync["salesforce"] = time.monotonic()
        with ThreadedServer(app) as http:
            yield SalesforceSidecar(http.base_url, world.org, engine)


def _records(org: SandboxOrg) -> int:
    return int(
        next(r for r in org.records("OKR_Key_Result__c") if r["Key_Result_Key__c"] == "discovery-meetings")[
            "Records__c"
        ]
    )


def _log_meeting(sidecar: SalesforceSidecar) -> dict:
    return log_counted_meeting(sidecar.engine, sidecar.org)


def _outbound(org_id: str, notification_id: str, event: dict, *, extra: str = "") -> bytes:
    return f"""<?xml version="1.0" encoding="UTF-8"?>{extra}
<soapenv:Envelope xmlns:soapenv="{SOAP_ENV}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
 <soapenv:Body>
  <notifications xmlns="{OUTBOUND}">
   <OrganizationId>{org_id}</OrganizationId>
   <ActionId>04k000000000001AAA</ActionId>
   <SessionId xsi:nil="true"/>
   <EnterpriseUrl>https://acme.my.salesforce.com/services/Soap/c/61.0/x</EnterpriseUrl>
   <PartnerUrl>https://acme.my.salesforce.com/services/Soap/u/61.0/x</PartnerUrl>
   <Notification>
    <Id>{notification_id}</Id>
    <sObject xsi:type="sf:Event" xmlns:sf="urn:sobject.enterprise.soap.sforce.com">
     <sf:Id>{event["Id"]}</sf:Id>
     <sf:Subject>{event.get("Subject") or ""}</sf:Subject>
    </sObject>
   </Notification>
  </notifications>
 </soapenv:Body>
</soapenv:Envelope>""".encode()


def _wait_for(check, seconds: float = 30) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_an_outbound_message_moves_the_key_result(sidecar: SalesforceSidecar) -> None:
    before = _records(sidecar.org)
    event = _log_meeting(sidecar)
    body = _outbound(sidecar.org.org_id, "04l000000000001AAA", event)
    for _ in range(2):  # Salesforce repeats a notification until it sees the Ack
        answer = loopback.post(
            f"{sidecar.base_url}/webhooks/salesforce", content=body, headers={"Content-Type": "text/xml"}
        )
        assert answer.status_code == 200 and b"<Ack>true</Ack>" in answer.content
    _wait_for(lambda: _records(sidecar.org) == before + 1)
    with Session(sidecar.engine) as session:
        [stored] = session.exec(sqlmodel.select(WebhookEvent)).all()
    assert (stored.object_type, stored.object_id, stored.duplicates) == ("Event", event["Id"], 1)


def test_a_flow_callout_moves_the_key_result(sidecar: SalesforceSidecar) -> None:
    before = _records(sidecar.org)
    event = _log_meeting(sidecar)
    body = json.dumps({"organizationId": sidecar.org.org_id, "events": [
        {"id": "evt-1", "sobject": "Event", "recordId": event["Id"], "changeType": "create",
         "occurredAt": "2026-09-30T17:00:00Z"}]}).encode()  # fmt: skip
    header = sign_shared_hmac(secret=FLOW_SECRET, body=body, timestamp=int(time.time()))
    answer = loopback.post(
        f"{sidecar.base_url}/webhooks/salesforce/flow", content=body, headers={"X-Okrsync-Signature": header}
    )
    assert answer.status_code == 200, answer.text
    _wait_for(lambda: _records(sidecar.org) == before + 1)
    forged = sign_shared_hmac(secret="wrong", body=body, timestamp=int(time.time()))
    refused = loopback.post(
        f"{sidecar.base_url}/webhooks/salesforce/flow", content=body, headers={"X-Okrsync-Signature": forged}
    )
    assert refused.status_code == 401


XXE = '<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
LAUGHS = '<!DOCTYPE l [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>'


@pytest.mark.parametrize(
    ("case", "status"),
    [("malformed", 400), ("xxe", 400), ("entity-expansion", 400), ("other-org", 401), ("huge", 413)],
    ids=str,
)
def test_bad_outbound_messages_are_refused_and_nothing_is_stored(
    sidecar: SalesforceSidecar, case: str, status: int
) -> None:
    event = {"Id": "00U000000000001AAA", "Subject": "x"}
    body = {
        "malformed": b"<soapenv:Envelope>not xml",
        "xxe": _outbound(sidecar.org.org_id, "04l1", event, extra=XXE),
        "entity-expansion": _outbound(sidecar.org.org_id, "04l2", event, extra=LAUGHS),
        "other-org": _outbound("00D000000000999AAA", "04l3", event),
        "huge": b"<x>" + b"a" * 300_000 + b"</x>",
    }[case]
    answer = loopback.post(
        f"{sidecar.base_url}/webhooks/salesforce", content=body, headers={"Content-Type": "text/xml"}
    )
    assert answer.status_code == status, answer.text
    with Session(sidecar.engine) as session:
        assert session.exec(sqlmodel.select(WebhookEvent)).all() == []
