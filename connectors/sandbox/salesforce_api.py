"""The Salesforce REST API subset the sandbox org serves, as a FastAPI router over a :class:`SandboxOrg`.

Every /services/data request goes through :func:`_serve`, which in this order: counts the call, applies planned
faults (latency, expire_session), checks the bearer token (401 INVALID_SESSION_ID), enforces the daily allowance
and the concurrent long-running request limit (403 REQUEST_LIMIT_EXCEEDED, "TotalRequests Limit exceeded." and
"ConcurrentPerOrgLongTxn Limit exceeded."), counts the call against the allowance, applies http/mutate/change faults,
runs the handler in a worker thread and, for a drop fault, cuts the connection mid-body (a write has been applied
by then). Every answer carries Sforce-Limit-Info (and, from the HTTP server, Date). Errors are always
``[{"message", "errorCode"}]``.

Reads: query, queryAll, query_more, getDeleted, getUpdated, limits, describe. Writes: sObject Collections
upsert/update/delete (``salesforce_writes``; calls "composite_upsert", "composite_update", "composite_delete") and
Bulk API 2.0 ingest jobs (``salesforce_bulk``; every /jobs/ingest request is the call "bulk2_ingest").
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import re
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs

import jwt
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from connectors.sandbox import salesforce_bulk as bulk
from connectors.sandbox import salesforce_writes as writes
from connectors.sandbox import soql
from connectors.sandbox.dropped import DroppedResponse
from connectors.sandbox.salesforce_errors import ApiError
from connectors.sandbox.schema import SObjectSchema, format_datetime, parse_datetime
from connectors.sandbox.store import QueryCursor, SandboxOrg

DEFAULT_BATCH_SIZE = 2000
REPLICATION_WINDOW = timedelta(days=30)
_VERSION = re.compile(r"\d{2,3}\.\d")


def _error(status: int, error_code: str, message: str) -> JSONResponse:
    return JSONResponse([{"message": message, "errorCode": error_code}], status_code=status)


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() in ("bearer", "oauth") else None


async def _serve(org: SandboxOrg, request: Request, call: str, handler: Callable[[], Any]) -> Response:
    org.count_call(call)
    in_flight = org.request_started()
    try:
        return await _serve_counted(org, request, call, handler)
    finally:
        org.request_finished(in_flight)


async def _serve_counted(org: SandboxOrg, request: Request, call: str, handler: Callable[[], Any]) -> Response:
    faults = org.faults.take(call)
    response: Response
    for fault in faults:
        if fault.kind == "latency" and not fault.params.get("after_handler"):
            await asyncio.sleep(float(fault.params["seconds"]))
        elif fault.kind == "expire_session":
            org.revoke_tokens()
    if not org.token_is_valid(_bearer(request)):
        response = _error(401, "INVALID_SESSION_ID", "Session expired or invalid")
    elif org.api_usage_used >= org.daily_api_limit:
        # https://developer.salesforce.com/docs/platform/salesforce-app-limits-cheatsheet/guide/salesforce-app-limits-platform-api.html
        response = _error(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
    elif org.long_requests_running() >= org.concurrent_long_limit:
        # Same page: "If the number of long running requests exceeds the limit, the API returns a
        # REQUEST_LIMIT_EXCEEDED exception code. Any new concurrent requests aren't processed until there are
        # fewer requests than the allowed limit." Refused requests are not counted against the daily allowance.
        response = _error(403, "REQUEST_LIMIT_EXCEEDED", "ConcurrentPerOrgLongTxn Limit exceeded.")
    else:
        org.api_usage_used += 1
        http_fault = next((f for f in faults if f.kind == "http"), None)
        if http_fault is not None:
            response = JSONResponse(http_fault.error_body, status_code=int(http_fault.params["status"]))
        else:
            for fault in faults:
                if fault.kind == "mutate":
                    org.mutate(fault.params["sobject"], int(fault.params["count"]))
                elif fault.kind == "change":
                    fault.params["action"](org)
            try:
                body = await run_in_threadpool(handler)
                response = body if isinstance(body, Response) else JSONResponse(body)
                if any(f.kind == "drop" for f in faults):
                    response = DroppedResponse(response)
            except ApiError as exc:
                response = _error(exc.status, exc.error_code, exc.message)
    for fault in faults:
        if fault.kind == "latency" and fault.params.get("after_handler"):
            await asyncio.sleep(float(fault.params["seconds"]))  # the write is applied; the answer is late
    response.headers["Sforce-Limit-Info"] = f"api-usage={org.api_usage_used}/{org.daily_api_limit}"
    return response


def _check_version(version: str) -> None:
    if not _VERSION.fullmatch(version):
        raise ApiError(404, "NOT_FOUND", "The requested resource does not exist")


def _batch_size(request: Request) -> int:
    # https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/headers_queryoptions.htm
    match = re.search(r"batchSize\s*=\s*(\d+)", request.headers.get("sforce-query-options", ""))
    return min(max(int(match.group(1)), 200), 2000) if match else DEFAULT_BATCH_SIZE


def _page(org: SandboxOrg, locator: str, offset: int, version: str) -> dict[str, Any]:
    # https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_query.htm
    cursor = org.cursor(locator)
    if cursor is None or not 0 <= offset <= len(cursor.rows):
        raise ApiError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
    sobject = cursor.query.sobject.name
    end = offset + cursor.batch_size
    records = [
        {
            **_attributes(sobject, row["Id"], version),
            **cursor.query.project(row),
            **{sub.relationship: _child_result(cursor, sub, row["Id"], version) for sub in cursor.query.subqueries},
        }
        for row in cursor.rows[offset:end]
    ]
    cursor.read_to = max(cursor.read_to, min(end, len(cursor.rows)))
    page: dict[str, Any] = {"totalSize": len(cursor.rows), "done": end >= len(cursor.rows)}
    if not page["done"]:
        page["nextRecordsUrl"] = f"/services/data/v{version}/query/{locator}-{end}"
    page["records"] = records
    return page


def _attributes(sobject: str, record_id: str, version: str) -> dict[str, Any]:
    return {"attributes": {"type": sobject, "url": f"/services/data/v{version}/sobjects/{sobject}/{record_id}"}}


def _child_result(cursor: QueryCursor, sub: soql.SubQuery, parent_id: str, version: str) -> dict[str, Any] | None:
    # A parent without children answers null, otherwise a nested query result
    # (https://developer.salesforce.com/docs/atlas.en-us.soql_sosl.meta/soql_sosl/sforce_api_calls_soql_relationships_query_results.htm).
    children = cursor.children.get(sub.relationship, {}).get(parent_id)
    if not children:
        return None
    child = sub.query.sobject.name
    records = [{**_attributes(child, row["Id"], version), **sub.query.project(row)} for row in children]
    return {"totalSize": len(records), "done": True, "records": records}


def _children(
    org: SandboxOrg, query: soql.Query, rows: list[dict[str, Any]], include_deleted: bool
) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """Per subquery, each parent's matching children as of now (queryAll includes deleted children too:
    https://developer.salesforce.com/docs/atlas.en-us.apexcode.meta/apexcode/langCon_apex_dml_examples_undelete.htm)."""
    found: dict[str, dict[str, list[dict[str, Any]]]] = {}
    parents = {row["Id"] for row in rows}
    for sub in query.subqueries:
        if org.sobject(sub.query.sobject.name) is None:  # e.g. TaskRelations without Shared Activities
            raise ApiError(
                400,
                "INVALID_TYPE",
                f"Didn't understand relationship '{sub.relationship}' in FROM part of query call. If you are "
                "attempting to use a custom relationship, be sure to append the '__r' after the custom "
                "relationship name.",
            )
        grouped: dict[str, list[dict[str, Any]]] = {}
        for child in org.snapshot(sub.query.sobject.name, include_deleted=include_deleted):
            if child.get(sub.parent_field) in parents:
                grouped.setdefault(child[sub.parent_field], []).append(child)
        found[sub.relationship] = {parent: sub.query.run(kids) for parent, kids in grouped.items()}
    return found


def _run_query(org: SandboxOrg, text: str, version: str, batch_size: int, include_deleted: bool) -> dict:
    # queryAll: https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_queryall.htm
    _check_version(version)
    try:
        query = soql.parse(text)
    except soql.SoqlError as exc:
        raise ApiError(400, exc.error_code, exc.message) from exc
    if org.sobject(query.sobject.name) is None:  # TaskRelation/EventRelation without Shared Activities
        raise ApiError(400, "INVALID_TYPE", f"sObject type '{query.sobject.name}' is not supported.")
    rows = query.run(
        org.readable(query.sobject.name, org.snapshot(query.sobject.name, include_deleted=include_deleted))
    )
    children = _children(org, query, rows, include_deleted)
    return _page(org, org.open_cursor(query, rows, batch_size, children=children), 0, version)


def _query_more(org: SandboxOrg, version: str, locator_and_offset: str) -> dict:
    _check_version(version)
    locator, _, offset = locator_and_offset.rpartition("-")
    if not locator or not offset.isdigit():
        raise ApiError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
    return _page(org, locator, int(offset), version)


def _sobject(org: SandboxOrg, version: str, sobject: str) -> SObjectSchema:
    _check_version(version)
    schema = org.sobject(sobject)
    if schema is None:
        raise ApiError(404, "NOT_FOUND", f"The requested resource does not exist: sObject type '{sobject}'")
    return schema


def _window(org: SandboxOrg, start: str | None, end: str | None) -> tuple[str, str, str]:
    if not start or not end:
        raise ApiError(400, "MALFORMED_QUERY", "Both start and end must be given as ISO 8601 date/times")
    try:
        start_at, end_at = parse_datetime(start), parse_datetime(end)
    except ValueError as exc:
        raise ApiError(400, "MALFORMED_QUERY", f"Invalid date/time in start or end: {exc}") from exc
    now = org.now()
    if start_at < now - REPLICATION_WINDOW:
        raise ApiError(400, "INVALID_REPLICATION_DATE", "startDate cannot be more than 30 days ago")
    if end_at < start_at:
        raise ApiError(400, "INVALID_REPLICATION_DATE", "startDate must chronologically precede endDate")
    return format_datetime(start_at), format_datetime(min(end_at, now)), format_datetime(now - REPLICATION_WINDOW)


def _deleted(org: SandboxOrg, version: str, sobject: str, start: str | None, end: str | None) -> dict:
    # https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_getdeleted.htm
    name = _sobject(org, version, sobject).name
    low, high, earliest = _window(org, start, end)
    rows = sorted((date, rid) for rid, date in org.deleted_log(name).items() if low <= date <= high)
    return {
        "deletedRecords": [{"id": rid, "deletedDate": date} for date, rid in rows],
        "earliestDateAvailable": earliest,
        "latestDateCovered": high,
    }


def _updated(org: SandboxOrg, version: str, sobject: str, start: str | None, end: str | None) -> dict:
    # https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_getupdated.htm
    name = _sobject(org, version, sobject).name
    low, high, _earliest = _window(org, start, end)
    rows = sorted((row["SystemModstamp"], row["Id"]) for row in org.readable(name, org.snapshot(name)))
    return {"ids": [rid for stamp, rid in rows if low <= stamp <= high], "latestDateCovered": high}


def _describe(org: SandboxOrg, version: str, sobject: str) -> dict:
    # https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_sobject_describe.htm
    schema = _sobject(org, version, sobject)
    meta = org.object_metadata(schema.name)
    return {
        "name": schema.name,
        "label": meta.label if meta is not None else schema.name,
        "keyPrefix": schema.key_prefix,
        "custom": schema.name.endswith("__c"),
        "fields": [
            {"name": name, "type": kind, "custom": name.endswith("__c")} for name, kind in schema.fields.items()
        ],
    }


def _limits(org: SandboxOrg, version: str) -> dict:
    # https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_limits.htm
    _check_version(version)
    remaining = max(org.daily_api_limit - org.api_usage_used, 0)
    return {"DailyApiRequests": {"Max": org.daily_api_limit, "Remaining": remaining}}


def create_salesforce_router(org: SandboxOrg) -> APIRouter:
    """Routes of the Salesforce REST API subset (OAuth token, query, queryAll, getDeleted, getUpdated, ...)."""
    router = APIRouter()
    data = "/services/data/v{version}"

    router.add_api_route("/services/oauth2/token", _token_endpoint(org), methods=["POST"], include_in_schema=False)

    def add(
        paths: list[str], call: str, handler: Callable[[Request], Any], methods: tuple[str, ...] = ("GET",)
    ) -> None:
        async def endpoint(request: Request) -> Response:
            request.state.body = await request.body()  # read here: handlers run in a worker thread
            return await _serve(org, request, call, lambda: handler(request))

        for path in paths:
            router.add_api_route(path, endpoint, methods=list(methods), include_in_schema=False)

    def param(request: Request, name: str) -> Any:
        return request.path_params.get(name) or request.query_params.get(name)

    def query_handler(include_deleted: bool) -> Callable[[Request], Any]:
        def handler(r: Request) -> Any:
            return _run_query(org, param(r, "q") or "", param(r, "version"), _batch_size(r), include_deleted)

        return handler

    for call, include_deleted in (("query", False), ("queryAll", True)):
        add([f"{data}/{call}", f"{data}/{call}/"], call, query_handler(include_deleted))
    add(
        [f"{data}/query/{{locator}}", f"{data}/queryAll/{{locator}}"],
        "query_more",
        lambda r: _query_more(org, param(r, "version"), param(r, "locator")),
    )
    add(
        [f"{data}/sobjects/{{sobject}}/deleted", f"{data}/sobjects/{{sobject}}/deleted/"],
        "getDeleted",
        lambda r: _deleted(org, param(r, "version"), param(r, "sobject"), param(r, "start"), param(r, "end")),
    )
    add(
        [f"{data}/sobjects/{{sobject}}/updated", f"{data}/sobjects/{{sobject}}/updated/"],
        "getUpdated",
        lambda r: _updated(org, param(r, "version"), param(r, "sobject"), param(r, "start"), param(r, "end")),
    )
    add([f"{data}/limits", f"{data}/limits/"], "limits", lambda r: _limits(org, param(r, "version")))
    add(
        [f"{data}/sobjects/{{sobject}}/describe", f"{data}/sobjects/{{sobject}}/describe/"],
        "describe",
        lambda r: _describe(org, param(r, "version"), param(r, "sobject")),
    )
    _add_write_routes(add, org)

    def not_found(request: Request) -> Any:
        raise ApiError(404, "NOT_FOUND", "The requested resource does not exist")

    add(["/services/data/{rest:path}"], "not_found", not_found, ("GET", "POST", "PUT", "PATCH", "DELETE"))
    return router


def _add_write_routes(add: Callable[..., None], org: SandboxOrg) -> None:
    data = "/services/data/v{version}"
    ingest = f"{data}/jobs/ingest"

    def handler(call: Callable[..., Any], *names: str) -> Callable[[Request], Any]:
        def handle(r: Request) -> Any:
            _check_version(r.path_params["version"])
            values = [r.path_params.get(name) or r.query_params.get(name) for name in names if name != "body"]
            return call(org, *values, r.state.body) if "body" in names else call(org, *values)

        return handle

    def results(r: Request) -> Any:
        if r.path_params["kind"].lower() not in ("successfulresults", "failedresults", "unprocessedrecords"):
            raise ApiError(404, "NOT_FOUND", "The requested resource does not exist")
        return handler(bulk.ingest_results, "job_id", "kind")(r)

    collections = [f"{data}/composite/sobjects", f"{data}/composite/sobjects/"]
    upsert = handler(writes.upsert_collection, "sobject", "ext_field", "body")
    add([f"{data}/composite/sobjects/{{sobject}}/{{ext_field}}"], "composite_upsert", upsert, ("PATCH",))
    add(collections, "composite_update", handler(writes.update_collection, "body"), ("PATCH",))
    add(collections, "composite_delete", handler(writes.delete_collection, "ids", "allOrNone"), ("DELETE",))
    add([ingest, f"{ingest}/"], "bulk2_ingest", handler(bulk.create_ingest_job, "version", "body"), ("POST",))
    batches = [f"{ingest}/{{job_id}}/batches", f"{ingest}/{{job_id}}/batches/"]
    add(batches, "bulk2_ingest", handler(bulk.upload_ingest_data, "job_id", "body"), ("PUT",))
    job = [f"{ingest}/{{job_id}}", f"{ingest}/{{job_id}}/"]
    add(job, "bulk2_ingest", handler(bulk.ingest_job_info, "job_id"))
    add(job, "bulk2_ingest", handler(bulk.change_ingest_job, "job_id", "body"), ("PATCH",))
    add(job, "bulk2_ingest", handler(bulk.delete_ingest_job, "job_id"), ("DELETE",))
    add([f"{ingest}/{{job_id}}/{{kind}}", f"{ingest}/{{job_id}}/{{kind}}/"], "bulk2_ingest", results)


def _token_endpoint(org: SandboxOrg) -> Callable[[Request], Any]:
    # https://help.salesforce.com/s/articleView?id=sf.remoteaccess_oauth_username_password_flow.htm
    # https://help.salesforce.com/s/articleView?id=sf.remoteaccess_oauth_jwt_flow.htm
    # https://help.salesforce.com/s/articleView?id=sf.remoteaccess_oauth_client_credentials_flow.htm
    def refuse(error: str, description: str) -> JSONResponse:
        return JSONResponse({"error": error, "error_description": description}, status_code=400)

    async def token(request: Request) -> Response:
        org.token_requests += 1
        form = {key: values[0] for key, values in parse_qs((await request.body()).decode()).items()}
        client_id, client_secret = form.get("client_id"), form.get("client_secret")
        scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "basic":
            client_id, _, client_secret = base64.b64decode(encoded).decode().partition(":")
        grant = form.get("grant_type")
        if grant in ("password", "client_credentials"):
            if client_id != org.consumer_key:
                return refuse("invalid_client_id", "client identifier invalid")
            if client_secret != org.consumer_secret:
                return refuse("invalid_client", "invalid client credentials")
            if grant == "password" and (
                form.get("username") != org.username or form.get("password") != org.password + org.security_token
            ):
                return refuse("invalid_grant", "authentication failure")
        elif grant == "urn:ietf:params:oauth:grant-type:jwt-bearer":
            problem = _check_assertion(org, form.get("assertion", ""))
            if problem:
                return refuse(*problem)
        else:
            return refuse("unsupported_grant_type", "grant type not supported")
        access_token = org.issue_token()
        instance_url = str(request.base_url).rstrip("/")
        issued_at = str(int(time.time() * 1000))
        identity = f"{instance_url}/id/{org.org_id}/{org.user_id}"
        signature = hmac.new(org.consumer_secret.encode(), (identity + issued_at).encode(), hashlib.sha256)
        return JSONResponse(
            {
                "access_token": access_token,
                "instance_url": instance_url,
                "id": identity,
                "token_type": "Bearer",
                "issued_at": issued_at,
                "signature": base64.b64encode(signature.digest()).decode(),
            }
        )

    return token


def _check_assertion(org: SandboxOrg, assertion: str) -> tuple[str, str] | None:
    # simple-salesforce sends exp as a string, which PyJWT refuses: check it by hand. aud is the login host.
    try:
        if org.jwt_public_key_pem:
            claims = jwt.decode(
                assertion,
                org.jwt_public_key_pem,
                algorithms=["RS256"],
                options={"verify_aud": False, "verify_exp": False},
            )
        else:
            claims = jwt.decode(assertion, options={"verify_signature": False})
    except jwt.PyJWTError:
        return ("invalid_grant", "invalid assertion")
    if claims.get("iss") != org.consumer_key:
        return ("invalid_client_id", "client identifier invalid")
    if claims.get("sub") != org.username:
        return ("invalid_grant", "authentication failure")
    try:
        if float(claims.get("exp", 0)) < time.time():
            return ("invalid_grant", "expired authorization code")
    except (TypeError, ValueError):
        return ("invalid_grant", "invalid assertion")
    return None
