"""Custom objects and fields read from SFDX source metadata, and the values each field type accepts.

An SFDX source tree holds ``objects/X__c/X__c.object-meta.xml`` (label, nameField) and
``objects/X__c/fields/Y__c.field-meta.xml`` (one ``<CustomField>`` each). Folders of standard objects
(``objects/Opportunity/fields/...``) add custom fields to them. :func:`load_metadata` turns such a tree into plain
dataclasses; the sandbox org deploys them (``SandboxOrg.deploy_metadata``) and a contract test can check what
okrsync's writer sends against them with :func:`check_value`.

Value rules follow the REST API: https://developer.salesforce.com/docs/atlas.en-us.api.meta/api/field_types.htm
and the metadata field types: https://developer.salesforce.com/docs/atlas.en-us.api_meta.meta/api_meta/customfield.htm
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from connectors.sandbox import schema as sch

DEFAULT_METADATA_DIR = Path(__file__).resolve().parents[2] / "deploy" / "salesforce" / "force-app" / "main" / "default"

TEXT_TYPES = frozenset({"Text", "TextArea", "LongTextArea", "Html", "Email", "Phone", "Url", "Picklist"})
NUMBER_TYPES = frozenset({"Number", "Percent", "Currency"})
LOOKUP_TYPES = frozenset({"Lookup", "MasterDetail"})
READ_ONLY_TYPES = frozenset({"AutoNumber", "Summary"})
# Lengths the platform fixes for types whose metadata carries none.
_DEFAULT_LENGTHS = {"TextArea": 255, "Email": 80, "Phone": 40, "Url": 255, "Picklist": 255}
_DESCRIBE_TYPES = {
    "Text": sch.STRING,
    "AutoNumber": sch.STRING,
    "TextArea": sch.TEXTAREA,
    "LongTextArea": sch.TEXTAREA,
    "Html": sch.TEXTAREA,
    "Email": sch.EMAIL,
    "Phone": sch.STRING,
    "Url": sch.STRING,
    "Picklist": sch.PICKLIST,
    "Number": sch.DOUBLE,
    "Percent": sch.PERCENT,
    "Currency": sch.CURRENCY,
    "Checkbox": sch.BOOLEAN,
    "Date": sch.DATE,
    "DateTime": sch.DATETIME,
    "Lookup": sch.REFERENCE,
    "MasterDetail": sch.REFERENCE,
}
# The reverse, for fields the sandbox models without metadata (standard fields): no length or range limits.
_METADATA_TYPES = {
    sch.ID: "Id",
    sch.STRING: "Text",
    sch.TEXTAREA: "LongTextArea",
    sch.EMAIL: "Email",
    sch.REFERENCE: "Lookup",
    sch.PICKLIST: "Picklist",
    sch.BOOLEAN: "Checkbox",
    sch.INT: "Number",
    sch.DOUBLE: "Number",
    sch.CURRENCY: "Currency",
    sch.PERCENT: "Percent",
    sch.DATE: "Date",
    sch.DATETIME: "DateTime",
}
SYSTEM_FIELDS = ("Id", "IsDeleted", "CreatedDate", "LastModifiedDate", "SystemModstamp")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|z|[+-]\d{2}:?\d{2})?")


class MetadataError(ValueError):
    """An SFDX metadata file that cannot be read as a custom object or field."""


@dataclass(frozen=True)
class FieldMetadata:
    """One field: its API name, label and SFDX type with the type's constraints."""

    name: str
    label: str
    type: str  # SFDX type name: Text, LongTextArea, Number, Percent, Checkbox, DateTime, Lookup, ...
    length: int | None = None
    precision: int | None = None
    scale: int | None = None
    required: bool = False
    external_id: bool = False
    unique: bool = False
    reference_to: str | None = None  # None on a Lookup the sandbox models without metadata: any SObject
    # The child relationship (the parent's related list: Key_Results for OKR_Key_Result__c.Objective__c); the
    # record's own way to the parent is `parent_relationship` (Objective__r).
    relationship_name: str | None = None
    default_value: str | None = None
    read_only: bool = False

    @property
    def max_length(self) -> int | None:
        """Longest text value the field stores, or None when unlimited (or not a text field)."""
        if self.type not in TEXT_TYPES:
            return None
        return self.length or _DEFAULT_LENGTHS.get(self.type)

    @property
    def parent_relationship(self) -> str | None:
        """How a record names its parent through this lookup: Objective__c -> Objective__r, AccountId -> Account."""
        if self.type not in LOOKUP_TYPES:
            return None
        if self.name.endswith("__c"):
            return self.name[:-3] + "__r"
        return self.name[:-2] if self.name.endswith("Id") else None

    @property
    def describe_type(self) -> str:
        """The field type as describe() names it (string, double, boolean, reference, ...)."""
        return _DESCRIBE_TYPES.get(self.type, sch.STRING)


@dataclass(frozen=True)
class ObjectMetadata:
    """One SObject: a custom object with all its fields, or a standard object (``standard``) with the extra fields
    the metadata adds to it."""

    name: str
    label: str
    fields: dict[str, FieldMetadata] = field(default_factory=dict)
    plural_label: str | None = None
    name_field_type: str | None = None  # "Text" or "AutoNumber" for custom objects
    name_field_label: str | None = None
    name_display_format: str | None = None  # AutoNumber only, e.g. "C-{000000}"
    standard: bool = False

    @property
    def external_id_fields(self) -> list[str]:
        """API names of the fields usable as an upsert key."""
        return [name for name, meta in self.fields.items() if meta.external_id]

    def name_field(self) -> FieldMetadata | None:
        """The Name field of a custom object (read-only when it is an AutoNumber), None for a standard object."""
        if self.name_field_type is None:
            return None
        auto = self.name_field_type == "AutoNumber"
        label = self.name_field_label or "Name"
        return FieldMetadata("Name", label, self.name_field_type, length=None if auto else 80, read_only=auto)


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def _read(path: Path) -> ET.Element:
    data = path.read_bytes()
    # SFDX files never declare a DTD; refusing one rules out entity expansion tricks without defusedxml.
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise MetadataError(f"{path}: a DOCTYPE or ENTITY declaration is not allowed in metadata")
    try:
        return ET.fromstring(data)
    except ET.ParseError as exc:
        raise MetadataError(f"{path}: not well-formed XML ({exc})") from exc


def _children(element: ET.Element) -> dict[str, ET.Element]:
    return {_local(child.tag): child for child in element}


def _text(children: dict[str, ET.Element], name: str) -> str | None:
    element = children.get(name)
    return element.text.strip() if element is not None and element.text else None


def _int(children: dict[str, ET.Element], name: str, path: Path) -> int | None:
    text = _text(children, name)
    if text is None:
        return None
    try:
        return int(text)
    except ValueError as exc:
        raise MetadataError(f"{path}: <{name}> must be a whole number, not '{text}'") from exc


def _flag(children: dict[str, ET.Element], name: str) -> bool:
    return (_text(children, name) or "false").lower() == "true"


def parse_field(path: Path) -> FieldMetadata:
    """Read one ``*.field-meta.xml`` file."""
    root = _read(path)
    if _local(root.tag) != "CustomField":
        raise MetadataError(f"{path}: expected a <CustomField> document, found <{_local(root.tag)}>")
    children = _children(root)
    name = _text(children, "fullName") or path.name.removesuffix(".field-meta.xml")
    kind = _text(children, "type")
    if kind is None:
        # Formula fields declare their result type; a field with neither is broken metadata.
        raise MetadataError(f"{path}: field {name} has no <type>")
    reference_to = _text(children, "referenceTo")
    if kind in LOOKUP_TYPES and reference_to is None:
        raise MetadataError(f"{path}: {kind} field {name} needs <referenceTo>")
    return FieldMetadata(
        name=name,
        label=_text(children, "label") or name,
        type=kind,
        length=_int(children, "length", path),
        precision=_int(children, "precision", path),
        scale=_int(children, "scale", path),
        required=_flag(children, "required"),
        external_id=_flag(children, "externalId"),
        unique=_flag(children, "unique"),
        reference_to=reference_to,
        relationship_name=_text(children, "relationshipName"),
        default_value=_text(children, "defaultValue"),
        read_only=kind in READ_ONLY_TYPES or "formula" in children,
    )


def _parse_object(name: str, path: Path | None, fields: dict[str, FieldMetadata]) -> ObjectMetadata:
    standard = not name.endswith("__c")
    if path is None:
        if not standard:
            raise MetadataError(f"custom object {name} has fields but no {name}.object-meta.xml")
        return ObjectMetadata(name=name, label=name, fields=fields, standard=True)
    root = _read(path)
    if _local(root.tag) != "CustomObject":
        raise MetadataError(f"{path}: expected a <CustomObject> document, found <{_local(root.tag)}>")
    children = _children(root)
    name_field = _children(children["nameField"]) if "nameField" in children else {}
    if not standard and not name_field:
        raise MetadataError(f"{path}: custom object {name} has no <nameField>")
    return ObjectMetadata(
        name=name,
        label=_text(children, "label") or name,
        fields=fields,
        plural_label=_text(children, "pluralLabel"),
        name_field_type=None if standard else _text(name_field, "type") or "Text",
        name_field_label=_text(name_field, "label"),
        name_display_format=_text(name_field, "displayFormat"),
        standard=standard,
    )


def load_metadata(root: Path) -> dict[str, ObjectMetadata]:
    """Read every object under `root` (an SFDX project, package directory or ``objects`` folder) by API name.

    Standard objects (no ``__c`` suffix) hold only the fields the metadata adds and have ``standard=True``.
    """
    objects: dict[str, Path | None] = {}
    fields: dict[str, dict[str, FieldMetadata]] = {}
    for path in sorted(root.rglob("*.object-meta.xml")):
        objects[path.parent.name] = path
    for path in sorted(root.rglob("*.field-meta.xml")):
        if path.parent.name != "fields":
            continue
        owner = path.parent.parent.name
        objects.setdefault(owner, None)
        parsed = parse_field(path)
        fields.setdefault(owner, {})[parsed.name] = parsed
    if not objects:
        raise MetadataError(f"{root}: no *.object-meta.xml or *.field-meta.xml files found")
    return {name: _parse_object(name, objects[name], fields.get(name, {})) for name in sorted(objects)}


def field_for_describe_type(name: str, describe_type: str) -> FieldMetadata:
    """Rules for a field the sandbox models without metadata (a standard field): its type, no length/range limit."""
    return FieldMetadata(
        name,
        name,
        _METADATA_TYPES.get(describe_type, "Text"),
        read_only=name in SYSTEM_FIELDS or describe_type == sch.ID,
    )


# --- values ------------------------------------------------------------------------------------------------------
class BadValue(Exception):
    """A value that cannot be read as the field's type (JSON_PARSER_ERROR in REST, a failed row in Bulk)."""

    def __init__(self, meta: FieldMetadata, value: Any, xsd_type: str) -> None:
        super().__init__(f"'{value}' is not a valid value for the type xsd:{xsd_type}")
        self.meta, self.value, self.xsd_type = meta, value, xsd_type

    def json_message(self) -> str:
        """What Salesforce's JSON parser (Jackson) says about the value: "Cannot deserialize instance of double from
        VALUE_STRING value abc or request may be missing a required field"."""
        value = self.value
        if isinstance(value, bool):
            token = f"VALUE_{str(value).upper()}"
        elif isinstance(value, dict | list):
            token = "START_OBJECT" if isinstance(value, dict) else "START_ARRAY"
        else:
            token = "VALUE_STRING" if isinstance(value, str) else "VALUE_NUMBER_" + type(value).__name__.upper()
        java_type = {"dateTime": "datetime", "string": "String"}.get(self.xsd_type, self.xsd_type)
        where = f"from {token} value {value} or request may be missing a required field"
        return f"Cannot deserialize instance of {java_type} {where}"


def _xsd_type(meta: FieldMetadata) -> str:
    if meta.type in NUMBER_TYPES:
        return "double"
    return {"Checkbox": "boolean", "DateTime": "dateTime", "Date": "date"}.get(meta.type, "string")


def coerce_value(meta: FieldMetadata, value: Any, *, from_csv: bool = False) -> Any:
    """Turn a JSON value (or a Bulk CSV cell with `from_csv`) into the stored value; raise BadValue when it cannot be
    read as the field's type. None and "" become None (Salesforce stores no empty strings; a Checkbox becomes
    False). Numbers are rounded to the field's scale."""
    if value is None or value == "":
        return False if meta.type == "Checkbox" else None
    xsd = _xsd_type(meta)
    if isinstance(value, dict | list):
        raise BadValue(meta, value, xsd)
    if meta.type in NUMBER_TYPES:
        if isinstance(value, bool):
            raise BadValue(meta, value, xsd)
        try:
            number = Decimal(str(value).strip()) if isinstance(value, str) else Decimal(repr(value))
        except InvalidOperation as exc:
            raise BadValue(meta, value, xsd) from exc
        if not number.is_finite():
            raise BadValue(meta, value, xsd)
        if meta.scale is not None:
            number = number.quantize(Decimal(1).scaleb(-meta.scale), rounding=ROUND_HALF_UP)
        return float(number)
    if meta.type == "Checkbox":
        if isinstance(value, bool):
            return value
        text = value.strip().lower() if isinstance(value, str) else None
        # Bulk CSV also takes 1/0; the REST JSON parser takes only true/false (as literals or strings).
        if text in ("true", "false") or (from_csv and text in ("1", "0")):
            return text in ("true", "1")
        raise BadValue(meta, value, xsd)
    if meta.type == "DateTime":
        if not isinstance(value, str) or not _DATETIME.fullmatch(value.strip()):
            raise BadValue(meta, value, xsd)
        try:
            return sch.format_datetime(sch.parse_datetime(value))
        except ValueError as exc:
            raise BadValue(meta, value, xsd) from exc
    if meta.type == "Date":
        if not isinstance(value, str) or not _DATE.fullmatch(value.strip()):
            raise BadValue(meta, value, xsd)
        return value.strip()
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else str(value)


def check_value(meta: FieldMetadata, value: Any) -> tuple[str, str] | None:
    """The (statusCode, message) Salesforce answers for a stored-form `value` that breaks the field's limits
    (text length, digits before the decimal point), or None when it fits."""
    if value is None:
        return None
    limit = meta.max_length
    if limit is not None and isinstance(value, str) and len(value) > limit:
        return "STRING_TOO_LONG", f"{meta.label}: data value too large: {value[:30]}... (max length={limit})"
    if meta.type in NUMBER_TYPES and meta.precision is not None and isinstance(value, int | float):
        digits = meta.precision - (meta.scale or 0)
        if math.isfinite(value) and abs(value) >= 10**digits:
            return "NUMBER_OUTSIDE_VALID_RANGE", f"{meta.label}: value outside of valid range on numeric field: {value}"
    return None
