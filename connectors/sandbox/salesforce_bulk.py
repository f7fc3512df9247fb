"""Bulk API 2.0 ingest jobs of the sandbox Salesforce org, written through the record rules of
``salesforce_writes`` (the same validation as sObject Collections).

Jobs are processed synchronously when the upload is marked complete; a CSV header naming an unknown field fails
the job (``InvalidBatch : Field name not found : X``) and a cell that cannot be read as the field's type fails its
row, as Salesforce does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi.responses import Response

from connectors.sandbox.salesforce_errors import ApiError
from connectors.sandbox.salesforce_metadata import BadValue, FieldMetadata, coerce_value
from connectors.sandbox.salesforce_writes import (
    Draft,
    _error,
    _field,
    _json,
    _reference,
    _Writer,
    delete_records,
)
from connectors.sandbox.schema import format_datetime
from connectors.sandbox.store import CSV_DELIMITERS, IngestJob, SandboxOrg

# --- Bulk API 2.0 ingest ---------------------------------------------------------------------------------------
# https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/bulk_api_2_0.htm
_OPERATIONS = ("insert", "upsert", "update", "delete")


def _job(org: SandboxOrg, job_id: str) -> IngestJob:
    job = org.ingest_jobs.get(job_id)
    if job is None:
        raise ApiError(404, "NOT_FOUND", "The requested resource does not exist")
    return job


def _state_error(job: IngestJob, action: str) -> ApiError:
    return ApiError(409, "INVALIDJOBSTATE", f"Cannot {action} job {job.id} in state {job.state}")


def create_ingest_job(org: SandboxOrg, version: str, body: bytes) -> dict[str, Any]:
    """POST jobs/ingest: open a job for one SObject and operation."""
    spec = _json(body)
    if not isinstance(spec, dict):
        raise ApiError(400, "JSON_PARSER_ERROR", "The request body must be a JSON object")
    operation, sobject = spec.get("operation"), org.sobject(str(spec.get("object")))
    if operation not in _OPERATIONS:
        raise ApiError(400, "INVALIDJOB", f"InvalidJob : Invalid operation: {operation}")
    if sobject is None:
        raise ApiError(400, "INVALIDENTITY", f"Entity '{spec.get('object')}' is not supported by the Bulk API.")
    if spec.get("contentType", "CSV") != "CSV" or spec.get("columnDelimiter", "COMMA") not in CSV_DELIMITERS:
        raise ApiError(400, "INVALIDJOB", "InvalidJob : contentType must be CSV with a known columnDelimiter")
    if spec.get("lineEnding", "LF") not in ("LF", "CRLF"):
        raise ApiError(400, "INVALIDJOB", "InvalidJob : lineEnding must be LF or CRLF")
    ext_name = spec.get("externalIdFieldName")
    ext = _field(org, sobject.name, str(ext_name)) if operation == "upsert" else None
    if operation == "upsert" and (ext is None or not ext.external_id):
        message = (
            f"InvalidJob : Field name provided, {ext_name} is not an External ID or indexed field for {sobject.name}"
        )
        raise ApiError(400, "INVALIDJOB", message)
    job = IngestJob(
        id=org.new_job_id(),
        operation=operation,
        sobject=sobject.name,
        external_id_field=ext.name if ext is not None else None,
        column_delimiter=spec.get("columnDelimiter", "COMMA"),
        line_ending=spec.get("lineEnding", "LF"),
        api_version=float(version),
        created=format_datetime(org.now()),
        created_by=org.user_id,
    )
    org.ingest_jobs[job.id] = job
    return job.info(full=False)


def upload_ingest_data(org: SandboxOrg, job_id: str, body: bytes) -> Response:
    """PUT jobs/ingest/{id}/batches: the job's one CSV upload; 201 with no body."""
    job = _job(org, job_id)
    if job.state != "Open" or job.data is not None:
        raise _state_error(job, "upload data to")
    try:
        job.data = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ApiError(400, "ClientInputError", f"ClientInputError : the CSV is not UTF-8: {exc}") from exc
    return Response(status_code=201)


def change_ingest_job(org: SandboxOrg, job_id: str, body: bytes) -> dict[str, Any]:
    """PATCH jobs/ingest/{id}: UploadComplete (the sandbox processes the CSV right away) or Aborted."""
    job = _job(org, job_id)
    spec = _json(body)
    state = spec.get("state") if isinstance(spec, dict) else None
    if state not in ("UploadComplete", "Aborted") or job.state != "Open":
        raise _state_error(job, f"set {state} on")
    if state == "Aborted":
        job.state = "Aborted"
        job.unprocessed = job.rows()[1:]
        return job.info(full=False)
    _process(org, job)
    return {**job.info(full=False), "state": "UploadComplete"}  # what Salesforce answers before processing


def ingest_job_info(org: SandboxOrg, job_id: str) -> dict[str, Any]:
    """GET jobs/ingest/{id}."""
    return _job(org, job_id).info()


def ingest_results(org: SandboxOrg, job_id: str, kind: str) -> Response:
    """GET jobs/ingest/{id}/successfulResults | failedResults | unprocessedrecords, as CSV."""
    return Response(_job(org, job_id).results_csv(kind), media_type="text/csv")


def delete_ingest_job(org: SandboxOrg, job_id: str) -> Response:
    """DELETE jobs/ingest/{id}: forget a job that is no longer open; 204."""
    job = _job(org, job_id)
    if job.state == "Open":
        raise _state_error(job, "delete")
    org.ingest_jobs.pop(job_id, None)
    return Response(status_code=204)


@dataclass(frozen=True)
class _Column:
    kind: str  # "id", "field" or "ref"
    meta: FieldMetadata | None = None
    target: str | None = None
    ext: str | None = None


def _column(org: SandboxOrg, sobject: str, name: str) -> _Column | None:
    if name.lower() == "id":
        return _Column("id")
    if "." in name:
        relationship, _, ext_name = name.partition(".")
        try:
            lookup, target, ext = _reference(org, sobject, relationship, ext_name)
        except ApiError:
            return None
        return _Column("ref", lookup, target, ext)
    meta = _field(org, sobject, name)
    return _Column("field", meta) if meta is not None else None


def _read_csv_row(job: IngestJob, columns: list[_Column], row: list[str]) -> Draft:
    draft = Draft(job.sobject)
    for position, (column, cell) in enumerate(zip(columns, row, strict=True)):
        if cell == "":
            continue  # an empty cell leaves the field as it is; #N/A sets it to null
        value = None if cell == "#N/A" else cell
        if column.kind == "id":
            if job.operation in ("update", "delete"):
                draft.record_id = cell
            else:
                draft.read_only.append("Id")
        elif column.meta is None:
            continue
        elif column.kind == "ref" and value is not None:
            draft.refs[column.meta.name] = (str(column.target), str(column.ext), value)
        elif column.meta.read_only:
            draft.read_only.append(column.meta.name)
        else:
            try:
                draft.values[column.meta.name] = coerce_value(column.meta, value, from_csv=True)
            except BadValue as exc:
                message = f"Failed to deserialize field at col {position}. Due to, {exc}"
                draft.errors.append(_error("INVALID_FIELD", message, [column.meta.name]))
    return draft


def _process(org: SandboxOrg, job: IngestJob) -> None:
    rows = job.rows()
    if not rows:
        job.state, job.error_message = "Failed", "InvalidBatch : No data was uploaded for this job"
        return
    job.header, records = rows[0], rows[1:]
    job.state, job.unprocessed = "Failed", records
    if job.line_ending == "LF" and "\r\n" in (job.data or ""):
        job.error_message = "ClientInputError : LineEnding is invalid on user data. Current LineEnding setting is LF"
        return
    columns = [_column(org, job.sobject, name) for name in job.header]
    unknown = next((name for name, column in zip(job.header, columns, strict=True) if column is None), None)
    if job.operation in ("update", "delete") and "id" not in [name.lower() for name in job.header]:
        unknown = "Id"
    if unknown is not None:
        job.error_message = f"InvalidBatch : Field name not found : {unknown}"
        return
    ragged = next((number for number, row in enumerate(records, 2) if len(row) != len(job.header)), None)
    if ragged is not None:
        job.error_message = f"ClientInputError : row {ragged} does not have {len(job.header)} columns"
        return
    known = [column for column in columns if column is not None]
    if job.operation == "delete":
        position = next(index for index, column in enumerate(known) if column.kind == "id")
        outcomes = delete_records(org, "bulk2_ingest", [row[position] for row in records], all_or_none=False)
    else:
        drafts = [_read_csv_row(job, known, row) for row in records]
        writer = _Writer(org, "bulk2_ingest", operation=job.operation, ext_field=job.external_id_field)
        outcomes = writer.run(drafts)
    job.state, job.unprocessed = "JobComplete", []
    for row, outcome in zip(records, outcomes, strict=True):
        if outcome.errors:
            first = outcome.errors[0]
            error = f"{first['statusCode']}:{first['message']}:{','.join(first['fields'])} --"
            job.failed.append([outcome.id or "", error, *row])
        else:
            job.successful.append([str(outcome.id), str(outcome.created).lower(), *row])
