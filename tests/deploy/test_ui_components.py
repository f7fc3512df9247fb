"""The record-page UIs in deploy/ agree with what they read: the Salesforce Lightning Web Component
(``okrsyncRecordOkrs``) names only objects, fields, relationships and related lists that deploy/salesforce defines
and the viewer permission set can read; the HubSpot app-card project is well-formed JSON, is placed on deals and
companies, may call the okrsync sidecar and does."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2] / "deploy"
SFDX = ROOT / "salesforce" / "force-app" / "main" / "default"
LWC = SFDX / "lwc" / "okrsyncRecordOkrs"
LWC_JS = LWC / "okrsyncRecordOkrs.js"
HS_APP = ROOT / "hubspot" / "app"
NS = {"md": "http://soap.sforce.com/2006/04/metadata"}
PAGE_OBJECTS = {"Opportunity", "Account"}
# standard objects okrsync adds fields to: their Name is a standard field, so no object-meta.xml describes it
STANDARD_OBJECTS = {"Opportunity", "Account"}
SIDECAR_PATH = "/api/v1/hubspot/card"
PLACEHOLDER_ORIGIN = "https://okrsync.example.com"

# Quoted "Object.Field" or "Object.Rel__r.Field" (a dot-separated path of API names).
FIELD_PATH = re.compile(r"""(['"])([A-Za-z][A-Za-z0-9_]*(?:\.[A-Za-z][A-Za-z0-9_]*)+)\1""")
# A wire's relatedListId: a quoted name or a constant declared as one.
RELATED_LIST_ID = re.compile(r"""relatedListId:\s*(?:(['"])(?P<literal>\w+)\1|(?P<constant>[A-Za-z_]\w*))""")


@dataclass
class SObject:
    name: str
    has_name: bool
    fields: dict[str, ET.Element] = field(default_factory=dict)


def _text(element: ET.Element, tag: str) -> str | None:
    found = element.find(f"md:{tag}", NS)
    return found.text if found is not None else None


def _objects() -> dict[str, SObject]:
    objects = {}
    for folder in sorted((SFDX / "objects").iterdir()):
        meta = folder / f"{folder.name}.object-meta.xml"
        if meta.exists():
            has_name = ET.parse(meta).getroot().find("md:nameField", NS) is not None
        else:
            has_name = folder.name in STANDARD_OBJECTS
        sobject = SObject(folder.name, has_name)
        for path in sorted((folder / "fields").glob("*.field-meta.xml")):
            sobject.fields[path.name.removesuffix(".field-meta.xml")] = ET.parse(path).getroot()
        objects[folder.name] = sobject
    return objects


OBJECTS = _objects()


def _lwc_source() -> str:
    return LWC_JS.read_text()


def _field_paths() -> list[str]:
    """Every quoted field path in the component whose first part is an sObject (known here or custom)."""
    paths = {m.group(2) for m in FIELD_PATH.finditer(_lwc_source())}
    return sorted(p for p in paths if p.split(".")[0] in OBJECTS or p.split(".")[0].endswith("__c"))


def _related_list_ids() -> list[str]:
    source = _lwc_source()
    ids = []
    for match in RELATED_LIST_ID.finditer(source):
        if match.group("literal"):
            ids.append(match.group("literal"))
            continue
        constant = re.search(rf"""const {match.group("constant")} = (['"])(\w+)\1;""", source)
        assert constant is not None, f"relatedListId {match.group('constant')} is not a string constant"
        ids.append(constant.group(2))
    return ids


def _resolve(path: str) -> str | None:
    """None if the path names an existing field (following lookups for __r parts), else what is wrong."""
    sobject, *relationships, name = path.split(".")
    if sobject not in OBJECTS:
        return f"object {sobject} is not in deploy/salesforce"
    for relationship in relationships:
        if not relationship.endswith("__r"):
            return f"{sobject}.{relationship}: a parent reference must end in __r"
        lookup = OBJECTS[sobject].fields.get(relationship.removesuffix("__r") + "__c")
        if lookup is None or _text(lookup, "type") not in ("Lookup", "MasterDetail"):
            return f"{sobject}.{relationship}: no lookup field {relationship.removesuffix('__r')}__c"
        parent = _text(lookup, "referenceTo") or ""
        if parent not in OBJECTS:
            return f"{sobject}.{relationship} points to {parent}, which is not in deploy/salesforce"
        sobject = parent
    if name == "Id":
        return None
    if name == "Name":
        return None if OBJECTS[sobject].has_name else f"{sobject} has no name field"
    return None if name in OBJECTS[sobject].fields else f"{sobject}.{name} is not in deploy/salesforce"


# --- Salesforce: the Lightning Web Component


def test_lwc_bundle_is_exposed_on_opportunity_and_account_record_pages() -> None:
    files = {p.name for p in LWC.iterdir()}
    assert {"okrsyncRecordOkrs.js", "okrsyncRecordOkrs.html", "okrsyncRecordOkrs.js-meta.xml"} <= files
    root = ET.parse(LWC / "okrsyncRecordOkrs.js-meta.xml").getroot()
    assert root.tag == f"{{{NS['md']}}}LightningComponentBundle"
    assert _text(root, "apiVersion") == "59.0"
    assert _text(root, "isExposed") == "true"
    assert _text(root, "masterLabel") == "okrsync OKRs"
    targets = {t.text for t in root.findall("md:targets/md:target", NS)}
    assert "lightning__RecordPage" in targets
    configs = [
        c for c in root.findall("md:targetConfigs/md:targetConfig", NS) if c.get("targets") == "lightning__RecordPage"
    ]
    assert len(configs) == 1
    assert {o.text for o in configs[0].findall("md:objects/md:object", NS)} == PAGE_OBJECTS


def test_lwc_uses_lightning_data_service_only() -> None:
    source = _lwc_source()
    assert "from 'lightning/uiRelatedListApi'" in source and "getRelatedListRecords" in source
    assert "from 'lightning/uiRecordApi'" in source and "getRecord" in source
    assert "@salesforce/apex" not in source, "no Apex: the component reads with Lightning Data Service only"
    assert "fetch(" not in source, "no callout"
    assert "@api recordId" in source and "@api objectApiName" in source
    template = (LWC / "okrsyncRecordOkrs.html").read_text()
    for label in ("noKeyResults", "notChecked", "openDashboard"):  # the words are in WORDS, in two languages
        assert f"{{labels.{label}}}" in template or label in source
    for sentence in ("No key result counts this record yet", "okrsync has not checked this opportunity yet",
                     "Dieser Datensatz zählt noch für kein Key Result."):  # fmt: skip
        assert sentence in source
    assert "import LANG from '@salesforce/i18n/lang'" in source  # the user's language


def test_lwc_reads_the_fields_okrsync_writes() -> None:
    """The regex finds the component's field names at all (else the per-field test below would check nothing)."""
    assert set(_field_paths()) >= {
        "OKR_Contribution__c.Summary__c",
        "OKR_Contribution__c.Records__c",
        "OKR_Contribution__c.Value__c",
        "OKR_Contribution__c.Key_Result__r.Name",
        "OKR_Contribution__c.Key_Result__r.Progress__c",
        "OKR_Contribution__c.Key_Result__r.Status__c",
        "OKR_Contribution__c.Key_Result__r.Expected__c",
        "Opportunity.OKR_Hygiene_Score__c",
        "Opportunity.OKR_Hygiene_Issues__c",
        "Opportunity.OKR_Hygiene_Checked__c",
        "KAM_Criterion__c.Criterion__c",
        "KAM_Criterion__c.Status__c",
        "KAM_Criterion__c.Source__c",
        "KAM_Criterion__c.Comment__c",
        "Account.OKR_KAM_Score__c",
    }


@pytest.mark.parametrize("path", _field_paths(), ids=str)
def test_lwc_field_exists_in_metadata(path: str) -> None:
    problem = _resolve(path)
    assert problem is None, f"okrsyncRecordOkrs reads {path}: {problem}"


@pytest.mark.parametrize(
    ("list_id", "child", "parents"),
    [
        ("OKR_Contributions__r", "OKR_Contribution__c", PAGE_OBJECTS),
        ("KAM_Criteria__r", "KAM_Criterion__c", {"Account"}),
    ],
    ids=["contributions", "kam-criteria"],
)
def test_lwc_related_list_is_a_lookup_of_the_page_object(list_id: str, child: str, parents: set[str]) -> None:
    """A custom lookup's related list id is its child relationship name: the metadata's relationshipName + __r."""
    assert list_id in _related_list_ids()
    lookups = {
        _text(f, "referenceTo")
        for f in OBJECTS[child].fields.values()
        if _text(f, "type") == "Lookup" and f"{_text(f, 'relationshipName')}__r" == list_id
    }
    assert lookups == parents, f"{list_id}: lookups of {child} with relationshipName {list_id[:-3]} point to {lookups}"
    assert any(p.startswith(f"{child}.") for p in _field_paths()), f"no {child} field requested for {list_id}"


def test_lwc_related_lists_are_all_known() -> None:
    assert sorted(_related_list_ids()) == ["KAM_Criteria__r", "OKR_Contributions__r"]


def test_viewer_permission_set_can_read_what_the_lwc_reads() -> None:
    root = ET.parse(SFDX / "permissionsets" / "okrsync_viewer.permissionset-meta.xml").getroot()
    readable = {_text(p, "field") for p in root.findall("md:fieldPermissions", NS) if _text(p, "readable") == "true"}
    objects = {_text(p, "object") for p in root.findall("md:objectPermissions", NS) if _text(p, "allowRead") == "true"}
    missing = []
    for path in _field_paths():
        sobject, *relationships, name = path.split(".")
        for relationship in relationships:
            lookup = f"{relationship.removesuffix('__r')}__c"
            if f"{sobject}.{lookup}" not in readable:
                missing.append(f"{sobject}.{lookup}")
            sobject = _text(OBJECTS[sobject].fields[lookup], "referenceTo") or ""
        if sobject.endswith("__c") and sobject not in objects:
            missing.append(sobject)
        if name not in ("Id", "Name") and f"{sobject}.{name}" not in readable:
            missing.append(f"{sobject}.{name}")
    assert not missing, f"okrsync_viewer cannot read {sorted(set(missing))}"


# --- HubSpot: the app-card project (developer platform 2025.2)


def _hs_json_files() -> list[Path]:
    return sorted(p for p in HS_APP.rglob("*.json") if "node_modules" not in p.parts)


def _load(path: Path) -> Any:
    return json.loads(path.read_text())


def _app_config() -> dict[str, Any]:
    app = _load(HS_APP / "src" / "app" / "app-hsmeta.json")
    assert app["type"] == "app"
    config: dict[str, Any] = app["config"]
    return config


def _card() -> dict[str, Any]:
    cards = [_load(p) for p in (HS_APP / "src" / "app" / "cards").glob("*-hsmeta.json")]
    assert len(cards) == 1
    card: dict[str, Any] = cards[0]
    return card


def test_hubspot_project_files_exist() -> None:
    names = {p.relative_to(HS_APP).as_posix() for p in _hs_json_files()}
    assert {
        "hsproject.json",
        "src/app/app-hsmeta.json",
        "src/app/cards/okrsync-card-hsmeta.json",
        "src/app/cards/package.json",
    } <= names


@pytest.mark.parametrize("path", _hs_json_files(), ids=lambda p: p.relative_to(HS_APP).as_posix())
def test_hubspot_json_parses(path: Path) -> None:
    assert isinstance(json.loads(path.read_text()), dict)


def test_hubspot_project_is_on_platform_2026_09() -> None:
    """2026.09 is HubSpot's current date-based platform version (generally available with the Fall 2026 Spotlight,
    developers.hubspot.com/changelog/fall-2026-spotlight), supported for 18 months; 2025.2 stops being accepted
    for uploads 18 months after its release."""
    project = _load(HS_APP / "hsproject.json")
    assert project["platformVersion"] == "2026.09"
    assert (HS_APP / project["srcDir"] / "app").is_dir()


def test_hubspot_components_have_unique_uids_and_match_their_folder() -> None:
    metas = sorted((HS_APP / "src" / "app").rglob("*-hsmeta.json"))
    uids = [_load(p)["uid"] for p in metas]
    assert len(uids) == len(set(uids))
    for path in metas:
        expected = {"app": "app", "cards": "card"}[path.parent.name]
        assert _load(path)["type"] == expected, path


def test_hubspot_card_is_on_deals_and_companies() -> None:
    config = _card()["config"]
    assert set(config["objectTypes"]) == {"deals", "companies"}
    assert config["location"] in ("crm.record.tab", "crm.record.sidebar")
    entrypoint = HS_APP / "src" / config["entrypoint"].lstrip("/")
    assert entrypoint.is_file(), f"card entrypoint {config['entrypoint']} not found"


def test_hubspot_card_calls_the_sidecar_with_hubspot_fetch_at_the_configured_url() -> None:
    entrypoint = HS_APP / "src" / _card()["config"]["entrypoint"].lstrip("/")
    assert "hubspot.extend(" in entrypoint.read_text()
    view = (entrypoint.parent / "OkrsyncView.jsx").read_text()
    assert SIDECAR_PATH in view and "fetchJson = hubspot.fetch" in view
    assert "from '@hubspot/ui-extensions'" in view
    assert re.search(r"(?<![.\w])fetch\(", view) is None, "app cards must use hubspot.fetch, not fetch"
    assert "import config from './okrsync.config.json'" in view  # the URL is configuration, not code
    configured = _load(entrypoint.parent / "okrsync.config.json")["okrsyncUrl"]
    assert configured in _app_config()["permittedUrls"]["fetch"], "the card calls a URL not in permittedUrls"


def test_hubspot_permitted_urls_hold_the_placeholder_origin() -> None:
    fetch = _app_config()["permittedUrls"]["fetch"]
    assert PLACEHOLDER_ORIGIN in fetch
    assert all(url.startswith("https://") for url in fetch), "hubspot.fetch accepts HTTPS URLs only"


@pytest.mark.parametrize("scope", ["crm.objects.deals.read", "crm.objects.companies.read"], ids=str)
def test_hubspot_app_has_read_scope(scope: str) -> None:
    assert scope in _app_config()["auth"]["requiredScopes"]


def test_hubspot_card_package_depends_on_ui_extensions_and_react() -> None:
    package = _load(HS_APP / "src" / "app" / "cards" / "package.json")
    dependencies = package["dependencies"]
    assert {"@hubspot/ui-extensions", "react"} <= set(dependencies)
    assert dependencies["@hubspot/ui-extensions"] == "^0.17.0"  # current; its /testing utilities run the card tests
    assert package["scripts"]["test"] == "vitest run"
