"""A targeted fetch (what a webhook's refresh calls) with ids or streams a CRM cannot fetch: a clear answer, no
silent drop (found by the connector contract suite)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from connectors.hubspot.config import HubSpotConfig
from connectors.hubspot.connector import HubSpotConnector
from connectors.salesforce.config import SalesforceConfig
from connectors.salesforce.connector import SalesforceConnector
from connectors.sandbox.hubspot_portal import HubSpotPortal
from connectors.sandbox.server import SandboxServer
from connectors.sandbox.store import SandboxOrg


def test_a_salesforce_fetch_reports_what_is_not_an_id_as_skipped(config: SalesforceConfig) -> None:
    page, deletions = SalesforceConnector(config).fetch("Opportunity", ["0065g0000000001AAA", "x' OR Id != '"])
    assert [r.external_id for r in page.records] == ["0065g0000000001AAA"] and not deletions
    assert [s.reason for s in page.skipped] == ["not a Salesforce id: \"x' OR Id != '\""]


def test_hubspot_owners_cannot_be_fetched_by_id_and_say_so(tmp_path: Path) -> None:
    portal = HubSpotPortal()
    with SandboxServer(SandboxOrg(data={}), portal=portal, cert_dir=tmp_path) as server:
        config = HubSpotConfig(access_token=SecretStr(portal.access_token), host=server.base_url,
                               ca_bundle=Path(server.ca_path or ""))  # fmt: skip
        with pytest.raises(ValueError, match="'owners' records cannot be fetched by id; fetch one of companies"):
            HubSpotConnector(config).fetch("owners", ["100001"])
