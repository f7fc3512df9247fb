"""HubSpot as a ``connectors.adapter.CrmAdapter``: the connector, the writer (its write-back mode decides what it
writes), the sandbox portal's settings and record pages (``https://{uiDomain}/contacts/{portalId}/record/{type}/{id}``
for deals, companies and contacts; engagements have no page of their own)."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

from pydantic import BaseModel, SecretStr

from connectors.adapter import SandboxMeeting
from connectors.hubspot import webhooks
from connectors.hubspot.config import HubSpotConfig
from connectors.hubspot.connector import HubSpotConnector
from connectors.hubspot.writer import HubSpotWriter, ProvisionReport, written_fields
from connectors.webhooks import WEBHOOKS_PREFIX, Inbound, Receiver, Routes
from connectors.writes import Target

MEETING_OBJECT_TYPE = "0-47"  # HubSpot's objectTypeId of meetings
NOT_COPIED = {"hs_object_id", "hs_createdate", "hs_lastmodifieddate"}  # the portal stamps its own
RECORD_TYPES = {"contacts": "0-1", "companies": "0-2", "deals": "0-3"}  # object type ids in record page URLs


class HubSpotAdapter:
    name = "hubspot"
    title = "HubSpot"
    pulls = "Pull owners, companies, contacts, deals, calls, emails, meetings, notes and tasks with their associations."
    config_type: type[BaseModel] = HubSpotConfig
    required_setting = "ACCESS_TOKEN"
    routing_setting = "hubspot_portal_id"
    raw_prefix: tuple[str, ...] = ("properties",)  # the CRM objects API's record JSON: {"id", "properties": {…}}
    provision_hint: str | None = None  # HubSpotWriter.provision(): the property group, properties, custom objects
    receivers: tuple[Receiver, ...] = (webhooks.RECEIVER,)
    sandbox_examples: tuple[str, ...] = ("acquisition",)
    app_card = True  # the UI extension in deploy/hubspot, signed like a webhook (signature v3)

    def connector(self, config: HubSpotConfig) -> HubSpotConnector:
        return HubSpotConnector(config)

    def writer(self, config: HubSpotConfig) -> HubSpotWriter:
        return HubSpotWriter(config)

    def provision(self, config: HubSpotConfig) -> ProvisionReport:
        return HubSpotWriter(config).provision()

    def written_fields(self, config: HubSpotConfig | None) -> dict[Target, frozenset[str]]:
        return written_fields(config.writeback_mode if config is not None else "custom_objects")

    def sandbox_config(self, base_url: str, ca_path: str, options: Any = None) -> HubSpotConfig:
        """The sandbox portal's published token; ``options.hubspot_writeback_mode`` picks the write-back mode."""
        from connectors.sandbox.hubspot_portal import HubSpotPortal

        config = HubSpotConfig(
            access_token=SecretStr(HubSpotPortal().access_token),
            host=base_url,
            ca_bundle=Path(ca_path),
            custom_properties={"deals": ["segment"], "companies": ["key_account", "tier"]},
            close_date_pushes_property="close_date_pushes",
        )
        mode = getattr(options, "hubspot_writeback_mode", None)
        return config.model_copy(update={"writeback_mode": mode}) if mode else config

    def sandbox_meeting(
        self, sandbox: Any, copy_of: str, now: datetime, *, hooks: Any, public_url: str, event_id: int
    ) -> SandboxMeeting:
        """A copy in the sandbox portal with its deals, companies and contacts, and HubSpot's signed
        ``object.creation`` batch about it."""
        from connectors.sandbox.hubspot_schemas import format_timestamp

        portal = sandbox.portal
        meeting = portal.get("meetings", copy_of)
        assert meeting is not None, f"no meeting {copy_of} in the sandbox portal"
        links = [(kind, to) for kind in ("deals", "companies", "contacts")
                 for to, _type in portal.associations("meetings", meeting["id"], kind)]  # fmt: skip
        properties = {k: v for k, v in meeting["properties"].items() if k not in NOT_COPIED}
        properties.update(
            hs_timestamp=format_timestamp(now),
            hs_meeting_start_time=format_timestamp(now),
            hs_meeting_end_time=format_timestamp(now + timedelta(hours=1)),
        )
        logged = portal.insert("meetings", properties, associations=links)
        event = {
            "eventId": event_id, "subscriptionId": 1, "portalId": portal.portal_id, "appId": 1,
            "occurredAt": int(time.time() * 1000), "subscriptionType": "object.creation",
            "objectTypeId": MEETING_OBJECT_TYPE, "objectId": int(logged["id"]), "attemptNumber": 0,
            "changeSource": "CRM_UI",
        }  # fmt: skip
        body = json.dumps([event]).encode()
        stamp = str(int(time.time() * 1000))
        signature = webhooks.sign_hubspot_v3(
            client_secret=hooks.hubspot_client_secret.get_secret_value(), method="POST",
            uri=f"{public_url.rstrip('/')}{WEBHOOKS_PREFIX + webhooks.RECEIVER.path}", body=body, timestamp=stamp,
        )  # fmt: skip
        headers = {webhooks.HUBSPOT_SIGNATURE_HEADER: signature, webhooks.HUBSPOT_TIMESTAMP_HEADER: stamp,
                   "Content-Type": "application/json"}  # fmt: skip
        companies = [to for kind, to in links if kind == "companies"]
        company = portal.get("companies", companies[0]) if companies else None
        account = (company or {}).get("properties", {}).get("name")
        return SandboxMeeting(str(properties.get("hubspot_owner_id") or ""), account,
                              WEBHOOKS_PREFIX + webhooks.RECEIVER.path, body, headers)  # fmt: skip

    def records_named(self, kind: str | None, object_id: str, payload: dict[str, Any]) -> set[str]:
        """A merge names every id of the merge: reading a merged-away id answers the record it became (so it is
        retired and what pointed at it moves there), and ``newObjectId`` is that record when the merge gave it a
        new id."""
        ids = {object_id}
        if kind == "merge":
            named = [
                *(payload.get("mergedObjectIds") or []),
                payload.get("primaryObjectId"),
                payload.get("newObjectId"),
            ]
            ids |= {str(i) for i in named if isinstance(i, int | str) and str(i).isdigit()}
        return ids

    def webhook_settings_problem(self, hooks: Any) -> str | None:
        if getattr(hooks, "hubspot_client_secret", None) is None:
            return "OKRSYNC_WEBHOOKS__HUBSPOT_CLIENT_SECRET is not set: HubSpot webhooks could not be verified"
        return None

    def card_connections(
        self, inbound: Inbound, routes: Routes, portal_id: int | None, record_pages: dict[str, str | None]
    ) -> set[str]:
        return webhooks.card_connections(inbound, routes, portal_id, record_pages)

    def record_pages(self, instance_url: str | None) -> str | None:
        """``https://{uiDomain}/contacts/{portalId}``, read once from the account details API by the sync; None
        while unknown (no sync yet, the call was refused, or an older okrsync stored the API host)."""
        if not instance_url or not instance_url.startswith(("https://", "http://")) or "/contacts/" not in instance_url:
            return None
        return instance_url.rstrip("/")

    def record_url(self, pages: str, crm_object: str, record_id: str) -> str | None:
        if crm_object not in RECORD_TYPES:
            return None
        return f"{pages}/record/{RECORD_TYPES[crm_object]}/{quote(record_id, safe='')}"


ADAPTER = HubSpotAdapter()
