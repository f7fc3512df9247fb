"""The write-back routes of the sandbox HubSpot portal: custom object schemas, property groups and properties,
batch upsert/update/archive of records, merges (``hubspot_merges.py``) and v4 association writes.

Each route is registered with the HubSpot router's ``add`` and so served by ``hubspot_api._serve`` (token, faults,
rate limits, call counting). Call names: "schemas", "properties", "batch_upsert", "batch_update", "batch_archive",
"merge", "associations_write".

Writes (and the schemas API) check the portal's granted ``scopes`` (None grants all) and answer HubSpot's
403 MISSING_SCOPES ``{"status": "error", "message", "errors": [{"message", "context": {"requiredGranularScopes":
[...]}}], "links": {"scopes"}, "category": "MISSING_SCOPES"}`` when one is missing:

- records of a standard type: ``crm.objects.<type>.write``; of a custom object: ``crm.objects.custom.write`` (an
  association write needs the scope of its from-object type);
- property groups and properties: ``crm.schemas.<type>.write`` (custom objects: ``crm.schemas.custom.write``);
- schemas: ``crm.schemas.custom.read`` to list or get, ``crm.schemas.custom.write`` to create.

HubSpot checks a batch as a whole before it writes anything (too many inputs, duplicate ids, an idProperty without
unique values, a property that does not exist, a value of the wrong type: 400 VALIDATION_ERROR); then each input
is applied on its own, under the portal lock, and inputs that fail (unknown or archived ids, ``input_error``
faults) are reported in a 207 while the others land.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from fastapi import Request

from connectors.sandbox.faults import Fault
from connectors.sandbox.hubspot_merges import MergeRefused
from connectors.sandbox.hubspot_portal import (
    PRIMARY_COMPANY_TYPE_IDS,
    HubSpotPortal,
    created_property,
    default_properties,
    modified_property,
)
from connectors.sandbox.hubspot_schemas import (
    PROPERTY_NAME,
    ApiError,
    Conflict,
    check_values,
    format_timestamp,
    list_properties,
    property_definition,
    property_lookup,
    refuse,
    resolve_kind,
    schema_request,
)

BATCH_LIMIT = 100  # inputs per batch upsert/update/archive (HubSpot's documented limit)
# HubSpot's reference pages name no limit for v4 association writes; Workato's HubSpot connector documents 2,000
# for the same batch endpoint (unverified against HubSpot itself).
ASSOCIATION_BATCH_LIMIT = 2_000
SCOPES_LINK = "https://developers.hubspot.com/scopes"
_MISSING_SCOPES = (
    "This app hasn't been granted all required scopes to make this call. Read more about required scopes here: "
    f"{SCOPES_LINK}."
)
# The real wording and category of this refusal are unverified; the message says what to do.
_NO_CUSTOM_OBJECTS = (
    "Custom objects require a Marketing, Sales, Service, Content or Data Hub Enterprise subscription; this account "
    "({tier}) cannot create object schemas."
)
Handler = Callable[[Request, Any], Any]


def _now() -> str:
    return format_timestamp(datetime.now(UTC))


def require_scopes(portal: HubSpotPortal, *scopes: str) -> None:
    if portal.scopes is None:
        return
    missing = [scope for scope in scopes if scope not in portal.scopes]
    if missing:
        raise ApiError(
            403,
            "MISSING_SCOPES",
            _MISSING_SCOPES,
            errors=[
                {
                    "message": "One or more of the following scopes are required.",
                    "context": {"requiredGranularScopes": missing},
                }
            ],
            links={"scopes": SCOPES_LINK},
        )


def _scope(portal: HubSpotPortal, kind: str, area: str, access: str) -> str:
    return f"crm.{area}.{'custom' if portal.is_custom(kind) else kind}.{access}"


def _inputs(body: Any, *, limit: int) -> list[dict[str, Any]]:
    inputs = body.get("inputs") if isinstance(body, dict) else None
    if not isinstance(inputs, list) or not all(isinstance(item, dict) for item in inputs):
        raise refuse('Invalid input JSON: expected {"inputs": [...]} with one object per input')
    if len(inputs) > limit:
        raise refuse(f"Too many inputs: got {len(inputs)}, a batch holds at most {limit}")
    return inputs


def _no_duplicates(keys: list[str]) -> None:
    duplicates = [key for key, count in Counter(keys).items() if count > 1]
    if duplicates:
        raise refuse(f"Duplicate IDs found in batch input: [{', '.join(duplicates)}]. IDs must be unique")


def _error(category: str, message: str, ids: list[str]) -> dict[str, Any]:
    return {
        "status": "error",
        "category": category,
        "message": message,
        "context": {"ids": ids},
        "errors": [],
        "links": {},
    }


def _input_error(fault: Fault, key: str) -> dict[str, Any]:
    category = str(fault.params.get("category", "VALIDATION_ERROR"))
    return _error(category, str(fault.params.get("message", f"Sandbox fault: input {key} was refused")), [key])


def _batch_answer(started: str, results: list[Any], errors: list[dict[str, Any]], *, status: int = 200) -> Any:
    answer: dict[str, Any] = {"status": "COMPLETE", "results": results, "startedAt": started, "completedAt": _now()}
    if not errors:
        return status, answer
    answer.update(numErrors=len(errors), errors=errors)
    return 207, answer


def _written(kind: str, record: dict[str, Any], names: list[str], *, new: bool | None = None) -> dict[str, Any]:
    """A written record as HubSpot echoes it: the written properties plus id and timestamps, as strings."""
    values = record["properties"]
    wanted = dict.fromkeys([*names, "hs_object_id", created_property(kind), modified_property(kind)])
    result = {
        "id": record["id"],
        "properties": {name: values.get(name) for name in wanted if name in values},
        "createdAt": record["createdAt"],
        "updatedAt": record["updatedAt"],
        "archived": False,
    }
    if new is not None:
        result["new"] = new
    return result


def add_write_routes(portal: HubSpotPortal, add: Callable[[str, str, str, Handler], None]) -> None:
    """Register the write-back routes through the HubSpot router's `add(path, method, call, handler)`."""

    def kind_in(request: Request, parameter: str = "objectType") -> str:
        return resolve_kind(portal, request.path_params[parameter])

    # --- schemas: https://developers.hubspot.com/docs/guides/api/crm/objects/custom-objects -------------------
    def list_schemas(_request: Request, _body: Any) -> dict[str, Any]:
        require_scopes(portal, "crm.schemas.custom.read")
        return {"results": portal.schemas() if portal.custom_objects_allowed else []}

    def get_schema(request: Request, _body: Any) -> dict[str, Any]:
        require_scopes(portal, "crm.schemas.custom.read")
        name = request.path_params["objectType"]
        schema = portal.schema(name) if portal.custom_objects_allowed else None
        if schema is None:
            raise ApiError(404, "OBJECT_NOT_FOUND", f"Unable to find object type {name}")
        return schema

    def create_schema(_request: Request, body: Any) -> Any:
        require_scopes(portal, "crm.schemas.custom.write")
        if not portal.custom_objects_allowed:
            raise ApiError(403, "FORBIDDEN", _NO_CUSTOM_OBJECTS.format(tier=portal.tier))
        arguments = schema_request(body, now=_now())
        try:
            return 201, portal.create_schema(**arguments)
        except Conflict as exc:
            raise ApiError(409, "OBJECT_ALREADY_EXISTS", str(exc)) from exc
        except KeyError as exc:
            raise refuse(str(exc.args[0])) from exc

    def create_association(request: Request, body: Any) -> Any:
        # https://developers.hubspot.com/docs/api-reference/crm-schemas-v3/core/post-crm-object-schemas-v3-schemas-objectType-associations
        require_scopes(portal, "crm.schemas.custom.write")
        custom = portal.kind_of(request.path_params["objectType"])
        if custom is None or not portal.is_custom(custom):
            raise ApiError(404, "OBJECT_NOT_FOUND", f"Unable to find object type {request.path_params['objectType']}")
        if not isinstance(body, dict) or not body.get("fromObjectTypeId") or not body.get("toObjectTypeId"):
            raise refuse("fromObjectTypeId and toObjectTypeId are required")
        source = resolve_kind(portal, str(body["fromObjectTypeId"]))
        target = resolve_kind(portal, str(body["toObjectTypeId"]))
        if custom not in (source, target):
            raise refuse(f"The association definition must start or end at object type {custom}")
        try:
            return 201, portal.define_association(source, target, name=body.get("name"))
        except Conflict as exc:
            raise ApiError(409, "OBJECT_ALREADY_EXISTS", str(exc)) from exc

    for prefix in ("/crm-object-schemas/v3/schemas", "/crm/v3/schemas"):  # the second is the older documented path
        add(prefix, "GET", "schemas", list_schemas)
        add(prefix, "POST", "schemas", create_schema)
        add(prefix + "/{objectType}", "GET", "schemas", get_schema)
        add(prefix + "/{objectType}/associations", "POST", "schemas", create_association)

    # --- properties: https://developers.hubspot.com/docs/guides/api/crm/properties ----------------------------
    def list_groups(request: Request, _body: Any) -> dict[str, Any]:
        return {"results": portal.property_groups(kind_in(request))}

    def get_group(request: Request, _body: Any) -> dict[str, Any]:
        name = request.path_params["groupName"]
        group = portal.property_group(kind_in(request), name)
        if group is None:
            raise ApiError(404, "OBJECT_NOT_FOUND", f"Property group {name} does not exist")
        return group

    def create_group(request: Request, body: Any) -> Any:
        kind = kind_in(request)
        require_scopes(portal, _scope(portal, kind, "schemas", "write"))
        name, label = (body.get("name"), body.get("label")) if isinstance(body, dict) else (None, None)
        if not isinstance(name, str) or not PROPERTY_NAME.fullmatch(name) or not isinstance(label, str) or not label:
            raise refuse("A property group needs a name (lowercase letters, digits, underscores) and a label")
        try:
            group = portal.add_property_group(kind, name=name, label=label, display_order=body.get("displayOrder", -1))
        except Conflict as exc:
            raise ApiError(409, "OBJECT_ALREADY_EXISTS", str(exc)) from exc
        return 201, group

    def create_property(request: Request, body: Any) -> Any:
        kind = kind_in(request)
        require_scopes(portal, _scope(portal, kind, "schemas", "write"))
        definition = property_definition(body, default_group=None, now=_now())
        if portal.property_group(kind, definition["groupName"]) is None:
            raise refuse(f"Property {definition['name']}: property group {definition['groupName']} does not exist")
        try:
            return 201, portal.add_property(kind, definition)
        except Conflict as exc:
            raise ApiError(409, "OBJECT_ALREADY_EXISTS", str(exc)) from exc

    def get_property(request: Request, _body: Any) -> dict[str, Any]:
        kind, name = kind_in(request), request.path_params["propertyName"]
        found = next((p for p in list_properties(portal, kind, now=_now()) if p["name"] == name), None)
        if found is None:
            raise ApiError(404, "OBJECT_NOT_FOUND", f"Property {name} does not exist")
        return found

    def delete_property(request: Request, _body: Any) -> Any:
        kind, name = kind_in(request), request.path_params["propertyName"]
        require_scopes(portal, _scope(portal, kind, "schemas", "write"))
        try:
            portal.remove_property(kind, name)
        except KeyError as exc:
            raise ApiError(404, "OBJECT_NOT_FOUND", f"Property {name} does not exist") from exc
        except ValueError as exc:
            raise refuse(str(exc)) from exc
        return 204, None

    properties = "/crm/v3/properties/{objectType}"
    add(properties + "/groups", "GET", "properties", list_groups)
    add(properties + "/groups", "POST", "properties", create_group)
    add(properties + "/groups/{groupName}", "GET", "properties", get_group)
    add(properties, "POST", "properties", create_property)
    add(properties + "/{propertyName}", "GET", "properties", get_property)
    add(properties + "/{propertyName}", "DELETE", "properties", delete_property)

    # --- records ----------------------------------------------------------------------------------------------
    def unique_property(kind: str, name: str, lookup: Callable[[str], dict[str, Any] | None]) -> None:
        definition = lookup(name)
        if definition is None or not definition.get("hasUniqueValue"):
            raise refuse(
                f"Unable to perform update/upsert by non-unique {portal.type_id(kind)} property {name} in portal "
                f"ID {portal.portal_id}"
            )

    def batch_upsert(request: Request, body: Any) -> Any:
        # https://developers.hubspot.com/docs/api-reference/crm-custom-objects-v3/batch/post-crm-v3-objects-objectType-batch-upsert
        kind = kind_in(request)
        require_scopes(portal, _scope(portal, kind, "objects", "write"))
        started, inputs = _now(), _inputs(body, limit=BATCH_LIMIT)
        lookup = property_lookup(portal, kind)
        keys, id_properties, values = [], [], []
        for item in inputs:
            id_property = str(item.get("idProperty") or "hs_object_id")  # HubSpot's default, never unique
            unique_property(kind, id_property, lookup)
            if item.get("id") in (None, "") or not isinstance(item.get("properties", {}), dict):
                raise refuse("Each input needs an id (its idProperty value) and a properties object")
            keys.append(str(item["id"]))
            id_properties.append(id_property)
            values.append({**(item.get("properties") or {}), id_property: item["id"]})
        _no_duplicates(keys)
        normalized = check_values(lookup, values, portal_id=portal.portal_id)
        results, errors = [], []
        with portal.lock:
            indexes: dict[str, dict[str, dict[str, Any]]] = {}
            for position, (key, id_property, written) in enumerate(zip(keys, id_properties, normalized, strict=True)):
                fault = portal.faults.take_input("batch_upsert", index=position, key=key)
                if fault is not None:
                    errors.append(_input_error(fault, key))
                    continue
                if id_property not in indexes:
                    indexes[id_property] = portal.index_by(kind, id_property)
                value = str(written[id_property])
                existing = indexes[id_property].get(value)
                if existing is None:
                    record = portal.insert(kind, written)
                else:
                    record = portal.update(kind, existing["id"], written)
                indexes[id_property][value] = record
                results.append(_written(kind, record, list(written), new=existing is None))
        return _batch_answer(started, results, errors)

    def batch_update(request: Request, body: Any) -> Any:
        # https://developers.hubspot.com/docs/api-reference/crm-deals-v3/batch/post-crm-v3-objects-deals-batch-update
        kind = kind_in(request)
        require_scopes(portal, _scope(portal, kind, "objects", "write"))
        started, inputs = _now(), _inputs(body, limit=BATCH_LIMIT)
        lookup = property_lookup(portal, kind)
        id_property = next((str(item["idProperty"]) for item in inputs if item.get("idProperty")), None)
        if id_property is not None:
            unique_property(kind, id_property, lookup)
        if any(item.get("id") in (None, "") or not isinstance(item.get("properties"), dict) for item in inputs):
            raise refuse("Each input needs an id and a properties object")
        keys = [str(item["id"]) for item in inputs]
        _no_duplicates(keys)
        normalized = check_values(lookup, [item["properties"] for item in inputs], portal_id=portal.portal_id)
        results, errors, missing = [], [], []
        with portal.lock:
            index = portal.index_by(kind, id_property) if id_property else None
            for position, (key, written) in enumerate(zip(keys, normalized, strict=True)):
                fault = portal.faults.take_input("batch_update", index=position, key=key)
                if fault is not None:
                    errors.append(_input_error(fault, key))
                    continue
                record = index.get(key) if index is not None else portal.get(kind, key)
                if record is None or record["archived"]:
                    missing.append(key)
                    continue
                results.append(_written(kind, portal.update(kind, record["id"], written), list(written)))
        if missing:
            message = (
                f"Could not get some {portal.singular(kind).upper()} objects, they may be deleted or not exist. "
                "Check that ids are valid."
            )
            errors.insert(0, _error("OBJECT_NOT_FOUND", message, missing))
        return _batch_answer(started, results, errors)

    def batch_archive(request: Request, body: Any) -> Any:
        # https://developers.hubspot.com/docs/api-reference/crm-deals-v3/batch/post-crm-v3-objects-deals-batch-archive
        # answers 204 whatever the ids: archiving twice, or an unknown id, is not an error
        kind = kind_in(request)
        require_scopes(portal, _scope(portal, kind, "objects", "write"))
        keys = [str(item.get("id")) for item in _inputs(body, limit=BATCH_LIMIT)]
        with portal.lock:
            for key in keys:
                record = portal.get(kind, key)
                if record is not None and not record["archived"]:
                    portal.archive(kind, key)
        return 204, None

    def merge(request: Request, body: Any) -> Any:
        # https://developers.hubspot.com/docs/api-reference/crm-contacts-v3/basic/post-crm-v3-objects-contacts-merge
        # (companies and deals: the same route and body; scope crm.objects.<type>.write). The answer is a
        # SimplePublicObject; which properties it carries is not documented, so it carries only the defaults a read
        # without `properties` gets (read hs_merged_object_ids with a GET).
        kind = kind_in(request)
        require_scopes(portal, _scope(portal, kind, "objects", "write"))
        fields = ("objectIdToMerge", "primaryObjectId")
        given = {field: body.get(field) for field in fields} if isinstance(body, dict) else {}
        missing = [field for field in fields if given.get(field) in (None, "")]
        if missing:
            raise refuse(f"Some required fields were not set: [{', '.join(missing)}]")
        try:
            record = portal.merge(kind, str(given["primaryObjectId"]), str(given["objectIdToMerge"]))
        except MergeRefused as exc:
            raise ApiError(exc.status, exc.category, exc.message) from exc
        return _written(kind, record, list(default_properties(kind)))

    add("/crm/v3/objects/{objectType}/merge", "POST", "merge", merge)

    objects = "/crm/v3/objects/{objectType}/batch"
    add(objects + "/upsert", "POST", "batch_upsert", batch_upsert)
    add(objects + "/update", "POST", "batch_update", batch_update)
    add(objects + "/archive", "POST", "batch_archive", batch_archive)

    # --- associations: https://developers.hubspot.com/docs/guides/api/crm/associations/associations-v4 --------
    def pair_kinds(request: Request) -> tuple[str, str]:
        source, target = kind_in(request, "fromObjectType"), kind_in(request, "toObjectType")
        require_scopes(portal, _scope(portal, source, "objects", "write"))
        return source, target

    def object_id(value: Any) -> str:
        if not isinstance(value, dict) or value.get("id") in (None, ""):
            raise refuse("Each input needs from.id and to.id")
        return str(value["id"])

    def default_spec(source: str, target: str) -> dict[str, Any]:
        type_id = portal.association_type_id(source, target)
        if type_id is None:
            raise refuse(f"No association type is defined from {portal.type_id(source)} to {portal.type_id(target)}")
        return {"associationCategory": portal.association_category(source, target), "associationTypeId": type_id}

    def link(source: str, from_id: str, target: str, to_id: str, position: int) -> dict[str, Any] | None:
        """Link one pair (under the portal lock); the error entry when it cannot be."""
        fault = portal.faults.take_input("associations_write", index=position, key=from_id)
        if fault is not None:
            return _input_error(fault, from_id)
        for kind, record_id in ((source, from_id), (target, to_id)):
            record = portal.get(kind, record_id)
            if record is None or record["archived"]:
                message = f"No {portal.singular(kind)} with id {record_id} exists (it may have been deleted)."
                return _error("OBJECT_NOT_FOUND", message, [record_id])
        portal.associate(source, from_id, target, to_id)
        return None

    def associate_default(request: Request, body: Any) -> Any:
        # https://developers.hubspot.com/docs/api-reference/crm-associations-v4/batch/post-crm-v4-associations-fromObjectType-toObjectType-batch-associate-default
        source, target = pair_kinds(request)
        started, inputs = _now(), _inputs(body, limit=ASSOCIATION_BATCH_LIMIT)
        spec = default_spec(source, target)
        pairs = [(object_id(item.get("from")), object_id(item.get("to"))) for item in inputs]
        results, errors = [], []
        with portal.lock:
            for position, (from_id, to_id) in enumerate(pairs):
                error = link(source, from_id, target, to_id, position)
                if error is not None:
                    errors.append(error)
                else:
                    results.append({"from": {"id": from_id}, "to": {"id": to_id}, "associationSpec": dict(spec)})
        return _batch_answer(started, results, errors)

    def associate_labelled(request: Request, body: Any) -> Any:
        # https://developers.hubspot.com/docs/api-reference/crm-associations-v4/batch/post-crm-v4-associations-fromObjectType-toObjectType-batch-create
        # The sandbox knows the unlabelled type per direction and the primary-company type of contacts and deals;
        # `types` must name them.
        source, target = pair_kinds(request)
        started, inputs = _now(), _inputs(body, limit=ASSOCIATION_BATCH_LIMIT)
        spec = default_spec(source, target)
        primary_type = PRIMARY_COMPANY_TYPE_IDS.get((source, target))
        known = {spec["associationTypeId"], *([primary_type] if primary_type else [])}
        pairs = []
        for item in inputs:
            wanted = set()
            for kind in item.get("types") or [None]:
                if not isinstance(kind, dict) or int(kind.get("associationTypeId") or 0) not in known:
                    raise refuse(
                        f"Association type {kind} is not defined from {portal.type_id(source)} to "
                        f"{portal.type_id(target)}; use {spec}"
                    )
                wanted.add(int(kind["associationTypeId"]))
            pairs.append((object_id(item.get("from")), object_id(item.get("to")), primary_type in wanted))
        results, errors = [], []
        with portal.lock:
            for position, (from_id, to_id, primary) in enumerate(pairs):
                error = link(source, from_id, target, to_id, position)
                if error is not None:
                    errors.append(error)
                    continue
                if primary and target == "companies":
                    portal.set_primary_company(source, from_id, to_id)
                elif primary:
                    portal.set_primary_company(target, to_id, from_id)
                results.append(
                    {
                        "fromObjectTypeId": portal.type_id(source),
                        "fromObjectId": from_id,
                        "toObjectTypeId": portal.type_id(target),
                        "toObjectId": to_id,
                        "labels": [],
                    }
                )
        return _batch_answer(started, results, errors, status=201)

    def unassociate(request: Request, body: Any) -> Any:
        # https://developers.hubspot.com/docs/api-reference/crm-associations-v4/batch/post-crm-v4-associations-fromObjectType-toObjectType-batch-archive
        source, target = pair_kinds(request)
        inputs = _inputs(body, limit=ASSOCIATION_BATCH_LIMIT)
        pairs = []
        for item in inputs:
            if not isinstance(item.get("to"), list):
                raise refuse("Each input needs from.id and a list of to ids")
            pairs += [(object_id(item.get("from")), object_id(to)) for to in item["to"]]
        with portal.lock:
            for from_id, to_id in pairs:
                if from_id.isdigit() and to_id.isdigit():  # other ids name no record, so nothing is linked
                    portal.unassociate(source, from_id, target, to_id)
        return 204, None

    associations = "/crm/v4/associations/{fromObjectType}/{toObjectType}/batch"
    add(associations + "/associate/default", "POST", "associations_write", associate_default)
    add(associations + "/create", "POST", "associations_write", associate_labelled)
    add(associations + "/archive", "POST", "associations_write", unassociate)
