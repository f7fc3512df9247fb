"""deploy/ matches what the writers send: the SFDX source is well-formed and holds every field the Salesforce
writer writes with a matching type; the HubSpot definitions hold every property the HubSpot writer writes."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from connectors.hubspot import writer as hs
from connectors.salesforce import mapping as sf_mapping
from connectors.salesforce import writer as sf
from connectors.writes import FIELDS, OBJECT_TARGETS, Target

ROOT = Path(__file__).resolve().parents[2] / "deploy"
SFDX = ROOT / "salesforce" / "force-app" / "main" / "default"
NS = {"md": "http://soap.sforce.com/2006/04/metadata"}
# writer kind -> Salesforce field types it may be written to
SF_TYPES = {
    "text": {"Text", "LongTextArea", "TextArea"},
    "url": {"Url"},
    "percent": {"Percent"},
    "number": {"Number"},
    "boolean": {"Checkbox"},
    "datetime": {"DateTime"},
    "id": {"Lookup"},
    "ref": {"Lookup"},
}


def _text(element: ET.Element, tag: str) -> str | None:
    found = element.find(f"md:{tag}", NS)
    return found.text if found is not None else None


def _fields(sobject: str) -> dict[str, ET.Element]:
    fields = {}
    for path in sorted((SFDX / "objects" / sobject / "fields").glob("*.field-meta.xml")):
        root = ET.parse(path).getroot()
        assert root.tag == f"{{{NS['md']}}}CustomField", path
        name = _text(root, "fullName")
        assert name == path.name.removesuffix(".field-meta.xml"), f"{path}: fullName {name} differs from file name"
        fields[name] = root
    return fields


def test_every_xml_file_is_sfdx_source() -> None:
    files = sorted(p for p in ROOT.joinpath("salesforce").rglob("*.xml") if "node_modules" not in p.parts)
    assert len(files) > 40
    for path in files:
        root = ET.parse(path).getroot()
        assert root.tag.startswith(f"{{{NS['md']}}}"), f"{path}: not in the metadata namespace"
        kind = root.tag.split("}")[1]
        suffix = {
            "CustomObject": ".object-meta.xml",
            "CustomField": ".field-meta.xml",
            "PermissionSet": ".permissionset-meta.xml",
            "LightningComponentBundle": ".js-meta.xml",
        }
        assert path.name.endswith(suffix[kind]), path
    project = json.loads((ROOT / "salesforce" / "sfdx-project.json").read_text())
    assert project["packageDirectories"][0]["path"] == "force-app"


@pytest.mark.parametrize("target", list(sf.MAPPING), ids=str)
def test_salesforce_fields_exist_with_matching_types(target: Target) -> None:
    sobject = sf.OBJECTS[target]
    fields = _fields(sobject)
    if target in OBJECT_TARGETS:
        meta = ET.parse(SFDX / "objects" / sobject / f"{sobject}.object-meta.xml").getroot()
        assert _text(meta, "deploymentStatus") == "Deployed"
        name_type = meta.find("md:nameField/md:type", NS)
        assert name_type is not None
        key = fields[sf.EXTERNAL_ID]
        assert (_text(key, "externalId"), _text(key, "unique"), _text(key, "type")) == ("true", "true", "Text")
    for neutral, spec in sf.MAPPING[target].items():
        assert neutral in FIELDS[target]
        if spec.name == "Name":
            assert target in OBJECT_TARGETS and name_type is not None and name_type.text == "Text", sobject
            assert spec.length == 80 and spec.truncate
            continue
        assert spec.name in fields, f"{sobject}.{spec.name} is written but not in deploy/salesforce"
        field = fields[spec.name]
        kind = _text(field, "type")
        assert kind in SF_TYPES[spec.kind], f"{sobject}.{spec.name}: writer sends {spec.kind}, metadata says {kind}"
        if spec.kind == "text":
            assert int(_text(field, "length") or 0) == spec.length, f"{sobject}.{spec.name} length"
        if spec.kind in ("number", "percent"):
            assert int(_text(field, "scale") or 0) == spec.scale, f"{sobject}.{spec.name} scale"
        if spec.kind == "ref":
            parent = {
                Target.key_result: sf.OBJECTS[Target.objective],
                Target.contribution: sf.OBJECTS[Target.key_result],
            }
            assert _text(field, "referenceTo") == parent[target]
            # the child-to-parent relationship is the field name with __r; <relationshipName> names the related list
            assert spec.relationship == spec.name.removesuffix("__c") + "__r"
            assert _text(field, "relationshipName")
        if spec.kind == "id":
            assert _text(field, "referenceTo") in ("Opportunity", "Account")
            assert _text(field, "deleteConstraint") == "SetNull"  # a lookup: writes never lock the parent


def test_permission_set_grants_every_written_field() -> None:
    """Every field the writer sends is editable, and so is its object: Salesforce refuses a field edit on a record
    whose object the user may not edit, so field permissions on Opportunity and Account alone fail every write-back
    (issue 21). Derived from what the writer sends, not from a list kept here."""
    root = ET.parse(SFDX / "permissionsets" / "okrsync_integration.permissionset-meta.xml").getroot()
    editable = {_text(p, "field") for p in root.findall("md:fieldPermissions", NS) if _text(p, "editable") == "true"}
    objects = {_text(p, "object") for p in root.findall("md:objectPermissions", NS) if _text(p, "allowEdit") == "true"}
    for target, specs in sf.MAPPING.items():
        sobject = sf.OBJECTS[target]
        if target in OBJECT_TARGETS:
            assert sobject in objects
        written = [spec.name for spec in specs.values() if spec.name != "Name"]
        if written:
            assert sobject in objects, f"{sobject}: fields are written, but the permission set gives no Edit on it"
        for name in written:
            assert f"{sobject}.{name}" in editable, f"{sobject}.{name} not editable by the permission set"


def test_permission_set_grants_read_on_the_synced_objects_a_permission_set_can_grant() -> None:
    """Read on the synced objects whose access a permission set controls (the Lead warning of the sync names this
    permission set). Users, tasks and events are not granted by object permissions (User is readable with API
    access; Task and Event follow the Access Activities and Edit Tasks/Events user permissions), nor are contact
    roles and e-mails (they follow their opportunity and their task, or their case). Case is granted: the e-mails
    without a task are Email-to-Case e-mails, related to their account through their case (the Case warning of the sync
    names this permission set)."""
    root = ET.parse(SFDX / "permissionsets" / "okrsync_integration.permissionset-meta.xml").getroot()
    readable = {_text(p, "object") for p in root.findall("md:objectPermissions", NS) if _text(p, "allowRead") == "true"}
    granted_elsewhere = {"User", "Task", "Event", "OpportunityContactRole"}
    assert set(sf_mapping.OBJECTS) - granted_elsewhere <= readable
    assert sf_mapping.CASE_OBJECT in readable


HS_TYPES = {
    "string": {"string"},
    "number": {"number"},
    "percent": {"number"},
    "bool": {"bool"},
    "datetime": {"datetime", "date"},
}


@pytest.mark.parametrize("target", list(hs.MAPPING), ids=str)
def test_hubspot_definitions_hold_every_written_property(target: Target) -> None:
    schemas, properties = hs.load_definitions()
    if target in hs.SCHEMAS:
        schema = schemas[hs.SCHEMAS[target]]
        defined = {p["name"]: p for p in schema["properties"]}
        assert defined[hs.ID_PROPERTY]["hasUniqueValue"] is True
        assert hs.ID_PROPERTY in schema["requiredProperties"]
        assert schema["primaryDisplayProperty"] in defined
        wanted = {"deals": "DEAL", "companies": "COMPANY"}
        assert {wanted[t] for t in hs.ASSOCIATIONS.get(target, {}).values()} <= set(schema["associatedObjects"])
    else:
        defined = {p["name"]: p for p in properties[hs.RECORD_TYPES[target]]}
        assert all(p["groupName"] == hs.GROUP for p in defined.values())
    for neutral, prop in hs.MAPPING[target].items():
        assert neutral in FIELDS[target]
        assert prop.name in defined, f"{target}: property {prop.name} is written but not defined in deploy/hubspot"
        assert defined[prop.name]["type"] in HS_TYPES[prop.kind], f"{target}.{prop.name}"
