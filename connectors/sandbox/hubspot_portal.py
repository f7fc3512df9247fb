"""State of the sandbox HubSpot portal: CRM objects, owners, pipelines, associations, rate limits, faults.

Records are HubSpot API objects ``{id, properties, createdAt, updatedAt, archived[, archivedAt]}`` whose property
values are strings or None, as HubSpot returns them. Like :class:`SandboxOrg`, every mutation replaces a record's
dict instead of changing it, and all state changes happen under one lock (the HTTP server runs in another thread).

Associations are kept symmetric: linking deal 1 to contact 2 also links contact 2 to deal 1, each side with the
HUBSPOT_DEFINED type id HubSpot uses for that direction. A contact or deal may have a primary company, listed in v4
reads as a second, labelled type beside the unlabelled one (``PRIMARY_COMPANY_TYPE_IDS``); nothing makes one primary
by itself. Owners of deactivated users are listed with ``archived=true`` only (``deactivate_owner``). Fault kinds and
rate limits are in ``hubspot_faults.py``.

Write-back state (see ``hubspot_writes.py`` for the API, ``hubspot_schemas.py`` for validation): custom object
schemas (``tier="enterprise"`` only), property definitions and groups per object type, and association definitions
between a custom object and other types. A custom object's records live under its objectTypeId ("2-1", "2-2"...)
and are reached by that id, by its fullyQualifiedName ("p<portalId>_<name>") or by its name. Each association
definition takes two USER_DEFINED type ids from a counter starting at ``CUSTOM_ASSOCIATION_TYPE_BASE``: the odd one
from the custom object to the other type, the next one back (so a fresh portal's first custom object gets 10001 and
10002 for its first associated type, 10003 and 10004 for the second, in ``associatedObjects`` order).

Merges (``merge``, ``resolve``; ``hubspot_merges.py``) replace two contacts, companies or deals by a new record with a
new id; the old ids then name no record of their own (``get`` answers None) and ``resolve`` maps them to the new one.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from connectors.sandbox.hubspot_faults import HubSpotFaultPlan, RateLimiter
from connectors.sandbox.hubspot_merges import Merge, Merges
from connectors.sandbox.hubspot_schemas import CustomObjects, format_timestamp

# "leads" last: every other type keeps its id range (ids start at (index + 1) * 10,000,000)
OBJECT_TYPES = ("deals", "companies", "contacts", "calls", "emails", "meetings", "notes", "tasks", "leads")
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
    # https://developers.hubspot.com/docs/api-reference/latest/crm/objects/leads/object-definition (Sales Hub
    # Professional/Enterprise; scope crm.objects.leads.read)
    "leads": "0-136",
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
    # a lead's primary contact and primary company, the types integrations create leads with (HubSpot requires the
    # contact: https://developers.hubspot.com/docs/api-reference/crm-leads-v3/guide). The reverse ids (contact → lead,
    # company → lead) are the sandbox's own, unverified: okrsync reads a lead's links from the lead's side only.
    ("leads", "contacts"): 578,
    ("contacts", "leads"): 579,
    ("leads", "companies"): 580,
    ("companies", "leads"): 581,
}
# The primary company of a contact or a deal: a second, labelled HUBSPOT_DEFINED type listed beside the unlabelled
# one above (HubSpot's table has no primary type for engagements). Labels per HubSpot's changelog (typeIds are what
# clients must rely on): https://developers.hubspot.com/changelog/changes-to-primary-labels-for-hubspot-defined-association-labels
PRIMARY_COMPANY_TYPE_IDS: dict[tuple[str, str], int] = {
    ("contacts", "companies"): 1,
    ("companies", "contacts"): 2,
    ("deals", "companies"): 5,
    ("companies", "deals"): 6,
}
PRIMARY_COMPANY_LABELS = {"contacts": "Contact with Primary Company", "deals": "Deal with Primary Company"}
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
TIERS = ("free", "starter", "professional", "enterprise")
CUSTOM_ASSOCIATION_TYPE_BASE = 10_001


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


class HubSpotPortal(CustomObjects, Merges):
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
        tier: str = "enterprise",
        scopes: Iterable[str] | None = None,
    ) -> None:
        if tier not in TIERS:
            raise ValueError(f"unknown tier '{tier}'; use one of {', '.join(TIERS)}")
        self.access_token = access_token
        self.portal_id = portal_id
        self.tier = tier  # custom objects need "enterprise"
        # granted scopes, checked by the write (and schema) routes only; None grants everything
        self.scopes: set[str] | None = set(scopes) if scopes is not None else None
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
        self._primary: dict[tuple[str, int], int] = {}  # (contacts|deals, id) -> its primary company id
        self._sorted_ids: dict[str, tuple[int, list[int]]] = {}  # kind -> (version, ids ascending)
        self._type_ids: dict[tuple[str, str], int] = dict(ASSOCIATION_TYPE_IDS)  # default type per direction
        self._user_defined: set[tuple[str, str]] = set()
        self._next_type_id = CUSTOM_ASSOCIATION_TYPE_BASE
        self._schemas: dict[str, dict[str, Any]] = {}  # objectTypeId -> schema without properties/associations
        self._association_definitions: list[dict[str, Any]] = []
        self._properties: dict[str, dict[str, dict[str, Any]]] = {}  # kind -> name -> definition
        self._groups: dict[str, dict[str, dict[str, Any]]] = {}  # kind -> name -> group
        self._removed: dict[str, set[str]] = {}  # kind -> deleted property names
        self._observed: dict[str, tuple[int, frozenset[str]]] = {}  # kind -> (version, names on records)
        self._merged_into: dict[str, dict[int, int]] = {}  # kind -> retired id -> live id (see hubspot_merges.py)
        self.merges: list[Merge] = []  # every merge, oldest first (for the merge webhook events)

    @property
    def lock(self) -> threading.RLock:
        """The lock every state change holds; hold it to apply a batch atomically."""
        return self._lock

    def kind_of(self, name: str) -> str | None:
        """The object type key for a name: the plural of a standard type ('deal', '0-3' -> 'deals') or a custom
        object's objectTypeId (from '2-1', its fullyQualifiedName or its name), else None."""
        plural = object_type(name)
        if plural is not None:
            return plural
        wanted = name.lower()
        for type_id, schema in list(self._schemas.items()):  # a copy: another thread may be adding a schema
            if wanted in (type_id, schema["name"].lower(), schema["fullyQualifiedName"].lower()):
                return type_id
        return None

    def is_custom(self, kind: str) -> bool:
        """Whether `kind` (a key from kind_of) is a custom object."""
        return kind in self._schemas

    def type_id(self, kind: str) -> str:
        """The objectTypeId of a kind ('deals' -> '0-3'; a custom kind is its own id)."""
        return _TYPE_IDS.get(kind, kind)

    def singular(self, kind: str) -> str:
        """The singular name of a kind ('companies' -> 'company'; a custom object's schema name)."""
        if kind in self._schemas:
            return str(self._schemas[kind]["name"])
        return "company" if kind == "companies" else kind[:-1]

    # --- records -------------------------------------------------------------------------------------------
    def _table(self, kind: str) -> dict[int, dict[str, Any]]:
        plural = self.kind_of(kind)
        if plural is None:
            known = ", ".join([*OBJECT_TYPES, *self._schemas])
            raise KeyError(f"the sandbox portal has no object type '{kind}' (known: {known})")
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
        primary_company: str | int | None = None,
    ) -> dict[str, Any]:
        """Create a record (id and create/modify timestamps generated unless given) and return a copy.

        `associations` are (to type, to id) pairs, linked both ways with HubSpot's default type ids;
        `primary_company` (one of the associated companies) becomes a contact's or deal's primary company (a
        contact's ``associatedcompanyid`` is left to `properties`).
        """
        with self._lock:
            plural = self.kind_of(kind) or kind
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
            if primary_company is not None:
                if (plural, "companies") not in PRIMARY_COMPANY_TYPE_IDS:
                    raise ValueError(f"{plural} have no primary company")
                self.mark_primary(plural, record_id, int(primary_company))
            self.version += 1
            return _copy(record)

    def update(
        self, kind: str, record_id: str | int, properties: dict[str, Any], *, modified_at: datetime | None = None
    ) -> dict[str, Any]:
        """Change properties; the last-modified property and updatedAt become `modified_at` (default: now)."""
        with self._lock:
            plural = self.kind_of(kind) or kind
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

    def restore(self, kind: str, record_id: str | int) -> dict[str, Any]:
        """Restore an archived record, as a user does in HubSpot's recycle bin within 90 days of the deletion
        (https://knowledge.hubspot.com/records/restore-deleted-records): the same id, live again, with its
        associations. Whether the restore moves hs_lastmodifieddate is not documented, so the sandbox does not move
        it (the unfriendlier case: an incremental search cannot see the restore; the ``*.restore`` webhook
        subscription, https://developers.hubspot.com/docs/api-reference/webhooks-webhooks-v3/guide, can)."""
        with self._lock:
            table = self._table(kind)
            current = table.get(int(record_id))
            if current is None or not current["archived"]:
                raise KeyError(f"{kind} {record_id} is not archived")
            restored = {key: value for key, value in current.items() if key != "archivedAt"}
            restored["archived"] = False
            restored["updatedAt"] = current["properties"].get(modified_property(kind), current["updatedAt"])
            table[int(record_id)] = restored
            self.version += 1
            return restored

    def get(self, kind: str, record_id: str | int) -> dict[str, Any] | None:
        """The record dict itself (never mutated later), archived or not, or None (also for an id a merge retired:
        see :meth:`resolve`)."""
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
            plural = self.kind_of(kind) or kind
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

    # --- owners --------------------------------------------------------------------------------------------
    def deactivate_owner(self, owner_id: str | int) -> None:
        """A user is deactivated: their owner is listed only with ``archived=true`` from now on
        (``GET /crm/v3/owners?archived=true``), and records keep the owner id. ``updatedAt`` is left alone: whether
        HubSpot moves it is not documented. https://developers.hubspot.com/docs/api-reference/crm-crm-owners-v3/guide"""
        with self._lock:
            index = next(i for i, owner in enumerate(self.owners) if str(owner["id"]) == str(owner_id))
            self.owners[index] = {**self.owners[index], "archived": True}
            self.version += 1

    # --- associations --------------------------------------------------------------------------------------
    def associate(
        self, from_kind: str, from_id: str | int, to_kind: str, to_id: str | int, *, primary: bool = False
    ) -> None:
        """Link two records both ways with the default association type for each direction (KeyError when the
        two types have no association definition). ``primary``: the company becomes the contact's or deal's primary
        company (see :meth:`set_primary_company`). A default association never makes one primary by itself: a
        client must cope with records that have companies but no primary one."""
        source, target = self.kind_of(from_kind) or from_kind, self.kind_of(to_kind) or to_kind
        with self._lock:
            self.link(source, int(from_id), target, int(to_id))
            self.version += 1
            if primary and target == "companies":
                self.set_primary_company(source, from_id, to_id)
            elif primary:
                self.set_primary_company(target, to_id, from_id)

    def set_primary_company(self, kind: str, record_id: str | int, company_id: str | int) -> None:
        """Make an associated company the primary company of a contact or deal; a record has at most one, so the
        previous primary stays associated, unlabelled. For a contact, HubSpot keeps the primary company in the
        property ``associatedcompanyid`` too, whose change moves ``lastmodifieddate``; a deal has no such property,
        so the change leaves its ``hs_lastmodifieddate`` alone.
        https://developers.hubspot.com/docs/api/crm/associations#hubspot-defined-association-types"""
        plural = self.kind_of(kind) or kind
        with self._lock:
            if (plural, "companies") not in PRIMARY_COMPANY_TYPE_IDS:
                raise ValueError(f"{plural} have no primary company (HubSpot defines one for contacts and deals)")
            if int(company_id) not in self._links.get((plural, int(record_id)), {}).get("companies", {}):
                raise KeyError(f"company {company_id} is not associated with {plural} {record_id}")
            self._primary[(plural, int(record_id))] = int(company_id)
            self.version += 1
            if plural == "contacts":
                self.update(plural, record_id, {"associatedcompanyid": str(company_id)})

    def mark_primary(self, kind: str, record_id: int, company_id: int) -> None:
        """set_primary_company without locking or checks (for generators; the link must exist)."""
        self._primary[(kind, record_id)] = company_id

    def primary_company(self, kind: str, record_id: str | int) -> int | None:
        """The primary company of a contact or deal, or None."""
        return self._primary.get((self.kind_of(kind) or kind, int(record_id)))

    def unassociate(self, from_kind: str, from_id: str | int, to_kind: str, to_id: str | int) -> None:
        """Remove a link both ways; no last-modified date changes (whether HubSpot bumps it is unverified,
        so okrsync does not rely on it: a full sync or the association webhooks pick it up). Removing the primary
        company leaves the record without one."""
        source, target = self.kind_of(from_kind) or from_kind, self.kind_of(to_kind) or to_kind
        with self._lock:
            self._links.get((source, int(from_id)), {}).get(target, {}).pop(int(to_id), None)
            self._links.get((target, int(to_id)), {}).get(source, {}).pop(int(from_id), None)
            for record, company in (((source, int(from_id)), int(to_id)), ((target, int(to_id)), int(from_id))):
                if self._primary.get(record) == company:
                    del self._primary[record]
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
        bucket[to_id] = self._type_ids[(source, target)]
        key = (target, to_id)
        backward = links.get(key)
        if backward is None:
            backward = links[key] = {}
        bucket = backward.get(source)
        if bucket is None:
            bucket = backward[source] = {}
        bucket[from_id] = self._type_ids[(target, source)]

    def associations(self, from_kind: str, from_id: str | int, to_kind: str) -> list[tuple[int, int]]:
        """(to id, type id) pairs linked from one record to records of `to_kind`, in linking order (the unlabelled
        type; see :meth:`association_types` for all types of a link)."""
        source, target = self.kind_of(from_kind) or from_kind, self.kind_of(to_kind) or to_kind
        with self._lock:
            return list(self._links.get((source, int(from_id)), {}).get(target, {}).items())

    def association_types(self, from_kind: str, from_id: int, to_kind: str, to_id: int, type_id: int) -> list[dict]:
        """The ``associationTypes`` of one link as a v4 read lists them: the unlabelled type (label null), and the
        primary-company type when the company is the record's primary one. "When a record has a primary association
        or a custom association label, those types will be listed alongside the unlabeled association type":
        https://developers.hubspot.com/docs/api/crm/associations#hubspot-defined-association-types"""
        category = "USER_DEFINED" if (from_kind, to_kind) in self._user_defined else "HUBSPOT_DEFINED"
        types: list[dict[str, Any]] = [{"category": category, "typeId": type_id, "label": None}]
        primary_type = PRIMARY_COMPANY_TYPE_IDS.get((from_kind, to_kind))
        if primary_type is not None:
            record, company = ((from_kind, from_id), to_id) if to_kind == "companies" else ((to_kind, to_id), from_id)
            if self._primary.get(record) == company:
                label = PRIMARY_COMPANY_LABELS[record[0]]
                types.append({"category": "HUBSPOT_DEFINED", "typeId": primary_type, "label": label})
        return types

    def association_type_id(self, from_kind: str, to_kind: str) -> int | None:
        """The default association type id from one type to another, or None when they cannot be linked."""
        source, target = self.kind_of(from_kind) or from_kind, self.kind_of(to_kind) or to_kind
        return self._type_ids.get((source, target))

    def association_category(self, from_kind: str, to_kind: str) -> str:
        """USER_DEFINED for a custom object's associations, HUBSPOT_DEFINED between standard types."""
        source, target = self.kind_of(from_kind) or from_kind, self.kind_of(to_kind) or to_kind
        return "USER_DEFINED" if (source, target) in self._user_defined else "HUBSPOT_DEFINED"

    # --- properties (definitions live in hubspot_schemas.CustomObjects) -------------------------------------
    def observed_properties(self, kind: str) -> frozenset[str]:
        """Names of properties that records of a standard type carry or HubSpot defines for it (the sandbox has
        no schema for standard types: a property exists when it is seen), minus deleted ones."""
        with self._lock:
            kind = self.kind_of(kind) or kind
            if kind in self._schemas:
                return frozenset()
            cached = self._observed.get(kind)
            if cached is None or cached[0] != self.version:
                names = {name for row in self._records[kind].values() for name in row["properties"]}
                names.update(
                    default_properties(kind), ("hs_object_id", created_property(kind), modified_property(kind))
                )
                cached = self._observed[kind] = (self.version, frozenset(names))
            return cached[1] - self._removed.get(kind, set())

    def index_by(self, kind: str, name: str) -> dict[str, dict[str, Any]]:
        """Live records of a type by their value of property `name` (for upserts by a unique property)."""
        with self._lock:
            return {
                row["properties"][name]: row
                for row in self.snapshot(kind)
                if row["properties"].get(name) not in (None, "")
            }

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
