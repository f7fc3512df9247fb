"""The sandbox HubSpot portal through a real TLS server and the real hubspot-api-client (12.x)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from hubspot import HubSpot
from hubspot.crm.associations.v4 import BatchInputPublicFetchAssociationsBatchRequest
from hubspot.crm.associations.v4.exceptions import ApiException as AssociationsApiException
from hubspot.crm.deals import BatchReadInputSimplePublicObjectId, PublicObjectSearchRequest
from hubspot.crm.deals.exceptions import ApiException as DealsApiException
from hubspot.crm.owners.exceptions import ApiException as OwnersApiException

from connectors.sandbox.hubspot_generator import generate_portal
from connectors.sandbox.hubspot_portal import HubSpotPortal
from connectors.sandbox.server import SandboxServer
from connectors.sandbox.store import SandboxOrg

ANCHOR = datetime(2026, 9, 30, 17, 0, tzinfo=UTC)


class FrozenClock:
    """A monotonic clock that moves only when told to, so rate-limit windows are deterministic."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
def portal(clock: FrozenClock) -> HubSpotPortal:
    return generate_portal(anchor=ANCHOR, companies=30, deals=80, engagements=1500, clock=clock)


@pytest.fixture
def server(portal: HubSpotPortal) -> Iterator[SandboxServer]:
    with SandboxServer(SandboxOrg(), portal=portal) as running:
        yield running


@pytest.fixture
def client(server: SandboxServer, portal: HubSpotPortal) -> HubSpot:
    return HubSpot(access_token=portal.access_token, host=server.base_url, ssl_ca_cert=server.ca_path, retry=False)


def test_list_pages_through_every_deal(client: HubSpot, portal: HubSpotPortal) -> None:
    seen, after, pages = [], None, 0
    while True:
        page = client.crm.deals.basic_api.get_page(limit=100, after=after, properties=["dealname", "segment"])
        seen += [deal.id for deal in page.results]
        pages += 1
        if page.paging is None:
            break
        after = page.paging.next.after
    assert seen == [deal["id"] for deal in portal.records("deals")]
    assert pages == 1 and portal.api_calls["list"] == 1
    first = client.crm.deals.basic_api.get_page(limit=30, properties=["dealname", "segment"])
    assert first.paging.next.after == seen[30] and first.paging.next.link.endswith(f"after={seen[30]}")
    assert set(first.results[0].properties) >= {"dealname", "segment", "hs_object_id", "hs_lastmodifieddate"}
    assert first.results[0].created_at.tzinfo is not None and first.results[0].archived is False


def test_search_modified_since_pages_in_ascending_order(client: HubSpot, portal: HubSpotPortal) -> None:
    since = ANCHOR - timedelta(days=30)
    expected = sorted(
        (row for row in portal.records("calls") if row["properties"]["hs_lastmodifieddate"] >= since.isoformat()[:19]),
        key=lambda row: (row["properties"]["hs_lastmodifieddate"], int(row["id"])),
    )
    body = {
        "filter_groups": [
            {
                "filters": [
                    {
                        "propertyName": "hs_lastmodifieddate",
                        "operator": "GTE",
                        "value": str(int(since.timestamp() * 1000)),
                    }
                ]
            }
        ],
        "sorts": [{"propertyName": "hs_lastmodifieddate", "direction": "ASCENDING"}],
        "properties": ["hs_call_direction", "hs_lastmodifieddate"],
        "limit": 200,
    }
    found, after = [], None
    while True:
        request = PublicObjectSearchRequest(**body, after=after)
        page = client.crm.objects.search_api.do_search("calls", public_object_search_request=request)
        assert page.total == len(expected)
        found += [row.id for row in page.results]
        if page.paging is None:
            break
        after = page.paging.next.after
    assert found == [row["id"] for row in expected]
    assert portal.api_calls["search"] >= 2


def test_search_with_shared_timestamps_breaks_ties_by_id_and_caps_at_10000(
    client: HubSpot, portal: HubSpotPortal, clock: FrozenClock
) -> None:
    stamp = datetime(2026, 10, 1, 8, 0, tzinfo=UTC)
    ids = [row["id"] for row in portal.records("calls")[:40]]
    for record_id in reversed(ids):
        portal.update("calls", record_id, {"hs_call_status": "COMPLETED"}, modified_at=stamp)
    request = PublicObjectSearchRequest(
        filter_groups=[
            {"filters": [{"propertyName": "hs_lastmodifieddate", "operator": "EQ", "value": "2026-10-01T08:00:00Z"}]}
        ],
        sorts=["hs_lastmodifieddate"],
        limit=100,
    )
    page = client.crm.objects.search_api.do_search("calls", public_object_search_request=request)
    assert [row.id for row in page.results] == ids
    request = PublicObjectSearchRequest(limit=100, after="9950")
    clock.now += 2  # a fresh second for the search limit
    with pytest.raises(Exception) as refused:
        client.crm.objects.search_api.do_search("calls", public_object_search_request=request)
    assert refused.value.status == 400 and "VALIDATION_ERROR" in refused.value.body


def test_archived_records_leave_search_and_list(client: HubSpot, portal: HubSpotPortal) -> None:
    deal = portal.records("deals")[0]
    portal.archive("deals", deal["id"])
    assert (
        portal.get("deals", deal["id"])["properties"]["hs_lastmodifieddate"]
        == deal["properties"]["hs_lastmodifieddate"]
    )
    live = client.crm.deals.basic_api.get_page(limit=100)
    assert deal["id"] not in [row.id for row in live.results]
    archived = client.crm.deals.basic_api.get_page(limit=100, archived=True)
    assert [row.id for row in archived.results] == [deal["id"]] and archived.results[0].archived_at is not None
    found = client.crm.deals.search_api.do_search(public_object_search_request=PublicObjectSearchRequest(limit=200))
    assert deal["id"] not in [row.id for row in found.results] and found.total == 79


def test_batch_read_reports_missing_ids(client: HubSpot, portal: HubSpotPortal) -> None:
    ids = [row["id"] for row in portal.records("deals")[:3]]
    batch = BatchReadInputSimplePublicObjectId(inputs=[{"id": i} for i in ids], properties=["amount", "segment"])
    answer = client.crm.deals.batch_api.read(batch_read_input_simple_public_object_id=batch)
    assert answer.status == "COMPLETE" and [row.id for row in answer.results] == ids
    assert set(answer.results[0].properties) >= {"amount", "segment"}
    batch = BatchReadInputSimplePublicObjectId(inputs=[{"id": ids[0]}, {"id": "999"}], properties=["amount"])
    partial = client.crm.deals.batch_api.read(batch_read_input_simple_public_object_id=batch)
    assert [row.id for row in partial.results] == ids[:1]
    assert partial.num_errors == 1 and partial.errors[0].context == {"ids": ["999"]}


def test_associations_batch_read_pages_past_500(client: HubSpot, portal: HubSpotPortal) -> None:
    deal_id = portal.records("deals")[0]["id"]
    company = portal.insert("companies", {"name": "Big Account"})
    for index in range(520):
        contact = portal.insert("contacts", {"email": f"p{index}@big.example"})
        portal.associate("companies", company["id"], "contacts", contact["id"])
    request = BatchInputPublicFetchAssociationsBatchRequest(inputs=[{"id": company["id"]}, {"id": deal_id}])
    answer = client.crm.associations.v4.batch_api.get_page("companies", "contacts", request)
    big = next(result for result in answer.results if result._from.id == company["id"])
    assert len(big.to) == 500 and big.paging.next.after == "500"
    assert (
        big.to[0].association_types[0].type_id == 280 and big.to[0].association_types[0].category == "HUBSPOT_DEFINED"
    )
    rest = client.crm.associations.v4.basic_api.get_page("companies", company["id"], "contacts", after="500", limit=500)
    assert len(rest.results) == 20 and rest.paging is None
    assert portal.api_calls["assoc_batch_read"] == 1 and portal.api_calls["assoc_list"] == 1
    back = client.crm.associations.v4.basic_api.get_page("contacts", str(big.to[0].to_object_id), "companies")
    assert [row.to_object_id for row in back.results] == [company["id"]]  # int on the wire; the model says str


def test_associations_batch_read_without_links_is_207(client: HubSpot, portal: HubSpotPortal) -> None:
    lonely = portal.insert("deals", {"dealname": "Alone"})
    request = BatchInputPublicFetchAssociationsBatchRequest(inputs=[{"id": lonely["id"]}])
    answer = client.crm.associations.v4.batch_api.get_page("deals", "calls", request)
    assert answer.results == [] and answer.errors[0].sub_category == "crm.associations.NO_ASSOCIATIONS_FOUND"


def test_owners_and_pipelines(client: HubSpot, portal: HubSpotPortal) -> None:
    owners = client.crm.owners.owners_api.get_page(limit=5)
    assert len(owners.results) == 5 and owners.paging.next.after == "5"
    rest = client.crm.owners.owners_api.get_page(limit=500, after="5")
    assert len(rest.results) == len(portal.owners) - 5 and rest.results[0].type == "PERSON"
    pipelines = client.crm.pipelines.pipelines_api.get_all("deals")
    stages = pipelines.results[0].stages
    assert pipelines.results[0].id == "default"
    assert [stage.id for stage in stages][-2:] == ["closedwon", "closedlost"]
    assert stages[0].metadata == {"isClosed": "false", "probability": "0.2"}
    assert portal.api_calls["owners"] == 2 and portal.api_calls["pipelines"] == 1


def test_rate_limit_headers_and_ten_secondly_limit(server: SandboxServer, clock: FrozenClock) -> None:
    portal = server.portal
    assert portal is not None
    portal.limits.burst_limit = 3
    client = HubSpot(access_token=portal.access_token, host=server.base_url, ssl_ca_cert=server.ca_path, retry=False)
    _, _, headers = client.crm.deals.basic_api.get_page_with_http_info(limit=1)
    assert headers["X-HubSpot-RateLimit-Max"] == "3" and headers["X-HubSpot-RateLimit-Remaining"] == "2"
    assert headers["X-HubSpot-RateLimit-Interval-Milliseconds"] == "10000"
    assert headers["X-HubSpot-RateLimit-Daily"] == "1000000"
    client.crm.deals.basic_api.get_page(limit=1)
    client.crm.deals.basic_api.get_page(limit=1)
    with pytest.raises(DealsApiException) as refused:
        client.crm.deals.basic_api.get_page(limit=1)
    assert refused.value.status == 429 and '"policyName":"TEN_SECONDLY_ROLLING"' in refused.value.body
    assert '"errorType":"RATE_LIMIT"' in refused.value.body
    clock.now += 10.001
    assert client.crm.deals.basic_api.get_page(limit=1).results


def test_search_limit_is_five_per_second_without_headers(client: HubSpot, clock: FrozenClock) -> None:
    request = PublicObjectSearchRequest(limit=1)
    for _ in range(5):
        _, _, headers = client.crm.deals.search_api.do_search_with_http_info(public_object_search_request=request)
        assert not any(name.lower().startswith("x-hubspot-ratelimit") for name in headers)
    with pytest.raises(DealsApiException) as refused:
        client.crm.deals.search_api.do_search(public_object_search_request=request)
    assert refused.value.status == 429 and '"policyName":"SECONDLY"' in refused.value.body
    clock.now += 1.0
    client.crm.deals.search_api.do_search(public_object_search_request=request)


def test_faults_and_daily_limit(client: HubSpot, portal: HubSpotPortal) -> None:
    portal.faults.add("rate_limit", match="owners", policy="DAILY")
    with pytest.raises(OwnersApiException) as refused:
        client.crm.owners.owners_api.get_page()
    assert refused.value.status == 429 and '"policyName":"DAILY"' in refused.value.body
    portal.faults.add("http", match="assoc_list", status=502)
    with pytest.raises(AssociationsApiException) as failed:
        client.crm.associations.v4.basic_api.get_page("deals", "1", "contacts")
    assert failed.value.status == 502
    portal.limits.daily_limit = portal.limits.daily_used
    with pytest.raises(DealsApiException) as exhausted:
        client.crm.deals.basic_api.get_page()
    assert exhausted.value.status == 429 and exhausted.value.headers["X-HubSpot-RateLimit-Daily-Remaining"] == "0"


def test_wrong_token_is_refused(server: SandboxServer) -> None:
    client = HubSpot(access_token="pat-wrong", host=server.base_url, ssl_ca_cert=server.ca_path, retry=False)
    with pytest.raises(DealsApiException) as refused:
        client.crm.deals.basic_api.get_page()
    assert refused.value.status == 401 and '"category":"INVALID_AUTHENTICATION"' in refused.value.body
