import csv
import io
from dataclasses import replace
from typing import Any

import pytest
import requests
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import (
    SalesforceGeneralError,
    SalesforceMalformedRequest,
    SalesforceOperationError,
    SalesforceRefusedRequest,
    SalesforceResourceNotFound,
)

from connectors.sandbox.salesforce_metadata import ObjectMetadata
from connectors.sandbox.schema import make_id
from connectors.sandbox.server import SandboxServer
from connectors.sandbox.store import SandboxOrg

OBJ, KR, CONTRIB, KAM = "OKR_Objective__c", "OKR_Key_Result__c", "OKR_Contribution__c", "KAM_Criterion__c"
ROLLED_BACK = {
    "statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK",
    "message": "Record rolled back because not all records were valid and the request was using AllOrNone header",
    "fields": [],
}
READ_ONLY = (
    "Unable to create/update fields: {}. Please check the security settings of this field and verify that it is "
    "read/write for your profile or permission set."
)


@pytest.fixture(autouse=True)
def deployed(org: SandboxOrg, okr_metadata: dict[str, ObjectMetadata]) -> SandboxOrg:
    org.deploy_metadata(okr_metadata)
    return org


def upsert(sf: Salesforce, sobject: str, records: list[dict], *, all_or_none: bool = False) -> Any:
    body = {"allOrNone": all_or_none, "records": [{"attributes": {"type": sobject}, **row} for row in records]}
    return sf.restful(f"composite/sobjects/{sobject}/Okrsync_Id__c", method="PATCH", json=body)


def update(sf: Salesforce, records: list[dict], *, all_or_none: bool = False) -> Any:
    return sf.restful("composite/sobjects", method="PATCH", json={"allOrNone": all_or_none, "records": records})


def delete(sf: Salesforce, ids: list[str], *, all_or_none: bool = False) -> Any:
    params = {"ids": ",".join(ids), "allOrNone": str(all_or_none).lower()}
    return sf.restful("composite/sobjects", method="DELETE", params=params)


def objective(key: str, **fields: Any) -> dict[str, Any]:
    return {"Okrsync_Id__c": key, "Name": f"Objective {key}", **fields}


def codes(results: list[dict]) -> list[str | None]:
    return [result["errors"][0]["statusCode"] if result["errors"] else None for result in results]


def csv_rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_upsert_creates_then_updates_by_external_id(sf: Salesforce, org: SandboxOrg) -> None:
    first = upsert(sf, OBJ, [objective("obj-1", Last_Computed__c="2026-09-30T17:00:00Z"), objective("obj-2")])
    assert [(row["success"], row["errors"], row["created"]) for row in first] == [(True, [], True)] * 2
    assert all(row["id"].startswith(org.sobject(OBJ).key_prefix) for row in first)

    second = upsert(sf, OBJ, [objective("obj-1", Progress__c=50, Status__c="on_track")])
    assert second == [{"id": first[0]["id"], "success": True, "errors": [], "created": False}]
    stored = {row["Okrsync_Id__c"]: row for row in org.records(OBJ)}
    assert len(stored) == 2
    assert (stored["obj-1"]["Progress__c"], stored["obj-1"]["Status__c"]) == (50.0, "on_track")
    assert stored["obj-1"]["Last_Computed__c"] == "2026-09-30T17:00:00.000+0000"  # not sent again: unchanged
    assert stored["obj-2"]["Achieved__c"] is False  # the Checkbox default


@pytest.mark.parametrize(
    ("field", "sent", "stored"),
    [
        ("Progress__c", 41.25, 41.3),
        ("Progress__c", "12", 12.0),
        ("Progress__c", None, None),
        ("Achieved__c", True, True),
        ("Achieved__c", "false", False),
        ("Achieved__c", None, False),
        ("Last_Computed__c", "2026-09-30T19:00:00+02:00", "2026-09-30T17:00:00.000+0000"),
        ("Team__c", 42, "42"),
        ("Team__c", "", None),
    ],
    ids=[
        "percent-rounded-to-scale",
        "number-as-text",
        "number-null",
        "checkbox",
        "checkbox-as-text",
        "checkbox-null-is-false",
        "datetime-normalised",
        "text-from-number",
        "empty-text-is-null",
    ],
)
def test_values_are_stored_as_the_api_returns_them(sf: Salesforce, org: SandboxOrg, field: str, sent, stored) -> None:
    (result,) = upsert(sf, OBJ, [objective("obj-1", **{field: sent})])
    assert org.get(OBJ, result["id"])[field] == stored


def test_names_default_to_the_id_or_count_up(sf: Salesforce, org: SandboxOrg) -> None:
    (kr,) = upsert(sf, KR, [{"Okrsync_Id__c": "kr-1"}])
    contributions = upsert(sf, CONTRIB, [{"Okrsync_Id__c": "c-1"}, {"Okrsync_Id__c": "c-2"}])
    assert org.get(KR, kr["id"])["Name"] == kr["id"]  # a Text name left empty shows the record id
    assert [org.get(CONTRIB, row["id"])["Name"] for row in contributions] == ["C-000001", "C-000002"]


def test_external_id_relationships_resolve_to_lookup_ids(sf: Salesforce, org: SandboxOrg) -> None:
    (obj,) = upsert(sf, OBJ, [objective("obj-1")])
    (kr,) = upsert(sf, KR, [{"Okrsync_Id__c": "kr-1", "Name": "Calls", "Objective__r": {"Okrsync_Id__c": "obj-1"}}])
    opportunity = org.records("Opportunity")[0]["Id"]
    reference = {"attributes": {"type": KR}, "Okrsync_Id__c": "kr-1"}
    (contribution,) = upsert(
        sf,
        CONTRIB,
        [{"Okrsync_Id__c": "c-1", "Key_Result__r": reference, "Opportunity__c": opportunity, "Value__c": 3}],
    )
    assert org.get(KR, kr["id"])["Objective__c"] == obj["id"]
    stored = org.get(CONTRIB, contribution["id"])
    assert (stored["Key_Result__c"], stored["Opportunity__c"], stored["Value__c"]) == (kr["id"], opportunity, 3.0)


def test_update_by_id(sf: Salesforce, org: SandboxOrg) -> None:
    live, deleted, purged = (row["Id"] for row in org.records("Opportunity")[:3])
    account = org.records("Account")[0]["Id"]
    org.delete("Opportunity", deleted)
    org.purge("Opportunity", purged)
    hygiene = {"OKR_Hygiene_Score__c": 80.0, "OKR_Hygiene_Issues__c": "No next step"}
    opportunity = {"type": "Opportunity"}
    results = update(
        sf,
        [
            {"attributes": opportunity, "id": live, **hygiene, "OKR_Hygiene_Checked__c": "2026-09-30T17:00:00Z"},
            {"attributes": opportunity, "id": deleted, **hygiene},
            {"attributes": opportunity, "id": purged, **hygiene},
            {"attributes": {"type": "Gone__c"}, "id": live, **hygiene},
            {"attributes": opportunity, "id": account, **hygiene},
            {"attributes": opportunity, **hygiene},
        ],
    )
    assert results[0] == {"id": live, "success": True, "errors": []}
    assert [(row["id"], row["success"]) for row in results[1:]] == [(None, False)] * 5
    assert [(error["statusCode"], error["message"]) for row in results[1:] for error in row["errors"]] == [
        ("ENTITY_IS_DELETED", "entity is deleted"),
        ("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id"),
        ("INVALID_TYPE", "sObject type 'Gone__c' is not supported."),
        ("MALFORMED_ID", f"Opportunity ID: id value of incorrect type: {account}"),
        ("MISSING_ARGUMENT", "Id not specified in an update call"),
    ]
    stored = org.get("Opportunity", live)
    assert (stored["OKR_Hygiene_Score__c"], stored["OKR_Hygiene_Checked__c"]) == (80.0, "2026-09-30T17:00:00.000+0000")
    assert org.get("Opportunity", deleted)["OKR_Hygiene_Score__c"] is None


def test_delete_soft_deletes_and_reports_each_record(sf: Salesforce, org: SandboxOrg) -> None:
    ids = [row["id"] for row in upsert(sf, OBJ, [objective("obj-1"), objective("obj-2"), objective("obj-3")])]
    assert delete(sf, ids[:2]) == [{"id": record_id, "success": True, "errors": []} for record_id in ids[:2]]
    assert [row["Id"] for row in org.records(OBJ)] == ids[2:]
    assert all(org.get(OBJ, record_id)["IsDeleted"] for record_id in ids[:2])
    assert set(ids[:2]) <= set(org.deleted_log(OBJ))

    unknown = make_id(org.sobject(OBJ).key_prefix, 999)
    again = delete(sf, [ids[0], unknown, "nonsense"])
    assert [(row["id"], row["success"]) for row in again] == [(None, False)] * 3
    assert codes(again) == ["ENTITY_IS_DELETED", "ENTITY_IS_DELETED", "MALFORMED_ID"]

    rolled_back = delete(sf, [ids[2], ids[0]], all_or_none=True)
    assert [row["errors"][0] for row in rolled_back][0] == ROLLED_BACK
    assert codes(rolled_back) == ["ALL_OR_NONE_OPERATION_ROLLED_BACK", "ENTITY_IS_DELETED"]
    assert org.get(OBJ, ids[2])["IsDeleted"] is False


@pytest.mark.parametrize("operation", ["upsert", "update", "delete"])
def test_more_than_200_records_are_refused(sf: Salesforce, org: SandboxOrg, operation: str) -> None:
    ids = [make_id(org.sobject(OBJ).key_prefix, number) for number in range(1, 202)]
    call = {
        "upsert": lambda: upsert(sf, OBJ, [objective(f"obj-{number}") for number in range(201)]),
        "update": lambda: update(sf, [{"attributes": {"type": OBJ}, "id": record_id} for record_id in ids]),
        "delete": lambda: delete(sf, ids),
    }[operation]
    with pytest.raises(SalesforceMalformedRequest) as raised:
        call()
    assert raised.value.content == [
        {
            "errorCode": "EXCEEDED_ID_LIMIT",
            "message": "record limit reached. cannot submit more than 200 records into this call",
        }
    ]
    assert org.records(OBJ) == []


@pytest.mark.parametrize(
    ("path", "record", "prepare", "exception", "error"),
    [
        (
            f"{KR}/Okrsync_Id__c",
            {"Foo__c": 1},
            None,
            SalesforceMalformedRequest,
            ("INVALID_FIELD", "No such column 'Foo__c' on sobject of type OKR_Key_Result__c"),
        ),
        (
            f"{KR}/Okrsync_Id__c",
            {"Grade__c": 1},
            lambda org: org.remove_field(KR, "Grade__c"),
            SalesforceMalformedRequest,
            ("INVALID_FIELD", "No such column 'Grade__c' on sobject of type OKR_Key_Result__c"),
        ),
        (
            "Nope__c/Okrsync_Id__c",
            {},
            None,
            SalesforceResourceNotFound,
            ("NOT_FOUND", "The requested resource does not exist"),
        ),
        (
            f"{KR}/Okrsync_Id__c",
            {},
            lambda org: org.remove_object(KR),
            SalesforceResourceNotFound,
            ("NOT_FOUND", "The requested resource does not exist"),
        ),
        (
            f"{KR}/Team__c",
            {},
            None,
            SalesforceMalformedRequest,
            ("INVALID_FIELD", "Field Team__c is not an external id field on SObject OKR_Key_Result__c"),
        ),
        (
            f"{KR}/Grade__c",
            {"Grade__c": "abc"},
            None,
            SalesforceMalformedRequest,
            ("INVALID_FIELD", "Field Grade__c is not an external id field on SObject OKR_Key_Result__c"),
        ),
        (
            f"{KR}/Okrsync_Id__c",
            {"Grade__c": "abc"},
            None,
            SalesforceMalformedRequest,
            (
                "JSON_PARSER_ERROR",
                "Cannot deserialize instance of double from VALUE_STRING value abc or request may be missing a "
                "required field",
            ),
        ),
        (
            f"{KR}/Okrsync_Id__c",
            {"Achieved__c": "yes"},
            None,
            SalesforceMalformedRequest,
            ("JSON_PARSER_ERROR", "Cannot deserialize instance of boolean from VALUE_STRING value yes"),
        ),
        (
            f"{KR}/Okrsync_Id__c",
            {"Last_Computed__c": "2026-09-30 17:00:00"},
            None,
            SalesforceMalformedRequest,
            ("JSON_PARSER_ERROR", "Cannot deserialize instance of datetime from VALUE_STRING value 2026-09-30"),
        ),
        (
            f"{KR}/Okrsync_Id__c",
            {"Objective__r": {"Team__c": "Sales"}},
            None,
            SalesforceMalformedRequest,
            ("INVALID_FIELD", "Field Team__c is not an external id field on SObject OKR_Objective__c"),
        ),
    ],
    ids=[
        "unknown-field",
        "removed-field",
        "unknown-object",
        "removed-object",
        "key-not-external-id",
        "key-checked-first",
        "not-a-number",
        "not-a-boolean",
        "not-a-datetime",
        "reference-by-plain-field",
    ],
)
def test_whole_request_refusals(
    sf: Salesforce, org: SandboxOrg, path: str, record: dict, prepare, exception: type, error: tuple[str, str]
) -> None:
    if prepare is not None:
        prepare(org)
    sobject = path.split("/")[0]
    good = {"attributes": {"type": sobject}, "Okrsync_Id__c": "kr-1", "Name": "fine"}
    body = {"allOrNone": False, "records": [good, {**good, "Okrsync_Id__c": "kr-2", **record}]}
    with pytest.raises(exception) as raised:
        sf.restful(f"composite/sobjects/{path}", method="PATCH", json=body)
    assert raised.value.content[0]["errorCode"] == error[0]
    assert raised.value.content[0]["message"].startswith(error[1])
    assert org.sobject(KR) is None or org.records(KR) == []
    assert org.api_calls == {"composite_upsert": 1}


def test_one_bad_record_of_200_fails_alone(sf: Salesforce, org: SandboxOrg) -> None:
    records = [{"Okrsync_Id__c": f"kr-{number}", "Name": f"KR {number}", "Value__c": number} for number in range(200)]
    records[57]["Name"] = "N" * 81
    results = upsert(sf, KR, records)
    assert len(results) == 200 and sum(row["success"] for row in results) == 199
    assert results[57] == {
        "id": None,
        "success": False,
        "errors": [
            {
                "statusCode": "STRING_TOO_LONG",
                "message": f"Key Result: data value too large: {'N' * 30}... (max length=80)",
                "fields": ["Name"],
            }
        ],
        "created": False,
    }
    assert {row["Okrsync_Id__c"] for row in org.records(KR)} == {f"kr-{n}" for n in range(200) if n != 57}


@pytest.mark.parametrize(
    ("sobject", "fields", "error"),
    [
        (
            KR,
            {"Grade__c": 100},
            ("NUMBER_OUTSIDE_VALID_RANGE", "Grade: value outside of valid range on numeric field: 100.0", ["Grade__c"]),
        ),
        (
            KAM,
            {"Comment__c": "c" * 32_769},
            ("STRING_TOO_LONG", f"Comment: data value too large: {'c' * 30}... (max length=32768)", ["Comment__c"]),
        ),
        (CONTRIB, {"Name": "C-9"}, ("INVALID_FIELD_FOR_INSERT_UPDATE", READ_ONLY.format("Name"), ["Name"])),
        (
            KR,
            {"CreatedDate": "2026-01-01T00:00:00Z", "Id": "{live}"},
            ("INVALID_FIELD_FOR_INSERT_UPDATE", READ_ONLY.format("CreatedDate, Id"), ["CreatedDate", "Id"]),
        ),
        (KR, {"Okrsync_Id__c": None}, ("MISSING_ARGUMENT", "Okrsync_Id__c not specified", [])),
        (
            KR,
            {"Objective__r": {"Okrsync_Id__c": "nope"}},
            (
                "INVALID_FIELD",
                "Foreign key external ID: nope not found for field Okrsync_Id__c in entity OKR_Objective__c",
                [],
            ),
        ),
        (
            KR,
            {"Objective__r": {"Okrsync_Id__c": "obj-gone"}},
            ("ENTITY_IS_DELETED", "entity is deleted", ["Objective__c"]),
        ),
        (KR, {"Objective__c": "{deleted}"}, ("ENTITY_IS_DELETED", "entity is deleted", ["Objective__c"])),
        (
            KR,
            {"Objective__c": "{unknown}"},
            ("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", ["Objective__c"]),
        ),
        (
            KR,
            {"Objective__c": "{account}"},
            ("FIELD_INTEGRITY_EXCEPTION", "Objective: id value of incorrect type: {account}", ["Objective__c"]),
        ),
        (
            KR,
            {"Objective__c": "{live}", "Objective__r": {"Okrsync_Id__c": "obj-live"}},
            (
                "INVALID_FIELD",
                "Cannot specify both an external ID reference Objective__r and a salesforce id, Objective__c",
                ["Objective__c"],
            ),
        ),
    ],
    ids=[
        "number-out-of-range",
        "long-text-too-long",
        "auto-number-name",
        "audit-field-and-id",
        "missing-key",
        "parent-external-id-not-found",
        "deleted-parent-by-external-id",
        "deleted-parent-by-id",
        "unknown-parent-id",
        "parent-of-wrong-type",
        "parent-id-and-reference",
    ],
)
def test_record_errors(sf: Salesforce, org: SandboxOrg, sobject: str, fields: dict, error: tuple) -> None:
    live, gone = (row["id"] for row in upsert(sf, OBJ, [objective("obj-live"), objective("obj-gone")]))
    org.delete(OBJ, gone)
    ids = {
        "{live}": live,
        "{deleted}": gone,
        "{unknown}": make_id(org.sobject(OBJ).key_prefix, 999),
        "{account}": org.records("Account")[0]["Id"],
    }

    def fill(value: Any) -> Any:
        if isinstance(value, str):
            for placeholder, record_id in ids.items():
                value = value.replace(placeholder, record_id)
        return {key: fill(item) for key, item in value.items()} if isinstance(value, dict) else value

    results = upsert(sf, sobject, [{"Okrsync_Id__c": "fine"}, fill({"Okrsync_Id__c": "bad", **fields})])
    code, message, error_fields = (fill(part) for part in error)
    assert results[0]["success"]
    assert results[1] == {
        "id": None,
        "success": False,
        "errors": [{"statusCode": code, "message": message, "fields": error_fields}],
        "created": False,
    }
    assert [row["Okrsync_Id__c"] for row in org.records(sobject)] == ["fine"]


def test_required_fields_are_enforced(sf: Salesforce, org: SandboxOrg, okr_metadata: dict[str, ObjectMetadata]) -> None:
    loose = okr_metadata[OBJ]
    team = replace(loose.fields["Team__c"], required=True)
    org.deploy_metadata({OBJ: replace(loose, fields={**loose.fields, "Team__c": team})})
    results = upsert(sf, OBJ, [objective("obj-1"), objective("obj-2", Team__c="EMEA")])
    missing = {"statusCode": "REQUIRED_FIELD_MISSING", "message": "Required fields are missing: [Team__c]"}
    assert results[0]["errors"] == [{**missing, "fields": ["Team__c"]}]
    assert results[1]["success"]
    assert upsert(sf, OBJ, [objective("obj-2", Status__c="done")])[0]["success"]  # not sent: kept
    assert upsert(sf, OBJ, [objective("obj-2", Team__c=None)])[0]["errors"] == [{**missing, "fields": ["Team__c"]}]


def test_duplicate_values(sf: Salesforce, org: SandboxOrg) -> None:
    results = upsert(sf, OBJ, [objective("obj-1"), objective("obj-2"), objective("obj-1", Name="Again")])
    assert codes(results) == ["DUPLICATE_VALUE", None, "DUPLICATE_VALUE"]
    assert results[0]["errors"][0]["message"] == "Duplicate external id specified: obj-1"
    (taken,) = upsert(sf, OBJ, [objective("obj-1")])
    clash = update(sf, [{"attributes": {"type": OBJ}, "id": taken["id"], "Okrsync_Id__c": "obj-2"}])
    holder = results[1]["id"]
    assert clash[0]["errors"] == [
        {
            "statusCode": "DUPLICATE_VALUE",
            "message": f"duplicate value found: Okrsync_Id__c duplicates value on record with id: {holder}",
            "fields": ["Okrsync_Id__c"],
        }
    ]


@pytest.mark.parametrize("target", [{"external_id": "obj-2"}, {"index": 1}], ids=["by-external-id", "by-index"])
def test_record_error_fault_fails_one_record_once(sf: Salesforce, org: SandboxOrg, target: dict) -> None:
    org.faults.add("record_error", match="composite_upsert", error_code="UNABLE_TO_LOCK_ROW", **target)
    records = [objective("obj-1"), objective("obj-2"), objective("obj-3")]
    first = upsert(sf, OBJ, records)
    assert codes(first) == [None, "UNABLE_TO_LOCK_ROW", None]
    assert first[1]["errors"][0]["message"].startswith("unable to obtain exclusive access to this record")
    retry = upsert(sf, OBJ, records)
    assert [row["created"] for row in retry] == [False, True, False]
    assert len(org.records(OBJ)) == 3


def test_record_error_fault_on_update_and_delete_by_record_id(sf: Salesforce, org: SandboxOrg) -> None:
    first, second = (row["id"] for row in upsert(sf, OBJ, [objective("obj-1"), objective("obj-2")]))
    org.faults.add("record_error", external_id=second, error_code="UNABLE_TO_LOCK_ROW", message="locked", times=2)
    changes = [{"attributes": {"type": OBJ}, "id": record_id, "Status__c": "done"} for record_id in (first, second)]
    assert codes(update(sf, changes)) == [None, "UNABLE_TO_LOCK_ROW"]
    assert delete(sf, [second, first])[0]["errors"] == [
        {"statusCode": "UNABLE_TO_LOCK_ROW", "message": "locked", "fields": []}
    ]
    assert [row["Okrsync_Id__c"] for row in org.records(OBJ)] == ["obj-2"]


def test_all_or_none_rolls_back_every_record(sf: Salesforce, org: SandboxOrg) -> None:
    upsert(sf, OBJ, [objective("obj-1", Status__c="on_track")])
    changes = [objective("obj-1", Status__c="at_risk"), objective("obj-2"), objective("obj-3", Name="N" * 81)]
    results = upsert(sf, OBJ, changes, all_or_none=True)
    assert results[:2] == [{"id": None, "success": False, "errors": [ROLLED_BACK], "created": False}] * 2
    assert codes(results)[2] == "STRING_TOO_LONG"
    assert [(row["Okrsync_Id__c"], row["Status__c"]) for row in org.records(OBJ)] == [("obj-1", "on_track")]

    passed = upsert(sf, OBJ, changes[:2], all_or_none=True)
    assert [row["created"] for row in passed] == [False, True]


def test_bulk2_upsert_of_1000_records_with_two_failures(sf: Salesforce, org: SandboxOrg) -> None:
    (parent,) = upsert(sf, OBJ, [objective("obj-1")])
    records = [
        {
            "Okrsync_Id__c": f"kr-{number:04d}",
            "Name": f"KR {number}",
            "Value__c": str(number),
            "Achieved__c": "false",
            "Last_Computed__c": "2026-09-30T17:00:00Z",
            "Objective__r.Okrsync_Id__c": "obj-1",
        }
        for number in range(1000)
    ]
    records[10]["Name"] = "N" * 81
    records[500]["Value__c"] = "lots"
    bulk = sf.bulk2.OKR_Key_Result__c
    (result,) = bulk.upsert(records=records, external_id_field="Okrsync_Id__c", wait=0.01)
    counts = ("numberRecordsProcessed", "numberRecordsFailed", "numberRecordsTotal")
    assert [result[key] for key in counts] == [1000, 2, 1000]

    failed_csv = bulk.get_failed_records(result["job_id"])
    assert failed_csv.startswith('"sf__Id","sf__Error",')
    failed = csv_rows(failed_csv)
    column = list(failed[0]).index("Value__c") - 2  # position in the uploaded CSV
    assert [(row["Okrsync_Id__c"], row["sf__Id"], row["sf__Error"]) for row in failed] == [
        ("kr-0010", "", f"STRING_TOO_LONG:Key Result: data value too large: {'N' * 30}... (max length=80):Name --"),
        (
            "kr-0500",
            "",
            f"INVALID_FIELD:Failed to deserialize field at col {column}. Due to, 'lots' is not a valid value for "
            "the type xsd:double:Value__c --",
        ),
    ]
    assert failed[1]["Value__c"] == "lots" and failed[1]["Objective__r.Okrsync_Id__c"] == "obj-1"

    successful = csv_rows(bulk.get_successful_records(result["job_id"]))
    stored = {row["Okrsync_Id__c"]: row for row in org.records(KR)}
    assert len(successful) == len(stored) == 998
    assert {row["sf__Created"] for row in successful} == {"true"}
    assert {row["sf__Id"] for row in successful} == {row["Id"] for row in stored.values()}
    one = stored["kr-0001"]
    assert (one["Value__c"], one["Achieved__c"], one["Objective__c"]) == (1.0, False, parent["id"])
    assert one["Last_Computed__c"] == "2026-09-30T17:00:00.000+0000"
    assert csv_rows(bulk.get_unprocessed_records(result["job_id"])) == []

    # An empty cell leaves the field alone, #N/A clears it.
    change = {"Okrsync_Id__c": "kr-0001", "Name": "", "Value__c": "#N/A", "Status__c": "done"}
    (again,) = bulk.upsert(records=[change], external_id_field="Okrsync_Id__c", wait=0.01)
    (row,) = csv_rows(bulk.get_successful_records(again["job_id"]))
    assert (row["sf__Id"], row["sf__Created"]) == (one["Id"], "false")
    after = org.get(KR, one["Id"])
    assert (after["Name"], after["Value__c"], after["Status__c"]) == ("KR 1", None, "done")


def test_bulk2_insert_update_and_delete(sf: Salesforce, org: SandboxOrg) -> None:
    bulk = sf.bulk2.OKR_Objective__c
    (inserted,) = bulk.insert(records=[objective("obj-1"), objective("obj-2"), {"Name": "no key"}], wait=0)
    assert (inserted["numberRecordsProcessed"], inserted["numberRecordsFailed"]) == (3, 1)
    (missing,) = csv_rows(bulk.get_failed_records(inserted["job_id"]))
    assert missing["sf__Error"] == (
        "REQUIRED_FIELD_MISSING:Required fields are missing: [Okrsync_Id__c]:Okrsync_Id__c --"
    )
    ids = {row["Okrsync_Id__c"]: row["Id"] for row in org.records(OBJ)}
    changes = [{"Id": ids["obj-1"], "Status__c": "done"}, {"Id": "nonsense", "Status__c": "done"}]
    (updated,) = bulk.update(records=changes, wait=0)
    assert updated["numberRecordsFailed"] == 1 and org.get(OBJ, ids["obj-1"])["Status__c"] == "done"
    (deleted,) = bulk.delete(records=[{"Id": ids["obj-2"]}], wait=0)
    (row,) = csv_rows(bulk.get_successful_records(deleted["job_id"]))
    assert (row["sf__Id"], row["sf__Created"], deleted["numberRecordsFailed"]) == (ids["obj-2"], "false", 0)
    assert [row["Okrsync_Id__c"] for row in org.records(OBJ)] == ["obj-1"]


@pytest.mark.parametrize("column", ["Foo__c", "Grade__c"], ids=["unknown-column", "removed-field"])
def test_bulk2_unknown_column_fails_the_job(sf: Salesforce, org: SandboxOrg, column: str) -> None:
    org.remove_field(KR, "Grade__c")
    with pytest.raises(SalesforceOperationError, match=f"InvalidBatch : Field name not found : {column}"):
        sf.bulk2.OKR_Key_Result__c.upsert(
            records=[{"Okrsync_Id__c": "kr-1", column: "1"}], external_id_field="Okrsync_Id__c", wait=0.01
        )
    (job,) = org.ingest_jobs.values()
    assert job.info()["state"] == "Failed" and job.info()["numberRecordsProcessed"] == 0
    assert len(csv_rows(sf.bulk2.OKR_Key_Result__c.get_unprocessed_records(job.id))) == 1
    assert org.records(KR) == []


def test_bulk2_job_lifecycle_and_record_fault(sf: Salesforce, org: SandboxOrg, server: SandboxServer, http) -> None:
    org.faults.add("record_error", match="bulk2_ingest", external_id="obj-2", error_code="UNABLE_TO_LOCK_ROW")
    bulk = sf.bulk2.OKR_Objective__c
    (result,) = bulk.upsert(records=[objective("obj-1"), objective("obj-2")], external_id_field="Okrsync_Id__c", wait=0)
    (failed,) = csv_rows(bulk.get_failed_records(result["job_id"]))
    assert failed["sf__Error"].startswith("UNABLE_TO_LOCK_ROW:unable to obtain exclusive access")

    jobs = f"{server.base_url}/services/data/v59.0/jobs/ingest"
    auth = {"Authorization": f"Bearer {org.static_access_token}"}
    info = http.get(f"{jobs}/{result['job_id']}", headers=auth).json()
    assert (info["id"][:3], info["state"], info["object"], info["externalIdFieldName"]) == (
        "750",
        "JobComplete",
        OBJ,
        "Okrsync_Id__c",
    )
    assert http.delete(f"{jobs}/{result['job_id']}", headers=auth).status_code == 204
    assert http.get(f"{jobs}/{result['job_id']}", headers=auth).status_code == 404

    spec = {"object": OBJ, "operation": "upsert", "externalIdFieldName": "Team__c", "contentType": "CSV"}
    refused = http.post(jobs, json=spec, headers=auth)
    assert refused.status_code == 400 and refused.json()[0]["errorCode"] == "INVALIDJOB"
    opened = http.post(jobs, json={**spec, "externalIdFieldName": "Okrsync_Id__c"}, headers=auth).json()
    assert opened["state"] == "Open"
    aborted = http.patch(f"{jobs}/{opened['id']}", json={"state": "Aborted"}, headers=auth).json()
    assert aborted["state"] == "Aborted"
    late = http.put(f"{jobs}/{opened['id']}/batches", data="Okrsync_Id__c\nx\n", headers=auth)
    assert late.status_code == 409 and late.json()[0]["errorCode"] == "INVALIDJOBSTATE"


@pytest.mark.parametrize("call", ["composite_upsert", "bulk2_ingest"])
def test_a_dropped_response_still_applies_the_write(sf: Salesforce, org: SandboxOrg, call: str) -> None:
    org.faults.add("drop", match=call, after=2 if call == "bulk2_ingest" else 0)  # bulk: drop the close
    with pytest.raises((requests.exceptions.ChunkedEncodingError, requests.exceptions.ConnectionError)):
        if call == "bulk2_ingest":
            sf.bulk2.OKR_Objective__c.upsert(records=[objective("obj-1")], external_id_field="Okrsync_Id__c", wait=0)
        else:
            upsert(sf, OBJ, [objective("obj-1")])
    (row,) = org.records(OBJ)
    (replayed,) = upsert(sf, OBJ, [objective("obj-1")])
    assert (replayed["id"], replayed["created"]) == (row["Id"], False)


def test_every_write_is_one_api_call(sf: Salesforce, org: SandboxOrg) -> None:
    (created,) = upsert(sf, OBJ, [objective("obj-1")])
    update(sf, [{"attributes": {"type": OBJ}, "id": created["id"], "Status__c": "done"}])
    delete(sf, [created["id"]])
    assert sf.api_usage["api-usage"].used == 3
    sf.bulk2.OKR_Objective__c.upsert(records=[objective("obj-2")], external_id_field="Okrsync_Id__c", wait=0)
    # bulk: create job, upload, close, the wait's status poll and the final job info
    expected = {"composite_upsert": 1, "composite_update": 1, "composite_delete": 1, "bulk2_ingest": 5}
    assert org.api_calls == expected and org.api_usage_used == 8


def test_writes_go_through_auth_limits_and_http_faults(
    sf: Salesforce, org: SandboxOrg, server: SandboxServer, http: requests.Session
) -> None:
    org.faults.add("http", match="composite_update", status=503, error_code="SERVER_UNAVAILABLE")
    with pytest.raises(SalesforceGeneralError) as raised:
        update(sf, [{"attributes": {"type": OBJ}, "id": make_id(org.sobject(OBJ).key_prefix, 1)}])
    assert raised.value.status == 503
    anonymous = http.patch(
        f"{server.base_url}/services/data/v59.0/composite/sobjects/{OBJ}/Okrsync_Id__c",
        json={"records": [{"attributes": {"type": OBJ}, **objective("obj-1")}]},
    )
    assert anonymous.status_code == 401 and anonymous.headers["Sforce-Limit-Info"] == "api-usage=1/100000"
    org.api_usage_used = org.daily_api_limit
    with pytest.raises(SalesforceRefusedRequest):
        upsert(sf, OBJ, [objective("obj-1")])
    assert org.records(OBJ) == []
    assert org.api_calls == {"composite_update": 1, "composite_upsert": 2}


def test_describe_serves_deployed_objects(sf: Salesforce) -> None:
    described = sf.OKR_Key_Result__c.describe()
    assert (described["name"], described["label"], described["custom"]) == (KR, "OKR Key Result", True)
    assert {"name": "Okrsync_Id__c", "type": "string", "custom": True} in described["fields"]
    assert {"name": "OKR_Hygiene_Score__c", "type": "percent", "custom": True} in sf.Opportunity.describe()["fields"]
