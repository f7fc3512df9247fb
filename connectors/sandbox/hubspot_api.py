"""The HubSpot CRM v3/v4 API subset the sandbox portal serves, as a FastAPI router over a :class:`HubSpotPortal`.

Every CRM request goes through :func:`_serve`, which in this order: counts the call, applies planned faults
(latency), checks the bearer token (401 INVALID_AUTHENTICATION), applies http/rate_limit faults, enforces the rate
limits (429 RATE_LIMIT with policyName TEN_SECONDLY_ROLLING, SECONDLY for search, or DAILY), runs the handler in a
worker thread and, for a drop fault, cuts the connection mid-body. Answers other than search carry the
X-HubSpot-RateLimit-* headers; search answers carry none ("subject to the exceptions listed below the table":
https://developers.hubspot.com/docs/developer-tooling/platform/usage-guidelines).
Errors are ``{"status": "error", "message", "correlationId", "category"[, "errors", "links"]}``.

The write-back routes (schemas, properties, batch upsert/update/archive, association writes) are in
``hubspot_writes.py`` and go through the same :func:`_serve`.
"""

from __future__ import annotations

import asyncio
import json
import uuid
import zlib
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from connectors.sandbox.dropped import DroppedResponse
from connectors.sandbox.hubspot_portal import (
    PRIMARY_COMPANY_TYPE_IDS,
    HubSpotPortal,
    created_property,
    default_properties,
    format_timestamp,
    modified_property,
)
from connectors.sandbox.hubspot_schemas import ApiError, list_properties
from connectors.sandbox.hubspot_schemas import resolve_kind as _resolve_kind
from connectors.sandbox.hubspot_search import SearchError, matcher, ordered
from connectors.sandbox.hubspot_writes import add_write_routes, require_scopes

SEARCH_RESULT_CAP = 10_000
ASSOCIATIONS_PAGE = 500
# Entries per association type inlined in a v3 object answer (``?associations=``); a longer list carries a next page
# ("if your request returns more than 100 associations, you will need to use the value of the after field":
# https://developers.hubspot.com/changelog/announcing-a-change-to-how-v3-crm-apis-return-association-data).
INLINE_ASSOCIATIONS_PAGE = 100
_UNAUTHENTICATED = (
    "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find more "
    "details at https://developers.hubspot.com/docs/methods/auth/oauth-overview"
)
_RATE_MESSAGES = {
    "TEN_SECONDLY_ROLLING": "You have reached your ten_secondly_rolling limit.",
    "SECONDLY": "You have reached your secondly limit.",
    "DAILY": "You have reached your daily limit.",
}
_CATEGORIES = {400: "VALIDATION_ERROR", 401: "INVALID_AUTHENTICATION", 403: "MISSING_SCOPES", 404: "OBJECT_NOT_FOUND"}


def _error_body(category: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"status": "error", "message": message, "correlationId": str(uuid.uuid4()), "category": category, **extra}


def _rate_limited(policy: str) -> JSONResponse:
    # https://developers.hubspot.com/docs/developer-tooling/platform/usage-guidelines (429 format)
    body = {
        "status": "error",
        "message": _RATE_MESSAGES.get(policy, _RATE_MESSAGES["TEN_SECONDLY_ROLLING"]),
        "errorType": "RATE_LIMIT",
        "correlationId": str(uuid.uuid4()),
        "policyName": policy,
        "requestId": str(uuid.uuid4()),
    }
    return JSONResponse(body, status_code=429)


def _now() -> str:
    return format_timestamp(datetime.now(UTC))


async def _serve(
    portal: HubSpotPortal, request: Request, call: str, handler: Callable[[], Any], *, search: bool = False
) -> Response:
    portal.count_call(call)
    faults = portal.faults.take(call)
    for fault in faults:
        if fault.kind == "latency":
            await asyncio.sleep(float(fault.params["seconds"]))
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or token.strip() != portal.access_token:
        return JSONResponse(_error_body("INVALID_AUTHENTICATION", _UNAUTHENTICATED), status_code=401)
    http_fault = next((f for f in faults if f.kind == "http"), None)
    rate_fault = next((f for f in faults if f.kind == "rate_limit"), None)
    response: Response
    if http_fault is not None:
        status = int(http_fault.params["status"])
        body = http_fault.params.get("body") or _error_body(
            http_fault.params.get("category", _CATEGORIES.get(status, "INTERNAL_ERROR")),
            http_fault.params.get("message", "Sandbox fault"),
        )
        response = JSONResponse(body, status_code=status, headers=http_fault.params.get("headers"))
    elif rate_fault is not None:
        response = _rate_limited(str(rate_fault.params.get("policy", "TEN_SECONDLY_ROLLING")))
    else:
        with portal._lock:
            policy = portal.limits.admit(search=search)
        if policy is not None:
            response = _rate_limited(policy)
        else:
            try:
                result = await run_in_threadpool(handler)
                status, body = result if isinstance(result, tuple) else (200, result)
                served = Response(status_code=204) if status == 204 else JSONResponse(body, status_code=status)
                dropped = any(f.kind == "drop" for f in faults)  # after the handler: a dropped write has landed
                response = DroppedResponse(served) if dropped else served
            except ApiError as exc:
                response = JSONResponse(_error_body(exc.category, exc.message, **exc.extra), status_code=exc.status)
    if not search:
        response.headers.update(portal.limits.headers())
    return response


def _limit(value: Any, *, default: int, maximum: int) -> int:
    try:
        limit = int(value) if value not in (None, "") else default
    except ValueError as exc:
        raise ApiError(400, "VALIDATION_ERROR", f"limit must be a number, got '{value}'") from exc
    if limit < 1 or limit > maximum:
        raise ApiError(400, "VALIDATION_ERROR", f"limit must be between 1 and {maximum}, got {limit}")
    return limit


def _names(value: Any) -> list[str] | None:
    if value is None or value == "" or value == []:
        return None
    items = value.split(",") if isinstance(value, str) else list(value)
    return [item.strip() for item in items if item and item.strip()]


def _project(kind: str, record: dict[str, Any], names: list[str] | None) -> dict[str, Any]:
    values = record["properties"]
    wanted = [*(names or default_properties(kind)), "hs_object_id", created_property(kind), modified_property(kind)]
    obj = {
        "id": record["id"],
        "properties": {name: values.get(name) for name in dict.fromkeys(wanted) if name in values},
        "createdAt": record["createdAt"],
        "updatedAt": record["updatedAt"],
        "archived": record["archived"],
    }
    if record.get("archivedAt"):
        obj["archivedAt"] = record["archivedAt"]
    return obj


def _current(portal: HubSpotPortal, kind: str, record_id: str) -> dict[str, Any] | None:
    """The record an id names: its own, or the record a merge turned it into ("fetching any records using the
    original IDs will return the new merged record with the new ID":
    https://developers.hubspot.com/changelog/updated-merge-functionality-for-contacts-and-companies)."""
    resolved = portal.resolve(kind, record_id)
    return portal.get(kind, resolved) if resolved is not None else None


def _query_names(request: Request) -> list[str] | None:
    # the client sends lists as repeated parameters (?properties=a&properties=b); people write "a,b"
    return _names(",".join(request.query_params.getlist("properties")))


def _true(value: Any) -> bool:
    return str(value).lower() == "true"


def create_hubspot_router(portal: HubSpotPortal) -> APIRouter:
    """Routes of the HubSpot CRM API subset: objects list/get/search/batch read, associations v4, owners,
    pipelines."""
    router = APIRouter()

    def resolve_kind(portal: HubSpotPortal, name: str) -> str:
        """The object type of a path, refused with 403 MISSING_SCOPES for the leads object unless the token has
        crm.objects.leads.read (https://developers.hubspot.com/docs/api-reference/crm-leads-v3/guide, "Scope
        requirements"); the sandbox checks reads of leads only: every other read scope is granted."""
        kind = _resolve_kind(portal, name)
        if kind == "leads":
            require_scopes(portal, "crm.objects.leads.read")
        return kind

    searches: OrderedDict[tuple[Any, ...], list[dict[str, Any]]] = OrderedDict()

    def add(path: str, method: str, call: str, handler: Callable[[Request, Any], Any], search: bool = False) -> None:
        async def endpoint(request: Request) -> Response:
            body: Any = None
            if method == "POST":
                try:
                    body = await request.json()
                except ValueError:
                    body = None
                if not isinstance(body, dict):
                    body = {"__invalid__": True}
            return await _serve(portal, request, call, lambda: handler(request, body), search=search)

        router.add_api_route(path, endpoint, methods=[method], include_in_schema=False)

    def list_objects(request: Request, _body: Any) -> dict[str, Any]:
        # https://developers.hubspot.com/docs/api-reference/crm-deals-v3/basic/get-crm-v3-objects-deals
        kind = resolve_kind(portal, request.path_params["objectType"])
        query = request.query_params
        limit = _limit(query.get("limit"), default=10, maximum=100)
        after = int(query["after"]) if (query.get("after") or "").isdigit() else 0
        rows = portal.page(kind, after=after, limit=limit + 1, archived=_true(query.get("archived")))
        names = _query_names(request)
        # "A comma separated list of object types to retrieve associated IDs for. If any of the specified
        # associations do not exist, they will be ignored." (the endpoint's `associations` parameter)
        targets = [
            target
            for target in dict.fromkeys(
                portal.kind_of(name) for name in _names(",".join(query.getlist("associations"))) or []
            )
            if target is not None
        ]
        results = []
        for row in rows[:limit]:
            obj = _project(kind, row, names)
            inline = {target: inline_associations(kind, row["id"], target) for target in targets}
            inline = {target: listed for target, listed in inline.items() if listed is not None}
            if inline:
                obj["associations"] = inline
            results.append(obj)
        page: dict[str, Any] = {"results": results}
        if len(rows) > limit:
            next_after = rows[limit]["id"]
            link = f"{str(request.base_url).rstrip('/')}{request.url.path}?after={next_after}"
            page["paging"] = {"next": {"after": next_after, "link": link}}
        return page

    def get_object(request: Request, _body: Any) -> dict[str, Any]:
        # https://developers.hubspot.com/docs/api-reference/crm-deals-v3/basic/get-crm-v3-objects-deals-dealId
        kind = resolve_kind(portal, request.path_params["objectType"])
        record = _current(portal, kind, request.path_params["objectId"])
        if record is None or record["archived"] != _true(request.query_params.get("archived")):
            raise ApiError(404, "OBJECT_NOT_FOUND", "Object not found.")
        return _project(kind, record, _query_names(request))

    def search_objects(request: Request, body: dict[str, Any]) -> dict[str, Any]:
        # https://developers.hubspot.com/docs/guides/api/crm/search (limit 200, 10,000 results per query)
        kind = resolve_kind(portal, request.path_params["objectType"])
        limit = _limit(body.get("limit"), default=10, maximum=200)
        after = str(body.get("after") or "0")
        if not after.isdigit():
            raise ApiError(400, "VALIDATION_ERROR", f"after must be a number, got '{after}'")
        offset = int(after)
        if offset + limit > SEARCH_RESULT_CAP:
            # HubSpot refuses to page past the 10,000th result of a query with a 400 (message unverified)
            raise ApiError(400, "VALIDATION_ERROR", "There was a problem with the request.")
        filters, sorts = body.get("filterGroups") or [], body.get("sorts") or []
        # Each page request is answered from the records as they are now (the cache key holds the portal's version):
        # a record that changed since the previous page left its slot, and offsets shift, as in HubSpot's search
        # (https://developers.hubspot.com/docs/guides/api/crm/search: results are not a snapshot; ``after`` is an
        # offset into the current results).
        key = (kind, json.dumps(filters, sort_keys=True), json.dumps(sorts, sort_keys=True), portal.version)
        rows = searches.get(key)
        if rows is None:
            try:
                match = matcher(filters)
                rows = ordered([row for row in portal.snapshot(kind) if match(row["properties"])], sorts)
            except (SearchError, KeyError, TypeError) as exc:
                raise ApiError(400, "VALIDATION_ERROR", str(exc)) from exc
            searches[key] = rows
            while len(searches) > 8:
                searches.popitem(last=False)
        names = _names(body.get("properties"))
        page: dict[str, Any] = {
            "total": len(rows),
            "results": [_project(kind, row, names) for row in rows[offset : offset + limit]],
        }
        if offset + limit < len(rows):
            page["paging"] = {"next": {"after": str(offset + limit)}}
        return page

    def batch_read(request: Request, body: dict[str, Any]) -> Any:
        # https://developers.hubspot.com/docs/api-reference/crm-deals-v3/batch/post-crm-v3-objects-deals-batch-read
        kind = resolve_kind(portal, request.path_params["objectType"])
        started = _now()
        inputs = body.get("inputs")
        if not isinstance(inputs, list) or len(inputs) > 100:
            raise ApiError(400, "VALIDATION_ERROR", "inputs must be a list of at most 100 {id} objects")
        archived = _true(request.query_params.get("archived"))
        id_property = body.get("idProperty")
        names = _names(body.get("properties"))
        results, missing, answered = [], [], set()
        for item in inputs:
            wanted = str(item.get("id"))
            if id_property and id_property != "hs_object_id":
                record = next(
                    (
                        row
                        for row in portal.snapshot(kind, archived=archived)
                        if row["properties"].get(id_property) == wanted
                    ),
                    None,
                )
            else:
                record = _current(portal, kind, wanted)
            if record is None or record["archived"] != archived:
                missing.append(wanted)
            elif record["id"] not in answered:
                # Each record once, even when inputs name it by its own id and by ids a merge retired: whether HubSpot
                # answers it once or once per input is not documented.
                answered.add(record["id"])
                results.append(_project(kind, record, names))
        response: dict[str, Any] = {
            "status": "COMPLETE",
            "results": results,
            "startedAt": started,
            "completedAt": _now(),
        }
        if not missing:
            return response
        singular = portal.singular(kind)
        response["numErrors"] = 1
        response["errors"] = [
            {
                "status": "error",
                "category": "OBJECT_NOT_FOUND",
                "message": f"Could not get some {singular.upper()} objects, they may be deleted or not exist. "
                "Check that ids are valid.",
                "context": {"ids": missing},
                "errors": [],
                "links": {},
            }
        ]
        return 207, response

    def ordered_links(source: str, from_id: str, target: str) -> list[tuple[int, int]]:
        # Links come in no priority order (a primary company is not listed first; the unlabelled type comes before
        # the primary one): a stable order of their own, so that offsets page consistently. Links to archived records
        # are still listed: whether HubSpot drops them is not documented, and listing them is the stricter choice.
        return sorted(
            portal.associations(source, from_id, target), key=lambda link: zlib.crc32(f"{from_id}:{link[0]}".encode())
        )

    def inline_associations(source: str, from_id: str, target: str) -> dict[str, Any] | None:
        """A record's associations of one type as a v3 object answer inlines them: one ``{"id", "type"}`` entry per
        association type of each link, by v3 type name — ``deal_to_company_unlabeled`` for every company, and
        ``deal_to_company`` once more for the primary one (the shape HubSpot answers, shown in
        https://community.hubspot.com/t5/APIs-Integrations/Object-data-fetch-sorting-out-associations/td-p/658333);
        the first ``INLINE_ASSOCIATIONS_PAGE`` entries, then a next page
        (https://developers.hubspot.com/changelog/announcing-a-change-to-how-v3-crm-apis-return-association-data).
        None when the record has none of that type: the answer then leaves the type out."""
        entries: list[dict[str, str]] = []
        singular, other = portal.singular(source), portal.singular(target)
        for to_id, type_id in ordered_links(source, from_id, target):
            for association_type in portal.association_types(source, int(from_id), target, to_id, type_id):
                if association_type["category"] == "USER_DEFINED":
                    # a custom object's association: named after its definition (the name is unverified)
                    name = f"{singular}_to_{other}"
                elif association_type["typeId"] == type_id and PRIMARY_COMPANY_TYPE_IDS.get((source, target)):
                    name = f"{singular}_to_{other}_unlabeled"  # the unlabelled type beside a primary one
                else:
                    name = f"{singular}_to_{other}"
                entries.append({"id": str(to_id), "type": name})
        if not entries:
            return None
        listed: dict[str, Any] = {"results": entries[:INLINE_ASSOCIATIONS_PAGE]}
        if len(entries) > INLINE_ASSOCIATIONS_PAGE:
            # the link HubSpot gives is the v3 per-record associations listing, which the sandbox does not serve
            after = str(INLINE_ASSOCIATIONS_PAGE)
            link = f"/crm/v3/objects/{source}/{from_id}/associations/{target}?after={after}"
            listed["paging"] = {"next": {"after": after, "link": link}}
        return listed

    def association_page(source: str, from_id: str, target: str, offset: int, limit: int) -> tuple[list, int | None]:
        links = ordered_links(source, from_id, target)
        chunk = [
            {
                "toObjectId": to_id,
                "associationTypes": portal.association_types(source, int(from_id), target, to_id, type_id),
            }
            for to_id, type_id in links[offset : offset + limit]
        ]
        return chunk, offset + limit if offset + limit < len(links) else None

    def association_batch_read(request: Request, body: dict[str, Any]) -> Any:
        # https://developers.hubspot.com/docs/api-reference/crm-associations-v4/batch/post-crm-v4-associations-fromObjectType-toObjectType-batch-read
        source = resolve_kind(portal, request.path_params["fromObjectType"])
        target = resolve_kind(portal, request.path_params["toObjectType"])
        started = _now()
        inputs = body.get("inputs")
        if not isinstance(inputs, list) or len(inputs) > 1000:
            raise ApiError(400, "VALIDATION_ERROR", "inputs must be a list of at most 1000 {id} objects")
        results, errors = [], []
        for item in inputs:
            from_id = str(item.get("id"))
            chunk, next_offset = association_page(source, from_id, target, 0, ASSOCIATIONS_PAGE)
            if not chunk:
                errors.append(
                    {
                        "status": "error",
                        "category": "OBJECT_NOT_FOUND",
                        "subCategory": "crm.associations.NO_ASSOCIATIONS_FOUND",
                        "message": f"No {portal.singular(target)} is associated with {portal.singular(source)} "
                        f"{from_id}.",
                        "context": {"fromObjectId": [from_id]},
                        "errors": [],
                        "links": {},
                    }
                )
                continue
            result: dict[str, Any] = {"from": {"id": from_id}, "to": chunk}
            if next_offset is not None:
                result["paging"] = {"next": {"after": str(next_offset)}}
            results.append(result)
        response: dict[str, Any] = {
            "status": "COMPLETE",
            "results": results,
            "startedAt": started,
            "completedAt": _now(),
        }
        if errors:
            response.update(numErrors=len(errors), errors=errors)
            return 207, response
        return response

    def association_list(request: Request, _body: Any) -> dict[str, Any]:
        # https://developers.hubspot.com/docs/api-reference/crm-associations-v4/basic/get-crm-v4-objects-objectType-objectId-associations-toObjectType
        params = request.path_params
        source, target = resolve_kind(portal, params["objectType"]), resolve_kind(portal, params["toObjectType"])
        limit = _limit(request.query_params.get("limit"), default=500, maximum=500)
        after = request.query_params.get("after") or "0"
        offset = int(after) if after.isdigit() else 0
        chunk, next_offset = association_page(source, params["objectId"], target, offset, limit)
        page: dict[str, Any] = {"results": chunk}
        if next_offset is not None:
            page["paging"] = {"next": {"after": str(next_offset)}}
        return page

    def owners(request: Request, _body: Any) -> dict[str, Any]:
        # https://developers.hubspot.com/docs/api-reference/crm-owners-v3/owners/get-crm-v3-owners-
        query = request.query_params
        limit = _limit(query.get("limit"), default=100, maximum=500)
        after = query.get("after") or "0"
        offset = int(after) if after.isdigit() else 0
        archived = _true(query.get("archived"))
        rows = [owner for owner in portal.owners if owner["archived"] == archived]
        if query.get("email"):
            rows = [owner for owner in rows if owner["email"] == query["email"]]
        page: dict[str, Any] = {"results": rows[offset : offset + limit]}
        if offset + limit < len(rows):
            page["paging"] = {"next": {"after": str(offset + limit)}}
        return page

    def pipelines(request: Request, _body: Any) -> dict[str, Any]:
        # https://developers.hubspot.com/docs/api-reference/crm-pipelines-v3/pipelines/get-crm-v3-pipelines-objectType
        kind = resolve_kind(portal, request.path_params["objectType"])
        return {"results": portal.pipelines.get(kind, [])}

    def not_found(request: Request, _body: Any) -> Any:
        raise ApiError(404, "OBJECT_NOT_FOUND", f"Resource not found: {request.url.path}")

    def account_details(request: Request, _body: Any) -> dict[str, Any]:
        # https://developers.hubspot.com/docs/api-reference/latest/account/account-information/get-account-details
        # (scope: oauth, which every token has). HubSpot answers app.hubspot.com or app-eu1.hubspot.com as uiDomain;
        # the sandbox answers its own host, which serves the record pages below, so demo links open.
        return {
            "portalId": portal.portal_id,
            "accountType": "STANDARD",
            "uiDomain": request.url.netloc,
            "dataHostingLocation": "eu1",
            "timeZone": "Europe/Berlin",
            "companyCurrency": "EUR",
            "additionalCurrencies": [],
            "utcOffset": "+01:00",
            "utcOffsetMilliseconds": 3_600_000,
        }

    @router.get("/contacts/{portal_id}/record/{type_id}/{object_id}", include_in_schema=False)
    def record_page(portal_id: int, type_id: str, object_id: str) -> Response:
        """What app.hubspot.com shows at a record's address, as JSON: the target of okrsync's dashboard links. Not
        an API call (not counted, no token: the browser's HubSpot session would carry it)."""
        kind = portal.kind_of(type_id)
        record = portal.get(kind, object_id) if kind and portal_id == portal.portal_id else None
        if kind is None or record is None:
            return JSONResponse({"message": f"no {type_id} record {object_id} in portal {portal_id}"}, status_code=404)
        return JSONResponse({"portalId": portal_id, "objectTypeId": type_id, **_project(kind, record, None)})

    objects = "/crm/v3/objects/{objectType}"
    add(objects, "GET", "list", list_objects)
    add(objects + "/search", "POST", "search", search_objects, search=True)
    add(objects + "/batch/read", "POST", "batch_read", batch_read)
    add(objects + "/{objectId}", "GET", "get", get_object)
    add("/crm/v4/associations/{fromObjectType}/{toObjectType}/batch/read", "POST", "assoc_batch_read",
        association_batch_read)  # fmt: skip
    add("/crm/v4/objects/{objectType}/{objectId}/associations/{toObjectType}", "GET", "assoc_list", association_list)
    add("/crm/v3/owners", "GET", "owners", owners)
    add("/crm/v3/owners/", "GET", "owners", owners)
    add("/crm/v3/pipelines/{objectType}", "GET", "pipelines", pipelines)
    add("/account-info/v3/details", "GET", "account_details", account_details)

    def properties(request: Request, _body: Any) -> dict[str, Any]:
        # https://developers.hubspot.com/docs/api-reference/crm-properties-v3/core/get-crm-v3-properties-objectType
        return {"results": list_properties(portal, resolve_kind(portal, request.path_params["objectType"]), now=_now())}

    add("/crm/v3/properties/{objectType}", "GET", "properties", properties)
    add_write_routes(portal, add)
    for method in ("GET", "POST", "DELETE"):
        add("/crm/{rest:path}", method, "not_found", not_found)
    return router
