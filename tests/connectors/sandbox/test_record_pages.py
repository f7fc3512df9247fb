"""The sandbox CRM's record pages: the links the dashboard shows open the record (Salesforce: a page of its fields,
escaped; HubSpot: its properties), and a record that does not exist or was deleted answers 404."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from connectors.hubspot.adapter import ADAPTER as HUBSPOT
from connectors.salesforce.adapter import ADAPTER as SALESFORCE
from connectors.sandbox.hubspot_generator import generate_portal
from connectors.sandbox.server import SandboxServer
from connectors.sandbox.store import SandboxOrg
from tests import loopback
from tests.conftest import ANCHOR, small_org


@pytest.fixture(scope="module")
def server() -> Iterator[SandboxServer]:
    portal = generate_portal(anchor=ANCHOR, companies=10, deals=20, engagements=100)
    with SandboxServer(small_org(accounts=10, opportunities=20, activities=100), portal=portal) as running:
        yield running


def _get(server: SandboxServer, url: str) -> httpx.Response:
    return loopback.get(url, verify=server.ca_path or False, timeout=10)


def test_a_salesforce_record_link_opens_its_page(server: SandboxServer) -> None:
    org: SandboxOrg = server.org
    opportunity = org.records("Opportunity")[0]
    url = SALESFORCE.record_url(server.base_url, "Opportunity", opportunity["Id"])
    assert url is not None
    page = _get(server, url)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert f"Opportunity: {opportunity['Name']}" in page.text and opportunity["StageName"] in page.text
    assert (
        _get(server, SALESFORCE.record_url(server.base_url, "Opportunity", "0060000000NOPEAAA") or "").status_code
        == 404
    )
    assert _get(server, SALESFORCE.record_url(server.base_url, "NoSuchObject", "x") or "").status_code == 404


def test_a_hubspot_record_link_opens_its_page(server: SandboxServer) -> None:
    portal = server.portal
    assert portal is not None
    deal = portal.records("deals")[0]
    pages = f"{server.base_url}/contacts/{portal.portal_id}"
    page = _get(server, HUBSPOT.record_url(pages, "deals", str(deal["id"])) or "")
    assert page.status_code == 200 and page.json()["properties"]["dealname"] == deal["properties"]["dealname"]
    assert _get(server, HUBSPOT.record_url(pages, "deals", "999999999") or "").status_code == 404


def test_what_the_record_id_says_stays_text(server: SandboxServer) -> None:
    answer = _get(server, f"{server.base_url}/lightning/r/Opportunity/%3Cscript%3E/view")
    assert answer.status_code == 404 and "<script>" not in answer.text
