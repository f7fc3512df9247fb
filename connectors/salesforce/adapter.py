"""Salesforce as a ``connectors.adapter.CrmAdapter``: the connector, the writer, the sandbox org's settings and
Lightning record pages (``{instance_url}/lightning/r/{Object}/{Id}/view``)."""

from __future__ import annotations

import json
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

from pydantic import BaseModel, SecretStr

from connectors.adapter import SandboxMeeting
from connectors.errors import ConfigurationError
from connectors.salesforce import webhooks
from connectors.salesforce.config import SalesforceConfig
from connectors.salesforce.connector import SalesforceConnector
from connectors.salesforce.writer import SalesforceWriter, written_fields
from connectors.webhooks import (
    SHARED_HMAC_HEADER,
    WEBHOOKS_PREFIX,
    Inbound,
    Receiver,
    Refused,
    Routes,
    sign_shared_hmac,
)
from connectors.writes import Target

NOT_COPIED = {"Id", "CreatedDate", "LastModifiedDate", "SystemModstamp"}  # the org stamps its own


class SalesforceAdapter:
    name = "salesforce"
    title = "Salesforce"
    pulls = "Pull Opportunity, Account, Contact, User, Task, Event and OpportunityContactRole into the local model."
    config_type: type[BaseModel] = SalesforceConfig
    required_setting = "INSTANCE_URL"
    routing_setting = "salesforce_org_id"
    raw_prefix: tuple[str, ...] = ()  # the REST API's record JSON: fields at the top level
    provision_hint: str | None = (
        "Salesforce: deploy deploy/salesforce with `sf project deploy start --source-dir"
        " deploy/salesforce/force-app` and assign the 'okrsync integration' permission set (see deploy/README.md)"
    )
    receivers: tuple[Receiver, ...] = webhooks.RECEIVERS
    sandbox_examples: tuple[str, ...] = ("acquisition", "customer-care", "pipeline-hygiene")
    app_card = False  # the Lightning component reads GET /api/v1/records with a token instead

    def connector(self, config: SalesforceConfig) -> SalesforceConnector:
        return SalesforceConnector(config)

    def writer(self, config: SalesforceConfig) -> SalesforceWriter:
        return SalesforceWriter(config)

    def provision(self, config: SalesforceConfig) -> None:
        raise ConfigurationError(self.provision_hint or "")

    def written_fields(self, config: SalesforceConfig | None) -> dict[Target, frozenset[str]]:
        return written_fields()

    def sandbox_config(self, base_url: str, ca_path: str, options: Any = None) -> SalesforceConfig:
        """The sandbox org's published demo credentials (constants of the sandbox, not secrets)."""
        from connectors.sandbox.store import SandboxOrg

        defaults = SandboxOrg(data={})
        return SalesforceConfig(
            instance_url=base_url,
            login_url=base_url,
            consumer_key=defaults.consumer_key,
            consumer_secret=SecretStr(defaults.consumer_secret),
            username=defaults.username,
            password=SecretStr(defaults.password),
            security_token=SecretStr(defaults.security_token),
            ca_bundle=Path(ca_path),
            custom_fields={"Opportunity": ["Segment__c"], "Account": ["Key_Account__c", "Tier__c"]},
        )

    def sandbox_meeting(
        self, sandbox: Any, copy_of: str, now: datetime, *, hooks: Any, public_url: str, event_id: int
    ) -> SandboxMeeting:
        """A copy of the Event in the sandbox org, and okrsync's Flow callout about it, signed with the shared
        secret (the org's Flow sends one per created Event: deploy/salesforce)."""
        from connectors.sandbox.schema import format_datetime

        org = sandbox.org
        meeting = org.get("Event", copy_of)
        assert meeting is not None, f"no Event {copy_of} in the sandbox org"
        fields = {k: v for k, v in meeting.items() if k not in NOT_COPIED}
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
        header = sign_shared_hmac(secret=hooks.flow_secret.get_secret_value(), body=body, timestamp=int(time.time()))
        account = org.get("Account", fields.get("AccountId") or "") or {}
        return SandboxMeeting(
            str(fields.get("OwnerId")),
            account.get("Name"),
            WEBHOOKS_PREFIX + webhooks.FLOW.path,
            body,
            {SHARED_HMAC_HEADER: header, "Content-Type": "application/json"},
        )

    def records_named(self, kind: str | None, object_id: str, payload: dict[str, Any]) -> set[str]:
        return {object_id}  # a Salesforce merge deletes the losers: their deletes arrive with the next sync

    def webhook_settings_problem(self, hooks: Any) -> str | None:
        if not getattr(hooks, "salesforce_org_id", None) and getattr(hooks, "flow_secret", None) is None:
            return (
                "neither OKRSYNC_WEBHOOKS__SALESFORCE_ORG_ID (Outbound Messages) nor OKRSYNC_WEBHOOKS__FLOW_SECRET"
                " (Flow callouts) is set: Salesforce webhooks could not be verified"
            )
        return None

    def card_connections(
        self, inbound: Inbound, routes: Routes, portal_id: int | None, record_pages: dict[str, str | None]
    ) -> set[str]:
        raise Refused(404, "Salesforce has no app card: its Lightning component reads /api/v1/records", reason=None)

    def record_pages(self, instance_url: str | None) -> str | None:
        if not instance_url or not instance_url.startswith(("https://", "http://")):
            return None
        return instance_url.rstrip("/")

    def record_url(self, pages: str, crm_object: str, record_id: str) -> str | None:
        return f"{pages}/lightning/r/{quote(crm_object, safe='')}/{quote(record_id, safe='')}/view"


ADAPTER = SalesforceAdapter()
