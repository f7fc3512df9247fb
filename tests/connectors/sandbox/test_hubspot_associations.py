"""The sandbox portal's association types, owners and property rules as HubSpot documents them, through a real TLS
server and the real hubspot-api-client (12.x)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from hubspot import HubSpot
from hubspot.crm.associations.v4 import BatchInputPublicFetchAssociationsBatchRequest
from hubspot.crm.properties.exceptions import ApiException as PropertiesApiException

from connectors.errors import FatalError
from connectors.hubspot.config import HubSpotConfig
from connectors.hubspot.connector import _body
from connectors.hubspot.writer import HubSpotWriter
from connectors.sandbox.hubspot_generator import generate_portal
from connectors.sandbox.hubspot_portal import HubSpotPortal
from connectors.sandbox.server import SandboxServer
from connectors.sandbox.store import SandboxOrg

ANCHOR = datetime(2026, 9, 30, 17, 0, tzinfo=UTC)


@pytest.fixture
def portal() -> HubSpotPortal:
    return generate_portal(anchor=ANCHOR, companies=12, deals=30, engagements=200)


@pytest.fixture
def server(portal: HubSpotPortal) -> Iterator[SandboxServer]:
    with SandboxServer(SandboxOrg(), portal=portal) as running:
        yield running


@pytest.fixture
def client(server: SandboxServer, portal: HubSpotPortal) -> HubSpot:
    return HubSpot(access_token=portal.access_token, host=server.base_url, ssl_ca_cert=server.ca_path, retry=False)


def _types(client: HubSpot, from_type: str, to_type: str, ids: list[str]) -> dict[str, list[tuple[str, list]]]:
    """from id → [(to id, [(category, typeId, label)…])…] in the order the API lists them."""
    request = BatchInputPublicFetchAssociationsBatchRequest(inputs=[{"id": i} for i in ids])
    answer = client.crm.associations.v4.batch_api.get_page(from_type, to_type, request)
    return {
        result._from.id: [
            (str(to.to_object_id), [(t.category, t.type_id, t.label) for t in to.association_types]) for to in result.to
        ]
        for result in answer.results
    }


def test_a_deals_primary_company_is_listed_beside_the_unlabelled_type_in_no_priority_order(
    client: HubSpot, portal: HubSpotPortal
) -> None:
    deals = [d["id"] for d in portal.records("deals")[:12]]
    seeded = {d: str(portal.primary_company("deals", d)) for d in deals}
    extra = {d: portal.insert("companies", {"name": f"Holding {d}"})["id"] for d in deals}
    for deal in deals:
        portal.associate("deals", deal, "companies", extra[deal], primary=True)
    listed = _types(client, "deals", "companies", deals)
    primary = ("HUBSPOT_DEFINED", 5, "Deal with Primary Company")
    unlabelled = ("HUBSPOT_DEFINED", 341, None)
    for deal in deals:
        assert dict(listed[deal]) == {extra[deal]: [unlabelled, primary], seeded[deal]: [unlabelled]}
    positions = {[to for to, _t in listed[deal]].index(extra[deal]) for deal in deals}
    assert positions == {0, 1}, "the primary company must not always come first (or last)"

    # the other direction: the company is the primary company of the deal (typeId 6)
    back = _types(client, "companies", "deals", [extra[deals[0]], seeded[deals[0]]])
    assert dict(back[extra[deals[0]]])[deals[0]] == [
        ("HUBSPOT_DEFINED", 342, None),
        ("HUBSPOT_DEFINED", 6, "Deal with Primary Company"),
    ]
    assert dict(back[seeded[deals[0]]])[deals[0]] == [("HUBSPOT_DEFINED", 342, None)]

    # only one primary company: the previous one stays associated, unlabelled; removing the primary leaves none
    portal.set_primary_company("deals", deals[0], seeded[deals[0]])
    assert dict(_types(client, "deals", "companies", deals[:1])[deals[0]])[extra[deals[0]]] == [unlabelled]
    portal.unassociate("deals", deals[0], "companies", seeded[deals[0]])
    assert _types(client, "deals", "companies", deals[:1])[deals[0]] == [(extra[deals[0]], [unlabelled])]
    with pytest.raises(ValueError, match="no primary company"):
        portal.set_primary_company("calls", portal.records("calls")[0]["id"], extra[deals[0]])


def test_a_contacts_primary_company_is_typeid_1_and_its_associatedcompanyid(
    client: HubSpot, portal: HubSpotPortal
) -> None:
    contact = portal.records("contacts")[0]
    company = portal.insert("companies", {"name": "New employer"})["id"]
    portal.associate("contacts", contact["id"], "companies", company, primary=True)
    listed = dict(_types(client, "contacts", "companies", [contact["id"]])[contact["id"]])
    assert listed[company] == [("HUBSPOT_DEFINED", 279, None), ("HUBSPOT_DEFINED", 1, "Contact with Primary Company")]
    now = portal.get("contacts", contact["id"])
    assert now is not None and now["properties"]["associatedcompanyid"] == company
    assert now["properties"]["lastmodifieddate"] > contact["properties"]["lastmodifieddate"]

    # an engagement has no primary company: its companies carry the unlabelled type only
    call = portal.records("calls")[0]["id"]
    assert {types[0][1] for _to, types in _types(client, "calls", "companies", [call])[call]} == {182}


def test_deactivated_owners_are_listed_with_archived_true(client: HubSpot, portal: HubSpotPortal) -> None:
    leaving = portal.owners[3]
    portal.deactivate_owner(leaving["id"])
    active = client.crm.owners.owners_api.get_page(limit=500)
    archived = client.crm.owners.owners_api.get_page(limit=500, archived=True)
    assert leaving["id"] not in {o.id for o in active.results}
    assert [(o.id, o.archived, o.email) for o in archived.results] == [(leaving["id"], True, leaving["email"])]


def test_creating_a_property_without_group_name_is_refused(client: HubSpot, portal: HubSpotPortal) -> None:
    body = {"name": "okr_note", "label": "Note", "type": "string", "fieldType": "text"}
    with pytest.raises(PropertiesApiException) as refused:
        client.crm.properties.core_api.create("deals", body)
    error = _body(refused.value)
    assert refused.value.status == 400 and error["status"] == "error" and error["category"] == "VALIDATION_ERROR"
    assert "Some required fields were not set: [groupName]" in error["message"] and error["correlationId"]
    assert client.crm.properties.core_api.create("deals", body | {"groupName": "dealinformation"}).name == "okr_note"


def _writer(server: SandboxServer, portal: HubSpotPortal) -> HubSpotWriter:
    config = HubSpotConfig(
        access_token=portal.access_token,
        host=server.base_url,
        ca_bundle=server.ca_path,
        retry_wait_base=0.01,
        retry_wait_max=0.05,
        max_attempts=2,
        timeout_seconds=5,
    )
    return HubSpotWriter(config)


def test_provision_repairs_a_custom_object_that_lost_a_property(server: SandboxServer, portal: HubSpotPortal) -> None:
    first = _writer(server, portal).provision()
    assert first.custom_objects is True and "custom object okr_key_result" in first.created
    key_result = portal.kind_of("okr_key_result")
    assert key_result is not None
    portal.remove_property(key_result, "grade")  # an admin deleted it; the object and its other properties stay
    try:
        repaired = _writer(server, portal).provision()
    except FatalError as exc:  # what HubSpot answers a property without groupName
        pytest.fail(f"provision could not repair the custom object: {exc}")
    assert repaired.created == [f"{key_result} property grade"]
    definition = portal.property_definition(key_result, "grade")
    siblings = portal.property_definition(key_result, "okrsync_id")
    assert definition is not None and siblings is not None
    assert definition["groupName"] == siblings["groupName"] == "okr_key_result_information"
