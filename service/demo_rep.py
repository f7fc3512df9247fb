"""The demo's simulated rep (``okrsync demo``): logs meetings in the sandbox CRM, the CRM tells the sidecar.

Every few seconds, alternately in the HubSpot portal and the Salesforce org, a team member logs a meeting like one
that counts for the acquisition mapping's ``discovery-meetings`` (a copy with its company, deal and contacts, dated
now). Then the CRM's webhook is sent to the sidecar exactly as the CRM would send it: HubSpot's signed
``object.creation`` batch, and for Salesforce the Flow callout signed with the shared secret (both secrets are the
sandbox's published demo values). The sidecar's worker refreshes, recomputes and writes back; the rep reads the key
result from the sidecar's API (``GET /api/v1/mappings/{id}``) and prints it.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy.engine import Engine
from sqlmodel import Session

from connectors.sandbox.hubspot_portal import HubSpotPortal
from connectors.sandbox.hubspot_schemas import format_timestamp
from connectors.sandbox.schema import format_datetime
from connectors.sandbox.store import SandboxOrg
from service.kit.settings import Settings
from service.webhooks.verify import sign_hubspot_v3, sign_shared_hmac

KR = "discovery-meetings"
MEETING_OBJECT_TYPE = "0-47"  # HubSpot's objectTypeId of meetings
WAIT_FOR_VALUE_SECONDS = 30
CRM_NAMES = {"hubspot": "HubSpot", "salesforce": "Salesforce"}
HUBSPOT_SKIPPED = {"hs_object_id", "hs_createdate", "hs_lastmodifieddate"}
SALESFORCE_AUDIT = {"Id", "CreatedDate", "LastModifiedDate", "SystemModstamp"}


class Rep:
    """Logs meetings like counted ones, in the sandbox CRM, and sends the CRM's webhooks to the sidecar."""

    def __init__(
        self,
        *,
        base_url: str,
        token: str,
        engine: Engine,
        org: SandboxOrg,
        portal: HubSpotPortal,
        settings: Settings,
        mappings: dict[str, int],
    ) -> None:
        from service.compute import report as reports
        from service.okrs.models import OkrMapping

        self.base_url, self.org, self.portal, self.mappings = base_url, org, portal, mappings
        hooks = settings.webhooks
        assert hooks.hubspot_client_secret is not None and hooks.flow_secret is not None
        self.hubspot_secret = hooks.hubspot_client_secret.get_secret_value()
        self.flow_secret = hooks.flow_secret.get_secret_value()
        self.public_url = (hooks.public_base_url or base_url).rstrip("/")
        self.api = httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=10)
        self.rng = random.Random(7)
        self.event_number = self.rng.randrange(10**6, 10**9)
        self.meetings: dict[str, list[str]] = {}
        self.names: dict[str, dict[str, str]] = {}
        with Session(engine) as session:
            for crm, mapping_id in mappings.items():
                mapping = session.get(OkrMapping, mapping_id)
                assert mapping is not None
                _total, rows = reports.evidence(session, mapping, KR, limit=500)
                self.meetings[crm] = [row.record_id for row in rows if row.part == "counted"]
                self.names[crm] = reports.owner_names(session, mapping.connection_id)
                if not self.meetings[crm]:
                    raise RuntimeError(f"no meeting counts for {KR} in {CRM_NAMES[crm]}: nothing to copy")

    def close(self) -> None:
        self.api.close()

    # -- the sidecar's view ------------------------------------------------------------------------------------
    def key_result(self, crm: str) -> tuple[float | None, str]:
        """The key result's value and status as the sidecar's API shows them."""
        answer = self.api.get(f"/api/v1/mappings/{self.mappings[crm]}", params={"trend": 0})
        answer.raise_for_status()
        for objective in answer.json()["objectives"]:
            for kr in objective["key_results"]:
                if kr["key"] == KR:
                    return kr["value"], str(kr["status"]).replace("_", " ")
        raise RuntimeError(f"mapping {self.mappings[crm]} has no key result {KR}")

    # -- one activity ------------------------------------------------------------------------------------------
    def log_meeting(self, crm: str, *, wait_until: float) -> str:
        """Log a meeting in ``crm``, send the webhook, and wait (until ``wait_until``, monotonic) for the key
        result to move; returns the line to print."""
        before, _status = self.key_result(crm)
        now = datetime.now(UTC).replace(second=0, microsecond=0)
        who, account = self._log_hubspot(now) if crm == "hubspot" else self._log_salesforce(now)
        after, status = before, ""
        while after == before and time.monotonic() < wait_until:
            time.sleep(0.3)
            after, status = self.key_result(crm)
        did = f"{datetime.now():%H:%M:%S} {who} logged a meeting with {account} ({CRM_NAMES[crm]})"
        if after == before:
            return f"{did} → {KR} still {_shown(before)}: the sidecar has not counted it yet"
        return f"{did} → {KR} {_shown(before)} → {_shown(after)} ({status})"

    def _log_hubspot(self, now: datetime) -> tuple[str, str]:
        portal = self.portal
        meeting = portal.get("meetings", self.rng.choice(self.meetings["hubspot"]))
        assert meeting is not None
        links = [(kind, to) for kind in ("deals", "companies", "contacts")
                 for to, _type in portal.associations("meetings", meeting["id"], kind)]  # fmt: skip
        properties = {k: v for k, v in meeting["properties"].items() if k not in HUBSPOT_SKIPPED}
        properties.update(
            hs_timestamp=format_timestamp(now),
            hs_meeting_start_time=format_timestamp(now),
            hs_meeting_end_time=format_timestamp(now + timedelta(hours=1)),
        )
        logged = portal.insert("meetings", properties, associations=links)
        self.event_number += 1
        event = {
            "eventId": self.event_number, "subscriptionId": 1, "portalId": portal.portal_id, "appId": 1,
            "occurredAt": int(time.time() * 1000), "subscriptionType": "object.creation",
            "objectTypeId": MEETING_OBJECT_TYPE, "objectId": int(logged["id"]), "attemptNumber": 0,
            "changeSource": "CRM_UI",
        }  # fmt: skip
        body = json.dumps([event]).encode()
        stamp = str(int(time.time() * 1000))
        signature = sign_hubspot_v3(
            client_secret=self.hubspot_secret, method="POST", uri=f"{self.public_url}/webhooks/hubspot",
            body=body, timestamp=stamp,
        )  # fmt: skip
        headers = {"X-HubSpot-Signature-v3": signature, "X-HubSpot-Request-Timestamp": stamp,
                   "Content-Type": "application/json"}  # fmt: skip
        _check(httpx.post(f"{self.base_url}/webhooks/hubspot", content=body, headers=headers, timeout=10), "HubSpot")
        companies = [to for kind, to in links if kind == "companies"]
        company = portal.get("companies", companies[0]) if companies else None
        account = (company or {}).get("properties", {}).get("name") or "a prospect"
        owner = str(properties.get("hubspot_owner_id") or "")
        return self.names["hubspot"].get(owner, "A rep"), account

    def _log_salesforce(self, now: datetime) -> tuple[str, str]:
        org = self.org
        meeting = org.get("Event", self.rng.choice(self.meetings["salesforce"]))
        assert meeting is not None
        fields = {k: v for k, v in meeting.items() if k not in SALESFORCE_AUDIT}
        minutes = int(fields.get("DurationInMinutes") or 60)
        fields.update(
            StartDateTime=format_datetime(now),
            ActivityDateTime=format_datetime(now),
            EndDateTime=format_datetime(now + timedelta(minutes=minutes)),
        )
        logged = org.insert("Event", fields)
        body = json.dumps({"organizationId": org.org_id, "events": [
            {"id": f"okrsync-demo-{uuid.uuid4()}", "sobject": "Event", "recordId": logged["Id"],
             "changeType": "create", "occurredAt": now.isoformat().replace("+00:00", "Z")}]}).encode()  # fmt: skip
        header = sign_shared_hmac(secret=self.flow_secret, body=body, timestamp=int(time.time()))
        _check(
            httpx.post(
                f"{self.base_url}/webhooks/salesforce/flow", content=body,
                headers={"X-Okrsync-Signature": header, "Content-Type": "application/json"}, timeout=10,
            ),
            "Salesforce",
        )  # fmt: skip
        account = org.get("Account", fields.get("AccountId") or "") or {}
        who = self.names["salesforce"].get(str(fields.get("OwnerId")), "A rep")
        return who, account.get("Name") or "a prospect"


def _check(answer: httpx.Response, crm: str) -> None:
    if answer.status_code != 200:
        raise RuntimeError(f"the sidecar refused the {crm} webhook: {answer.status_code} {answer.text[:300]}")


def _shown(value: float | None) -> str:
    return "–" if value is None else f"{value:g}"


def simulate_rep(
    *,
    base_url: str,
    token: str,
    engine: Engine,
    org: SandboxOrg,
    portal: HubSpotPortal,
    settings: Settings,
    mappings: dict[str, int],
    every: float,
    duration: float | None,
    say: Callable[[str], Any],
) -> None:
    """Log a meeting every ``every`` seconds, HubSpot and Salesforce in turn, until ``duration`` has passed (None:
    until interrupted), printing each with the key result's value before and after."""
    rep = Rep(
        base_url=base_url, token=token, engine=engine, org=org, portal=portal, settings=settings, mappings=mappings
    )
    started = time.monotonic()
    deadline = None if duration is None else started + duration
    try:
        turn = 0
        while deadline is None or time.monotonic() < deadline:
            crm = ("hubspot", "salesforce")[turn % 2]
            wait_until = time.monotonic() + WAIT_FOR_VALUE_SECONDS
            say(rep.log_meeting(crm, wait_until=wait_until if deadline is None else min(wait_until, deadline + 5)))
            turn += 1
            pause = started + turn * every - time.monotonic()
            if deadline is not None:
                pause = min(pause, deadline - time.monotonic())
            if pause > 0:
                time.sleep(pause)
    finally:
        rep.close()
