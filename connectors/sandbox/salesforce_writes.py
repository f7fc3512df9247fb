"""Writes to the sandbox Salesforce org: sObject Collections (upsert by external id, update by Id, delete) and
Bulk API 2.0 ingest jobs, checked against the org's field rules (``SandboxOrg.field_rules``) as Salesforce does.

A request is refused as a whole (an :class:`~connectors.sandbox.salesforce_errors.ApiError`) for what Salesforce
rejects before touching records: an unknown SObject or field, more than 200 records, a JSON value that cannot be
read as the field's type (400 JSON_PARSER_ERROR, as the REST JSON parser answers). Everything else fails one
record: ``{"id": null, "success": false, "errors": [{"statusCode", "message", "fields"}]}``, in request order. A
whole request runs in one org transaction, so allOrNone can roll it back.

Bulk API 2.0 ingest jobs live in ``salesforce_bulk`` and write through the same record rules.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from connectors.sandbox.salesforce_errors import ApiError
from connectors.sandbox.salesforce_metadata import (
    LOOKUP_TYPES,
    BadValue,
    FieldMetadata,
    check_value,
    coerce_value,
)
from connectors.sandbox.schema import case_safe_id, parse_datetime
from connectors.sandbox.store import SandboxOrg

MAX_COLLECTION = 200
_ROLLED_BACK = (
    "ALL_OR_NONE_OPERATION_ROLLED_BACK",
    "Record rolled back because not all records were valid and the request was using AllOrNone header",
)
_READ_ONLY_MESSAGE = (
    "Unable to create/update fields: {}. Please check the security settings of this field and verify that it is "
    "read/write for your profile or permission set."
)


def _error(code: str, message: str, fields: Iterable[str] = ()) -> dict[str, Any]:
    return {"statusCode": code, "message": message, "fields": list(fields)}


@dataclass
class Draft:
    """One record of a write, read against the schema: stored-form values, external-id references and key."""

    sobject: str
    values: dict[str, Any] = field(default_factory=dict)
    refs: dict[str, tuple[str, str, str]] = field(default_factory=dict)  # lookup -> (SObject, ext field, value)
    read_only: list[str] = field(default_factory=list)
    record_id: str | None = None  # update/delete target as sent
    errors: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Outcome:
    """What happened to one record."""

    id: str | None = None
    created: bool = False
    errors: list[dict[str, Any]] = field(default_factory=list)

    def as_json(self, *, with_created: bool) -> dict[str, Any]:
        """The record's entry in a Collections answer."""
        answer: dict[str, Any] = {"id": self.id, "success": not self.errors, "errors": self.errors}
        if with_created:
            answer["created"] = self.created
        return answer


# --- reading records -------------------------------------------------------------------------------------------
def _field(org: SandboxOrg, sobject: str, name: str) -> FieldMetadata | None:
    rules = org.field_rules(sobject)
    if name in rules:
        return rules[name]
    return next((meta for key, meta in rules.items() if key.lower() == name.lower()), None)


def _no_column(name: str, sobject: str) -> ApiError:
    return ApiError(400, "INVALID_FIELD", f"No such column '{name}' on sobject of type {sobject}")


def _reference(org: SandboxOrg, sobject: str, relationship: str, ext_name: str) -> tuple[FieldMetadata, str, str]:
    """Resolve `Rel__r` + external id field to (lookup field, target SObject, ext field); ApiError when unknown."""
    lookup = next(
        (
            meta
            for meta in org.field_rules(sobject).values()
            if (meta.parent_relationship or "").lower() == relationship.lower()
        ),
        None,
    )
    target = org.sobject(lookup.reference_to) if lookup is not None and lookup.reference_to else None
    if lookup is None or target is None:
        raise _no_column(relationship, sobject)
    ext = _field(org, target.name, ext_name)
    if ext is None:
        raise _no_column(ext_name, target.name)
    if not ext.external_id:
        raise ApiError(400, "INVALID_FIELD", f"Field {ext.name} is not an external id field on SObject {target.name}")
    return lookup, target.name, ext.name


def read_json_record(org: SandboxOrg, sobject: str, record: dict[str, Any], *, id_key: bool) -> Draft:
    """Read one Collections record of `sobject`; with `id_key`, its ``id`` is the update target, not a field."""
    draft = Draft(sobject)
    for key, raw in record.items():
        if key == "attributes":
            continue
        if id_key and key.lower() == "id":
            draft.record_id = raw if isinstance(raw, str) else None
            continue
        if isinstance(raw, dict) and _field(org, sobject, key) is None:
            keys = [name for name in raw if name != "attributes"]
            if len(keys) != 1:
                raise ApiError(400, "INVALID_FIELD", f"{key} must name exactly one external id field")
            lookup, target, ext = _reference(org, sobject, key, keys[0])
            draft.refs[lookup.name] = (target, ext, str(raw[keys[0]]))
            continue
        meta = _field(org, sobject, key)
        if meta is None:
            raise _no_column(key, sobject)
        if meta.read_only:
            draft.read_only.append(meta.name)
            continue
        try:
            draft.values[meta.name] = coerce_value(meta, raw)
        except BadValue as exc:
            raise ApiError(400, "JSON_PARSER_ERROR", exc.json_message()) from exc
    return draft


# --- writing records -------------------------------------------------------------------------------------------
class _Writer:
    """Applies drafts in order inside one org transaction, keeping per-request indexes of unique values."""

    def __init__(self, org: SandboxOrg, call: str, *, operation: str, ext_field: str | None = None) -> None:
        self.org, self.call, self.operation, self.ext_field = org, call, operation, ext_field
        self._indexes: dict[tuple[str, str], dict[str, set[str]]] = {}

    def _index(self, sobject: str, name: str) -> dict[str, set[str]]:
        index = self._indexes.get((sobject, name))
        if index is None:
            index = {}
            for row in self.org.snapshot(sobject, include_deleted=True):
                if row.get(name) is not None:
                    index.setdefault(str(row[name]), set()).add(row["Id"])
            self._indexes[(sobject, name)] = index
        return index

    def _find(self, sobject: str, name: str, value: str) -> tuple[str | None, bool]:
        """(id of the live record whose `name` is `value`, whether a deleted one has it)."""
        live, deleted = None, False
        for record_id in sorted(self._index(sobject, name).get(value, ())):
            row = self.org.get(sobject, record_id)
            if row is not None and row.get("IsDeleted"):
                deleted = True
            elif row is not None:
                live = record_id
        return live, deleted

    def _reindex(self, sobject: str, before: dict[str, Any] | None, after: dict[str, Any]) -> None:
        for (name, key), index in self._indexes.items():
            old, new = (before or {}).get(key), after.get(key)
            if name != sobject or old == new:
                continue
            if old is not None:
                index.get(str(old), set()).discard(after["Id"])
            if new is not None:
                index.setdefault(str(new), set()).add(after["Id"])

    def run(self, drafts: list[Draft], *, all_or_none: bool = False) -> list[Outcome]:
        """Write `drafts` in order; with `all_or_none`, undo everything when any record fails."""
        keys = [self._key(draft) for draft in drafts]
        # Records that could not be read take no part in the request, so they repeat no key either.
        counts = Counter(key for key, draft in zip(keys, drafts, strict=True) if key and not draft.errors)
        repeated = {key for key, count in counts.items() if count > 1}
        with self.org.transaction() as transaction:
            outcomes = []
            for index, (draft, key) in enumerate(zip(drafts, keys, strict=True)):
                if key in repeated and not draft.errors:
                    what = "external id specified" if self.operation == "upsert" else "id in list"
                    outcomes.append(Outcome(errors=[_error("DUPLICATE_VALUE", f"Duplicate {what}: {key}")]))
                else:
                    outcomes.append(self._write(draft, index, key))
            if all_or_none and any(outcome.errors for outcome in outcomes):
                transaction.rollback()
                return [outcome if outcome.errors else Outcome(errors=[_error(*_ROLLED_BACK)]) for outcome in outcomes]
        return outcomes

    def _key(self, draft: Draft) -> str | None:
        if self.operation == "upsert" and self.ext_field:
            value = draft.values.get(self.ext_field)
            return str(value) if value not in (None, "") else None
        return case_safe_id(draft.record_id) or draft.record_id

    def _target(self, draft: Draft, key: str | None) -> tuple[str | None, dict[str, Any] | None]:
        """The existing record a draft writes to (None for a new one), or an error."""
        if self.operation == "insert":
            return None, None
        if self.operation == "upsert":
            found = self._find(draft.sobject, str(self.ext_field), key)[0] if key else None
            return found, None if key else _error("MISSING_ARGUMENT", f"{self.ext_field} not specified")
        if not draft.record_id:
            return None, _error("MISSING_ARGUMENT", "Id not specified in an update call")
        record_id = case_safe_id(draft.record_id)
        schema = self.org.sobject(draft.sobject)
        if record_id is None or schema is None or record_id[:3] != schema.key_prefix:
            message = f"{draft.sobject} ID: id value of incorrect type: {draft.record_id}"
            return None, _error("MALFORMED_ID", message, ["Id"])
        row = self.org.get(draft.sobject, record_id)
        if row is None:
            return None, _error("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id")
        if row.get("IsDeleted"):
            return None, _error("ENTITY_IS_DELETED", "entity is deleted")
        return record_id, None

    def _lookup_error(self, meta: FieldMetadata, value: str) -> dict[str, Any] | None:
        record_id = case_safe_id(value)
        target = self.org.sobject_for_prefix(record_id[:3]) if record_id else None
        if record_id is None or target is None or (meta.reference_to and target != meta.reference_to):
            message = f"{meta.label}: id value of incorrect type: {value}"
            return _error("FIELD_INTEGRITY_EXCEPTION", message, [meta.name])
        row = self.org.get(target, record_id) if self.org.sobject(target) is not None else None
        if row is None:
            return _error("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", [meta.name])
        if row.get("IsDeleted"):
            return _error("ENTITY_IS_DELETED", "entity is deleted", [meta.name])
        return None

    def _check(self, draft: Draft, record_id: str | None) -> list[dict[str, Any]]:
        """Every rule `draft` breaks; resolves its external-id references into lookup ids on the way."""
        rules = self.org.field_rules(draft.sobject)
        errors = []
        if draft.read_only:
            message = _READ_ONLY_MESSAGE.format(", ".join(draft.read_only))
            errors.append(_error("INVALID_FIELD_FOR_INSERT_UPDATE", message, draft.read_only))
        for name, (target, ext, value) in draft.refs.items():
            if name in draft.values:
                message = f"Cannot specify both an external ID reference {name[:-3]}__r and a salesforce id, {name}"
                errors.append(_error("INVALID_FIELD", message, [name]))
                continue
            found, deleted = self._find(target, ext, value)
            if found is not None:
                draft.values[name] = found
            elif deleted:
                errors.append(_error("ENTITY_IS_DELETED", "entity is deleted", [name]))
            else:
                message = f"Foreign key external ID: {value} not found for field {ext} in entity {target}"
                errors.append(_error("INVALID_FIELD", message))
        for name, value in draft.values.items():
            problem = check_value(rules[name], value)
            if problem is not None:
                errors.append(_error(*problem, [name]))
            elif rules[name].type in LOOKUP_TYPES and value is not None and name not in draft.refs:
                lookup_error = self._lookup_error(rules[name], value)
                errors.extend([lookup_error] if lookup_error else [])
            if rules[name].unique and value is not None:
                holder = self._find(draft.sobject, name, str(value))[0]
                if holder is not None and holder != record_id:
                    message = f"duplicate value found: {name} duplicates value on record with id: {holder}"
                    errors.append(_error("DUPLICATE_VALUE", message, [name]))
        required = [
            name
            for name, meta in rules.items()
            if meta.required
            and not meta.read_only
            and draft.values.get(name) is None
            and (record_id is None or name in draft.values)
        ]
        if required:
            message = f"Required fields are missing: [{', '.join(required)}]"
            errors.append(_error("REQUIRED_FIELD_MISSING", message, required))
        return errors

    def _write(self, draft: Draft, index: int, key: str | None) -> Outcome:
        if draft.errors:  # the record could not even be read (wrong type, a value of the wrong type in a CSV)
            return Outcome(errors=list(draft.errors))
        record_id, problem = self._target(draft, key)
        if problem is not None:
            return Outcome(errors=[problem])
        fault = self.org.faults.take_record(self.call, index=index, key=key)
        if fault is not None:
            return Outcome(errors=[fault.record_error(record_id)])
        errors = self._check(draft, record_id)
        if errors:
            return Outcome(errors=errors)
        if record_id is not None:
            before = self.org.get(draft.sobject, record_id)
            self._reindex(draft.sobject, before, self.org.update(draft.sobject, record_id, draft.values))
            return Outcome(id=record_id)
        return Outcome(id=self._insert(draft), created=True)

    def _insert(self, draft: Draft) -> str:
        values = dict(draft.values)
        for name, rules in self.org.field_rules(draft.sobject).items():
            if rules.type == "Checkbox" and name not in values and not rules.read_only:
                values[name] = (rules.default_value or "false").lower() == "true"
        meta = self.org.object_metadata(draft.sobject)
        if meta is not None and meta.name_field_type == "AutoNumber":
            number = self.org.next_auto_number(draft.sobject)
            pattern = meta.name_display_format or "{0}"
            values["Name"] = re.sub(r"\{(0+)\}", lambda m: str(number).zfill(len(m.group(1))), pattern)
        record = self.org.insert(draft.sobject, values)
        if meta is not None and not meta.standard and record.get("Name") is None:
            # A custom object's Text name left empty shows the record id, as in Salesforce.
            stamp = parse_datetime(record["CreatedDate"])
            record = self.org.update(draft.sobject, record["Id"], {"Name": record["Id"]}, modstamp=stamp)
        self._reindex(draft.sobject, None, record)
        return str(record["Id"])


def _delete(org: SandboxOrg, call: str, index: int, raw: str, repeated: set[str]) -> Outcome:
    record_id = case_safe_id(raw)
    sobject = org.sobject_for_prefix(record_id[:3]) if record_id else None
    if record_id is None or sobject is None:
        return Outcome(errors=[_error("MALFORMED_ID", f"malformed id {raw}")])
    schema = org.sobject(sobject)
    if schema is None:
        return Outcome(errors=[_error("INVALID_TYPE", f"sObject type '{sobject}' is not supported.")])
    if record_id in repeated:
        return Outcome(errors=[_error("DUPLICATE_VALUE", f"Duplicate id in list: {raw}")])
    fault = org.faults.take_record(call, index=index, key=record_id)
    if fault is not None:
        return Outcome(errors=[fault.record_error(record_id)])
    row = org.get(sobject, record_id)
    if row is None or row.get("IsDeleted"):
        return Outcome(errors=[_error("ENTITY_IS_DELETED", "entity is deleted")])
    if not schema.soft_deletes:
        return Outcome(errors=[_error("DELETE_FAILED", f"{sobject} records cannot be deleted; deactivate them")])
    org.delete(sobject, record_id)
    return Outcome(id=record_id)


def delete_records(org: SandboxOrg, call: str, ids: list[str], *, all_or_none: bool) -> list[Outcome]:
    """Soft-delete records by id, each failing on its own (or all rolled back with `all_or_none`)."""
    counts = Counter(case_safe_id(raw) or raw for raw in ids)
    repeated = {key for key, count in counts.items() if count > 1}
    with org.transaction() as transaction:
        outcomes = [_delete(org, call, index, raw, repeated) for index, raw in enumerate(ids)]
        if all_or_none and any(outcome.errors for outcome in outcomes):
            transaction.rollback()
            return [outcome if outcome.errors else Outcome(errors=[_error(*_ROLLED_BACK)]) for outcome in outcomes]
    return outcomes


# --- sObject Collections ---------------------------------------------------------------------------------------
def _json(body: bytes) -> Any:
    try:
        return json.loads(body or b"{}")
    except ValueError as exc:  # UnicodeDecodeError included
        raise ApiError(400, "JSON_PARSER_ERROR", f"Unexpected character in the request body: {exc}") from exc


def _collection(body: bytes) -> tuple[list[Any], bool]:
    payload = _json(body)
    records = payload.get("records") if isinstance(payload, dict) else None
    if not isinstance(records, list) or not all(isinstance(record, dict) for record in records):
        raise ApiError(400, "JSON_PARSER_ERROR", "The request body must be an object with a records list")
    if len(records) > MAX_COLLECTION:
        message = f"record limit reached. cannot submit more than {MAX_COLLECTION} records into this call"
        raise ApiError(400, "EXCEEDED_ID_LIMIT", message)
    return records, bool(payload.get("allOrNone", False))


def _type_of(record: dict[str, Any]) -> str | None:
    attributes = record.get("attributes")
    return attributes.get("type") if isinstance(attributes, dict) else None


def upsert_collection(org: SandboxOrg, sobject: str, ext_field: str, body: bytes) -> list[dict[str, Any]]:
    """PATCH composite/sobjects/{SObject}/{ExtIdField}: create or update up to 200 records by external id.
    https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_composite_sobjects_collections_upsert.htm
    """
    schema = org.sobject(sobject)
    if schema is None:
        raise ApiError(404, "NOT_FOUND", "The requested resource does not exist")
    ext = _field(org, schema.name, ext_field)
    if ext is None:
        message = f"Provided external ID field does not exist or is not accessible: {ext_field}"
        raise ApiError(400, "INVALID_FIELD", message)
    if not ext.external_id:
        message = f"Field {ext.name} is not an external id field on SObject {schema.name}"
        raise ApiError(400, "INVALID_FIELD", message)
    records, all_or_none = _collection(body)
    drafts = []
    for record in records:
        kind = _type_of(record)
        if kind is not None and org.sobject(kind) is None:
            raise ApiError(404, "NOT_FOUND", "The requested resource does not exist")
        draft = read_json_record(org, schema.name, record, id_key=False)
        if kind is None or org.sobject(kind) is not schema:
            message = "Must send a concrete entity type." if kind is None else f"{kind} is not of type {schema.name}"
            draft.errors.append(_error("INVALID_TYPE", message))
        drafts.append(draft)
    writer = _Writer(org, "composite_upsert", operation="upsert", ext_field=ext.name)
    return [outcome.as_json(with_created=True) for outcome in writer.run(drafts, all_or_none=all_or_none)]


def update_collection(org: SandboxOrg, body: bytes) -> list[dict[str, Any]]:
    """PATCH composite/sobjects: update up to 200 records (of any types) by Id.
    https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_composite_sobjects_collections_update.htm
    """
    records, all_or_none = _collection(body)
    drafts = []
    for record in records:
        kind = _type_of(record)
        schema = org.sobject(kind) if kind else None
        if schema is None:
            message = (
                "Must send a concrete entity type." if kind is None else f"sObject type '{kind}' is not supported."
            )
            drafts.append(Draft(str(kind), errors=[_error("INVALID_TYPE", message)], record_id=record.get("id")))
        else:
            drafts.append(read_json_record(org, schema.name, record, id_key=True))
    outcomes = _Writer(org, "composite_update", operation="update").run(drafts, all_or_none=all_or_none)
    return [outcome.as_json(with_created=False) for outcome in outcomes]


def delete_collection(org: SandboxOrg, ids: str | None, all_or_none: str | None) -> list[dict[str, Any]]:
    """DELETE composite/sobjects?ids=...&allOrNone=...: soft-delete up to 200 records.
    https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_composite_sobjects_collections_delete.htm
    """
    id_list = [part.strip() for part in (ids or "").split(",") if part.strip()]
    if len(id_list) > MAX_COLLECTION:
        message = f"record limit reached. cannot submit more than {MAX_COLLECTION} records into this call"
        raise ApiError(400, "EXCEEDED_ID_LIMIT", message)
    outcomes = delete_records(org, "composite_delete", id_list, all_or_none=(all_or_none or "").lower() == "true")
    return [outcome.as_json(with_created=False) for outcome in outcomes]
