from pathlib import Path

import pytest

from connectors.sandbox.salesforce_metadata import (
    DEFAULT_METADATA_DIR,
    BadValue,
    FieldMetadata,
    MetadataError,
    ObjectMetadata,
    check_value,
    coerce_value,
    load_metadata,
)
from connectors.sandbox.schema import SOBJECTS
from connectors.sandbox.soql import parse
from connectors.sandbox.store import SandboxOrg

KR = "OKR_Key_Result__c"
CUSTOM = ["KAM_Criterion__c", "OKR_Contribution__c", KR, "OKR_Objective__c"]


def test_the_shipped_metadata(okr_metadata: dict[str, ObjectMetadata]) -> None:
    assert DEFAULT_METADATA_DIR.parts[-5:] == ("deploy", "salesforce", "force-app", "main", "default")
    assert list(okr_metadata) == ["Account", *CUSTOM[:2], "OKR_Key_Result__c", "OKR_Objective__c", "Opportunity"]
    key_result = okr_metadata[KR]
    assert (key_result.label, key_result.name_field_type, key_result.standard) == ("OKR Key Result", "Text", False)
    assert key_result.external_id_fields == ["Okrsync_Id__c"]
    assert key_result.fields["Okrsync_Id__c"] == FieldMetadata(
        "Okrsync_Id__c", "okrsync id", "Text", length=255, required=True, external_id=True, unique=True
    )
    progress = key_result.fields["Progress__c"]
    assert (progress.type, progress.precision, progress.scale, progress.describe_type) == ("Percent", 6, 1, "percent")
    objective = key_result.fields["Objective__c"]
    assert (objective.reference_to, objective.relationship_name, objective.parent_relationship) == (
        "OKR_Objective__c",
        "Key_Results",
        "Objective__r",
    )
    assert key_result.fields["Achieved__c"].default_value == "false"
    assert key_result.name_field() == FieldMetadata("Name", "Key Result", "Text", length=80)

    contribution = okr_metadata["OKR_Contribution__c"]
    assert (contribution.name_field_type, contribution.name_display_format) == ("AutoNumber", "C-{000000}")
    assert contribution.name_field() is not None and contribution.name_field().read_only  # type: ignore[union-attr]

    opportunity = okr_metadata["Opportunity"]
    assert opportunity.standard and opportunity.name_field() is None
    assert sorted(opportunity.fields) == ["OKR_Hygiene_Checked__c", "OKR_Hygiene_Issues__c", "OKR_Hygiene_Score__c"]
    assert opportunity.fields["OKR_Hygiene_Issues__c"].max_length == 32768
    assert list(okr_metadata["Account"].fields) == ["OKR_KAM_Score__c"]


def test_any_folder_of_the_project_loads(okr_metadata: dict[str, ObjectMetadata]) -> None:
    assert load_metadata(DEFAULT_METADATA_DIR.parents[2]) == okr_metadata  # the SFDX project root
    assert load_metadata(DEFAULT_METADATA_DIR / "objects") == okr_metadata


TEXT = FieldMetadata("Status__c", "Status", "Text", length=5)
GRADE = FieldMetadata("Grade__c", "Grade", "Number", precision=3, scale=1)
COUNT = FieldMetadata("Records__c", "Records", "Number", precision=18, scale=0)
FLAG = FieldMetadata("Achieved__c", "Achieved", "Checkbox")
STAMP = FieldMetadata("Last_Computed__c", "Last computed", "DateTime")
DAY = FieldMetadata("Due__c", "Due", "Date")
EMAIL = FieldMetadata("Contact__c", "Contact", "Email")


@pytest.mark.parametrize(
    ("meta", "sent", "from_csv", "stored"),
    [
        (GRADE, 0.25, False, 0.3),
        (GRADE, "-0.25", True, -0.3),
        (COUNT, 7, False, 7.0),
        (FLAG, "TRUE", False, True),
        (FLAG, "0", True, False),
        (FLAG, None, True, False),
        (STAMP, "2026-09-30T17:00:00.000+0000", False, "2026-09-30T17:00:00.000+0000"),
        (STAMP, "2026-09-30T17:00Z", True, "2026-09-30T17:00:00.000+0000"),
        (DAY, "2026-09-30", False, "2026-09-30"),
        (TEXT, 12.5, False, "12.5"),
        (TEXT, "", False, None),
    ],
    ids=[
        "round-half-up",
        "negative-from-csv",
        "whole-number",
        "checkbox-text",
        "checkbox-csv-zero",
        "checkbox-null",
        "datetime-api-format",
        "datetime-no-seconds",
        "date",
        "text-from-number",
        "empty-text",
    ],
)
def test_coerce_value(meta: FieldMetadata, sent: object, from_csv: bool, stored: object) -> None:
    assert coerce_value(meta, sent, from_csv=from_csv) == stored


@pytest.mark.parametrize(
    ("meta", "sent", "xsd_type"),
    [
        (GRADE, "abc", "double"),
        (GRADE, True, "double"),
        (GRADE, "NaN", "double"),
        (FLAG, "yes", "boolean"),
        (FLAG, "1", "boolean"),  # only Bulk CSV takes 1/0
        (STAMP, "2026-09-30", "dateTime"),
        (STAMP, "2026-09-30 17:00:00", "dateTime"),
        (DAY, "30/09/2026", "date"),
        (TEXT, {"nested": 1}, "string"),
    ],
    ids=[
        "text-as-number",
        "boolean-as-number",
        "nan",
        "checkbox-word",
        "checkbox-one-in-json",
        "date-as-datetime",
        "datetime-with-space",
        "date-format",
        "object-as-text",
    ],
)
def test_coerce_value_refuses(meta: FieldMetadata, sent: object, xsd_type: str) -> None:
    with pytest.raises(BadValue) as raised:
        coerce_value(meta, sent)
    assert raised.value.xsd_type == xsd_type


@pytest.mark.parametrize(
    ("meta", "value", "problem"),
    [
        (TEXT, "12345", None),
        (TEXT, "123456", ("STRING_TOO_LONG", "Status: data value too large: 123456... (max length=5)")),
        (EMAIL, "a" * 81, ("STRING_TOO_LONG", f"Contact: data value too large: {'a' * 30}... (max length=80)")),
        (GRADE, 99.9, None),
        (GRADE, -100.0, ("NUMBER_OUTSIDE_VALID_RANGE", "Grade: value outside of valid range on numeric field: -100.0")),
        (GRADE, None, None),
        (FieldMetadata("Amount", "Amount", "Currency"), 1e20, None),
    ],
    ids=["text-fits", "text-too-long", "default-email-length", "number-fits", "number-too-big", "null", "no-precision"],
)
def test_check_value(meta: FieldMetadata, value: object, problem: tuple[str, str] | None) -> None:
    assert check_value(meta, value) == problem


FIELD = """<?xml version="1.0" encoding="UTF-8"?>
<CustomField xmlns="http://soap.sforce.com/2006/04/metadata">
    <fullName>A__c</fullName>
    <label>A</label>{body}
</CustomField>
"""
OBJECT = """<?xml version="1.0" encoding="UTF-8"?>
<CustomObject xmlns="http://soap.sforce.com/2006/04/metadata">
    <label>X</label>
    <nameField><label>X Name</label><type>Text</type></nameField>
</CustomObject>
"""


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"X__c/fields/A__c.field-meta.xml": FIELD.format(body="")}, "has no <type>"),
        ({"X__c/fields/A__c.field-meta.xml": FIELD.format(body="<type>Text</type>")}, "no X__c.object-meta.xml"),
        ({"X__c/fields/A__c.field-meta.xml": FIELD.format(body="<type>Lookup</type>")}, "needs <referenceTo>"),
        (
            {"X__c/fields/A__c.field-meta.xml": FIELD.format(body="<type>Text</type><length>x</length>")},
            "must be a whole number",
        ),
        ({"X__c/X__c.object-meta.xml": '<!DOCTYPE x [<!ENTITY e "boom">]><CustomObject/>'}, "DOCTYPE"),
        ({"X__c/X__c.object-meta.xml": "<CustomObject>"}, "not well-formed"),
        ({"X__c/X__c.object-meta.xml": OBJECT.replace("CustomObject", "Layout")}, "expected a <CustomObject>"),
        (
            {"X__c/X__c.object-meta.xml": OBJECT.replace("<nameField>", "<x>").replace("</nameField>", "</x>")},
            "nameField",
        ),
        ({}, "no *.object-meta.xml"),
    ],
    ids=[
        "field-without-type",
        "object-file-missing",
        "lookup-without-target",
        "bad-number",
        "doctype",
        "broken-xml",
        "wrong-document",
        "no-name-field",
        "empty",
    ],
)
def test_broken_metadata_is_refused(tmp_path: Path, files: dict[str, str], message: str) -> None:
    for name, text in files.items():
        path = tmp_path / "objects" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    with pytest.raises(MetadataError, match=message.replace("*", r"\*")):
        load_metadata(tmp_path)


def test_a_small_custom_object(tmp_path: Path) -> None:
    (tmp_path / "objects" / "X__c" / "fields").mkdir(parents=True)
    (tmp_path / "objects" / "X__c" / "X__c.object-meta.xml").write_text(OBJECT)
    formula = "<type>Number</type><precision>4</precision><scale>2</scale><formula>1</formula>"
    (tmp_path / "objects" / "X__c" / "fields" / "A__c.field-meta.xml").write_text(FIELD.format(body=formula))
    (x,) = load_metadata(tmp_path).values()
    assert (x.name, x.label, x.name_field_label, x.standard) == ("X__c", "X", "X Name", False)
    assert x.fields["A__c"] == FieldMetadata("A__c", "A", "Number", precision=4, scale=2, read_only=True)


def test_deploying_gives_one_org_its_own_schema(okr_metadata: dict[str, ObjectMetadata]) -> None:
    plain, org = SandboxOrg(), SandboxOrg()
    before = org.insert("Opportunity", {"Name": "Deal", "Amount": 10.0})
    org.deploy_metadata(okr_metadata)
    assert [org.sobject(name).key_prefix for name in CUSTOM] == ["a00", "a01", "a02", "a03"]  # type: ignore[union-attr]
    assert org.sobject("okr_key_result__c") is org.sobject(KR)
    assert plain.sobject(KR) is None and "OKR_Hygiene_Score__c" not in SOBJECTS["Opportunity"].fields
    assert "OKR_Hygiene_Score__c" not in plain.field_rules("Opportunity")
    assert org.get("Opportunity", before["Id"])["OKR_Hygiene_Score__c"] is None  # new field, older record

    key_result = org.insert(KR, {"Name": "Calls", "Okrsync_Id__c": "kr-1"})
    assert key_result["Id"].startswith("a02") and key_result["IsDeleted"] is False
    assert list(key_result)[:2] == ["Id", "Name"] and key_result["Progress__c"] is None
    assert org.field_rules(KR)["CreatedDate"].read_only and not org.field_rules(KR)["Team__c"].read_only

    rows = parse("SELECT Id, Amount FROM Opportunity").run(org.snapshot("Opportunity"))
    assert [row["Amount"] for row in rows] == [10.0]  # SOQL over the standard objects still works
    org.deploy_metadata(okr_metadata)  # deploying again changes nothing
    assert org.sobject(KR).key_prefix == "a02"  # type: ignore[union-attr]
    assert SandboxOrg(metadata=okr_metadata).field_rules(KR) == org.field_rules(KR)


def test_removed_fields_and_objects(okr_metadata: dict[str, ObjectMetadata]) -> None:
    org = SandboxOrg()
    org.deploy_metadata(okr_metadata)
    key_result = org.insert(KR, {"Okrsync_Id__c": "kr-1", "Grade__c": 0.5})
    org.remove_field(KR, "grade__c")
    assert "Grade__c" not in org.get(KR, key_result["Id"])  # type: ignore[operator]
    assert "Grade__c" not in org.field_rules(KR) and "Grade__c" not in org.object_metadata(KR).fields  # type: ignore[union-attr]
    assert "Grade__c" in okr_metadata[KR].fields  # the parsed metadata is left alone
    with pytest.raises(KeyError, match="Grade__c"):
        org.update(KR, key_result["Id"], {"Grade__c": 1.0})
    with pytest.raises(ValueError, match="system field"):
        org.remove_field(KR, "Name")
    opportunity = org.insert("Opportunity", {"Name": "Deal"})
    org.remove_field("Opportunity", "OKR_Hygiene_Score__c")
    assert "OKR_Hygiene_Score__c" not in org.get("Opportunity", opportunity["Id"])  # type: ignore[operator]
    assert "OKR_Hygiene_Issues__c" in org.field_rules("Opportunity")

    org.deploy_metadata(okr_metadata)  # a redeploy brings the field back with its data
    assert org.get(KR, key_result["Id"])["Grade__c"] == 0.5  # type: ignore[index]

    org.remove_object(KR)
    assert org.sobject(KR) is None and org.sobject_for_prefix("a02") == KR
    with pytest.raises(KeyError, match="no SObject"):
        org.records(KR)
    with pytest.raises(ValueError, match="standard object"):
        org.remove_object("Opportunity")
