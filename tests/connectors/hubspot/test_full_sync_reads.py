"""The HubSpot first (full) sync's reads: associations inline with the list pages, the next page prefetched in a
background thread. The real hubspot-api-client over HTTPS on loopback → sandbox portal; nothing patched."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hubspot import HubSpot

from connectors.errors import ApiLimitError, FatalError
from connectors.hubspot import mapping
from connectors.hubspot.config import HubSpotConfig
from connectors.hubspot.connector import HubSpotConnector
from connectors.records import CanonicalRecord
from connectors.sandbox.hubspot_generator import generate_portal
from connectors.sandbox.hubspot_portal import HubSpotPortal
from connectors.sandbox.server import SandboxServer
from connectors.sandbox.store import SandboxOrg

ANCHOR = datetime(2026, 9, 30, 17, 0, tzinfo=UTC)


@pytest.fixture
def portal() -> HubSpotPortal:
    return generate_portal(anchor=ANCHOR, companies=12, deals=40, engagements=400)


@pytest.fixture
def server(portal: HubSpotPortal, tmp_path: Path) -> Iterator[SandboxServer]:
    with SandboxServer(SandboxOrg(), portal=portal, cert_dir=tmp_path / "tls") as running:
        yield running


def _config(server: SandboxServer, portal: HubSpotPortal) -> HubSpotConfig:
    return HubSpotConfig(
        access_token=portal.access_token,
        host=server.base_url,
        ca_bundle=server.ca_path,
        retry_wait_base=0.01,
        retry_wait_max=0.05,
        rate_limit_wait_max=0.05,
        max_attempts=3,
    )


def _listed(connector: HubSpotConnector, stream: str) -> list[CanonicalRecord]:
    return [record for page in connector.pages(stream, since=None) for record in page.records]


def _key(record: CanonicalRecord) -> tuple[str, str]:
    return record.kind, record.external_id


def _prefetch_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("hubspot-") and t.name.endswith("-pages")]


@pytest.mark.parametrize("stream", [s for s in mapping.OBJECT_STREAMS if s in mapping.ASSOCIATIONS])
def test_list_pages_read_associations_inline_and_give_the_records_the_v4_reads_give(
    server: SandboxServer, portal: HubSpotPortal, stream: str
) -> None:
    connector = HubSpotConnector(_config(server, portal))
    connector.pipelines()
    portal.reset_stats()
    listed = _listed(connector, stream)
    assert listed, f"the portal has no {stream}"
    assert "assoc_batch_read" not in portal.api_calls  # every association came with its list page
    assert portal.api_calls["list"] == max(1, -(-len(portal.records(stream)) // 100))

    # the same records through the objects batch read and the v4 association batch reads (a webhook's refresh)
    fetched, gone = connector.fetch(stream, [r["id"] for r in portal.records(stream)])
    assert gone == []
    assert sorted(listed, key=_key) == sorted(fetched.records, key=_key)


def test_a_primary_company_read_inline_is_the_account(server: SandboxServer, portal: HubSpotPortal) -> None:
    companies = [c["id"] for c in portal.records("companies")[:3]]
    deal = portal.insert(
        "deals",
        {"dealname": "Three companies", "pipeline": "default", "dealstage": "appointmentscheduled"},
        associations=[("companies", c) for c in companies],
        primary_company=companies[1],
    )
    records = {r.external_id: r for r in _listed(HubSpotConnector(_config(server, portal)), "deals")}
    assert getattr(records[deal["id"]], "account_id", None) == companies[1]
    assert set(getattr(records[deal["id"]], "account_ids", ()) or ()) == set(companies)


def test_the_list_endpoint_inlines_100_entries_per_type_then_pages(
    server: SandboxServer, portal: HubSpotPortal
) -> None:
    contacts = [portal.insert("contacts", {"firstname": f"C{i}", "lastname": "Many"})["id"] for i in range(130)]
    meeting = portal.insert(
        "meetings",
        {"hs_timestamp": "2026-09-03T09:00:00.000Z", "hs_meeting_title": "Town hall"},
        associations=[("contacts", c) for c in contacts],
    )
    client = HubSpot(access_token=portal.access_token, host=server.base_url, ssl_ca_cert=server.ca_path, retry=False)
    answer = client.crm.objects.basic_api.get_page(
        "meetings", limit=1, after=meeting["id"], associations=["contacts", "companies", "no_such_type"]
    )
    (listed,) = answer.results
    assert listed.id == meeting["id"]
    assert set(listed.associations) == {"contacts"}  # no company: the type is left out; an unknown one is ignored
    inline = listed.associations["contacts"]
    assert len(inline.results) == 100 and {a.type for a in inline.results} == {"meeting_to_contact"}
    assert inline.paging.next.after


def test_a_record_with_more_associations_than_fit_inline_is_read_whole_by_v4(
    server: SandboxServer, portal: HubSpotPortal
) -> None:
    contacts = [portal.insert("contacts", {"firstname": f"C{i}", "lastname": "Many"})["id"] for i in range(130)]
    companies = [portal.insert("companies", {"name": f"Holding {i}"})["id"] for i in range(101)]
    meeting = portal.insert(
        "meetings",
        {"hs_timestamp": "2026-09-03T09:00:00.000Z", "hs_meeting_title": "Town hall"},
        associations=[("contacts", c) for c in contacts],
    )
    # 101 companies and the primary one: 102 inline entries, the primary one may be on the second page
    deal = portal.insert(
        "deals",
        {"dealname": "Group deal", "pipeline": "default", "dealstage": "appointmentscheduled"},
        associations=[("companies", c) for c in companies],
        primary_company=companies[-1],
    )
    connector = HubSpotConnector(_config(server, portal))
    connector.pipelines()
    portal.reset_stats()
    meetings = {r.external_id: r for r in _listed(connector, "meetings") if r.kind == "activity"}
    assert set(getattr(meetings[meeting["id"]], "contact_ids", ())) == set(contacts)
    assert portal.api_calls["assoc_batch_read"] == 1  # one record's contacts, not every meeting's associations

    portal.reset_stats()
    deals = {r.external_id: r for r in _listed(connector, "deals") if r.kind == "opportunity"}
    assert getattr(deals[deal["id"]], "account_id", None) == companies[-1]
    assert set(getattr(deals[deal["id"]], "account_ids", ()) or ()) == set(companies)
    assert portal.api_calls["assoc_batch_read"] == 1


def test_an_error_on_the_second_list_page_surfaces_from_the_prefetch_thread(
    server: SandboxServer, portal: HubSpotPortal
) -> None:
    assert len(portal.records("calls")) > 100
    portal.faults.add("http", match="list", after=1, status=400, message="Sandbox refused page two")
    connector = HubSpotConnector(_config(server, portal))
    with pytest.raises(FatalError, match="HubSpot rejected list: HTTP 400 VALIDATION_ERROR Sandbox refused page two"):
        _listed(connector, "calls")
    assert _prefetch_threads() == []


def test_the_daily_limit_on_the_second_list_page_stops_the_read(server: SandboxServer, portal: HubSpotPortal) -> None:
    portal.faults.add("rate_limit", match="list", after=1, policy="DAILY")
    connector = HubSpotConnector(_config(server, portal))
    with pytest.raises(ApiLimitError, match="daily API limit is spent"):
        _listed(connector, "calls")
    assert _prefetch_threads() == []


def test_a_read_stopped_early_stops_the_prefetch_thread(server: SandboxServer, portal: HubSpotPortal) -> None:
    for index in range(1_100):  # more than one page of 1,000 records
        portal.insert("notes", {"hs_timestamp": "2026-09-03T09:00:00.000Z", "hs_note_body": f"note {index}"})
    connector = HubSpotConnector(_config(server, portal))
    connector.pipelines()
    portal.reset_stats()
    pages: Any = connector.pages("notes", since=None)
    first = next(pages)
    assert len(first.records) == 1_000
    pages.close()
    assert _prefetch_threads() == []
    assert portal.api_calls["list"] <= 12  # the ten pages read, and at most two fetched ahead
