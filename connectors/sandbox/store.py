"""State of the sandbox Salesforce org: records, delete log, tokens, query cursors, API accounting and faults.

Records are plain dicts in API shape. Every mutation replaces a record's dict instead of changing it, so a query
cursor that holds references to the dicts it matched keeps serving the snapshot it was opened on, as Salesforce's
query locators do. All state changes happen under one lock because the HTTP server runs in another thread.
"""

from __future__ import annotations

import random
import secrets
import threading
from collections import Counter, OrderedDict
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from connectors.sandbox.faults import FaultPlan
from connectors.sandbox.schema import SOBJECTS, format_date, format_datetime, make_id
from connectors.sandbox.soql import Query

MAX_OPEN_CURSORS = 10  # Salesforce keeps at most 10 open query cursors per user; older ones become invalid


@dataclass(frozen=True)
class QueryCursor:
    """An open query: the matched records as of the query call, and the page size."""

    query: Query
    rows: list[dict[str, Any]]
    batch_size: int


class SandboxOrg:
    """An in-memory Salesforce org. Construct it from `generate_org()` output (or nothing for an empty org)."""

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
    ) -> None:
        self.daily_api_limit = daily_api_limit
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
        self._records: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in SOBJECTS}
        self._deleted_log: dict[str, dict[str, str]] = {name: {} for name in SOBJECTS}
        self._next_number = dict.fromkeys(SOBJECTS, 1)
        self._tokens: set[str] = set()
        self._static_token_revoked = False
        self._cursors: OrderedDict[str, QueryCursor] = OrderedDict()
        self._cursor_number = 0
        self._mutate_random = random.Random(7)
        for sobject, rows in (data or {}).items():
            table = self._table(sobject)
            for row in rows:
                table[row["Id"]] = row
                if row.get("IsDeleted"):
                    self._deleted_log[sobject][row["Id"]] = row["SystemModstamp"]

    # --- records -------------------------------------------------------------------------------------------
    def _table(self, sobject: str) -> dict[str, dict[str, Any]]:
        if sobject not in self._records:
            raise KeyError(f"the sandbox org has no SObject '{sobject}' (known: {', '.join(SOBJECTS)})")
        return self._records[sobject]

    def now(self) -> datetime:
        """Current UTC time at millisecond precision (the API's resolution)."""
        current = datetime.now(UTC)
        return current.replace(microsecond=current.microsecond // 1000 * 1000)

    def _values(self, sobject: str, fields: dict[str, Any]) -> dict[str, Any]:
        known = SOBJECTS[sobject].fields
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
            values = self._values(sobject, fields)
            stamp = format_datetime(self.now())
            record: dict[str, Any] = dict.fromkeys(SOBJECTS[sobject].fields)
            if SOBJECTS[sobject].soft_deletes:
                record["IsDeleted"] = False
            record.update(CreatedDate=stamp, LastModifiedDate=stamp, SystemModstamp=stamp)
            record.update(values)
            if not record.get("Id"):
                while True:
                    record_id = make_id(SOBJECTS[sobject].key_prefix, self._next_number[sobject])
                    self._next_number[sobject] += 1
                    if record_id not in table:
                        break
                record["Id"] = record_id
            table[record["Id"]] = record
            return dict(record)

    def update(
        self, sobject: str, record_id: str, fields: dict[str, Any], *, modstamp: datetime | None = None
    ) -> dict[str, Any]:
        """Change fields of a record; LastModifiedDate and SystemModstamp become `modstamp` (default: now)."""
        with self._lock:
            table = self._table(sobject)
            if record_id not in table:
                raise KeyError(f"{sobject} {record_id} does not exist")
            stamp = format_datetime(modstamp or self.now())
            record = {**table[record_id], **self._values(sobject, fields)}
            record.update(LastModifiedDate=stamp, SystemModstamp=stamp)
            table[record_id] = record
            return dict(record)

    def delete(self, sobject: str, record_id: str) -> None:
        """Soft delete: IsDeleted becomes true; queryAll still returns the record and getDeleted lists it."""
        if not SOBJECTS[sobject].soft_deletes:
            raise ValueError(f"{sobject} records cannot be deleted in Salesforce (deactivate them instead)")
        with self._lock:
            table = self._table(sobject)
            stamp = format_datetime(self.now())
            table[record_id] = {**table[record_id], "IsDeleted": True, "SystemModstamp": stamp}
            self._deleted_log[sobject][record_id] = stamp

    def purge(self, sobject: str, record_id: str) -> None:
        """Hard delete (emptied recycle bin): gone from queryAll too, still listed by getDeleted."""
        with self._lock:
            del self._table(sobject)[record_id]
            self._deleted_log[sobject].setdefault(record_id, format_datetime(self.now()))

    def records(self, sobject: str, *, include_deleted: bool = False) -> list[dict[str, Any]]:
        """Copies of the current records of `sobject` (soft-deleted ones only with include_deleted)."""
        return [dict(row) for row in self.snapshot(sobject, include_deleted=include_deleted)]

    def get(self, sobject: str, record_id: str) -> dict[str, Any] | None:
        """A copy of one record (deleted or not), or None when it does not exist or was purged."""
        row = self._table(sobject).get(record_id)
        return dict(row) if row is not None else None

    def snapshot(self, sobject: str, *, include_deleted: bool = False) -> list[dict[str, Any]]:
        """The current record dicts themselves (never mutated later, so safe to hold on to)."""
        with self._lock:
            rows = list(self._table(sobject).values())
        return rows if include_deleted else [row for row in rows if not row.get("IsDeleted")]

    def deleted_log(self, sobject: str) -> dict[str, str]:
        """Record id -> deletedDate of every record deleted (soft or hard) in `sobject`."""
        with self._lock:
            return dict(self._deleted_log[sobject])

    def mutate(self, sobject: str, count: int) -> list[str]:
        """Change `count` live records of `sobject` now (a user editing during a sync); return their ids."""
        with self._lock:
            live = [row["Id"] for row in self.snapshot(sobject)]
            chosen = self._mutate_random.sample(live, min(count, len(live)))
            field = next((f for f in ("Description", "NextStep", "Title") if f in SOBJECTS[sobject].fields), None)
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
    def open_cursor(self, query: Query, rows: list[dict[str, Any]], batch_size: int) -> str:
        """Keep `rows` for later pages and return the query locator."""
        with self._lock:
            self._cursor_number += 1
            locator = make_id("01g", self._cursor_number)
            self._cursors[locator] = QueryCursor(query, rows, batch_size)
            while len(self._cursors) > MAX_OPEN_CURSORS:
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
            }
