"""okrsync's write-back against the sandbox HubSpot portal, through a real TLS server and hubspot-api-client 12."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import requests
import urllib3
from hubspot import HubSpot
from hubspot.crm.associations.v4.exceptions import ApiException as AssociationsApiException
from hubspot.crm.deals.exceptions import ApiException as DealsApiException
from hubspot.crm.objects.exceptions import ApiException as ObjectsApiException
from hubspot.crm.properties.exceptions import ApiException as PropertiesApiException
from hubspot.crm.schemas.exceptions import ApiException as SchemasApiException

from connectors.hubspot.connector import _required_scopes
from connectors.sandbox.hubspot_generator import generate_portal
from connectors.sandbox.hubspot_portal import CUSTOM_ASSOCIATION_TYPE_BASE, HubSpotPortal
from connectors.sandbox.server import SandboxServer
from connectors.sandbox.store import SandboxOrg

ANCHOR = datetime(2026, 9, 30, 17, 0, tzinfo=UTC)
STATUS = "2-1"  # the first custom object's objectTypeId in a fresh portal


def _schema(name: str = "okr_status", **changes: Any) -> dict[str, Any]:
    schema = {
        "name": name,
        "labels": {"singular": "OKR status", "plural": "OKR statuses"},
        "primaryDisplayProperty": "name",
        "requiredProperties": ["okrsync_id"],
        "searchableProperties": ["name"],
        "properties": [
            {
                "name": "okrsync_id",
                "label": "okrsync id",
                "type": "string",
                "fieldType": "text",
                "hasUniqueValue": True,
            },
            {"name": "name", "label": "Name", "type": "string", "fieldType": "text"},
            {"name": "progress", "label": "Progress", "type": "number", "fieldType": "number"},
            {"name": "achieved", "label": "Achieved", "type": "bool", "fieldType": "booleancheckbox"},
            {"name": "last_computed", "label": "Last computed", "type": "datetime", "fieldType": "date"},
            {"name": "note", "label": "Note", "type": "string", "fieldType": "textarea"},
        ],
        "associatedObjects": ["DEAL", "COMPANY"],
    }
    schema.update(changes)
    return schema


def _row(key: str, **properties: Any) -> dict[str, Any]:
    return {"idProperty": "okrsync_id", "id": key, "properties": {"okrsync_id": key, **properties}}


def _body(exc: Any) -> dict[str, Any]:
    """The JSON error body of an ApiException (each hubspot package has its own class)."""
    return json.loads(exc.body)


@pytest.fixture
def portal() -> HubSpotPortal:
    return generate_portal(anchor=ANCHOR, companies=6, deals=12, engagements=30)


@pytest.fixture
def server(portal: HubSpotPortal) -> Iterator[SandboxServer]:
    with SandboxServer(SandboxOrg(), portal=portal) as running:
        yield running


@pytest.fixture
def client(server: SandboxServer, portal: HubSpotPortal) -> HubSpot:
    return HubSpot(access_token=portal.access_token, host=server.base_url, ssl_ca_cert=server.ca_path, retry=False)


@pytest.fixture
def status_object(client: HubSpot) -> str:
    """The okr_status custom object, associated with deals and companies."""
    return str(client.crm.schemas.core_api.create(_schema()).object_type_id)


def _upsert(client: HubSpot, rows: list[dict[str, Any]], object_type: str = STATUS) -> Any:
    return client.crm.objects.batch_api.upsert(object_type, {"inputs": rows})


# --- schemas ---------------------------------------------------------------------------------------------------
def test_schema_create_conflict_list_and_get(client: HubSpot, portal: HubSpotPortal, server: SandboxServer) -> None:
    created = client.crm.schemas.core_api.create(_schema())
    assert created.object_type_id == STATUS and created.fully_qualified_name == f"p{portal.portal_id}_okr_status"
    assert {p.name for p in created.properties} >= {"okrsync_id", "progress", "hs_object_id", "hs_createdate"}
    assert next(p for p in created.properties if p.name == "okrsync_id").has_unique_value is True
    links = {(a.to_object_type_id, a.id) for a in created.associations}
    base = CUSTOM_ASSOCIATION_TYPE_BASE
    assert links == {("0-3", str(base)), ("0-2", str(base + 2))}
    assert portal.association_type_id("deals", STATUS) == base + 1

    with pytest.raises(SchemasApiException) as repeated:
        client.crm.schemas.core_api.create(_schema())
    assert repeated.value.status == 409
    assert _body(repeated.value)["category"] == "OBJECT_ALREADY_EXISTS"
    assert _body(repeated.value)["message"] == "Object type already exists with name okr_status"

    assert [s.name for s in client.crm.schemas.core_api.get_all().results] == ["okr_status"]
    for name in ("okr_status", STATUS, f"p{portal.portal_id}_okr_status"):
        assert client.crm.schemas.core_api.get_by_id(name).object_type_id == STATUS
    assert portal.schema("okr_status") == portal.schema(STATUS)
    older = requests.get(
        f"{server.base_url}/crm/v3/schemas",
        headers={"Authorization": f"Bearer {portal.access_token}"},
        verify=server.ca_path,
    )
    assert [s["name"] for s in older.json()["results"]] == ["okr_status"]


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"labels": {"singular": "OKR status"}}, "labels needs both singular and plural"),
        ({"associatedObjects": None}, "associatedObjects"),
        (
            {
                "properties": [
                    {"name": "done", "label": "Done", "type": "bool", "fieldType": "booleancheckbox"}
                    | {"hasUniqueValue": True}
                ]
            },
            "Property done: hasUniqueValue is only allowed on string and number properties",
        ),
        (
            {"properties": [{"name": "score", "label": "Score", "type": "integer", "fieldType": "number"}]},
            "Property score: type 'integer'",
        ),
        (
            {"properties": [{"name": "score", "label": "Score", "type": "number", "fieldType": "text"}]},
            "Property score: fieldType 'text' is not valid for type number",
        ),
        (
            {"requiredProperties": ["okr_key"]},
            "requiredProperties names properties the schema does not define: okr_key",
        ),
        ({"associatedObjects": ["TICKET_THING"]}, "Unable to infer object type from: TICKET_THING"),
    ],
    ids=["labels", "missing-field", "unique-bool", "bad-type", "bad-field-type", "required-undefined", "bad-target"],
)
def test_schema_validation_errors(
    client: HubSpot, portal: HubSpotPortal, changes: dict[str, Any], expected: str
) -> None:
    with pytest.raises(SchemasApiException) as refused:
        client.crm.schemas.core_api.create(_schema(**changes))
    assert refused.value.status == 400
    body = _body(refused.value)
    assert body["category"] == "VALIDATION_ERROR" and expected in body["message"]
    assert portal.schemas() == []


def test_custom_objects_need_enterprise(client: HubSpot, portal: HubSpotPortal) -> None:
    portal.tier = "professional"
    with pytest.raises(SchemasApiException) as refused:
        client.crm.schemas.core_api.create(_schema())
    assert refused.value.status == 403
    assert _body(refused.value)["category"] == "FORBIDDEN" and "Enterprise" in _body(refused.value)["message"]
    assert client.crm.schemas.core_api.get_all().results == []


def test_missing_scopes_use_hubspots_body(client: HubSpot, portal: HubSpotPortal) -> None:
    portal.scopes = {"crm.objects.deals.read", "crm.schemas.custom.read"}
    deal = portal.records("deals")[0]
    with pytest.raises(DealsApiException) as refused:
        client.crm.deals.batch_api.update({"inputs": [{"id": deal["id"], "properties": {"dealname": "x"}}]})
    assert refused.value.status == 403 and _body(refused.value)["category"] == "MISSING_SCOPES"
    assert _required_scopes(_body(refused.value)) == ["crm.objects.deals.write"]
    with pytest.raises(SchemasApiException) as schema_refused:
        client.crm.schemas.core_api.create(_schema())
    assert _required_scopes(_body(schema_refused.value)) == ["crm.schemas.custom.write"]
    assert client.crm.schemas.core_api.get_all().results == []  # reading needs only the read scope
    portal.scopes = None
    assert client.crm.schemas.core_api.create(_schema()).name == "okr_status"


# --- properties ------------------------------------------------------------------------------------------------
def test_property_group_and_property(client: HubSpot, portal: HubSpotPortal, status_object: str) -> None:
    group = client.crm.properties.groups_api.create("deals", {"name": "okrsync", "label": "okrsync OKRs"})
    assert group.name == "okrsync" and group.archived is False
    with pytest.raises(PropertiesApiException) as repeated:
        client.crm.properties.groups_api.create("deals", {"name": "okrsync", "label": "again"})
    assert repeated.value.status == 409 and _body(repeated.value)["category"] == "OBJECT_ALREADY_EXISTS"
    assert client.crm.properties.groups_api.get_by_name("deals", "okrsync").label == "okrsync OKRs"
    assert {g.name for g in client.crm.properties.groups_api.get_all("deals").results} == {
        "dealinformation",
        "okrsync",
    }

    score = {
        "name": "okrsync_hygiene_score",
        "label": "OKR hygiene score (%)",
        "type": "number",
        "fieldType": "number",
        "groupName": "okrsync",
    }
    created = client.crm.properties.core_api.create("deals", score)
    assert created.type == "number" and created.group_name == "okrsync"
    with pytest.raises(PropertiesApiException) as taken:
        client.crm.properties.core_api.create("deals", score)
    assert taken.value.status == 409 and _body(taken.value)["category"] == "OBJECT_ALREADY_EXISTS"
    with pytest.raises(PropertiesApiException) as observed:  # a property records already carry exists too
        client.crm.properties.core_api.create("deals", {**score, "name": "dealname"})
    assert observed.value.status == 409
    with pytest.raises(PropertiesApiException) as no_group:
        client.crm.properties.core_api.create("deals", {**score, "name": "okrsync_other", "groupName": "nope"})
    assert no_group.value.status == 400 and "property group nope does not exist" in _body(no_group.value)["message"]
    listed = {p.name: p for p in client.crm.properties.core_api.get_all("deals").results}
    assert listed["okrsync_hygiene_score"].type == "number" and listed["dealname"].type == "string"

    extra = {"name": "owner_note", "label": "Owner note", "type": "string", "fieldType": "textarea"}
    with pytest.raises(PropertiesApiException) as ungrouped:  # groupName is required, custom objects included
        client.crm.properties.core_api.create(status_object, extra)
    assert ungrouped.value.status == 400 and "not set: [groupName]" in _body(ungrouped.value)["message"]
    on_custom = client.crm.properties.core_api.create(status_object, extra | {"groupName": "okr_status_information"})
    assert on_custom.group_name == "okr_status_information"
    assert "owner_note" in {p.name for p in client.crm.schemas.core_api.get_by_id("okr_status").properties}


# --- batch upsert ----------------------------------------------------------------------------------------------
def test_batch_upsert_creates_then_updates_by_unique_id(
    client: HubSpot, portal: HubSpotPortal, status_object: str
) -> None:
    rows = [_row(f"kr-{n}", name=f"KR {n}", progress=n * 10, achieved=False) for n in range(3)]
    first = _upsert(client, rows)
    assert first.status == "COMPLETE" and [r.new for r in first.results] == [True, True, True]
    ids = [r.id for r in first.results]
    assert all(i.isdigit() for i in ids) and len(set(ids)) == 3
    assert first.results[0].properties["okrsync_id"] == "kr-0" and first.results[0].properties["hs_object_id"] == ids[0]

    changed = [_row("kr-1", progress="55.5", achieved="TRUE", last_computed="1790000000000"), _row("kr-3")]
    second = _upsert(client, changed, object_type="okr_status")  # by name, too
    assert [(r.id == ids[1], r.new) for r in second.results] == [(True, False), (False, True)]
    stored = {r["properties"]["okrsync_id"]: r for r in portal.records("okr_status")}
    assert stored["kr-1"]["properties"] | {"progress": "55.5", "achieved": "true"} == stored["kr-1"]["properties"]
    assert stored["kr-1"]["properties"]["last_computed"] == "2026-09-21T14:13:20.000Z"
    assert stored["kr-1"]["properties"]["name"] == "KR 1" and stored["kr-0"]["properties"]["progress"] == "0"

    page = client.crm.objects.basic_api.get_page(status_object, properties=["okrsync_id", "progress"], limit=100)
    assert [r.properties["okrsync_id"] for r in page.results] == ["kr-0", "kr-1", "kr-2", "kr-3"]
    one = client.crm.objects.basic_api.get_by_id(f"p{portal.portal_id}_okr_status", ids[1], properties=["progress"])
    assert one.properties["progress"] == "55.5" and one.properties["hs_createdate"]


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        ([_row(f"kr-{n}") for n in range(101)], "a batch holds at most 100"),
        ([_row("kr-1", foo="x")], 'Property values were not valid: [{"isValid":false,"message":"Property'),
        ([{"id": "kr-1", "properties": {"name": "x"}}], "non-unique 2-1 property hs_object_id in portal ID"),
        ([{"idProperty": "name", "id": "x", "properties": {}}], "non-unique 2-1 property name"),
        ([_row("kr-1", progress="12%")], '"error":"INVALID_FLOAT","name":"progress"'),
        ([_row("kr-1", achieved="yes")], '"error":"INVALID_OPTION","name":"achieved"'),
        ([_row("kr-1", last_computed="next week")], '"error":"INVALID_DATE","name":"last_computed"'),
        ([_row("kr-1", note="x" * 65_537)], '"error":"INVALID_STRING_LENGTH","name":"note"'),
        ([_row("kr-1", hs_object_id="5")], '"error":"READ_ONLY_VALUE","name":"hs_object_id"'),
        ([_row("kr-1"), _row("kr-1")], "Duplicate IDs found in batch input: [kr-1]"),
    ],
    ids=[
        "101-inputs",
        "unknown-property",
        "no-id-property",
        "not-unique",
        "number",
        "bool",
        "datetime",
        "too-long",
        "read-only",
        "duplicate-ids",
    ],
)
def test_batch_upsert_refuses_the_whole_batch(
    client: HubSpot, portal: HubSpotPortal, status_object: str, rows: list[dict[str, Any]], expected: str
) -> None:
    with pytest.raises(ObjectsApiException) as refused:  # a valid input rides along and is not written either
        _upsert(client, [_row("kr-ok", name="fine"), *rows][-101:])
    body = _body(refused.value)
    assert refused.value.status == 400 and body["category"] == "VALIDATION_ERROR" and expected in body["message"]
    assert portal.records(status_object) == []


def test_unknown_property_body_is_hubspots(client: HubSpot, status_object: str, portal: HubSpotPortal) -> None:
    with pytest.raises(ObjectsApiException) as refused:
        _upsert(client, [_row("kr-1", foo="x"), _row("kr-2", foo="y", bar="z")])
    body = _body(refused.value)
    prefix = "Property values were not valid: "
    assert body["message"].startswith(prefix) and body["correlationId"]
    issues = json.loads(body["message"][len(prefix) :])
    assert [{k: issue[k] for k in ("isValid", "message", "error", "name")} for issue in issues] == [
        {
            "isValid": False,
            "message": f'Property "{name}" does not exist',
            "error": "PROPERTY_DOESNT_EXIST",
            "name": name,
        }
        for name in ("foo", "bar")
    ]
    assert [e["context"] for e in body["errors"]] == [{"propertyName": ["foo"]}, {"propertyName": ["bar"]}]


def test_deleted_property_refuses_later_batches(client: HubSpot, portal: HubSpotPortal, status_object: str) -> None:
    _upsert(client, [_row("kr-1", note="keep this")])
    client.crm.properties.core_api.archive(status_object, "note")  # an admin deletes it
    assert "note" not in portal.records(status_object)[0]["properties"]
    with pytest.raises(ObjectsApiException) as refused:
        _upsert(client, [_row("kr-1", note="again")])
    assert '"error":"PROPERTY_DOESNT_EXIST","name":"note"' in _body(refused.value)["message"]
    client.crm.properties.core_api.create(
        "deals", {"name": "okr_x", "label": "x", "type": "string", "fieldType": "text", "groupName": "dealinformation"}
    )
    portal.remove_property("deals", "okr_x")
    deal = portal.records("deals")[0]
    with pytest.raises(DealsApiException) as gone:
        client.crm.deals.batch_api.update({"inputs": [{"id": deal["id"], "properties": {"okr_x": "1"}}]})
    assert gone.value.status == 400
    assert "okr_x" not in {p.name for p in client.crm.properties.core_api.get_all("deals").results}


# --- batch update and archive ----------------------------------------------------------------------------------
def test_batch_update_applies_all_but_the_archived_deal(client: HubSpot, portal: HubSpotPortal) -> None:
    client.crm.properties.groups_api.create("deals", {"name": "okrsync", "label": "okrsync"})
    score = {"name": "okrsync_hygiene_score", "label": "Hygiene", "type": "number", "fieldType": "number"}
    client.crm.properties.core_api.create("deals", score | {"groupName": "okrsync"})
    deals = [row["id"] for row in portal.records("deals")[:3]]
    portal.archive("deals", deals[1])
    inputs = [{"id": deal, "properties": {"okrsync_hygiene_score": str(80 + n)}} for n, deal in enumerate(deals)]
    answer = client.crm.deals.batch_api.update({"inputs": inputs})
    assert answer.num_errors == 1 and [r.id for r in answer.results] == [deals[0], deals[2]]
    error = answer.errors[0]
    assert error.category == "OBJECT_NOT_FOUND" and error.context == {"ids": [deals[1]]}
    assert error.message == (
        "Could not get some DEAL objects, they may be deleted or not exist. Check that ids are valid."
    )
    assert answer.results[0].properties["okrsync_hygiene_score"] == "80"
    assert portal.get("deals", deals[2])["properties"]["okrsync_hygiene_score"] == "82"
    assert "okrsync_hygiene_score" not in portal.get("deals", deals[1])["properties"]


def test_batch_archive_is_204_and_idempotent(client: HubSpot, portal: HubSpotPortal, status_object: str) -> None:
    ids = [r.id for r in _upsert(client, [_row("kr-1"), _row("kr-2"), _row("kr-3")]).results]
    body = {"inputs": [{"id": ids[0]}, {"id": ids[1]}, {"id": "999"}]}
    _, status, _ = client.crm.objects.batch_api.archive_with_http_info(status_object, body)
    assert status == 204
    client.crm.objects.batch_api.archive(status_object, body)  # again: still fine
    assert [r["id"] for r in portal.records(status_object, archived=True)] == ids[:2]
    assert [r["properties"]["okrsync_id"] for r in portal.records(status_object)] == ["kr-3"]
    assert _upsert(client, [_row("kr-1")]).results[0].new is True  # an archived record is not upserted into


# --- associations ----------------------------------------------------------------------------------------------
def test_default_associations_write_and_read_back(client: HubSpot, portal: HubSpotPortal, status_object: str) -> None:
    record = _upsert(client, [_row("kr-1")]).results[0].id
    deal, company = portal.records("deals")[0]["id"], portal.records("companies")[0]["id"]
    api = client.crm.associations.v4
    answer = api.batch_api.create_default(
        status_object, "deals", {"inputs": [{"from": {"id": record}, "to": {"id": deal}}]}
    )
    spec = answer.results[0].association_spec
    assert (spec.association_category, spec.association_type_id) == ("USER_DEFINED", CUSTOM_ASSOCIATION_TYPE_BASE)
    api.batch_api.create_default(
        "okr_status", "companies", {"inputs": [{"from": {"id": record}, "to": {"id": company}}]}
    )

    forward = api.basic_api.get_page(status_object, record, "deals")
    assert [(str(r.to_object_id), r.association_types[0].type_id) for r in forward.results] == [
        (deal, CUSTOM_ASSOCIATION_TYPE_BASE)  # an int on the wire, a str in the model
    ]
    back = api.basic_api.get_page("deals", deal, status_object)
    assert back.results[0].association_types[0].category == "USER_DEFINED"
    assert back.results[0].association_types[0].type_id == CUSTOM_ASSOCIATION_TYPE_BASE + 1
    batch = api.batch_api.get_page("companies", status_object, {"inputs": [{"id": company}]})
    assert [str(t.to_object_id) for t in batch.results[0].to] == [record]
    assert portal.associations(status_object, record, "companies")[0][0] == int(company)

    labelled = {"types": [{"associationCategory": "USER_DEFINED", "associationTypeId": CUSTOM_ASSOCIATION_TYPE_BASE}]}
    pair = {"from": {"id": record}, "to": {"id": deal}}
    created = api.batch_api.create(status_object, "deals", {"inputs": [pair | labelled]})
    assert created.results[0].to_object_id == deal and created.results[0].from_object_type_id == status_object

    archive = {"inputs": [{"from": {"id": record}, "to": [{"id": deal}]}]}
    assert api.batch_api.archive_with_http_info(status_object, "deals", archive)[1] == 204
    assert portal.associations(status_object, record, "deals") == []
    assert portal.associations("deals", deal, status_object) == []


def test_association_to_an_archived_deal_fails_alone(
    client: HubSpot, portal: HubSpotPortal, status_object: str
) -> None:
    record = _upsert(client, [_row("kr-1")]).results[0].id
    live, gone = (row["id"] for row in portal.records("deals")[:2])
    portal.archive("deals", gone)
    body = {"inputs": [{"from": {"id": record}, "to": {"id": gone}}, {"from": {"id": record}, "to": {"id": live}}]}
    raw = client.crm.associations.v4.batch_api.create_default_with_http_info(
        status_object, "deals", body, _preload_content=False
    )
    answer = json.loads(raw.data)
    assert raw.status == 207 and answer["numErrors"] == 1
    assert answer["errors"][0]["category"] == "OBJECT_NOT_FOUND" and answer["errors"][0]["context"] == {"ids": [gone]}
    assert [r["to"]["id"] for r in answer["results"]] == [live]
    assert [to for to, _type in portal.associations(status_object, record, "deals")] == [int(live)]
    # hubspot-api-client declares only 200 for this endpoint: a 207 deserializes to None (read it raw, as above)
    assert client.crm.associations.v4.batch_api.create_default(status_object, "deals", body) is None
    with pytest.raises(AssociationsApiException) as no_type:  # no association definition between these types
        client.crm.associations.v4.batch_api.create_default(status_object, "calls", body)
    assert no_type.value.status == 400


# --- faults and accounting -------------------------------------------------------------------------------------
@pytest.mark.parametrize("target", [{"id": "kr-2"}, {"index": 1}], ids=["by-id", "by-index"])
def test_input_error_fails_one_input_once(
    client: HubSpot, portal: HubSpotPortal, status_object: str, target: dict[str, Any]
) -> None:
    portal.faults.add("input_error", match="batch_upsert", category="INTERNAL_ERROR", message="try again", **target)
    rows = [_row("kr-1"), _row("kr-2"), _row("kr-3")]
    first = _upsert(client, rows)
    assert first.num_errors == 1 and [r.properties["okrsync_id"] for r in first.results] == ["kr-1", "kr-3"]
    error = first.errors[0]
    assert (error.category, error.message, error.context, error.status) == (
        "INTERNAL_ERROR",
        "try again",
        {"ids": ["kr-2"]},
        "error",
    )
    retry = _upsert(client, rows)
    assert retry.status == "COMPLETE" and [r.new for r in retry.results] == [False, True, False]


def test_input_error_on_update_and_association(client: HubSpot, portal: HubSpotPortal, status_object: str) -> None:
    deals = [row["id"] for row in portal.records("deals")[:2]]
    portal.faults.add("input_error", match="batch_update", id=deals[0])
    answer = client.crm.deals.batch_api.update({"inputs": [{"id": d, "properties": {"dealname": "x"}} for d in deals]})
    assert answer.errors[0].category == "VALIDATION_ERROR" and answer.errors[0].context == {"ids": [deals[0]]}
    assert portal.get("deals", deals[1])["properties"]["dealname"] == "x"
    record = _upsert(client, [_row("kr-1")]).results[0].id
    portal.faults.add("input_error", match="associations_write", id=record, category="INTERNAL_ERROR")
    body = {"inputs": [{"from": {"id": record}, "to": {"id": deals[1]}}]}
    raw = client.crm.associations.v4.batch_api.create_default_with_http_info(
        status_object, "deals", body, _preload_content=False
    )
    assert raw.status == 207 and json.loads(raw.data)["errors"][0]["context"] == {"ids": [record]}
    assert client.crm.associations.v4.batch_api.create_default(status_object, "deals", body).results
    with pytest.raises(ValueError, match="index or id"):
        portal.faults.add("input_error", match="batch_upsert")


def test_drop_applies_the_write_before_cutting_the_connection(
    client: HubSpot, portal: HubSpotPortal, status_object: str
) -> None:
    portal.faults.add("drop", match="batch_upsert")
    with pytest.raises(urllib3.exceptions.HTTPError):
        _upsert(client, [_row("kr-1", name="dropped")])
    [stored] = portal.records(status_object)
    assert stored["properties"]["name"] == "dropped"
    replay = _upsert(client, [_row("kr-1", name="dropped")])
    assert replay.results[0].id == stored["id"] and replay.results[0].new is False

    portal.faults.add("drop", match="batch_archive")  # a 204 answer is cut too
    with pytest.raises(urllib3.exceptions.HTTPError):
        client.crm.objects.batch_api.archive(status_object, {"inputs": [{"id": stored["id"]}]})
    assert portal.records(status_object) == []


def test_write_calls_are_counted_and_http_faults_apply_nothing(
    client: HubSpot, portal: HubSpotPortal, status_object: str
) -> None:
    portal.reset_stats()
    record = _upsert(client, [_row("kr-1")]).results[0].id
    client.crm.objects.batch_api.update(status_object, {"inputs": [{"id": record, "properties": {"name": "n"}}]})
    deal = portal.records("deals")[0]["id"]
    pair = {"from": {"id": record}, "to": {"id": deal}}
    client.crm.associations.v4.batch_api.create_default(status_object, "deals", {"inputs": [pair]})
    client.crm.objects.batch_api.archive(status_object, {"inputs": [{"id": record}]})
    client.crm.properties.core_api.get_all(status_object)
    client.crm.schemas.core_api.get_all()
    portal.faults.add("http", match="batch_upsert", status=503)
    with pytest.raises(ObjectsApiException) as unavailable:
        _upsert(client, [_row("kr-9")])
    assert unavailable.value.status == 503
    assert portal.api_calls == {
        "batch_upsert": 2,
        "batch_update": 1,
        "associations_write": 1,
        "batch_archive": 1,
        "properties": 1,
        "schemas": 1,
    }
    assert [r["properties"]["okrsync_id"] for r in portal.records(status_object, archived=True)] == ["kr-1"]
    assert portal.records(status_object) == []
