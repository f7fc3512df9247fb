"""State of the sandbox Salesforce org: schema, records, delete log, tokens, query cursors, API accounting and faults.

Records are plain dicts in API shape. Every mutation replaces a record's dict instead of changing it, so a query
cursor that holds references to the dicts it matched keeps serving the snapshot it was opened on, as Salesforce's
query locators do. All state changes happen under one lock because the HTTP server runs in another thread.

Each org has its own schema map, starting as the built-in ``schema.SOBJECTS``: :meth:`SandboxOrg.deploy_metadata`
adds custom objects and fields from SFDX metadata, :meth:`SandboxOrg.remove_field` and
:meth:`SandboxOrg.remove_object` take them away again (several orgs live in one test process, so the module-global
map is never changed). SOQL still parses against the built-in schema only (with the relation objects below).

With Shared Activities (the default) the org also holds TaskRelation and EventRelation (``salesforce_relations``):
writes of a task's or event's WhoId/WhatId keep its relation rows in step, :meth:`SandboxOrg.relate` and
:meth:`SandboxOrg.unrelate` add and remove further contacts, and deleting, purging or undeleting the activity
cascades to its relations.
"""

from __future__ import annotations

import csv
import io
import random
import secrets
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from typing import Any

from connectors.sandbox import salesforce_merge
from connectors.sandbox.faults import FaultPlan
from connectors.sandbox.salesforce_metadata import (
    SYSTEM_FIELDS,
    FieldMetadata,
    ObjectMetadata,
    field_for_describe_type,
)
from connectors.sandbox.salesforce_relations import MAX_CONTACTS, RELATION_OBJECTS, RELATIONS_OF, is_who
from connectors.sandbox.schema import (
    BOOLEAN,
    DATETIME,
    ID,
    SOBJECTS,
    STRING,
    SObjectSchema,
    format_date,
    format_datetime,
    make_id,
)
from connectors.sandbox.soql import Query

MAX_OPEN_CURSORS = 10  # Salesforce keeps at most 10 open query cursors per user; older ones become invalid
_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


@dataclass
class QueryCursor:
    """An open query: the matched records as of the query call, the page size and, per subquery (relationship
    name), each parent id's matching child records as of the query call."""

    query: Query
    rows: list[dict[str, Any]]
    batch_size: int
    children: dict[str, dict[str, list[dict[str, Any]]]] = field(default_factory=dict)
    read_to: int = 0  # how far its pages have been served: a cursor read to the end holds nothing more to fetch

    @property
    def finished(self) -> bool:
        return self.read_to >= len(self.rows)


CSV_DELIMITERS = {"BACKQUOTE": "`", "CARET": "^", "COMMA": ",", "PIPE": "|", "SEMICOLON": ";", "TAB": "\t"}


@dataclass
class IngestJob:
    """One Bulk API 2.0 ingest job: its settings, uploaded CSV and, once processed, the result rows
    (``[sf__Id, sf__Created | sf__Error, *uploaded cells]``).
    https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/get_job_info.htm
    """

    id: str
    operation: str
    sobject: str
    external_id_field: str | None
    column_delimiter: str
    line_ending: str
    api_version: float
    created: str
    created_by: str
    state: str = "Open"
    data: str | None = None
    error_message: str | None = None
    header: list[str] = field(default_factory=list)
    successful: list[list[str]] = field(default_factory=list)
    failed: list[list[str]] = field(default_factory=list)
    unprocessed: list[list[str]] = field(default_factory=list)

    def info(self, *, full: bool = True) -> dict[str, Any]:
        """The job info resource; the create and state-change answers carry the short form."""
        answer: dict[str, Any] = {
            "id": self.id,
            "operation": self.operation,
            "object": self.sobject,
            "createdById": self.created_by,
            "createdDate": self.created,
            "systemModstamp": self.created,
            "state": self.state,
            "concurrencyMode": "Parallel",
            "contentType": "CSV",
            "apiVersion": self.api_version,
            "contentUrl": f"services/data/v{self.api_version}/jobs/ingest/{self.id}/batches",
            "lineEnding": self.line_ending,
            "columnDelimiter": self.column_delimiter,
        }
        if self.external_id_field:
            answer["externalIdFieldName"] = self.external_id_field
        if full:
            answer.update(
                jobType="V2Ingest",
                numberRecordsProcessed=len(self.successful) + len(self.failed),
                numberRecordsFailed=len(self.failed),
                retries=0,
                totalProcessingTime=0,
                apiActiveProcessingTime=0,
                apexProcessingTime=0,
            )
            if self.error_message:
                answer["errorMessage"] = self.error_message
        return answer

    def rows(self) -> list[list[str]]:
        """The uploaded CSV as rows (header first), blank lines skipped."""
        reader = csv.reader(io.StringIO(self.data or "", newline=""), delimiter=CSV_DELIMITERS[self.column_delimiter])
        return [row for row in reader if row]

    def results_csv(self, kind: str) -> str:
        """successfulResults, failedResults or unprocessedrecords (any case) as CSV, every value quoted."""
        extra, rows = {
            "successfulresults": (["sf__Id", "sf__Created"], self.successful),
            "failedresults": (["sf__Id", "sf__Error"], self.failed),
            "unprocessedrecords": ([], self.unprocessed),
        }[kind.lower()]
        buffer = io.StringIO()
        writer = csv.writer(buffer, quoting=csv.QUOTE_ALL, lineterminator="\n")
        writer.writerow(extra + self.header)
        writer.writerows(rows)
        return buffer.getvalue()


class Transaction:
    """The changes made inside :meth:`SandboxOrg.transaction`; :meth:`rollback` undoes them."""

    def __init__(self, org: SandboxOrg) -> None:
        self._org = org
        self.undo: list[tuple[str, str, dict[str, Any] | None, str | None]] = []  # (sobject, id, row, deleted)

    def rollback(self) -> None:
        """Put back every record (and delete-log entry) changed in this transaction, newest change first."""
        self._org._restore(self.undo)
        self.undo.clear()


class SandboxOrg:
    """An in-memory Salesforce org. Construct it from `generate_org()` output (or nothing for an empty org) and,
    optionally, SFDX metadata to deploy first (``salesforce_metadata.load_metadata``)."""

    def __init__(
        self,
        data: dict[str, list[dict]] | None = None,
        *,
        daily_api_limit: int = 100_000,
        consumer_key: str = "okrsync-sandbox-key",
        consumer_secret: str = "okrsync-sandbox-secret",
        username: str = "rep@sandbox.okrsync.dev",
        password: str = "sandbox-password",
        security_token: str = "sandbox-token",
        static_access_token: str = "sandbox-access-token",
        org_id: str = "00D000000000001AAA",
        jwt_public_key_pem: str | None = None,
        metadata: Mapping[str, ObjectMetadata] | None = None,
        shared_activities: bool = True,
        email_messages: bool = True,
        leads: bool = True,
        cases: bool = True,
    ) -> None:
        self.daily_api_limit = daily_api_limit
        self.shared_activities = shared_activities
        # Concurrent API request limit: requests running 20 s or longer count; production orgs allow 25
        # (https://developer.salesforce.com/docs/platform/salesforce-app-limits-cheatsheet/guide/salesforce-app-limits-platform-api.html).
        self.concurrent_long_limit = 25
        self.long_request_seconds = 20.0
        self._in_flight: dict[int, float] = {}
        self._request_number = 0
        self.consumer_key = consumer_key
        self.consumer_secret = consumer_secret
        self.username = username
        self.password = password
        self.security_token = security_token
        self.static_access_token = static_access_token
        self.org_id = org_id
        self.user_id = make_id("005", 1)
        self.jwt_public_key_pem = jwt_public_key_pem
        self.faults = FaultPlan()
        self.api_usage_used = 0
        self.api_calls: Counter[str] = Counter()
        self.api_calls_total = 0
        self.token_requests = 0
        self.mutations: list[tuple[str, str]] = []  # (sobject, id) changed by "mutate" faults, in order
        self._lock = threading.RLock()
        self._schemas: dict[str, SObjectSchema] = dict(SOBJECTS)
        self._metadata: dict[str, ObjectMetadata] = {}
        self._rules: dict[str, dict[str, FieldMetadata]] = {}  # cache of field_rules()
        self._prefixes: dict[str, str] = {}  # custom object -> key prefix, kept after removal
        self._auto_numbers: Counter[str] = Counter()
        self._transaction: Transaction | None = None
        self.ingest_jobs: dict[str, IngestJob] = {}
        self._job_number = 0
        if shared_activities:
            self._schemas.update(RELATION_OBJECTS)
        # an integration user without access to EmailMessage (or an org without Enhanced Email and Email-to-Case)
        # is answered INVALID_TYPE "sObject type 'EmailMessage' is not supported", as a real org answers it
        self.email_messages = email_messages
        if not email_messages:
            self._schemas.pop("EmailMessage", None)
        # an integration user without Read on Lead is answered the same way for Lead
        self.leads = leads
        if not leads:
            self._schemas.pop("Lead", None)
        # and one without Read on Case the same way for Case: "sObject type 'Case' is not supported" (object
        # permissions: https://help.salesforce.com/s/articleView?id=sf.users_profiles_object_perms.htm&type=5)
        self.cases = cases
        if not cases:
            self._schemas.pop("Case", None)
        self._records: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in self._schemas}
        self._deleted_log: dict[str, dict[str, str]] = {name: {} for name in self._schemas}
        self._next_number = dict.fromkeys(self._schemas, 1)
        self._tokens: set[str] = set()
        self._static_token_revoked = False
        self._cursors: OrderedDict[str, QueryCursor] = OrderedDict()
        self._cursor_number = 0
        self._mutate_random = random.Random(7)
        self.deploy_metadata(metadata or {})
        self._load(data or {})

    def _load(self, data: dict[str, list[dict]]) -> None:
        for sobject, rows in data.items():
            if sobject not in self._schemas and sobject in ("EmailMessage", "Lead", "Case"):
                continue  # not visible to this user
            table = self._table(sobject)
            for row in rows:
                table[row["Id"]] = row
                if row.get("IsDeleted"):
                    self._deleted_log[sobject][row["Id"]] = row["SystemModstamp"]

    def reset(self, data: dict[str, list[dict]] | None = None) -> None:
        """Put the org back to ``data`` (rows are shared, never changed in place), as if it had just been created
        from it: records, delete log, id numbers, query cursors, planned faults, call counters and daily usage.
        Schema, deployed metadata and issued sessions stay. One running server can so serve many test scenarios."""
        with self._lock:
            self._records = {name: {} for name in self._schemas}
            self._deleted_log = {name: {} for name in self._schemas}
            self._next_number = dict.fromkeys(self._schemas, 1)
            self._cursors.clear()
            self._cursor_number = 0
            self._mutate_random = random.Random(7)
            self.mutations.clear()
            self.ingest_jobs.clear()
            self._job_number = 0
            self._auto_numbers.clear()
            self.faults.clear()
            self.api_usage_used = 0
            self.reset_stats()
            self._load(data or {})

    # --- schema --------------------------------------------------------------------------------------------
    def deploy_metadata(self, metadata: Mapping[str, ObjectMetadata]) -> None:
        """Deploy custom objects (each with Id, Name, IsDeleted and the audit fields; key prefixes a00, a01, ... in
        name order) and add the extra fields of standard objects (``standard=True``) to them. Deploying again adds
        what is new and brings back removed fields; records are kept."""
        with self._lock:
            for name in sorted(metadata):
                meta = metadata[name]
                if meta.standard:
                    base = SOBJECTS.get(name)
                    if base is None:
                        raise KeyError(f"the sandbox org does not model the standard object '{name}'")
                    earlier = self._metadata.get(name)
                    meta = replace(meta, fields={**(earlier.fields if earlier else {}), **meta.fields})
                    extra = {field: rules.describe_type for field, rules in meta.fields.items()}
                    self._schemas[name] = SObjectSchema(name, base.key_prefix, {**base.fields, **extra})
                else:
                    prefix = self._prefixes.setdefault(name, self._new_prefix())
                    custom = {field: rules.describe_type for field, rules in meta.fields.items()}
                    fields = {"Id": ID, "Name": STRING, **custom, "IsDeleted": BOOLEAN}
                    fields.update(CreatedDate=DATETIME, LastModifiedDate=DATETIME, SystemModstamp=DATETIME)
                    self._schemas[name] = SObjectSchema(name, prefix, fields)
                    self._records.setdefault(name, {})
                    self._deleted_log.setdefault(name, {})
                    self._next_number.setdefault(name, 1)
                self._metadata[name] = meta
            self._rules.clear()

    def _new_prefix(self) -> str:
        number = len(self._prefixes)
        return "a" + _BASE62[number // 62] + _BASE62[number % 62]

    def remove_field(self, sobject: str, field: str) -> None:
        """Take a field away (an admin deleted it, or the integration user lost access): writes naming it are then
        refused and records() no longer shows it. SOQL keeps the built-in schema."""
        with self._lock:
            schema = self._schema(sobject)
            name = schema.field(field)
            if name is None:
                raise KeyError(f"{sobject} has no field '{field}'")
            if name in SYSTEM_FIELDS or name == "Name":
                raise ValueError(f"{sobject}.{name} is a system field and cannot be removed")
            fields = {key: kind for key, kind in schema.fields.items() if key != name}
            self._schemas[schema.name] = SObjectSchema(schema.name, schema.key_prefix, fields)
            meta = self._metadata.get(schema.name)
            if meta is not None and name in meta.fields:
                kept = {key: rules for key, rules in meta.fields.items() if key != name}
                self._metadata[schema.name] = replace(meta, fields=kept)
            self._rules.pop(schema.name, None)

    def remove_object(self, sobject: str) -> None:
        """Take a deployed custom object away with its records (standard objects cannot be removed)."""
        with self._lock:
            schema = self._schema(sobject)
            if schema.name in SOBJECTS or schema.name in RELATION_OBJECTS:
                raise ValueError(f"{schema.name} is a standard object and cannot be removed")
            for state in (self._schemas, self._metadata, self._records, self._deleted_log, self._rules):
                state.pop(schema.name, None)

    def sobject(self, name: str) -> SObjectSchema | None:
        """The org's schema of SObject `name` (any case), or None when the org has no such type."""
        with self._lock:
            found = self._schemas.get(name)
            if found is None:
                found = next((s for key, s in self._schemas.items() if key.lower() == name.lower()), None)
            return found

    def _schema(self, sobject: str) -> SObjectSchema:
        found = self.sobject(sobject)
        if found is None:
            raise KeyError(f"the sandbox org has no SObject '{sobject}' (known: {', '.join(self._schemas)})")
        return found

    def sobject_for_prefix(self, key_prefix: str) -> str | None:
        """The SObject whose ids start with `key_prefix`, also a removed custom object; None when none ever had it."""
        with self._lock:
            found = next((name for name, s in self._schemas.items() if s.key_prefix == key_prefix), None)
            return found or next((name for name, p in self._prefixes.items() if p == key_prefix), None)

    def object_metadata(self, sobject: str) -> ObjectMetadata | None:
        """The deployed metadata of `sobject` (for a standard object: its extra fields), None when none was deployed."""
        with self._lock:
            return self._metadata.get(sobject)

    def field_rules(self, sobject: str) -> dict[str, FieldMetadata]:
        """Every field of `sobject` with its write rules: deployed metadata where there is some, the field's type
        without length/range limits for the built-in fields; Id, IsDeleted and audit fields are read-only."""
        with self._lock:
            cached = self._rules.get(sobject)
            if cached is None:
                schema, meta = self._schema(sobject), self._metadata.get(sobject)
                name_field = meta.name_field() if meta is not None else None
                cached = {}
                for name, kind in schema.fields.items():
                    if meta is not None and name in meta.fields:
                        cached[name] = meta.fields[name]
                    elif name == "Name" and name_field is not None:
                        cached[name] = name_field
                    else:
                        cached[name] = field_for_describe_type(name, kind)
                self._rules[sobject] = cached
            return cached

    def next_auto_number(self, sobject: str) -> int:
        """The next number of `sobject`'s AutoNumber Name (numbers used by rolled-back writes are not reused)."""
        with self._lock:
            self._auto_numbers[sobject] += 1
            return self._auto_numbers[sobject]

    def new_job_id(self) -> str:
        """A fresh Bulk API 2.0 job id (key prefix 750)."""
        with self._lock:
            self._job_number += 1
            return make_id("750", self._job_number)

    # --- records -------------------------------------------------------------------------------------------
    def _table(self, sobject: str) -> dict[str, dict[str, Any]]:
        if sobject not in self._schemas:
            raise KeyError(f"the sandbox org has no SObject '{sobject}' (known: {', '.join(self._schemas)})")
        return self._records[sobject]

    def _shaped(self, sobject: str, row: dict[str, Any]) -> dict[str, Any]:
        schema = self._schemas[sobject]
        if schema is SOBJECTS.get(sobject):
            return dict(row)
        # Deployed fields read as null on older records; removed fields are no longer visible.
        return {name: row.get(name) for name in schema.fields}

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """Hold the org's lock for a multi-record write; rollback() on the yielded Transaction undoes its changes."""
        with self._lock:
            transaction = Transaction(self)
            self._transaction = transaction
            try:
                yield transaction
            finally:
                self._transaction = None

    def _remember(self, sobject: str, record_id: str) -> None:
        if self._transaction is not None:
            row, deleted = self._records[sobject].get(record_id), self._deleted_log[sobject].get(record_id)
            self._transaction.undo.append((sobject, record_id, row, deleted))

    def _restore(self, changes: list[tuple[str, str, dict[str, Any] | None, str | None]]) -> None:
        with self._lock:
            for sobject, record_id, row, deleted in reversed(changes):
                table, log = self._records.get(sobject), self._deleted_log.get(sobject)
                if table is None or log is None:
                    continue  # the object was removed meanwhile
                if row is None:
                    table.pop(record_id, None)
                else:
                    table[record_id] = row
                if deleted is None:
                    log.pop(record_id, None)
                else:
                    log[record_id] = deleted

    def now(self) -> datetime:
        """Current UTC time at millisecond precision (the API's resolution)."""
        current = datetime.now(UTC)
        return current.replace(microsecond=current.microsecond // 1000 * 1000)

    def _values(self, sobject: str, fields: dict[str, Any]) -> dict[str, Any]:
        known = self._schema(sobject).fields
        values: dict[str, Any] = {}
        for name, value in fields.items():
            if name not in known:
                raise KeyError(f"{sobject} has no field '{name}'")
            if isinstance(value, datetime):
                value = format_datetime(value)
            elif isinstance(value, date):
                value = format_date(value)
            values[name] = value
        return values

    def insert(self, sobject: str, fields: dict[str, Any]) -> dict[str, Any]:
        """Create a record (Id and audit timestamps generated unless given) and return it."""
        with self._lock:
            table = self._table(sobject)
            schema = self._schemas[sobject]
            values = self._values(sobject, fields)
            stamp = format_datetime(self.now())
            record: dict[str, Any] = dict.fromkeys(schema.fields)
            if schema.soft_deletes:
                record["IsDeleted"] = False
            record.update(CreatedDate=stamp, LastModifiedDate=stamp, SystemModstamp=stamp)
            record.update(values)
            if not record.get("Id"):
                while True:
                    record_id = make_id(schema.key_prefix, self._next_number[sobject])
                    self._next_number[sobject] += 1
                    if record_id not in table:
                        break
                record["Id"] = record_id
            self._remember(sobject, record["Id"])
            table[record["Id"]] = record
            if sobject in RELATIONS_OF and self.shared_activities:
                for name in ("WhoId", "WhatId"):
                    self._move_relation(sobject, record, None, record.get(name))
            return self._shaped(sobject, record)

    def update(
        self,
        sobject: str,
        record_id: str,
        fields: dict[str, Any],
        *,
        modstamp: datetime | None = None,
        by_system: bool = False,
    ) -> dict[str, Any]:
        """Change fields of a record; LastModifiedDate and SystemModstamp become `modstamp` (default: now).
        ``by_system``: a change the platform makes itself (a merge re-parenting a child record), which moves only
        SystemModstamp, "when a user or automated process (such as a trigger) last modified this record", not
        LastModifiedDate, "when a user last modified this record"
        (https://developer.salesforce.com/docs/atlas.en-us.api.meta/api/system_fields.htm)."""
        with self._lock:
            table = self._table(sobject)
            if record_id not in table:
                raise KeyError(f"{sobject} {record_id} does not exist")
            stamp = format_datetime(modstamp or self.now())
            before = table[record_id]
            record = {**before, **self._values(sobject, fields)}
            record["SystemModstamp"] = stamp
            if not by_system:
                record["LastModifiedDate"] = stamp
            self._remember(sobject, record_id)
            table[record_id] = record
            if sobject in RELATIONS_OF and self.shared_activities:
                for name in ("WhoId", "WhatId"):
                    if before.get(name) != record.get(name):
                        self._move_relation(sobject, record, before.get(name), record.get(name))
            return self._shaped(sobject, record)

    def delete(
        self, sobject: str, record_id: str, *, modstamp: datetime | None = None, master_record_id: str | None = None
    ) -> None:
        """Soft delete: IsDeleted becomes true; queryAll still returns the record and getDeleted lists it. An
        activity's relations are deleted with it; a relation deleted on its own is gone at once (:meth:`unrelate`).
        ``master_record_id``: the record lost a merge into that one (:meth:`merge`), which sets its MasterRecordId."""
        if not self._schema(sobject).soft_deletes:
            raise ValueError(f"{sobject} records cannot be deleted in Salesforce (deactivate them instead)")
        if sobject in RELATION_OBJECTS:
            self.unrelate(record_id)
            return
        with self._lock:
            table = self._table(sobject)
            stamp = format_datetime(modstamp or self.now())
            self._remember(sobject, record_id)
            merged = {"MasterRecordId": master_record_id} if master_record_id else {}
            table[record_id] = {**table[record_id], "IsDeleted": True, "SystemModstamp": stamp, **merged}
            self._deleted_log[sobject][record_id] = stamp
            for relation in self._relations(sobject, record_id):
                self._set_relation_deleted(relation, deleted=True, stamp=stamp)

    def merge(
        self, sobject: str, master_id: str, loser_ids: list[str], *, fields: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Merge up to two records into ``master_id`` (Account or Contact), as the API's merge() does: see
        :func:`connectors.sandbox.salesforce_merge.merge`. Returns the master record."""
        return salesforce_merge.merge(self, sobject, master_id, loser_ids, fields=fields)

    def undelete(self, sobject: str, record_id: str) -> dict[str, Any]:
        """Restore a soft-deleted record from the recycle bin (IsDeleted false, a new SystemModstamp), with the
        relations deleted along with it. getDeleted keeps listing the deletion: it happened in its time span
        (https://developer.salesforce.com/docs/atlas.en-us.api.meta/api/sforce_api_calls_undelete.htm,
        https://developer.salesforce.com/docs/atlas.en-us.api.meta/api/sforce_api_calls_getdeleted.htm)."""
        with self._lock:
            table = self._table(sobject)
            if not (table.get(record_id) or {}).get("IsDeleted"):
                raise KeyError(f"{sobject} {record_id} is not in the recycle bin")
            stamp = format_datetime(self.now())
            self._remember(sobject, record_id)
            table[record_id] = {
                **table[record_id],
                "IsDeleted": False,
                "LastModifiedDate": stamp,
                "SystemModstamp": stamp,
            }
            for relation in self._relations(sobject, record_id, deleted=True):
                self._set_relation_deleted(relation, deleted=False, stamp=stamp)
            return self._shaped(sobject, table[record_id])

    def purge(self, sobject: str, record_id: str) -> None:
        """Hard delete (emptied recycle bin): gone from queryAll too, still listed by getDeleted. A record taken
        from the recycle bin keeps the date it was deleted on; a live one (also one undeleted earlier) is listed as
        deleted now, not at a deletion its undelete had reverted."""
        with self._lock:
            table = self._table(sobject)
            self._remember(sobject, record_id)
            row = table.pop(record_id)
            log = self._deleted_log[sobject]
            if not (row.get("IsDeleted") and record_id in log):
                log[record_id] = format_datetime(self.now())
            for relation in self._relations(sobject, record_id, deleted=None):
                self.purge(relation[0], relation[1]["Id"])

    # --- Shared Activities ---------------------------------------------------------------------------------
    def relate(self, sobject: str, record_id: str, relation_id: str, *, invitee: bool = False) -> dict[str, Any]:
        """Relate the task or event ``record_id`` to one more contact, lead or record (a TaskRelation or
        EventRelation row). The activity itself is not re-stamped: nothing documents that it is. An activity
        without a WhoId gets this contact or lead as its WhoId."""
        with self._lock:
            if not self.shared_activities:
                raise ValueError("Shared Activities is not enabled in this org")
            relation, field_name, _name = RELATIONS_OF[sobject]
            parent = self._table(sobject)[record_id]
            related = self._relations(sobject, record_id)
            if any(row["RelationId"] == relation_id for _name, row in related):
                raise ValueError(f"{sobject} {record_id} is already related to {relation_id}")
            if is_who(relation_id) and sum(1 for _name, row in related if is_who(row["RelationId"])) >= MAX_CONTACTS:
                raise ValueError(f"{sobject} {record_id} already has {MAX_CONTACTS} contacts")
            values = {field_name: record_id, "RelationId": relation_id, "IsWhat": not is_who(relation_id)}
            values["AccountId"] = parent.get("AccountId")
            if relation == "EventRelation":
                values.update(IsParent=not invitee, IsInvitee=invitee, Status="New" if invitee else None)
            row = self.insert(relation, values)
            if is_who(relation_id) and not parent.get("WhoId") and not invitee:
                self._update_quietly(sobject, record_id, {"WhoId": relation_id})
            return row

    def unrelate(self, relation_row_id: str) -> None:
        """Delete one TaskRelation/EventRelation row directly: not moved to the recycle bin (gone from queryAll,
        listed by getDeleted). Its activity changes: when it was the WhoId, the next related contact is promoted
        (or WhoId is cleared), otherwise its list of related people changes; either way it gets a new stamp."""
        with self._lock:
            sobject = next(
                (name for name, s in RELATION_OBJECTS.items() if relation_row_id.startswith(s.key_prefix)), None
            )
            row = self._records[sobject].get(relation_row_id) if sobject and sobject in self._records else None
            if sobject is None or row is None:
                raise KeyError(f"no relation {relation_row_id}")
            self.purge(sobject, relation_row_id)
            parent_sobject = next(name for name, (relation, *_rest) in RELATIONS_OF.items() if relation == sobject)
            parent_id = row[RELATIONS_OF[parent_sobject][1]]
            parent = self._records[parent_sobject].get(parent_id)
            if parent is None or parent.get("IsDeleted"):
                return
            changes: dict[str, Any] = {}
            if parent.get("WhoId") == row["RelationId"]:
                others = sorted(
                    (r for _name, r in self._relations(parent_sobject, parent_id) if is_who(r["RelationId"])),
                    key=lambda r: (r["CreatedDate"], r["Id"]),
                )
                changes["WhoId"] = others[0]["RelationId"] if others else None
            if parent.get("WhatId") == row["RelationId"]:
                changes["WhatId"] = None
            self._update_quietly(parent_sobject, parent_id, changes)

    def _update_quietly(self, sobject: str, record_id: str, fields: dict[str, Any]) -> None:
        """Update without touching relations (the caller keeps them in step)."""
        table = self._table(sobject)
        stamp = format_datetime(self.now())
        self._remember(sobject, record_id)
        table[record_id] = {**table[record_id], **fields, "LastModifiedDate": stamp, "SystemModstamp": stamp}

    def _relations(
        self, sobject: str, record_id: str, *, deleted: bool | None = False
    ) -> list[tuple[str, dict[str, Any]]]:
        """(relation object, row) of the activity's relations: live ones, deleted ones, or all (None)."""
        if sobject not in RELATIONS_OF or not self.shared_activities:
            return []
        relation, field_name, _name = RELATIONS_OF[sobject]
        return [
            (relation, row)
            for row in self._records[relation].values()
            if row[field_name] == record_id and (deleted is None or bool(row.get("IsDeleted")) == deleted)
        ]

    def _set_relation_deleted(self, relation: tuple[str, dict[str, Any]], *, deleted: bool, stamp: str) -> None:
        sobject, row = relation
        self._remember(sobject, row["Id"])
        self._records[sobject][row["Id"]] = {**row, "IsDeleted": deleted, "SystemModstamp": stamp}
        if deleted:
            self._deleted_log[sobject][row["Id"]] = stamp

    def _move_relation(self, sobject: str, record: dict[str, Any], old: str | None, new: str | None) -> None:
        """WhoId or WhatId of an activity changed from ``old`` to ``new``: its relation rows follow."""
        related = self._relations(sobject, record["Id"])
        if old and old not in (record.get("WhoId"), record.get("WhatId")):
            for relation, row in related:
                if row["RelationId"] == old:
                    self.purge(relation, row["Id"])
        if new and not any(row["RelationId"] == new for _name, row in related):
            relation, field_name, _name = RELATIONS_OF[sobject]
            values = {field_name: record["Id"], "RelationId": new, "IsWhat": not is_who(new)}
            values["AccountId"] = record.get("AccountId")
            if relation == "EventRelation":
                values.update(IsParent=True, IsInvitee=False)
            self.insert(relation, values)

    def records(self, sobject: str, *, include_deleted: bool = False) -> list[dict[str, Any]]:
        """Copies of the current records of `sobject` (soft-deleted ones only with include_deleted)."""
        with self._lock:
            return [self._shaped(sobject, row) for row in self.snapshot(sobject, include_deleted=include_deleted)]

    def get(self, sobject: str, record_id: str) -> dict[str, Any] | None:
        """A copy of one record (deleted or not), or None when it does not exist or was purged."""
        with self._lock:
            row = self._table(sobject).get(record_id)
            return self._shaped(sobject, row) if row is not None else None

    def snapshot(self, sobject: str, *, include_deleted: bool = False) -> list[dict[str, Any]]:
        """The current record dicts themselves (never mutated later, so safe to hold on to)."""
        with self._lock:
            rows = list(self._table(sobject).values())
        return rows if include_deleted else [row for row in rows if not row.get("IsDeleted")]

    def readable(self, sobject: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The rows of ``sobject`` the integration user may read. An Email-to-Case e-mail (ParentId a case) follows
        access to its case: "If Email-to-Case is enabled and the email is based on a case (the ParentId field is a
        Case), access depends on the user's access to the related case record"
        (https://developer.salesforce.com/docs/atlas.en-us.object_reference.meta/object_reference/sforce_api_objects_emailmessage.htm),
        so a user without Read on Case sees none. (The creator of an e-mail always sees it; not modelled: stricter.)"""
        if sobject != "EmailMessage" or self.cases:
            return rows
        case_prefix = SOBJECTS["Case"].key_prefix
        return [row for row in rows if not str(row.get("ParentId") or "").startswith(case_prefix)]

    def deleted_log(self, sobject: str) -> dict[str, str]:
        """Record id -> deletedDate of every record deleted (soft or hard) in `sobject`."""
        with self._lock:
            return dict(self._deleted_log[sobject])

    def mutate(self, sobject: str, count: int) -> list[str]:
        """Change `count` live records of `sobject` now (a user editing during a sync); return their ids."""
        with self._lock:
            live = [row["Id"] for row in self.snapshot(sobject)]
            chosen = self._mutate_random.sample(live, min(count, len(live)))
            known = self._schema(sobject).fields
            field = next((f for f in ("Description", "NextStep", "Title") if f in known), None)
            for record_id in chosen:
                self.update(sobject, record_id, {field: f"Changed during sync {len(self.mutations)}"} if field else {})
                self.mutations.append((sobject, record_id))
            return chosen

    # --- sessions ------------------------------------------------------------------------------------------
    def issue_token(self) -> str:
        """Issue a new OAuth access token."""
        with self._lock:
            token = f"{self.org_id[:15]}!{secrets.token_urlsafe(32)}"
            self._tokens.add(token)
            return token

    def token_is_valid(self, token: str | None) -> bool:
        """True for an issued, unrevoked token or the unrevoked static token."""
        if not token:
            return False
        with self._lock:
            return token in self._tokens or (token == self.static_access_token and not self._static_token_revoked)

    def revoke_tokens(self) -> None:
        """Expire every session issued so far, the static token included."""
        with self._lock:
            self._tokens.clear()
            self._static_token_revoked = True

    # --- query cursors -------------------------------------------------------------------------------------
    def open_cursor(
        self,
        query: Query,
        rows: list[dict[str, Any]],
        batch_size: int,
        *,
        children: dict[str, dict[str, list[dict[str, Any]]]] | None = None,
    ) -> str:
        """Keep `rows` (and their subqueries' `children`) for later pages and return the query locator."""
        with self._lock:
            self._cursor_number += 1
            locator = make_id("01g", self._cursor_number)
            self._cursors[locator] = QueryCursor(query, rows, batch_size, children or {})
            while len(self._cursors) > MAX_OPEN_CURSORS:
                # a query answered in full (its last page served) holds nothing more to fetch: its locator is
                # released before one a client is still paging through; among those the oldest goes first. Salesforce
                # creates a cursor only "when results for a large or complex query can't be returned in a single
                # batch", and since API 56.0 has no limit on open cursors at all; the 10-per-user limit kept here
                # (older versions: oldest released) is the stricter model.
                # https://developer.salesforce.com/docs/platform/salesforce-app-limits-cheatsheet/guide/salesforce-app-limits-platform-apicursors.html
                # https://developer.salesforce.com/docs/atlas.en-us.234.0.api.meta/api/sforce_api_calls_query_querylocator.htm
                finished = next(
                    (key for key, open_ in self._cursors.items() if open_.finished and key != locator), None
                )
                if finished is not None:
                    del self._cursors[finished]
                else:
                    self._cursors.popitem(last=False)
            return locator

    def cursor(self, locator: str) -> QueryCursor | None:
        """The open cursor `locator`, or None when unknown or expired."""
        with self._lock:
            return self._cursors.get(locator)

    # --- accounting ----------------------------------------------------------------------------------------
    def count_call(self, call: str) -> None:
        """Record one /services/data request (served or refused)."""
        with self._lock:
            self.api_calls[call] += 1
            self.api_calls_total += 1

    def request_started(self) -> int:
        """Note a /services/data request in flight; returns its number for :meth:`request_finished`."""
        with self._lock:
            self._request_number += 1
            self._in_flight[self._request_number] = time.monotonic()
            return self._request_number

    def request_finished(self, number: int) -> None:
        """The request ``number`` has been answered."""
        with self._lock:
            self._in_flight.pop(number, None)

    def long_requests_running(self) -> int:
        """Requests in flight for ``long_request_seconds`` or longer."""
        with self._lock:
            oldest = time.monotonic() - self.long_request_seconds
            return sum(1 for started in self._in_flight.values() if started <= oldest)

    def reset_stats(self) -> None:
        """Zero the call counters and token request count (daily usage is left alone)."""
        with self._lock:
            self.api_calls.clear()
            self.api_calls_total = 0
            self.token_requests = 0

    def stats(self) -> dict[str, Any]:
        """Counters as JSON: api_calls by name, total, token requests and daily usage."""
        with self._lock:
            return {
                "api_calls": dict(self.api_calls),
                "api_calls_total": self.api_calls_total,
                "token_requests": self.token_requests,
                "api_usage_used": self.api_usage_used,
                "daily_api_limit": self.daily_api_limit,
                "faults": self.faults.summary(),
            }
