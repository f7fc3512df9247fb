"""HubSpot as a ``connectors.adapter.CrmAdapter``: the connector, the writer (its write-back mode decides what it
writes), the sandbox portal's settings and record pages (``https://{uiDomain}/contacts/{portalId}/record/{type}/{id}``
for deals, companies and contacts; engagements have no page of their own)."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

from pydantic import BaseModel, SecretStr

from connectors.hubspot.config import HubSpotConfig
from connectors.hubspot.connector import HubSpotConnector
from connectors.hubspot.writer import HubSpotWriter, ProvisionReport, written_fields
from connectors.writes import Target

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

    def webhook_settings_problem(self, hooks: Any) -> str | None:
        if getattr(hooks, "hubspot_client_secret", None) is None:
            return "OKRSYNC_WEBHOOKS__HUBSPOT_CLIENT_SECRET is not set: HubSpot webhooks could not be verified"
        return None

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
