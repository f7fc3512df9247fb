"""Salesforce as a ``connectors.adapter.CrmAdapter``: the connector, the writer, the sandbox org's settings and
Lightning record pages (``{instance_url}/lightning/r/{Object}/{Id}/view``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

from pydantic import BaseModel, SecretStr

from connectors.errors import ConfigurationError
from connectors.salesforce.config import SalesforceConfig
from connectors.salesforce.connector import SalesforceConnector
from connectors.salesforce.writer import SalesforceWriter, written_fields
from connectors.writes import Target


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

    def webhook_settings_problem(self, hooks: Any) -> str | None:
        if not getattr(hooks, "salesforce_org_id", None) and getattr(hooks, "flow_secret", None) is None:
            return (
                "neither OKRSYNC_WEBHOOKS__SALESFORCE_ORG_ID (Outbound Messages) nor OKRSYNC_WEBHOOKS__FLOW_SECRET"
                " (Flow callouts) is set: Salesforce webhooks could not be verified"
            )
        return None

    def record_pages(self, instance_url: str | None) -> str | None:
        if not instance_url or not instance_url.startswith(("https://", "http://")):
            return None
        return instance_url.rstrip("/")

    def record_url(self, pages: str, crm_object: str, record_id: str) -> str | None:
        return f"{pages}/lightning/r/{quote(crm_object, safe='')}/{quote(record_id, safe='')}/view"


ADAPTER = SalesforceAdapter()
