"""State of the sandbox HubSpot portal: CRM objects, owners, pipelines, associations, rate limits, faults.

Records are HubSpot API objects ``{id, properties, createdAt, updatedAt, archived[, archivedAt]}`` whose property
values are strings or None, as HubSpot returns them. Like :class:`SandboxOrg`, every mutation replaces a record's
dict instead of changing it, and all state changes happen under one lock (the HTTP server runs in another thread).

Associations are kept symmetric: linking deal 1 to contact 2 also links contact 2 to deal 1, each side with the
HUBSPOT_DEFINED type id HubSpot uses for that direction.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from connectors.sandbox.faults import FaultPlan

OBJECT_TYPES = ("deals", "companies", "contacts", "calls", "emails", "meetings", "notes", "tasks")
# https://developers.hubspot.com/docs/guides/api/crm/understanding-the-crm#object-type-ids
_TYPE_IDS = {
    "contacts": "0-1",
    "companies": "0-2",
    "deals": "0-3",
    "calls": "0-48",
    "emails": "0-49",
    "meetings": "0-47",
    "notes": "0-46",
    "tasks": "0-27",
}
_ALIASES = {
    **{name: name for name in OBJECT_TYPES},
    **{name[:-1]: name for name in OBJECT_TYPES if name != "companies"},
    "company": "companies",
    **{type_id: name for name, type_id in _TYPE_IDS.items()},
}
# Default HUBSPOT_DEFINED association type ids per direction (from, to).
# https://developers.hubspot.com/docs/guides/api/crm/associations/associations-v4#association-type-id-values
ASSOCIATION_TYPE_IDS: dict[tuple[str, str], int] = {
    ("contacts", "companies"): 279,
    ("companies", "contacts"): 280,
    ("deals", "contacts"): 3,
    ("contacts", "deals"): 4,
    ("deals", "companies"): 341,
    ("companies", "deals"): 342,
}
for _number, _engagement in enumerate(("calls", "emails", "meetings", "notes", "tasks")):
    _base = (194, 198, 200, 202, 204)[_number]
    ASSOCIATION_TYPE_IDS[(_engagement, "contacts")] = _base
    ASSOCIATION_TYPE_IDS[("contacts", _engagement)] = _base - 1
    ASSOCIATION_TYPE_IDS[(_engagement, "companies")] = _base - 12
    ASSOCIATION_TYPE_IDS[("companies", _engagement)] = _base - 13
    ASSOCIATION_TYPE_IDS[(_engagement, "deals")] = _base + 12
    ASSOCIATION_TYPE_IDS[("deals", _engagement)] = _base + 11

# Properties HubSpot returns when the request names none.
# https://developers.hubspot.com/docs/guides/api/crm/objects/deals#retrieve-deals
DEFAULT_PROPERTIES: dict[str, tuple[str, ...]] = {
    "deals": ("amount", "closedate", "createdate", "dealname", "dealstage", "hs_lastmodifieddate", "pipeline"),
    "companies": ("createdate", "domain", "hs_lastmodifieddate", "name"),
    "contacts": ("createdate", "email", "firstname", "lastmodifieddate", "lastname"),
}
_ENGAGEMENT_DEFAULTS = ("hs_createdate", "hs_lastmodifieddate", "hs_timestamp")
FAULT_KINDS = ("latency", "http", "drop", "rate_limit")


def object_type(name: str) -> str | None:
    """The plural object type for a name, singular name or object type id ('deal', '0-3'), or None."""
    return _ALIASES.get(name.lower())


def modified_property(kind: str) -> str:
    """The property holding the last-modified timestamp (contacts differ from every other object)."""
    return "lastmodifieddate" if kind == "contacts" else "hs_lastmodifieddate"


def created_property(kind: str) -> str:
    """The property holding the creation timestamp."""
    return "createdate" if kind in ("deals", "companies", "contacts") else "hs_createdate"


def default_properties(kind: str) -> tuple[str, ...]:
    """Property names returned when a request asks for none (hs_object_id is always added)."""
    return DEFAULT_PROPERTIES.get(kind, _ENGAGEMENT_DEFAULTS)


def format_timestamp(value: datetime) -> str:
    """HubSpot's datetime format: ISO 8601 UTC with milliseconds and Z."""
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


class HubSpotFaultPlan(FaultPlan):
    """FaultPlan with the HubSpot kinds: latency, http (status, body?/message?/category?), drop, rate_limit
    (policy: "TEN_SECONDLY_ROLLING" default, "DAILY" or "SECONDLY")."""

    kinds = FAULT_KINDS


class RateLimiter:
    """Private-app limits: `burst_limit` requests per rolling 10 s, `daily_limit` per day, and the search
    API's own `search_per_second`. Rejected requests do not use up the allowance."""

    interval_ms = 10_000

    def __init__(
        self, *, burst_limit: int, daily_limit: int, search_per_second: int, clock: Callable[[], float]
    ) -> None:
        self.burst_limit, self.daily_limit, self.search_per_second = burst_limit, daily_limit, search_per_second
        self.clock = clock
        self.daily_used = 0
        self._burst: deque[float] = deque()
        self._search: deque[float] = deque()

    def _trim(self, window: deque[float], seconds: float, now: float) -> None:
        while window and window[0] <= now - seconds:
            window.popleft()

    def admit(self, *, search: bool) -> str | None:
        """Count one request; return the policy name it violates (and is refused for), or None."""
        now = self.clock()
        self._trim(self._burst, self.interval_ms / 1000, now)
        self._trim(self._search, 1.0, now)
        if self.daily_used >= self.daily_limit:
            return "DAILY"
        if search:
            if len(self._search) >= self.search_per_second:
                return "SECONDLY"
            self._search.append(now)
        else:
            if len(self._burst) >= self.burst_limit:
                return "TEN_SECONDLY_ROLLING"
            self._burst.append(now)
        self.daily_used += 1
        return None

    def headers(self) -> dict[str, str]:
        """The X-HubSpot-RateLimit-* headers as of now."""
        self._trim(self._burst, self.interval_ms / 1000, self.clock())
        return {
            "X-HubSpot-RateLimit-Max": str(self.burst_limit),
            "X-HubSpot-RateLimit-Remaining": str(max(self.burst_limit - len(self._burst), 0)),
            "X-HubSpot-RateLimit-Interval-Milliseconds": str(self.interval_ms),
            "X-HubSpot-RateLimit-Daily": str(self.daily_limit),
            "X-HubSpot-RateLimit-Daily-Remaining": str(max(self.daily_limit - self.daily_used, 0)),
        }


class HubSpotPortal:
    """An in-memory HubSpot portal. Build one with `generate_portal()` or empty, then `insert()` records."""

    def __init__(
        self,
        *,
        access_token: str = "pat-sandbox-okrsync",
        portal_id: int = 145_000_001,
        burst_limit: int = 190,
        daily_limit: int = 1_000_000,
        search_per_second: int = 5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.access_token = access_token
        self.portal_id = portal_id
        self.faults = HubSpotFaultPlan()
        self.limits = RateLimiter(
            burst_limit=burst_limit, daily_limit=daily_limit, search_per_second=search_per_second, clock=clock
        )
        self.api_calls: Counter[str] = Counter()
        self.api_calls_total = 0
        self.owners: list[dict[str, Any]] = []
        self.pipelines: dict[str, list[dict[str, Any]]] = {"deals": []}
        self.version = 0  # bumped on every mutation; lets the API cache search results safely
        self._lock = threading.RLock()
        self._records: dict[str, dict[int, dict[str, Any]]] = {kind: {} for kind in OBJECT_TYPES}
        self._next_id = {kind: (index + 1) * 10_000_000 + 1 for index, kind in enumerate(OBJECT_TYPES)}
        # (from type, from id) -> to type -> {to id: type id}; insertion ordered
        self._links: dict[tuple[str, int], dict[str, dict[int, int]]] = {}
        self._sorted_ids: dict[str, tuple[int, list[int]]] = {}  # kind -> (version, ids ascending)

    # --- records -------------------------------------------------------------------------------------------
    def _table(self, kind: str) -> dict[int, dict[str, Any]]:
        plural = object_type(kind)
        if plural is None:
            raise KeyError(f"the sandbox portal has no object type '{kind}' (known: {', '.join(OBJECT_TYPES)})")
        return self._records[plural]

    def now(self) -> datetime:
        """Current UTC time at millisecond precision."""
        current = datetime.now(UTC)
        return current.replace(microsecond=current.microsecond // 1000 * 1000)

    def add_record(self, kind: str, record: dict[str, Any]) -> None:
        """Store a complete API-shaped record as is (for generators; no checks, no copies)."""
        record_id = int(record["id"])
        self._records[kind][record_id] = record
        if record_id >= self._next_id[kind]:
            self._next_id[kind] = record_id + 1

    def insert(
        self,
        kind: str,
        properties: dict[str, Any],
        *,
        associations: Iterable[tuple[str, str | int]] = (),
    ) -> dict[str, Any]:
        """Create a record (id and create/modify timestamps generated unless given) and return a copy.

        `associations` are (to type, to id) pairs, linked both ways with HubSpot's default type ids.
        """
        with self._lock:
            plural = object_type(kind) or kind
            table = self._table(plural)
            stamp = format_timestamp(self.now())
            values = {"hs_object_id": None, created_property(plural): stamp, modified_property(plural): stamp}
            values.update(_strings(properties))
            record_id = int(values["hs_object_id"] or self._next_id[plural])
            values["hs_object_id"] = str(record_id)
            created, modified = values[created_property(plural)], values[modified_property(plural)]
            record = {
                "id": str(record_id),
                "properties": values,
                "createdAt": created,
                "updatedAt": modified,
                "archived": False,
            }
            if record_id in table:
                raise ValueError(f"{plural} {record_id} already exists")
            self.add_record(plural, record)
            for to_kind, to_id in associations:
                self.associate(plural, record_id, to_kind, to_id)
            self.version += 1
            return _copy(record)

    def update(
        self, kind: str, record_id: str | int, properties: dict[str, Any], *, modified_at: datetime | None = None
    ) -> dict[str, Any]:
        """Change properties; the last-modified property and updatedAt become `modified_at` (default: now)."""
        with self._lock:
            plural = object_type(kind) or kind
            table = self._table(plural)
            current = table.get(int(record_id))
            if current is None:
                raise KeyError(f"{plural} {record_id} does not exist")
            stamp = format_timestamp(modified_at or self.now())
            values = {**current["properties"], **_strings(properties), modified_property(plural): stamp}
            table[int(record_id)] = {**current, "properties": values, "updatedAt": stamp}
            self.version += 1
            return _copy(table[int(record_id)])

    def archive(self, kind: str, record_id: str | int) -> None:
        """Archive (soft delete): gone from search and normal lists, listed with archived=true. HubSpot leaves
        hs_lastmodifieddate alone, so an incremental search cannot see the deletion."""
        with self._lock:
            table = self._table(kind)
            current = table[int(record_id)]
            stamp = format_timestamp(self.now())
            table[int(record_id)] = {**current, "archived": True, "archivedAt": stamp, "updatedAt": stamp}
            self.version += 1

    def get(self, kind: str, record_id: str | int) -> dict[str, Any] | None:
        """The record dict itself (never mutated later), archived or not, or None."""
        try:
            return self._table(kind).get(int(record_id))
        except ValueError:
            return None

    def records(self, kind: str, *, archived: bool = False) -> list[dict[str, Any]]:
        """Copies of the live (or, with archived=True, only the archived) records, ordered by id."""
        return [_copy(row) for row in self.snapshot(kind, archived=archived)]

    def snapshot(self, kind: str, *, archived: bool = False) -> list[dict[str, Any]]:
        """The record dicts themselves ordered by id (safe to hold: they are never changed in place)."""
        with self._lock:
            table = self._table(kind)
            return [table[key] for key in sorted(table) if table[key]["archived"] == archived]

    def page(self, kind: str, *, after: int, limit: int, archived: bool = False) -> list[dict[str, Any]]:
        """Up to `limit` records with id >= `after` in id order (live or only archived), without scanning all."""
        with self._lock:
            table = self._table(kind)
            plural = object_type(kind) or kind
            cached = self._sorted_ids.get(plural)
            if cached is None or cached[0] != self.version:
                cached = self._sorted_ids[plural] = (self.version, sorted(table))
            ids = cached[1]
            rows: list[dict[str, Any]] = []
            for index in range(bisect.bisect_left(ids, after), len(ids)):
                row = table[ids[index]]
                if row["archived"] == archived:
                    rows.append(row)
                    if len(rows) == limit:
                        break
            return rows

    # --- associations --------------------------------------------------------------------------------------
    def associate(self, from_kind: str, from_id: str | int, to_kind: str, to_id: str | int) -> None:
        """Link two records both ways with HubSpot's default association type for each direction."""
        source, target = object_type(from_kind) or from_kind, object_type(to_kind) or to_kind
        with self._lock:
            self.link(source, int(from_id), target, int(to_id))
            self.version += 1

    def unassociate(self, from_kind: str, from_id: str | int, to_kind: str, to_id: str | int) -> None:
        """Remove a link both ways; no last-modified date changes (whether HubSpot bumps it is unverified,
        so okrsync does not rely on it: a full sync or the association webhooks pick it up)."""
        source, target = object_type(from_kind) or from_kind, object_type(to_kind) or to_kind
        with self._lock:
            self._links.get((source, int(from_id)), {}).get(target, {}).pop(int(to_id), None)
            self._links.get((target, int(to_id)), {}).get(source, {}).pop(int(from_id), None)
            self.version += 1

    def link(self, source: str, from_id: int, target: str, to_id: int) -> None:
        """Symmetric link without locking or checks (for generators)."""
        links = self._links
        key = (source, from_id)
        forward = links.get(key)
        if forward is None:
            forward = links[key] = {}
        bucket = forward.get(target)
        if bucket is None:
            bucket = forward[target] = {}
        bucket[to_id] = ASSOCIATION_TYPE_IDS[(source, target)]
        key = (target, to_id)
        backward = links.get(key)
        if backward is None:
            backward = links[key] = {}
        bucket = backward.get(source)
        if bucket is None:
            bucket = backward[source] = {}
        bucket[from_id] = ASSOCIATION_TYPE_IDS[(target, source)]

    def associations(self, from_kind: str, from_id: str | int, to_kind: str) -> list[tuple[int, int]]:
        """(to id, type id) pairs linked from one record to records of `to_kind`, in linking order."""
        source, target = object_type(from_kind) or from_kind, object_type(to_kind) or to_kind
        with self._lock:
            return list(self._links.get((source, int(from_id)), {}).get(target, {}).items())

    # --- accounting ----------------------------------------------------------------------------------------
    def count_call(self, call: str) -> None:
        """Record one CRM API request (served or refused)."""
        with self._lock:
            self.api_calls[call] += 1
            self.api_calls_total += 1

    def reset_stats(self) -> None:
        """Zero the call counters (rate-limit windows and daily usage are left alone)."""
        with self._lock:
            self.api_calls.clear()
            self.api_calls_total = 0

    def stats(self) -> dict[str, Any]:
        """Counters as JSON."""
        with self._lock:
            return {
                "api_calls": dict(self.api_calls),
                "api_calls_total": self.api_calls_total,
                "daily_used": self.limits.daily_used,
                "daily_limit": self.limits.daily_limit,
            }


def _strings(properties: dict[str, Any]) -> dict[str, str | None]:
    values: dict[str, str | None] = {}
    for name, value in properties.items():
        if isinstance(value, datetime):
            value = format_timestamp(value)
        elif isinstance(value, bool):
            value = "true" if value else "false"
        elif value is not None:
            value = str(value)
        values[name] = value
    return values


def _copy(record: dict[str, Any]) -> dict[str, Any]:
    return {**record, "properties": dict(record["properties"])}
