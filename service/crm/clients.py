"""How the command line reaches a CRM: the configured org/portal, or the built-in sandbox CRM on loopback.

``open_crm()`` returns a :class:`CrmAccess` holding the connector settings and the connection name rows are filed
under; with the sandbox it also starts the sandbox server (closed with the ``ExitStack``). The sandbox's demo
credentials are published constants of the sandbox, not secrets. ``extra_crms()`` adds the connections of
``OKRSYNC_CONNECTIONS``.

Connection keys: the worker, its leases' names and the webhook events name a connection by its key — ``salesforce``
or ``hubspot`` for a CRM's default connection (event ``connection`` NULL), ``hubspot/west`` for an extra one.
"""

from __future__ import annotations

import json
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from connectors.hubspot.config import HubSpotConfig
from connectors.hubspot.connector import HubSpotConnector
from connectors.hubspot.writer import HubSpotWriter
from connectors.salesforce.config import SalesforceConfig
from connectors.salesforce.connector import SalesforceConnector
from connectors.salesforce.mapping import OBJECTS
from connectors.salesforce.writer import SalesforceWriter
from service.kit.settings import Settings


class NotConfiguredError(Exception):
    """The CRM has no settings and no sandbox was asked for."""


def sandbox_config(base_url: str, ca_path: str) -> SalesforceConfig:
    """Connector settings for the built-in sandbox CRM (its published demo credentials, not secrets)."""
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


def sandbox_org(settings: Settings):  # type: ignore[no-untyped-def]
    """The sandbox org, generated deterministically; its anchor date is kept in data_dir so restarts match."""
    from connectors.sandbox.generator import generate_org
    from connectors.sandbox.salesforce_metadata import DEFAULT_METADATA_DIR, load_metadata
    from connectors.sandbox.store import SandboxOrg

    state_file = settings.data_dir / "sandbox" / "org.json"
    state_file.parent.mkdir(parents=True, exist_ok=True)
    sizes = settings.sandbox
    wanted: dict[str, Any] = {
        "seed": sizes.seed,
        "accounts": sizes.accounts,
        "opportunities": sizes.opportunities,
        "activities": sizes.activities,
    }
    if sizes.anchor is not None:
        wanted["anchor"] = sizes.anchor.astimezone(UTC).isoformat()
    saved = json.loads(state_file.read_text()) if state_file.exists() else {}
    if {k: saved.get(k) for k in wanted} != wanted:
        anchor = sizes.anchor or datetime.now(UTC).replace(second=0, microsecond=0)
        saved = {**wanted, "anchor": anchor.isoformat()}
        state_file.write_text(json.dumps(saved, indent=2))
    anchor = datetime.fromisoformat(saved["anchor"])
    sizes_only = {k: v for k, v in wanted.items() if k != "anchor"}
    # okrsync's metadata deployed, as an admin would with `sf project deploy` (deploy/salesforce)
    return SandboxOrg(generate_org(anchor=anchor, **sizes_only), metadata=load_metadata(DEFAULT_METADATA_DIR))


def sandbox_crms(settings: Settings):  # type: ignore[no-untyped-def]
    """The sandbox Salesforce org and the HubSpot portal telling the same quarter."""
    from connectors.sandbox.hubspot_seed import portal_from_org

    org = sandbox_org(settings)
    records = {t: org.records(t, include_deleted=True) for t in OBJECTS}
    portal, _ids = portal_from_org(records, portal_id=settings.sandbox.portal_id)
    return org, portal


def hubspot_sandbox_config(base_url: str, ca_path: str) -> HubSpotConfig:
    from connectors.sandbox.hubspot_portal import HubSpotPortal

    return HubSpotConfig(
        access_token=SecretStr(HubSpotPortal().access_token),
        host=base_url,
        ca_bundle=Path(ca_path),
        custom_properties={"deals": ["segment"], "companies": ["key_account", "tier"]},
        close_date_pushes_property="close_date_pushes",
    )


@dataclass
class CrmAccess:
    """One CRM connection as the command line reaches it."""

    crm: str
    connection_name: str
    salesforce: SalesforceConfig | None = None
    hubspot: HubSpotConfig | None = None
    sandbox: Any = None  # the SandboxServer when this process started one

    def connector(self) -> SalesforceConnector | HubSpotConnector:
        if self.salesforce is not None:
            return SalesforceConnector(self.salesforce)
        assert self.hubspot is not None
        return HubSpotConnector(self.hubspot)

    def writer(self) -> SalesforceWriter | HubSpotWriter:
        if self.salesforce is not None:
            return SalesforceWriter(self.salesforce)
        assert self.hubspot is not None
        return HubSpotWriter(self.hubspot)


def connection_key(crm: str, connection: str | None) -> str:
    """``hubspot`` for the CRM's default connection (``connection`` None), ``hubspot/west`` for an extra one."""
    return crm if connection is None else f"{crm}/{connection}"


def event_connection(key: str) -> tuple[str, str | None]:
    """The inverse of ``connection_key``: (crm, None) for a default connection, (crm, name) for an extra one."""
    crm, _, name = key.partition("/")
    return crm, name or None


def extra_crms(settings: Settings) -> dict[str, CrmAccess]:
    """The connections of OKRSYNC_CONNECTIONS, keyed ``crm/name``."""
    return {c.key: CrmAccess(c.crm, c.name, salesforce=c.salesforce, hubspot=c.hubspot) for c in settings.connections}


def open_crm(
    stack: ExitStack, crm: str, settings: Settings, *, use_sandbox: bool = False, sandbox_url: str | None = None
) -> CrmAccess:
    """Settings for ``crm`` (salesforce | hubspot): the sandbox (started here, or running at ``sandbox_url``)
    or the configured org/portal. Raises NotConfiguredError naming the settings to set."""
    if use_sandbox or sandbox_url:
        server = None
        if sandbox_url:
            base_url, ca_path = sandbox_url, str(settings.data_dir / "sandbox" / "ca.pem")
        else:
            from connectors.sandbox.server import SandboxServer

            org, portal = sandbox_crms(settings)
            server = stack.enter_context(SandboxServer(org, portal=portal, cert_dir=settings.data_dir / "sandbox"))
            base_url, ca_path = server.base_url, server.ca_path or ""
        if crm == "salesforce":
            return CrmAccess(crm, "sandbox", salesforce=sandbox_config(base_url, ca_path), sandbox=server)
        config = hubspot_sandbox_config(base_url, ca_path)
        config = config.model_copy(update={"writeback_mode": settings.sandbox.hubspot_writeback_mode})
        return CrmAccess(crm, "sandbox", hubspot=config, sandbox=server)
    if crm == "salesforce" and settings.salesforce is not None:
        return CrmAccess(crm, settings.connection_name, salesforce=settings.salesforce)
    if crm == "hubspot" and settings.hubspot is not None:
        return CrmAccess(crm, settings.connection_name, hubspot=settings.hubspot)
    first = "INSTANCE_URL" if crm == "salesforce" else "ACCESS_TOKEN"
    raise NotConfiguredError(
        f"{crm} is not configured. Set OKRSYNC_{crm.upper()}__{first} and the other settings"
        f" (see README: 'Connecting a real {crm.capitalize()}'), or try it with --sandbox."
    )
