"""Salesforce write-back: okrsync's custom objects and fields, upserted by external id.

Object targets go to the custom objects in ``deploy/salesforce`` (``OKR_Objective__c``, ``OKR_Key_Result__c``,
``OKR_Contribution__c``, ``KAM_Criterion__c``), upserted by ``Okrsync_Id__c`` through sObject Collections
(``PATCH composite/sobjects/{SObject}/Okrsync_Id__c``, 200 records per call, ``allOrNone=false``) or, above
``bulk_threshold`` records of one object in one run, through a Bulk API 2.0 ingest job. A key result names its
objective, and a contribution its key result, by external id (``Objective__r: {Okrsync_Id__c: …}``), so children
need no Salesforce ids. Field targets update okrsync's fields on Opportunity and Account by record id
(``PATCH composite/sobjects``).

Per-record errors come back inside a 200 answer; ``UNABLE_TO_LOCK_ROW`` and friends are sent again (only those
records) with backoff, the others are returned to the caller with Salesforce's code and message. A request refused
as a whole (a field or object missing, the permission set not assigned) raises ``ConfigurationError`` naming the
object and field and what to deploy.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import requests
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceMalformedRequest, SalesforceResourceNotFound

from connectors.errors import ConfigurationError
from connectors.retry import retry_failed_records
from connectors.salesforce.config import SalesforceConfig
from connectors.salesforce.connector import SalesforceConnector, _error_code
from connectors.writes import FIELDS, Target, WriteRequest, WriteResult

log = logging.getLogger(__name__)

EXTERNAL_ID = "Okrsync_Id__c"
COLLECTION_LIMIT = 200  # records per sObject Collections call
RETRIABLE_RECORD_CODES = frozenset({"UNABLE_TO_LOCK_ROW", "SERVER_UNAVAILABLE", "REQUEST_RUNNING_TOO_LONG"})
GONE_CODES = frozenset({"ENTITY_IS_DELETED", "INVALID_CROSS_REFERENCE_KEY"})
METADATA_HINT = (
    "deploy the metadata in deploy/salesforce (sf project deploy start --source-dir deploy/salesforce/force-app)"
    " and assign the 'okrsync integration' permission set to the integration user"
)


@dataclass(frozen=True)
class SfField:
    """A Salesforce field a neutral field is written to. ``kind``: text, url, percent, number, boolean, datetime, id
    (a lookup given by Salesforce id) or ref (a lookup given by the parent's external id via ``relationship``)."""

    name: str
    kind: str
    length: int | None = None
    scale: int | None = None
    truncate: bool = False  # Name fields hold 80 characters: cut with an ellipsis instead of failing the record
    relationship: str | None = None


def _text(name: str, length: int, *, truncate: bool = False) -> SfField:
    return SfField(name, "text", length=length, truncate=truncate)


_PERCENT, _NUMBER2, _NUMBER0 = "percent", "number", "number"
OBJECTS: dict[Target, str] = {
    Target.objective: "OKR_Objective__c",
    Target.key_result: "OKR_Key_Result__c",
    Target.contribution: "OKR_Contribution__c",
    Target.kam_criterion: "KAM_Criterion__c",
    Target.opportunity: "Opportunity",
    Target.account: "Account",
}
MAPPING: dict[Target, dict[str, SfField]] = {
    Target.objective: {
        "title": _text("Name", 80, truncate=True),
        "team": _text("Team__c", 255),
        "cycle": _text("Cycle__c", 255),
        "objective_key": _text("Objective_Key__c", 64),
        "progress": SfField("Progress__c", _PERCENT, scale=1),
        "status": _text("Status__c", 32),
        "achieved": SfField("Achieved__c", "boolean"),
        "computed_at": SfField("Last_Computed__c", "datetime"),
    },
    Target.key_result: {
        "objective": SfField("Objective__c", "ref", relationship="Objective__r"),
        "title": _text("Name", 80, truncate=True),
        "team": _text("Team__c", 255),
        "cycle": _text("Cycle__c", 255),
        "kr_key": _text("Key_Result_Key__c", 64),
        "metric": _text("Metric__c", 32),
        "value": SfField("Value__c", _NUMBER2, scale=4),  # ratios are fractions: 0.3314
        "target": SfField("Target__c", _NUMBER2, scale=4),
        "progress": SfField("Progress__c", _PERCENT, scale=1),
        "expected": SfField("Expected__c", _PERCENT, scale=1),
        "grade": SfField("Grade__c", _NUMBER2, scale=1),
        "status": _text("Status__c", 32),
        "achieved": SfField("Achieved__c", "boolean"),
        "records": SfField("Records__c", _NUMBER0, scale=0),
        "computed_at": SfField("Last_Computed__c", "datetime"),
        "dashboard_url": SfField("Dashboard_URL__c", "url", length=255),  # the KR's page in okrsync's dashboard
    },
    Target.contribution: {
        "key_result": SfField("Key_Result__c", "ref", relationship="Key_Result__r"),
        "opportunity_id": SfField("Opportunity__c", "id"),
        "account_id": SfField("Account__c", "id"),
        "records": SfField("Records__c", _NUMBER0, scale=0),
        "value": SfField("Value__c", _NUMBER2, scale=2),
        "summary": _text("Summary__c", 255, truncate=True),
        "computed_at": SfField("Last_Computed__c", "datetime"),
    },
    Target.kam_criterion: {
        "account_id": SfField("Account__c", "id"),
        "title": _text("Criterion__c", 255),
        "criterion_key": _text("Criterion_Key__c", 64),
        "status": _text("Status__c", 16),
        "source": _text("Source__c", 16),
        "measured": SfField("Measured__c", _NUMBER0, scale=0),
        "comment": _text("Comment__c", 32768),
        "account_score": SfField("Account_Score__c", _PERCENT, scale=1),
        "computed_at": SfField("Last_Computed__c", "datetime"),
    },
    Target.opportunity: {
        "hygiene_score": SfField("OKR_Hygiene_Score__c", _PERCENT, scale=1),
        "hygiene_issues": _text("OKR_Hygiene_Issues__c", 32768),
        "hygiene_checked": SfField("OKR_Hygiene_Checked__c", "datetime"),
    },
    Target.account: {
        "kam_score": SfField("OKR_KAM_Score__c", _PERCENT, scale=1),
    },
}
assert all(set(fields) <= set(FIELDS[target]) for target, fields in MAPPING.items())


def written_fields() -> dict[Target, frozenset[str]]:
    """The neutral fields written per target (every target has a Salesforce home)."""
    return {target: frozenset(fields) for target, fields in MAPPING.items()}


def convert(spec: SfField, value: Any) -> Any:
    """A neutral value as the Salesforce field takes it (JSON)."""
    if value is None:
        return None
    if spec.kind == "percent":
        return round(float(value) * 100, spec.scale or 0)
    if spec.kind == "number":
        return round(float(value), spec.scale or 0) if spec.scale else int(round(float(value)))
    if spec.kind == "boolean":
        return bool(value)
    if spec.kind == "datetime":
        return value.isoformat() if isinstance(value, datetime) else str(value)
    text = str(value)
    if spec.truncate and spec.length and len(text) > spec.length:
        return text[: spec.length - 1] + "…"
    return text


def _csv_value(value: Any) -> str:
    if value is None:
        return "#N/A"  # Bulk API 2.0: an empty cell leaves the field alone, #N/A clears it
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class SalesforceWriter(SalesforceConnector):
    """Writes okrsync's targets to one org; shares the reader's session, retries and API-budget guard."""

    def __init__(
        self,
        config: SalesforceConfig,
        *,
        session: requests.Session | None = None,
        bulk_threshold: int | None = None,
        bulk_poll_seconds: float = 2.0,
        record_attempts: int = 4,
    ) -> None:
        super().__init__(config, session=session)
        self.bulk_threshold = bulk_threshold if bulk_threshold is not None else config.bulk_threshold
        self.bulk_poll_seconds = bulk_poll_seconds
        self.record_attempts = record_attempts
        self.data_requests = 0  # HTTP requests to /services/data (Bulk API polls included)
        self.session.hooks["response"].append(self._count_request)

    def _count_request(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        if "/services/data/" in (response.request.url or ""):
            self.data_requests += 1

    def written_fields(self) -> dict[Target, frozenset[str]]:
        return written_fields()

    def object_name(self, target: Target) -> str:
        return OBJECTS[target]

    # -- building records --------------------------------------------------------------------------------------
    def record(self, target: Target, request: WriteRequest) -> dict[str, Any]:
        """The Salesforce record (JSON) for one request, without ``attributes``."""
        sobject = OBJECTS[target]
        record: dict[str, Any] = {"Id": request.key} if target in (Target.opportunity, Target.account) else {}
        if "Id" not in record:
            record[EXTERNAL_ID] = request.key
        for name, value in request.values.items():
            spec = MAPPING[target].get(name)
            if spec is None:
                continue
            if spec.kind == "ref":
                parent = {Target.key_result: OBJECTS[Target.objective], Target.contribution: OBJECTS[Target.key_result]}
                assert spec.relationship is not None and target in parent, sobject
                record[spec.relationship] = {EXTERNAL_ID: value} if value is not None else None
                if value is None:  # a null relationship cannot be written: clear the lookup itself
                    del record[spec.relationship]
                    record[spec.name] = None
            else:
                record[spec.name] = convert(spec, value)
        return record

    # -- writing ---------------------------------------------------------------------------------------------
    def upsert(self, target: Target, requests: list[WriteRequest]) -> list[WriteResult]:
        """Write the requests; object targets by external id (Bulk API 2.0 above ``bulk_threshold``)."""
        if not requests:
            return []
        if target in (Target.opportunity, Target.account):
            return self._with_record_retries(requests, lambda batch: self._collections(target, batch, by_id=True))
        if len(requests) > self.bulk_threshold:
            return self._bulk_upsert(target, requests)
        return self._with_record_retries(requests, lambda batch: self._collections(target, batch, by_id=False))

    def delete(self, target: Target, requests: list[WriteRequest]) -> list[WriteResult]:
        """Delete records by Salesforce id (``DELETE composite/sobjects?ids=…``, 200 per call)."""
        results: list[WriteResult] = []
        by_id = {r.crm_id: r for r in requests if r.crm_id}
        results += [WriteResult(r.key, ok=True) for r in requests if not r.crm_id]  # never reached Salesforce
        for chunk in _chunks(list(by_id), COLLECTION_LIMIT):
            params = {"ids": ",".join(chunk), "allOrNone": "false"}
            answer = self._send(target, "composite_delete", "composite/sobjects", method="DELETE", params=params)
            for crm_id, item in zip(chunk, answer, strict=False):
                result = self._result(by_id[crm_id].key, item)
                if not result.ok and result.code in GONE_CODES:
                    result = WriteResult(by_id[crm_id].key, ok=True, crm_id=crm_id)
                results.append(result)
        return results

    def _collections(self, target: Target, requests: list[WriteRequest], *, by_id: bool) -> list[WriteResult]:
        sobject = OBJECTS[target]
        results: list[WriteResult] = []
        for chunk in _chunks(requests, COLLECTION_LIMIT):
            records = [{"attributes": {"type": sobject}, **self.record(target, r)} for r in chunk]
            if by_id:
                for record in records:
                    record["id"] = record.pop("Id")
                path, call = "composite/sobjects", "composite_update"
            else:
                path, call = f"composite/sobjects/{sobject}/{EXTERNAL_ID}", "composite_upsert"
            answer = self._send(target, call, path, method="PATCH", json={"allOrNone": False, "records": records})
            results += [self._result(r.key, item) for r, item in zip(chunk, answer, strict=True)]
        return results

    def _send(self, target: Target, name: str, path: str, **kwargs: Any) -> list[dict[str, Any]]:
        sobject = OBJECTS[target]

        def call(sf: Salesforce) -> list[dict[str, Any]]:
            try:
                return cast(list[dict[str, Any]], sf.restful(path, timeout=self.config.timeout_seconds, **kwargs))
            except SalesforceResourceNotFound:
                raise ConfigurationError(
                    f"Salesforce has no object {sobject} (or the integration user cannot see it): {METADATA_HINT}"
                ) from None
            except SalesforceMalformedRequest as exc:
                code, message = _error_code(exc)
                if code in ("INVALID_FIELD", "INVALID_TYPE", "NOT_FOUND", "INVALID_FIELD_FOR_INSERT_UPDATE"):
                    raise ConfigurationError(
                        f"Salesforce refused the write to {sobject}: {code} {message.strip()} — {METADATA_HINT}"
                    ) from None
                raise

        return self._call(name, call)

    @staticmethod
    def _result(key: str, item: dict[str, Any]) -> WriteResult:
        if item.get("success"):
            return WriteResult(key, ok=True, crm_id=item.get("id"), created=item.get("created"))
        errors = item.get("errors") or [{}]
        first = errors[0]
        code = str(first.get("statusCode") or first.get("errorCode") or "UNKNOWN")
        message = "; ".join(str(e.get("message", "")) for e in errors)
        fields = tuple(str(f) for e in errors for f in e.get("fields") or ())
        return WriteResult(
            key, ok=False, code=code, message=message, fields=fields, retriable=code in RETRIABLE_RECORD_CODES
        )

    def _with_record_retries(
        self, requests: list[WriteRequest], send: Callable[[list[WriteRequest]], list[WriteResult]]
    ) -> list[WriteResult]:
        return retry_failed_records(
            requests,
            send,
            key=lambda request: request.key,
            crm="Salesforce",
            max_attempts=self.record_attempts,
            wait_base=self.config.retry_wait_base,
            wait_max=self.config.retry_wait_max,
        )

    def _bulk_upsert(self, target: Target, requests: list[WriteRequest]) -> list[WriteResult]:
        sobject = OBJECTS[target]
        rows = [self._flat(target, r) for r in requests]
        columns = sorted({column for row in rows for column in row})
        records = [{column: _csv_value(row.get(column)) for column in columns} for row in rows]
        calls_before, requests_before = self.api_calls, self.data_requests

        def run(sf: Salesforce) -> tuple[list[dict[str, Any]], str, str]:
            jobs = getattr(sf.bulk2, sobject).upsert(
                records=records, external_id_field=EXTERNAL_ID, wait=self.bulk_poll_seconds
            )
            ok = "".join(getattr(sf.bulk2, sobject).get_successful_records(job["job_id"]) for job in jobs)
            failed = "".join(getattr(sf.bulk2, sobject).get_failed_records(job["job_id"]) for job in jobs)
            return jobs, ok, failed

        jobs, ok_csv, failed_csv = self._call("bulk2_upsert", run)
        # a job takes several requests (create, upload, close, polls, results): count them as the org does
        self.api_calls = calls_before + (self.data_requests - requests_before)
        results: dict[str, WriteResult] = {}
        for row in csv.DictReader(io.StringIO(ok_csv)):
            key = row.get(EXTERNAL_ID, "")
            results[key] = WriteResult(key, ok=True, crm_id=row.get("sf__Id"), created=row.get("sf__Created") == "true")
        for row in csv.DictReader(io.StringIO(failed_csv)):
            key = row.get(EXTERNAL_ID, "")
            code, _, message = (row.get("sf__Error") or "UNKNOWN:").partition(":")
            results[key] = WriteResult(
                key, ok=False, code=code, message=message, retriable=code in RETRIABLE_RECORD_CODES
            )
        missing = WriteResult("", ok=False, code="UNPROCESSED", message="not processed by the bulk job", retriable=True)
        return [results.get(r.key) or WriteResult(**{**missing.__dict__, "key": r.key}) for r in requests]

    def _flat(self, target: Target, request: WriteRequest) -> dict[str, Any]:
        """The record with external-id relationships as ``Rel__r.Okrsync_Id__c`` columns (Bulk API CSV)."""
        flat: dict[str, Any] = {}
        for name, value in self.record(target, request).items():
            if isinstance(value, dict):
                flat.update({f"{name}.{inner}": inner_value for inner, inner_value in value.items()})
            else:
                flat[name] = value
        return flat


def _chunks(items: list[Any], size: int) -> Iterable[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
