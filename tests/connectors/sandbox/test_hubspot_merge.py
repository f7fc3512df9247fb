"""Merges in the sandbox HubSpot portal (HubSpot's 2025 behaviour: a new record with a new id), through a real TLS
server and the real hubspot-api-client (12.x)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
import requests
from hubspot import HubSpot
from hubspot.crm.associations.v4 import BatchInputPublicFetchAssociationsBatchRequest
from hubspot.crm.companies import PublicMergeInput as CompanyMergeInput
from hubspot.crm.contacts import BatchReadInputSimplePublicObjectId, PublicMergeInput, PublicObjectSearchRequest
from hubspot.crm.contacts.exceptions import ApiException as ContactsApiException
from hubspot.crm.deals import PublicObjectSearchRequest as DealSearchRequest

from connectors.hubspot.webhooks import parse_hubspot_events
from connectors.sandbox.hubspot_merges import MERGEABLE, MergeRefused
from connectors.sandbox.hubspot_portal import HubSpotPortal, created_property, modified_property
from connectors.sandbox.hubspot_webhooks import merge_event
from connectors.sandbox.server import SandboxServer
from connectors.sandbox.store import SandboxOrg

LONG_AGO = "2025-06-01T09:00:00.000Z"  # every record's last change before the merges


@dataclass(frozen=True)
class Scene:
    """Two duplicate contacts (ann, dup) of two duplicate companies (acme, acme_dup), each with a deal and a call."""

    acme: str
    acme_dup: str
    ann: str
    dup: str
    deal_ann: str
    deal_dup: str
    call_ann: str
    call_dup: str


@pytest.fixture
def portal() -> HubSpotPortal:
    return HubSpotPortal()


@pytest.fixture
def scene(portal: HubSpotPortal) -> Scene:
    def stamps(created: str) -> dict[str, str]:
        return {"createdate": created, "hs_lastmodifieddate": LONG_AGO}

    acme = portal.insert("companies", {"name": "Acme", **stamps("2025-01-10T08:00:00.000Z")})["id"]
    acme_dup = portal.insert("companies", {"name": "ACME GmbH", "domain": "acme.example", **stamps(LONG_AGO)})["id"]
    ann = portal.insert(
        "contacts",
        {
            "email": "ann@acme.example",
            "firstname": "Ann",
            "phone": None,
            "associatedcompanyid": acme,
            "createdate": "2026-03-01T10:00:00.000Z",
            "lastmodifieddate": LONG_AGO,
        },
        associations=[("companies", acme)],
        primary_company=acme,
    )["id"]
    dup = portal.insert(
        "contacts",
        {
            "email": "a.smith@acme.example",
            "firstname": "Annie",
            "lastname": "Smith",
            "phone": "+49 30 1234",
            "associatedcompanyid": acme_dup,
            "createdate": "2026-01-15T10:00:00.000Z",
            "lastmodifieddate": LONG_AGO,
        },
        associations=[("companies", acme_dup)],
        primary_company=acme_dup,
    )["id"]
    deal_ann = portal.insert(
        "deals",
        {"dealname": "Acme - Pilot", **stamps(LONG_AGO)},
        associations=[("contacts", ann), ("companies", acme)],
        primary_company=acme,
    )["id"]
    deal_dup = portal.insert(
        "deals",
        {"dealname": "Acme - Rollout", **stamps(LONG_AGO)},
        associations=[("contacts", dup), ("companies", acme_dup)],
        primary_company=acme_dup,
    )["id"]
    call = {"hs_createdate": LONG_AGO, "hs_lastmodifieddate": LONG_AGO, "hs_call_direction": "OUTBOUND"}
    call_ann = portal.insert("calls", call, associations=[("contacts", ann)])["id"]
    call_dup = portal.insert("calls", call, associations=[("contacts", dup), ("companies", acme_dup)])["id"]
    return Scene(acme, acme_dup, ann, dup, deal_ann, deal_dup, call_ann, call_dup)


@pytest.fixture
def server(portal: HubSpotPortal) -> Iterator[SandboxServer]:
    with SandboxServer(SandboxOrg(), portal=portal) as running:
        yield running


@pytest.fixture
def client(server: SandboxServer, portal: HubSpotPortal) -> HubSpot:
    return HubSpot(access_token=portal.access_token, host=server.base_url, ssl_ca_cert=server.ca_path, retry=False)


def _merge_contacts(client: HubSpot, primary: str, merged: str) -> Any:
    return client.crm.contacts.basic_api.merge(
        public_merge_input=PublicMergeInput(primary_object_id=primary, object_id_to_merge=merged)
    )


def _links(client: HubSpot, from_type: str, to_type: str, ids: list[str]) -> dict[str, dict[str, set[int]]]:
    """from id → to id → the association type ids of the link, through a v4 batch read."""
    request = BatchInputPublicFetchAssociationsBatchRequest(inputs=[{"id": i} for i in ids])
    answer = client.crm.associations.v4.batch_api.get_page(from_type, to_type, request)
    return {
        result._from.id: {str(to.to_object_id): {t.type_id for t in to.association_types} for to in result.to}
        for result in answer.results
    }


def _every_contact_id(client: HubSpot, *, archived: bool) -> list[str]:
    ids, after = [], None
    while True:
        page = client.crm.contacts.basic_api.get_page(limit=100, after=after, archived=archived)
        ids += [row.id for row in page.results]
        if page.paging is None:
            return ids
        after = page.paging.next.after


def test_a_merge_makes_a_new_record_with_the_primarys_values_and_the_older_createdate(
    client: HubSpot, portal: HubSpotPortal, scene: Scene
) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    answer = _merge_contacts(client, scene.ann, scene.dup)
    new_id = answer.id
    assert int(new_id) == max(int(scene.ann), int(scene.dup)) + 1  # the next id of the type
    assert answer.archived is False and set(answer.properties) >= {"email", "firstname", "hs_object_id"}
    assert portal.api_calls["merge"] == 1

    wanted = ["email", "firstname", "lastname", "phone", "createdate", "lastmodifieddate", "hs_merged_object_ids"]
    merged = client.crm.contacts.basic_api.get_by_id(new_id, properties=wanted)
    values = merged.properties
    assert (values["email"], values["firstname"]) == ("ann@acme.example", "Ann")  # the primary's values win
    assert (values["lastname"], values["phone"]) == ("Smith", "+49 30 1234")  # the merged record fills blanks
    assert values["hs_object_id"] == new_id
    assert values["createdate"] == "2026-01-15T10:00:00.000Z" and merged.created_at == datetime(
        2026, 1, 15, 10, tzinfo=UTC
    )
    assert values["lastmodifieddate"] >= before.isoformat()[:19] and merged.updated_at >= before
    assert values["hs_merged_object_ids"] == ";".join(sorted((scene.ann, scene.dup), key=int))


def test_the_old_ids_are_gone_from_lists_search_and_the_archived_listing(
    client: HubSpot, portal: HubSpotPortal, scene: Scene
) -> None:
    new_id = _merge_contacts(client, scene.ann, scene.dup).id
    assert _every_contact_id(client, archived=False) == [new_id]
    assert _every_contact_id(client, archived=True) == []  # not archived: they stop existing
    by_id = PublicObjectSearchRequest(
        filter_groups=[
            {"filters": [{"propertyName": "hs_object_id", "operator": "IN", "values": [scene.ann, scene.dup]}]}
        ]
    )
    assert client.crm.contacts.search_api.do_search(public_object_search_request=by_id).total == 0
    by_email = PublicObjectSearchRequest(
        filter_groups=[{"filters": [{"propertyName": "email", "operator": "EQ", "value": "ann@acme.example"}]}]
    )
    assert [
        row.id for row in client.crm.contacts.search_api.do_search(public_object_search_request=by_email).results
    ] == [new_id]
    assert portal.get("contacts", scene.ann) is None and portal.resolve("contacts", scene.ann) == int(new_id)
    assert portal.resolve("contacts", "999") is None and portal.resolve("contacts", "not-an-id") is None


def test_old_ids_resolve_to_the_new_record_on_get_and_batch_read(
    client: HubSpot, portal: HubSpotPortal, scene: Scene
) -> None:
    new_id = _merge_contacts(client, scene.ann, scene.dup).id
    for old in (scene.ann, scene.dup):
        record = client.crm.contacts.basic_api.get_by_id(old, properties=["email"])
        assert record.id == new_id and record.properties["email"] == "ann@acme.example"
    with pytest.raises(ContactsApiException) as archived:
        client.crm.contacts.basic_api.get_by_id(scene.ann, archived=True)
    assert archived.value.status == 404  # it resolves to a live record, which the archived read does not answer

    other = portal.insert("contacts", {"email": "bob@other.example"})["id"]
    batch = BatchReadInputSimplePublicObjectId(
        inputs=[{"id": scene.dup}, {"id": other}, {"id": "999"}], properties=["email"]
    )
    answer = client.crm.contacts.batch_api.read(batch_read_input_simple_public_object_id=batch)
    assert [row.id for row in answer.results] == [new_id, other]
    assert answer.errors[0].context == {"ids": ["999"]}
    batch = BatchReadInputSimplePublicObjectId(inputs=[{"id": scene.ann}, {"id": scene.dup}, {"id": new_id}])
    every_name, status, _headers = client.crm.contacts.batch_api.read_with_http_info(
        batch_read_input_simple_public_object_id=batch
    )
    assert [row.id for row in every_name.results] == [new_id] and status == 200  # each record once, no error


def test_associations_move_both_ways_and_the_associated_records_are_not_restamped(
    client: HubSpot, portal: HubSpotPortal, scene: Scene
) -> None:
    new_id = _merge_contacts(client, scene.ann, scene.dup).id
    assert set(_links(client, "contacts", "deals", [new_id])[new_id]) == {scene.deal_ann, scene.deal_dup}
    assert set(_links(client, "contacts", "calls", [new_id])[new_id]) == {scene.call_ann, scene.call_dup}
    deals = _links(client, "deals", "contacts", [scene.deal_ann, scene.deal_dup])
    assert deals == {scene.deal_ann: {new_id: {3}}, scene.deal_dup: {new_id: {3}}}
    calls = _links(client, "calls", "contacts", [scene.call_ann, scene.call_dup])
    assert calls == {scene.call_ann: {new_id: {194}}, scene.call_dup: {new_id: {194}}}
    # the primary's primary company stays primary (typeId 1); the merged one's stays associated, unlabelled
    assert _links(client, "contacts", "companies", [new_id])[new_id] == {scene.acme: {279, 1}, scene.acme_dup: {279}}
    assert set(_links(client, "companies", "contacts", [scene.acme_dup])[scene.acme_dup]) == {new_id}
    assert portal.primary_company("contacts", new_id) == int(scene.acme)
    merged = client.crm.contacts.basic_api.get_by_id(new_id, properties=["associatedcompanyid"])
    assert merged.properties["associatedcompanyid"] == scene.acme

    for deal_id in (scene.deal_ann, scene.deal_dup):
        deal = client.crm.deals.basic_api.get_by_id(deal_id)
        assert deal.properties["hs_lastmodifieddate"] == LONG_AGO
        assert deal.updated_at == datetime(2025, 6, 1, 9, tzinfo=UTC)
    call = client.crm.objects.basic_api.get_by_id("calls", scene.call_dup, properties=["hs_lastmodifieddate"])
    assert call.properties["hs_lastmodifieddate"] == LONG_AGO
    # so an incremental search by last-modified date finds the merged contact but none of the deals it moved
    since = PublicObjectSearchRequest(
        filter_groups=[{"filters": [{"propertyName": "lastmodifieddate", "operator": "GT", "value": LONG_AGO}]}]
    )
    assert [row.id for row in client.crm.contacts.search_api.do_search(public_object_search_request=since).results] == [
        new_id
    ]
    deals_since = DealSearchRequest(
        filter_groups=[{"filters": [{"propertyName": "hs_lastmodifieddate", "operator": "GT", "value": LONG_AGO}]}]
    )
    assert client.crm.deals.search_api.do_search(public_object_search_request=deals_since).total == 0


def test_merging_companies_repoints_primary_companies_and_associatedcompanyid(
    client: HubSpot, portal: HubSpotPortal, scene: Scene
) -> None:
    answer = client.crm.companies.basic_api.merge(
        public_merge_input=CompanyMergeInput(primary_object_id=scene.acme, object_id_to_merge=scene.acme_dup)
    )
    new_id = answer.id
    assert answer.properties["name"] == "Acme" and answer.properties["domain"] == "acme.example"
    assert answer.created_at == datetime(2025, 1, 10, 8, tzinfo=UTC)
    deals = _links(client, "deals", "companies", [scene.deal_ann, scene.deal_dup])
    assert deals == {scene.deal_ann: {new_id: {341, 5}}, scene.deal_dup: {new_id: {341, 5}}}
    contacts = _links(client, "contacts", "companies", [scene.ann, scene.dup])
    assert contacts == {scene.ann: {new_id: {279, 1}}, scene.dup: {new_id: {279, 1}}}
    assert set(_links(client, "companies", "calls", [new_id])[new_id]) == {scene.call_dup}
    assert set(_links(client, "companies", "deals", [new_id])[new_id]) == {scene.deal_ann, scene.deal_dup}

    dup = client.crm.contacts.basic_api.get_by_id(scene.dup, properties=["associatedcompanyid", "lastmodifieddate"])
    assert dup.properties["associatedcompanyid"] == new_id
    assert dup.properties["lastmodifieddate"] == LONG_AGO  # the contact is not re-stamped
    assert client.crm.companies.basic_api.get_by_id(scene.acme_dup).id == new_id


def test_a_merged_record_without_a_primary_company_takes_the_merged_ones(portal: HubSpotPortal, scene: Scene) -> None:
    portal.unassociate("deals", scene.deal_ann, "companies", scene.acme)
    merged = portal.merge("deals", scene.deal_ann, scene.deal_dup)
    assert portal.primary_company("deals", merged["id"]) == int(scene.acme_dup)
    assert (
        portal.primary_company("deals", scene.deal_ann) is None
        and portal.primary_company("deals", scene.deal_dup) is None
    )
    assert merged["properties"]["dealname"] == "Acme - Pilot"
    assert set(dict(portal.associations("deals", merged["id"], "contacts"))) == {int(scene.ann), int(scene.dup)}


def test_merging_a_merged_record_again_lists_every_absorbed_id(
    client: HubSpot, portal: HubSpotPortal, scene: Scene
) -> None:
    first = _merge_contacts(client, scene.ann, scene.dup).id
    third = portal.insert("contacts", {"email": "ann.smith@acme.example", "createdate": "2024-05-05T05:05:05.000Z"})
    second = _merge_contacts(client, third["id"], scene.ann).id  # an old id stands for the record it became
    record = client.crm.contacts.basic_api.get_by_id(first, properties=["hs_merged_object_ids", "email", "createdate"])
    assert record.id == second
    absorbed = sorted((scene.ann, scene.dup, first, third["id"]), key=int)
    assert record.properties["hs_merged_object_ids"] == ";".join(absorbed)
    assert record.properties["email"] == "ann.smith@acme.example"
    assert record.properties["createdate"] == "2024-05-05T05:05:05.000Z"
    for old in absorbed:
        assert client.crm.contacts.basic_api.get_by_id(old).id == second
    assert _every_contact_id(client, archived=False) == [second]
    assert set(_links(client, "contacts", "deals", [second])[second]) == {scene.deal_ann, scene.deal_dup}
    assert [merge.new_id for merge in portal.merges] == [int(first), int(second)]


@pytest.mark.parametrize(
    ("body", "status", "category"),
    [
        ({"primaryObjectId": "ann", "objectIdToMerge": "ann"}, 400, "VALIDATION_ERROR"),
        ({"primaryObjectId": "ann", "objectIdToMerge": "999"}, 404, "OBJECT_NOT_FOUND"),
        ({"primaryObjectId": "gone", "objectIdToMerge": "ann"}, 404, "OBJECT_NOT_FOUND"),
        ({"primaryObjectId": "ann", "objectIdToMerge": "not-an-id"}, 404, "OBJECT_NOT_FOUND"),
        ({"primaryObjectId": "ann"}, 400, "VALIDATION_ERROR"),
    ],
    ids=["itself", "unknown-id", "archived", "not-an-id", "missing-field"],
)
def test_merges_hubspot_refuses(
    server: SandboxServer, portal: HubSpotPortal, scene: Scene, body: dict[str, str], status: int, category: str
) -> None:
    gone = portal.insert("contacts", {"email": "gone@acme.example"})["id"]
    portal.archive("contacts", gone)
    names = {"ann": scene.ann, "gone": gone}
    sent = {field: names.get(value, value) for field, value in body.items()}
    before = (portal.records("contacts"), portal.records("contacts", archived=True))
    answer = requests.post(
        f"{server.base_url}/crm/v3/objects/contacts/merge",
        json=sent,
        headers={"Authorization": f"Bearer {portal.access_token}"},
        verify=server.ca_path,
    )
    assert (answer.status_code, answer.json()["category"], answer.json()["status"]) == (status, category, "error")
    assert answer.json()["message"] and answer.json()["correlationId"]
    assert (portal.records("contacts"), portal.records("contacts", archived=True)) == before and portal.merges == []


def test_merging_two_old_ids_of_one_record_is_merging_it_with_itself(client: HubSpot, scene: Scene) -> None:
    _merge_contacts(client, scene.ann, scene.dup)
    with pytest.raises(ContactsApiException) as refused:
        _merge_contacts(client, scene.ann, scene.dup)
    assert refused.value.status == 400 and json.loads(refused.value.body)["category"] == "VALIDATION_ERROR"


def test_a_merge_needs_the_write_scope_and_a_mergeable_type(
    client: HubSpot, server: SandboxServer, portal: HubSpotPortal, scene: Scene
) -> None:
    portal.scopes = {"crm.objects.contacts.read"}
    with pytest.raises(ContactsApiException) as refused:
        _merge_contacts(client, scene.ann, scene.dup)
    assert refused.value.status == 403
    assert json.loads(refused.value.body)["errors"][0]["context"] == {
        "requiredGranularScopes": ["crm.objects.contacts.write"]
    }
    portal.scopes = None
    calls = requests.post(
        f"{server.base_url}/crm/v3/objects/calls/merge",
        json={"primaryObjectId": scene.call_ann, "objectIdToMerge": scene.call_dup},
        headers={"Authorization": f"Bearer {portal.access_token}"},
        verify=server.ca_path,
    )
    assert calls.status_code == 400 and calls.json()["category"] == "VALIDATION_ERROR"
    with pytest.raises(MergeRefused) as direct:
        portal.merge("calls", scene.call_ann, scene.call_dup)
    assert direct.value.status == 400
    assert portal.merges == [] and len(portal.records("calls")) == 2


def test_the_merge_webhook_event_is_what_okrsync_parses(client: HubSpot, portal: HubSpotPortal, scene: Scene) -> None:
    new_id = int(_merge_contacts(client, scene.ann, scene.dup).id)
    merge = portal.merges[-1]
    event = merge_event(merge, portal_id=portal.portal_id, event_id=7, subscription_id=11, app_id=13)
    assert event == {
        "eventId": 7,
        "subscriptionId": 11,
        "portalId": portal.portal_id,
        "appId": 13,
        "occurredAt": round(merge.occurred_at.timestamp() * 1000),
        "subscriptionType": "contact.merge",
        "attemptNumber": 0,
        "objectId": new_id,
        "changeSource": "CRM_UI",
        "primaryObjectId": int(scene.ann),
        "mergedObjectIds": [int(scene.dup)],
        "newObjectId": new_id,
        "numberOfPropertiesMoved": 2,  # lastname and phone filled the primary's blanks
    }
    [parsed] = parse_hubspot_events(json.dumps([event]).encode())
    assert (parsed.kind, parsed.object_type, parsed.tracked) == ("merge", "contacts", True)
    assert (parsed.object_id, parsed.primary_object_id, parsed.merged_object_ids) == (
        new_id,
        int(scene.ann),
        [int(scene.dup)],
    )
    assert parsed.occurred_at == merge.occurred_at
    company = portal.merge("companies", scene.acme, scene.acme_dup)
    assert merge_event(portal.merges[-1], portal_id=portal.portal_id, event_id=8)["subscriptionType"] == "company.merge"
    assert portal.merges[-1].new_id == int(company["id"])


def test_mergeable_types_use_the_portals_timestamp_properties() -> None:
    assert {kind: (created_property(kind), modified_property(kind)) for kind in MERGEABLE} == MERGEABLE
