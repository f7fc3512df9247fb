"""What the sandbox HubSpot portal knows about its object types: custom object schemas, association definitions,
property definitions and groups (:class:`CustomObjects`, which :class:`HubSpotPortal` inherits), and the checks
HubSpot applies to the definitions and property values a client sends.

- Custom objects: https://developers.hubspot.com/docs/guides/api/crm/objects/custom-objects
- Properties and groups: https://developers.hubspot.com/docs/guides/api/crm/properties
- Batch upsert: https://developers.hubspot.com/docs/api-reference/crm-custom-objects-v3/batch/post-crm-v3-objects-objectType-batch-upsert

Shapes are those hubspot-api-client 12 validates (ObjectSchema, ModelProperty, PropertyGroup, AssociationDefinition):
every property carries name, label, type, fieldType, groupName, description and options.

Property values are checked the way HubSpot checks a batch: every invalid value of every input is collected and a
single one refuses the whole batch with 400 VALIDATION_ERROR, message ``Property values were not valid: [...]``
(a compact JSON list of ``{"isValid": false, "message", "error", "name", ...}``). Values are stored as strings:
numbers as sent, bools as "true"/"false", datetimes as ISO 8601 with milliseconds, dates as YYYY-MM-DD.
"""

from __future__ import annotations

import json
import math
import re
import threading
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

PROPERTY_TYPES: dict[str, tuple[str, ...]] = {
    "bool": ("booleancheckbox", "checkbox", "radio", "select"),
    "date": ("date",),
    "datetime": ("date",),
    "enumeration": ("select", "radio", "checkbox", "booleancheckbox"),
    "number": ("number", "calculation_equation"),
    "phone_number": ("phonenumber", "text"),
    "string": ("text", "textarea", "file", "html", "phonenumber"),
}
READ_ONLY_PROPERTIES = frozenset(
    {"hs_object_id", "createdate", "hs_createdate", "hs_lastmodifieddate", "lastmodifieddate"}
)
MAX_STRING_LENGTH = 65_536
PROPERTY_NAME = re.compile(r"[a-z][a-z0-9_]{0,99}")
_OBJECT_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


class ApiError(Exception):
    """An error answer: HTTP status, HubSpot category and message, plus extra body fields (errors, links...)."""

    def __init__(self, status: int, category: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.category, self.message, self.extra = status, category, message, extra


class Conflict(ValueError):
    """Something with that name already exists (the API answers 409 OBJECT_ALREADY_EXISTS)."""


def refuse(message: str, **extra: Any) -> ApiError:
    """A 400 VALIDATION_ERROR."""
    return ApiError(400, "VALIDATION_ERROR", message, **extra)


def format_timestamp(value: datetime) -> str:
    """HubSpot's datetime format: ISO 8601 UTC with milliseconds and Z."""
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


class CustomObjects:
    """Schemas, association definitions, property definitions and groups of a portal (a mixin of HubSpotPortal,
    which owns the lock, the record tables and the standard object types)."""

    _lock: threading.RLock
    _records: dict[str, dict[int, dict[str, Any]]]
    _next_id: dict[str, int]
    _type_ids: dict[tuple[str, str], int]
    _user_defined: set[tuple[str, str]]
    _next_type_id: int
    _schemas: dict[str, dict[str, Any]]
    _association_definitions: list[dict[str, Any]]
    _properties: dict[str, dict[str, dict[str, Any]]]
    _groups: dict[str, dict[str, dict[str, Any]]]
    _removed: dict[str, set[str]]
    version: int
    portal_id: int
    tier: str

    if TYPE_CHECKING:

        def kind_of(self, name: str) -> str | None: ...
        def singular(self, kind: str) -> str: ...
        def type_id(self, kind: str) -> str: ...
        def now(self) -> datetime: ...
        def observed_properties(self, kind: str) -> frozenset[str]: ...
        def _table(self, kind: str) -> dict[int, dict[str, Any]]: ...

    @property
    def custom_objects_allowed(self) -> bool:
        """Custom objects need an Enterprise subscription."""
        return self.tier == "enterprise"

    def define_association(self, from_kind: str, to_kind: str, *, name: str | None = None) -> dict[str, Any]:
        """Create an association definition (AssociationDefinition shape) between two types, one of them custom;
        the first one between two types becomes their default. Conflict when that name exists already."""
        with self._lock:
            source, target = self.kind_of(from_kind), self.kind_of(to_kind)
            if source is None or target is None:
                raise KeyError(f"Unable to infer object type from: {from_kind if source is None else to_kind}")
            if source not in self._schemas and target not in self._schemas:
                raise ValueError("An association definition needs a custom object on one side")
            name = name or f"{self.singular(source)}_to_{self.singular(target)}"
            pair = {self.type_id(source), self.type_id(target)}
            for known in self._association_definitions:
                if known["name"] == name and {known["fromObjectTypeId"], known["toObjectTypeId"]} == pair:
                    raise Conflict(f"Association definition {name} already exists")
            forward, backward = self._next_type_id, self._next_type_id + 1
            self._next_type_id += 2
            self._type_ids.setdefault((source, target), forward)
            self._type_ids.setdefault((target, source), backward)
            self._user_defined.update({(source, target), (target, source)})
            stamp = format_timestamp(self.now())
            definition = {
                "id": str(forward),
                "fromObjectTypeId": self.type_id(source),
                "toObjectTypeId": self.type_id(target),
                "name": name,
                "createdAt": stamp,
                "updatedAt": stamp,
            }
            self._association_definitions.append(definition)
            self.version += 1
            return dict(definition)

    # --- schemas -------------------------------------------------------------------------------------------
    def create_schema(
        self,
        *,
        name: str,
        labels: dict[str, str],
        properties: list[dict[str, Any]],
        required_properties: Iterable[str] = (),
        associated_objects: Iterable[str] = (),
        primary_display_property: str | None = None,
        secondary_display_properties: Iterable[str] = (),
        searchable_properties: Iterable[str] = (),
        description: str | None = None,
    ) -> dict[str, Any]:
        """Define a custom object from validated property definitions (see :func:`schema_request`) and return its
        schema. PermissionError below Enterprise, Conflict for a taken name, KeyError for an unknown associated
        object type."""
        with self._lock:
            if not self.custom_objects_allowed:
                raise PermissionError(f"custom objects need an Enterprise subscription (portal tier: {self.tier})")
            if any(schema["name"].lower() == name.lower() for schema in self._schemas.values()):
                raise Conflict(f"Object type already exists with name {name}")
            targets = []
            for associated in associated_objects:
                kind = self.kind_of(associated)
                if kind is None:
                    raise KeyError(f"Unable to infer object type from: {associated}")
                targets.append(kind)
            number = len(self._schemas) + 1
            type_id = f"2-{number}"
            stamp = format_timestamp(self.now())
            self._schemas[type_id] = {
                "id": str(100 + number),
                "objectTypeId": type_id,
                "fullyQualifiedName": f"p{self.portal_id}_{name}",
                "name": name,
                "labels": dict(labels),
                "description": description,
                "requiredProperties": list(required_properties),
                "searchableProperties": list(searchable_properties),
                "primaryDisplayProperty": primary_display_property,
                "secondaryDisplayProperties": list(secondary_display_properties),
                "portalId": self.portal_id,
                "archived": False,
                "createdAt": stamp,
                "updatedAt": stamp,
            }
            # ids stay numeric and apart from every other type's: the nth type counts from n * 10,000,000 + 1
            self._next_id[type_id] = (len(self._records) + 1) * 10_000_000 + 1
            self._records[type_id] = {}
            self._properties[type_id] = {definition["name"]: dict(definition) for definition in properties}
            for target in targets:
                self.define_association(type_id, target)
            self.version += 1
            return self._schema_view(type_id)

    def _schema_view(self, type_id: str) -> dict[str, Any]:
        definitions = self._association_definitions
        return {
            **self._schemas[type_id],
            "labels": dict(self._schemas[type_id]["labels"]),
            "properties": [dict(p) for p in self._properties.get(type_id, {}).values()],
            "associations": [dict(d) for d in definitions if type_id in (d["fromObjectTypeId"], d["toObjectTypeId"])],
        }

    def schema(self, name: str) -> dict[str, Any] | None:
        """A custom object's schema in API shape (ObjectSchema), by name, fullyQualifiedName or objectTypeId."""
        with self._lock:
            kind = self.kind_of(name)
            return self._schema_view(kind) if kind in self._schemas else None

    def schemas(self) -> list[dict[str, Any]]:
        """Every custom object schema, in creation order."""
        with self._lock:
            return [self._schema_view(type_id) for type_id in self._schemas]

    # --- properties ----------------------------------------------------------------------------------------
    def property_definition(self, kind: str, name: str) -> dict[str, Any] | None:
        """The created (or schema-defined) definition of a property, or None (also for merely observed ones)."""
        kind = self.kind_of(kind) or kind
        return self._properties.get(kind, {}).get(name)

    def defined_properties(self, kind: str) -> list[dict[str, Any]]:
        """Created and schema-defined property definitions of a type, in creation order."""
        kind = self.kind_of(kind) or kind
        with self._lock:
            return [dict(definition) for definition in self._properties.get(kind, {}).values()]

    def has_property(self, kind: str, name: str) -> bool:
        """Whether a property exists on a type (defined, or observed on a standard type and not deleted)."""
        return self.property_definition(kind, name) is not None or name in self.observed_properties(kind)

    def add_property(self, kind: str, definition: dict[str, Any]) -> dict[str, Any]:
        """Store a validated definition (see :func:`property_definition`); Conflict if the property exists."""
        with self._lock:
            kind = self.kind_of(kind) or kind
            self._table(kind)
            name = definition["name"]
            if self.has_property(kind, name):
                raise Conflict(f"Property named '{name}' already exists.")
            self._properties.setdefault(kind, {})[name] = dict(definition)
            self._removed.get(kind, set()).discard(name)
            self.version += 1
            return dict(definition)

    def remove_property(self, object_type: str, name: str) -> None:
        """Delete a property as an admin would: gone from the definitions and from every record of the type.
        KeyError when it does not exist, ValueError for one HubSpot defines."""
        with self._lock:
            kind = self.kind_of(object_type) or object_type
            table = self._table(kind)
            if not self.has_property(kind, name):
                raise KeyError(f"Property {name} does not exist on {object_type}")
            definition = self.property_definition(kind, name)
            if name in READ_ONLY_PROPERTIES or (definition and definition.get("hubspotDefined")):
                raise ValueError(f"Property {name} is defined by HubSpot and cannot be deleted")
            self._properties.get(kind, {}).pop(name, None)
            self._removed.setdefault(kind, set()).add(name)
            for record_id, row in list(table.items()):
                if name in row["properties"]:  # copy-on-write, like every other change
                    values = {key: value for key, value in row["properties"].items() if key != name}
                    table[record_id] = {**row, "properties": values}
            self.version += 1

    # --- property groups -----------------------------------------------------------------------------------
    def default_group(self, kind: str) -> str:
        """The property group HubSpot files a type's properties under unless told otherwise."""
        kind = self.kind_of(kind) or kind
        singular = self.singular(kind)
        return f"{singular.lower()}_information" if kind in self._schemas else f"{singular}information"

    def property_group(self, kind: str, name: str) -> dict[str, Any] | None:
        """A property group (PropertyGroup shape) of a type, created or the type's default one, or None."""
        kind = self.kind_of(kind) or kind
        group = self._groups.get(kind, {}).get(name)
        if group is None and name == self.default_group(kind):
            group = {"name": name, "label": f"{self.singular(kind).title()} information", "displayOrder": -1}
        return {**group, "archived": False} if group else None

    def property_groups(self, kind: str) -> list[dict[str, Any]]:
        """The default group and the created ones of a type."""
        kind = self.kind_of(kind) or kind
        names = dict.fromkeys([self.default_group(kind), *self._groups.get(kind, {})])
        return [group for name in names if (group := self.property_group(kind, name))]

    def add_property_group(self, kind: str, *, name: str, label: str, display_order: int = -1) -> dict[str, Any]:
        """Create a property group; Conflict if the type has one of that name."""
        with self._lock:
            kind = self.kind_of(kind) or kind
            self._table(kind)
            if self.property_group(kind, name) is not None:
                raise Conflict(f"A property group named '{name}' already exists.")
            self._groups.setdefault(kind, {})[name] = {"name": name, "label": label, "displayOrder": display_order}
            self.version += 1
            return {"name": name, "label": label, "displayOrder": display_order, "archived": False}


# --- definitions sent by clients ---------------------------------------------------------------------------
# PropertyCreate, the body of POST /crm/v3/properties/{objectType} (custom object types included), requires these;
# the properties of a new custom object's schema (ObjectTypePropertyCreate) do not require groupName.
# https://developers.hubspot.com/docs/api-reference/latest/crm/properties/create-property (hubspot-api-client 12's
# PropertyCreate, generated from the published spec, refuses to build one without groupName too)
PROPERTY_CREATE_REQUIRED = ("name", "label", "type", "fieldType", "groupName")


def property_definition(
    body: Any, *, default_group: str | None, now: str, hubspot_defined: bool = False
) -> dict[str, Any]:
    """A property definition in ModelProperty shape from a create request: a PropertyCreate (``default_group``
    None: every field of ``PROPERTY_CREATE_REQUIRED`` must be set, or HubSpot answers 400 "Some required fields were
    not set") or a property of an ObjectSchemaEgg (which lands in ``default_group`` unless it names one); raises a
    400 naming the property when HubSpot would refuse it."""
    if not isinstance(body, dict):
        raise refuse("Each property must be an object with name, label, type and fieldType")
    if default_group is None:
        missing = [name for name in PROPERTY_CREATE_REQUIRED if body.get(name) in (None, "")]
        if missing:
            raise refuse(f"Invalid input JSON: Some required fields were not set: [{', '.join(missing)}]")
    name = body.get("name")
    if not isinstance(name, str) or not PROPERTY_NAME.fullmatch(name):
        raise refuse(
            f"Property name '{name}' is not valid: use lowercase letters, digits and underscores, starting with a "
            "letter (at most 100 characters)"
        )
    if not isinstance(body.get("label"), str) or not body["label"].strip():
        raise refuse(f"Property {name}: label is required")
    kind, field_type = body.get("type"), body.get("fieldType")
    if kind not in PROPERTY_TYPES:
        raise refuse(f"Property {name}: type '{kind}' is not one of {', '.join(PROPERTY_TYPES)}")
    if field_type not in PROPERTY_TYPES[kind]:
        allowed = ", ".join(PROPERTY_TYPES[kind])
        raise refuse(f"Property {name}: fieldType '{field_type}' is not valid for type {kind} (use {allowed})")
    unique = bool(body.get("hasUniqueValue"))
    if unique and kind not in ("string", "number"):
        raise refuse(f"Property {name}: hasUniqueValue is only allowed on string and number properties")
    options = body.get("options") or []
    if kind == "bool" and not options:
        options = [{"label": "Yes", "value": "true"}, {"label": "No", "value": "false"}]
    if kind == "enumeration" and not options:
        raise refuse(f"Property {name}: an enumeration needs options")
    if not all(isinstance(o, dict) and isinstance(o.get("value"), str) and o.get("label") for o in options):
        raise refuse(f"Property {name}: every option needs a label and a string value")
    return _model_property(
        name,
        label=body["label"],
        kind=kind,
        field_type=field_type,
        group=str(body.get("groupName") or default_group),
        now=now,
        hubspot_defined=hubspot_defined,
        unique=unique,
        description=body.get("description") or "",
        display_order=body.get("displayOrder", -1),
        hidden=bool(body.get("hidden")),
        form_field=bool(body.get("formField")),
        options=[
            {
                "label": option["label"],
                "value": option["value"],
                "description": option.get("description") or "",
                "displayOrder": option.get("displayOrder", index),
                "hidden": bool(option.get("hidden")),
            }
            for index, option in enumerate(options)
        ],
    )


def _model_property(
    name: str,
    *,
    label: str,
    kind: str,
    field_type: str,
    group: str,
    now: str,
    hubspot_defined: bool = False,
    unique: bool = False,
    description: str = "",
    display_order: int = -1,
    hidden: bool = False,
    form_field: bool = False,
    options: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    return {
        "name": name,
        "label": label,
        "type": kind,
        "fieldType": field_type,
        "groupName": group,
        "description": description,
        "options": options or [],
        "displayOrder": display_order,
        "calculated": False,
        "externalOptions": False,
        "hasUniqueValue": unique,
        "hidden": hidden,
        "formField": form_field,
        "hubspotDefined": hubspot_defined,
        "archived": False,
        "createdAt": now,
        "updatedAt": now,
        "modificationMetadata": {
            "archivable": not hubspot_defined,
            "readOnlyDefinition": hubspot_defined,
            "readOnlyValue": name in READ_ONLY_PROPERTIES,
        },
    }


def list_properties(portal: CustomObjects, kind: str, *, now: str) -> list[dict[str, Any]]:
    """The properties of a type in ModelProperty shape: the defined ones, then (standard types, which have no
    schema in the sandbox) every other property seen on a record, as a text string, by name."""
    defined = portal.defined_properties(kind)
    seen = sorted(portal.observed_properties(kind) - {definition["name"] for definition in defined})
    group = portal.default_group(kind)
    return defined + [
        _model_property(name, label=name, kind="string", field_type="text", group=group, now=now) for name in seen
    ]


def resolve_kind(portal: CustomObjects, name: str) -> str:
    """The portal's key for an object type in a path (plural, objectTypeId, custom name); 400 if unknown."""
    kind = portal.kind_of(name)
    if kind is None:
        raise refuse(f"Unable to infer object type from: {name}")
    return kind


def schema_request(body: Any, *, now: str) -> dict[str, Any]:
    """Keyword arguments for :meth:`CustomObjects.create_schema` from an ObjectSchemaEgg, with the properties
    every custom object gets (hs_object_id, hs_createdate, hs_lastmodifieddate); raises a 400 on what HubSpot
    refuses, naming the field or property."""
    if not isinstance(body, dict) or body.get("__invalid__"):
        raise refuse("Invalid input JSON: the request body must be an object schema")
    required = ("name", "labels", "properties", "requiredProperties", "associatedObjects")
    missing = [field for field in required if body.get(field) is None]
    if missing:
        raise refuse(f"Some required fields were not set: [{', '.join(missing)}]")
    name, labels = body["name"], body["labels"]
    if not isinstance(name, str) or not _OBJECT_NAME.fullmatch(name):
        raise refuse(f"Object name '{name}' is not valid: use letters, digits and underscores, starting with a letter")
    if not isinstance(labels, dict) or not all(isinstance(labels.get(k), str) for k in ("singular", "plural")):
        raise refuse("labels needs both singular and plural")
    if not isinstance(body["properties"], list) or not isinstance(body["associatedObjects"], list):
        raise refuse("properties and associatedObjects must be lists")
    group = f"{name.lower()}_information"
    properties = [property_definition(item, default_group=group, now=now) for item in body["properties"]]
    names = [definition["name"] for definition in properties]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise refuse(f"Properties are defined twice: {', '.join(duplicates)}")
    builtin = [
        property_definition(
            {"name": n, "label": label, "type": kind, "fieldType": field},
            default_group=group,
            now=now,
            hubspot_defined=True,
        )
        for n, label, kind, field in (
            ("hs_object_id", "Record ID", "number", "number"),
            ("hs_createdate", "Object create date/time", "datetime", "date"),
            ("hs_lastmodifieddate", "Object last modified date/time", "datetime", "date"),
        )
        if n not in names
    ]
    secondary, searchable = body.get("secondaryDisplayProperties") or [], body.get("searchableProperties") or []
    primary = body.get("primaryDisplayProperty")
    for field, wanted in (
        ("requiredProperties", body["requiredProperties"]),
        ("secondaryDisplayProperties", secondary),
        ("searchableProperties", searchable),
        ("primaryDisplayProperty", [primary] if primary else []),
    ):
        unknown = [item for item in wanted if item not in names]
        if unknown:
            raise refuse(f"{field} names properties the schema does not define: {', '.join(map(str, unknown))}")
    return {
        "name": name,
        "labels": {"singular": labels["singular"], "plural": labels["plural"]},
        "properties": properties + builtin,
        "required_properties": body["requiredProperties"],
        "associated_objects": [str(item) for item in body["associatedObjects"]],
        "primary_display_property": primary,
        "secondary_display_properties": secondary,
        "searchable_properties": searchable,
        "description": body.get("description"),
    }


# --- property values ---------------------------------------------------------------------------------------
_STRING = {"name": "", "type": "string", "fieldType": "text", "hasUniqueValue": False}


def property_lookup(portal: CustomObjects, kind: str) -> Callable[[str], dict[str, Any] | None]:
    """name -> definition for the values of a type: a created/schema definition, an untyped string for a
    property merely observed on records of a standard type, or None when the property does not exist."""
    observed = portal.observed_properties(kind)

    def lookup(name: str) -> dict[str, Any] | None:
        definition = portal.property_definition(kind, name)
        if definition is None and name in observed:
            return {**_STRING, "name": name}
        return definition

    return lookup


def _issue(name: str, error: str, message: str, portal_id: int, value: str | None = None) -> dict[str, Any]:
    # the order HubSpot writes these fields in (isValid, message, error, name first)
    issue: dict[str, Any] = {"isValid": False, "message": message, "error": error, "name": name}
    issue["localizedErrorMessage"] = message
    if value is not None:
        issue["propertyValue"] = value
    issue["portalId"] = portal_id
    return issue


def _epoch(text: str) -> datetime | None:
    try:
        if text.lstrip("-").isdigit():
            return datetime.fromtimestamp(int(text) / 1000, UTC)
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (ValueError, OverflowError, OSError):
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _normalize(definition: dict[str, Any], text: str) -> tuple[str, tuple[str, str] | None]:
    """(stored value, (error code, message) or None) for one non-empty value."""
    kind = definition["type"]
    if kind == "number":
        if not _NUMBER.fullmatch(text.strip()) or not math.isfinite(float(text)):
            return text, ("INVALID_FLOAT", f"{text} was not a valid number.")
        return text.strip(), None
    if kind == "bool":
        if text.lower() not in ("true", "false"):
            return text, ("INVALID_OPTION", f"{text} was not one of the allowed options: [true, false]")
        return text.lower(), None
    if kind == "enumeration":
        allowed = [option["value"] for option in definition.get("options") or []]
        parts = text.split(";") if definition.get("fieldType") == "checkbox" else [text]
        wrong = next((part for part in parts if part not in allowed), None)
        if wrong is not None:
            return text, ("INVALID_OPTION", f"{wrong} was not one of the allowed options: [{', '.join(allowed)}]")
        return text, None
    if kind == "datetime":
        moment = _epoch(text)
        if moment is None:
            return text, ("INVALID_DATE", f"{text} was not a valid datetime: use ISO 8601 or epoch milliseconds.")
        return format_timestamp(moment), None
    if kind == "date":
        try:
            return date.fromisoformat(text).isoformat(), None
        except ValueError:
            moment = _epoch(text)
        if moment is None:
            return text, ("INVALID_DATE", f"{text} was not a valid date: use YYYY-MM-DD or epoch milliseconds.")
        if moment.time() != datetime.min.time():  # the wording HubSpot users report for this (unverified)
            clock = f"{moment.hour}:{moment.minute}:{moment.second}.{moment.microsecond // 1000}"
            return text, ("INVALID_DATE", f"{text} is at {clock} UTC, not midnight!")
        return moment.date().isoformat(), None
    if len(text) > MAX_STRING_LENGTH:  # the echoed propertyValue is cut short so the 400 stays readable
        return text[:40], ("INVALID_STRING_LENGTH", f"Value is {len(text)} characters long; the limit is 65536.")
    return text, None


def check_values(
    lookup: Callable[[str], dict[str, Any] | None], inputs: list[dict[str, Any]], *, portal_id: int
) -> list[dict[str, str | None]]:
    """The values of every input, normalized to the strings HubSpot stores (None clears a value); one invalid
    value anywhere raises the batch-level 400 listing every distinct invalid value."""
    invalid: dict[tuple[str, str, str | None], dict[str, Any]] = {}
    normalized: list[dict[str, str | None]] = []

    def flag(name: str, code: str, message: str, value: str | None = None) -> None:
        invalid.setdefault((name, code, value), _issue(name, code, message, portal_id, value))

    for properties in inputs:
        values: dict[str, str | None] = {}
        for name, value in properties.items():
            definition = lookup(name)
            if definition is None:
                flag(name, "PROPERTY_DOESNT_EXIST", f'Property "{name}" does not exist')
                continue
            if name in READ_ONLY_PROPERTIES:
                flag(name, "READ_ONLY_VALUE", f'"{name}" is a read only property; its value cannot be set.')
                continue
            if value is None or value == "":
                values[name] = None if value is None else ""
                continue
            text = ("true" if value else "false") if isinstance(value, bool) else str(value)
            stored, problem = _normalize(definition, text)
            if problem is not None:
                flag(name, *problem, stored)
                continue
            values[name] = stored
        normalized.append(values)
    if invalid:
        raise property_error(list(invalid.values()))
    return normalized


def property_error(invalid: list[dict[str, Any]]) -> ApiError:
    """HubSpot's batch-level 400 for invalid property values (the list is embedded in the message as JSON)."""
    return refuse(
        "Property values were not valid: " + json.dumps(invalid, separators=(",", ":")),
        errors=[
            {"message": issue["message"], "code": issue["error"], "context": {"propertyName": [issue["name"]]}}
            for issue in invalid
        ],
    )
