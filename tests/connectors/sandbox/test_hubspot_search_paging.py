"""The sandbox's CRM search pages by offset over the records as they are at each request, as HubSpot's does
(https://developers.hubspot.com/docs/guides/api/crm/search): a record that changes between two page requests
moves from its slot to the end of the results, and the record at the page boundary is skipped. A window that
starts at the last timestamp read (keyset paging, what the connector does) finds every record."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hubspot import HubSpot
from hubspot.crm.objects import PublicObjectSearchRequest

from connectors.sandbox.hubspot_generator import generate_portal
from connectors.sandbox.hubspot_portal import HubSpotPortal
from connectors.sandbox.server import SandboxServer
from connectors.sandbox.store import SandboxOrg

ANCHOR = datetime(2026, 9, 30, 17, 0, tzinfo=UTC)
WINDOW = datetime(2026, 10, 2, 8, 0, tzinfo=UTC)


@pytest.fixture
def portal() -> HubSpotPortal:
    portal = generate_portal(anchor=ANCHOR, companies=5, deals=10, engagements=300, search_per_second=1000)
    calls = [row["id"] for row in portal.records("calls")][:30]
    for index, call in enumerate(calls):  # 30 calls in the window, one millisecond apart
        portal.update(
            "calls", call, {"hs_call_status": "COMPLETED"}, modified_at=WINDOW + timedelta(milliseconds=index)
        )
    return portal


@pytest.fixture
def client(portal: HubSpotPortal) -> Iterator[HubSpot]:
    with SandboxServer(SandboxOrg(), portal=portal) as server:
        yield HubSpot(access_token=portal.access_token, host=server.base_url, ssl_ca_cert=server.ca_path, retry=False)


def _search(client: HubSpot, operator: str, since: datetime, *, after: str | None = None) -> Any:
    request = PublicObjectSearchRequest(
        filter_groups=[
            {
                "filters": [
                    {
                        "propertyName": "hs_lastmodifieddate",
                        "operator": operator,
                        "value": str(int(since.timestamp() * 1000)),
                    }
                ]
            }
        ],
        sorts=[{"propertyName": "hs_lastmodifieddate", "direction": "ASCENDING"}],
        properties=["hs_lastmodifieddate"],
        limit=10,
        after=after,
    )
    return client.crm.objects.search_api.do_search("calls", public_object_search_request=request)


def _in_window(portal: HubSpotPortal) -> list[str]:
    rows = [r for r in portal.records("calls") if r["properties"]["hs_lastmodifieddate"] >= "2026-10-02T08"]
    return [r["id"] for r in sorted(rows, key=lambda r: (r["properties"]["hs_lastmodifieddate"], int(r["id"])))]


def test_offset_paging_skips_the_boundary_record_when_a_record_changes_between_pages(
    client: HubSpot, portal: HubSpotPortal
) -> None:
    expected = _in_window(portal)
    first = _search(client, "GTE", WINDOW)
    assert [row.id for row in first.results] == expected[:10] and first.paging.next.after == "10"
    portal.update("calls", expected[3], {"hs_call_status": "NO_ANSWER"})  # moves to the end of the window
    second = _search(client, "GTE", WINDOW, after=first.paging.next.after)
    # the current state, offset 10: the record that was 11th is now 10th, on the page already read
    assert [row.id for row in second.results] == expected[11:21]
    third = _search(client, "GTE", WINDOW, after=second.paging.next.after)
    seen = {row.id for page in (first, second, third) for row in page.results}
    assert set(expected) - seen == {expected[10]}


def test_keyset_paging_from_the_last_timestamp_read_finds_every_record(client: HubSpot, portal: HubSpotPortal) -> None:
    expected = _in_window(portal)
    seen: list[str] = []
    since, operator, changed = WINDOW, "GTE", False
    while True:
        page = _search(client, operator, since)
        rows = page.results
        if not changed:
            portal.update("calls", expected[3], {"hs_call_status": "NO_ANSWER"})
            changed = True
        if page.paging is None:
            seen += [row.id for row in rows]
            break
        last = rows[-1].properties["hs_lastmodifieddate"]
        seen += [row.id for row in rows if row.properties["hs_lastmodifieddate"] != last]
        since = datetime.fromisoformat(last.replace("Z", "+00:00"))
    assert set(expected) <= set(seen)
    assert seen[-1] == expected[3]  # read again at its new stamp
