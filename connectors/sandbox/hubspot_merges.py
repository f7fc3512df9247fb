"""Merges of contacts, companies and deals in the sandbox HubSpot portal (a mixin of :class:`HubSpotPortal`).

Modelled on HubSpot's merge since its 2025 change (CRM-API-NOTES, "Merges"):
https://developers.hubspot.com/changelog/updated-merge-functionality-for-contacts-and-companies — "a new record with a
new ID will be created for the resulting merged record, with both records merged into the new one [...] both of the
previous IDs will point to the resulting merged record, so fetching any records using the original IDs will return
the new merged record with the new ID". The API call is ``POST /crm/v3/objects/{objectType}/merge``
(https://developers.hubspot.com/docs/api-reference/crm-contacts-v3/basic/post-crm-v3-objects-contacts-merge; routed in
``hubspot_writes.py``), and what happens to the data is in the "Merge records" knowledge article
(https://knowledge.hubspot.com/records/merge-records).

Where HubSpot documents nothing, the sandbox takes the side that is harder on a client:

- the two old ids stop existing: they are in no list page, no search result and — undocumented — not in the archived
  listing (``archived=true``) either, so a client cannot learn of a merge by listing archived records;
- records associated with either old record are moved to the new one without being re-stamped: their last-modified
  date stays, so an incremental sync that searches by last-modified date never sees the move;
- a refusal's status and wording (merging a record with itself: 400; an unknown or archived id: 404) are not
  documented (the reference page lists only the 200 answer and a default error).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from connectors.sandbox.hubspot_schemas import format_timestamp
from connectors.sandbox.hubspot_search import comparable

# The object types the sandbox merges, with their created and last-modified properties (the names
# hubspot_portal.created_property/modified_property give). HubSpot merges tickets and custom object records too
# (https://knowledge.hubspot.com/records/merge-records); the sandbox portal has no tickets, and custom objects are
# left out until okrsync needs them.
MERGEABLE: dict[str, tuple[str, str]] = {
    "contacts": ("createdate", "lastmodifieddate"),
    "companies": ("createdate", "hs_lastmodifieddate"),
    "deals": ("createdate", "hs_lastmodifieddate"),
}
MERGED_IDS_PROPERTY = "hs_merged_object_ids"


class MergeRefused(ValueError):
    """A merge HubSpot would refuse; ``status`` and ``category`` are what the API answers (400 VALIDATION_ERROR,
    404 OBJECT_NOT_FOUND)."""

    def __init__(self, status: int, category: str, message: str) -> None:
        super().__init__(message)
        self.status, self.category, self.message = status, category, message


@dataclass(frozen=True)
class Merge:
    """One merge as it happened: the record type, the two ids as given (resolved), the new record's id, how many
    property values came from the merged record, and when (for the webhook event, see ``hubspot_webhooks.py``)."""

    kind: str
    primary_id: int
    merged_id: int
    new_id: int
    properties_moved: int
    occurred_at: datetime


def merged_ids(value: str | None) -> set[int]:
    """The ids a ``hs_merged_object_ids`` value names (a ';'-separated multi-value string)."""
    return {int(part) for part in (value or "").split(";") if part.strip().isdigit()}


class Merges:
    """Merging records and resolving the ids that merges retired (a mixin of HubSpotPortal, which owns the lock,
    the record tables and the association links)."""

    _lock: threading.RLock
    _records: dict[str, dict[int, dict[str, Any]]]
    _next_id: dict[str, int]
    _links: dict[tuple[str, int], dict[str, dict[int, int]]]
    _primary: dict[tuple[str, int], int]
    _merged_into: dict[str, dict[int, int]]  # kind -> retired id -> the live id it resolves to (already transitive)
    merges: list[Merge]
    version: int

    if TYPE_CHECKING:

        def kind_of(self, name: str) -> str | None: ...
        def now(self) -> datetime: ...
        def _table(self, kind: str) -> dict[int, dict[str, Any]]: ...
        def add_record(self, kind: str, record: dict[str, Any]) -> None: ...
        def link(self, source: str, from_id: int, target: str, to_id: int) -> None: ...

    def resolve(self, kind: str, record_id: str | int) -> int | None:
        """The id a record has now: `record_id` itself, or the id of the record a merge (or a chain of merges) turned
        it into; None when no record, live or archived, has or had that id. "Fetching any records using the original
        IDs will return the new merged record with the new ID":
        https://developers.hubspot.com/changelog/updated-merge-functionality-for-contacts-and-companies"""
        try:
            number = int(str(record_id).strip())
        except ValueError:
            return None
        with self._lock:
            plural = self.kind_of(kind) or kind
            number = self._merged_into.get(plural, {}).get(number, number)
            return number if number in self._table(plural) else None

    def merge(self, kind: str, primary_id: str | int, merged_id: str | int) -> dict[str, Any]:
        """Merge two contacts, companies or deals into a new record with the next id of that type; return a copy of
        it. An id that an earlier merge retired stands for the record it became.

        - Properties: the primary record's values win; the merged record's values fill the primary's blanks
          ("the property values of the resulting merged record will use the latest property values of the primary
          record": https://developers.hubspot.com/changelog/updated-merge-functionality-for-contacts-and-companies).
          ``hs_object_id`` is the new id, ``createdate`` (and createdAt) the older of the two, the last-modified
          property and updatedAt now. ``hs_merged_object_ids`` ("Merged [record] IDs", "to view previously merged
          records": https://knowledge.hubspot.com/records/merge-records) lists the two old ids and every id either
          had absorbed before, ascending, ';'-separated as HubSpot writes multi-value properties
          (https://developers.hubspot.com/docs/faq/how-do-i-set-multiple-values-for-checkbox-properties); the order
          is not documented.
        - Both old ids stop existing (no list, search or archived listing) and resolve to the new record
          (:meth:`resolve`).
        - Associations: the links of both old records, in both directions, move to the new record (a union; the
          primary's first), "resulting in one company record with activities and associations from both records"
          (https://knowledge.hubspot.com/records/merge-records). The associated records are **not re-stamped**: their
          last-modified date and updatedAt stay, so an incremental sync that searches by last-modified date does not
          see that a deal's contact or an activity's company changed — only the merged record itself, the merge
          webhook, or a full read of the associations tells.
        - Primary companies: "associations from the primary record will be prioritized [...] excess 'primary'
          associations from secondary records will be dropped"
          (https://developers.hubspot.com/changelog/updated-merge-functionality-for-contacts-and-companies): a merged
          contact or deal keeps the primary record's primary company, else the merged one's (the other stays
          associated, unlabelled). A contact or deal whose primary company was one of two merged companies gets the
          new company as its primary. A contact's ``associatedcompanyid`` that named a merged company names the new
          one, without moving the contact's ``lastmodifieddate`` (undocumented; the harder side for a sync).

        Raises :class:`MergeRefused`: 400 for a type that cannot be merged or a record merged with itself, 404 for an
        id that names no record or an archived one.
        """
        with self._lock:
            plural = self.kind_of(kind) or kind
            if plural not in MERGEABLE:
                names = ", ".join(MERGEABLE)
                message = f"Records of {kind} cannot be merged (the sandbox merges {names})"
                raise MergeRefused(400, "VALIDATION_ERROR", message)
            primary = self._mergeable(plural, primary_id)
            merged = self._mergeable(plural, merged_id)
            if primary["id"] == merged["id"]:
                raise MergeRefused(
                    400,
                    "VALIDATION_ERROR",
                    f"Cannot merge {plural} {primary['id']} with itself (primaryObjectId {primary_id}, objectIdToMerge "
                    f"{merged_id})",
                )
            old = (int(primary["id"]), int(merged["id"]))
            new_id = self._next_id[plural]
            now = self.now()
            stamp = format_timestamp(now)
            values, moved = _merged_properties(plural, primary, merged)
            created, modified = MERGEABLE[plural]
            older = min((primary, merged), key=lambda row: comparable(created, row["createdAt"]))
            absorbed = set(old) | merged_ids(primary["properties"].get(MERGED_IDS_PROPERTY))
            absorbed |= merged_ids(merged["properties"].get(MERGED_IDS_PROPERTY))
            values.update(
                {
                    "hs_object_id": str(new_id),
                    created: older["properties"].get(created) or older["createdAt"],
                    modified: stamp,
                    MERGED_IDS_PROPERTY: ";".join(str(number) for number in sorted(absorbed)),
                }
            )
            record = {
                "id": str(new_id),
                "properties": values,
                "createdAt": older["createdAt"],
                "updatedAt": stamp,
                "archived": False,
            }
            table = self._table(plural)
            for number in old:
                del table[number]
            self.add_record(plural, record)
            aliases = self._merged_into.setdefault(plural, {})
            for retired, target in list(aliases.items()):
                if target in old:
                    aliases[retired] = new_id
            aliases.update(dict.fromkeys(old, new_id))
            self._move_links(plural, old, new_id)
            self._move_primary_companies(plural, old, new_id)
            self.merges.append(Merge(plural, old[0], old[1], new_id, moved, now))
            self.version += 1
            return {**record, "properties": dict(values)}

    def _mergeable(self, kind: str, record_id: str | int) -> dict[str, Any]:
        resolved = self.resolve(kind, record_id)
        record = self._table(kind).get(resolved) if resolved is not None else None
        if record is None or record["archived"]:
            state = "is archived" if record is not None else "does not exist"
            raise MergeRefused(404, "OBJECT_NOT_FOUND", f"Cannot merge {kind} {record_id}: the record {state}")
        return record

    def _move_links(self, kind: str, old: Iterable[int], new_id: int) -> None:
        """Re-point every link of the old records, both directions, to the new record (a link between the two old
        records is dropped). No record is re-stamped."""
        retired = set(old)
        for number in old:
            forward = self._links.pop((kind, number), {})
            for target, bucket in forward.items():
                for to_id in bucket:
                    backward = self._links.get((target, to_id), {}).get(kind)
                    if backward is not None:
                        backward.pop(number, None)
                    if not (target == kind and to_id in retired):
                        self.link(kind, new_id, target, to_id)

    def _move_primary_companies(self, kind: str, old: tuple[int, int], new_id: int) -> None:
        if kind == "companies":
            for record, company in list(self._primary.items()):
                if company in old:
                    self._primary[record] = new_id
            contacts = self._records["contacts"]
            named = {str(number) for number in old}
            for contact_id, contact in list(contacts.items()):
                if contact["properties"].get("associatedcompanyid") in named:
                    # the record dict is replaced, not changed (copy-on-write), and keeps its lastmodifieddate
                    values = {**contact["properties"], "associatedcompanyid": str(new_id)}
                    contacts[contact_id] = {**contact, "properties": values}
            return
        kept = [self._primary.pop((kind, number), None) for number in old]
        chosen = next((number for number in kept if number is not None), None)
        if chosen is not None:
            self._primary[(kind, new_id)] = chosen


def _merged_properties(kind: str, primary: dict[str, Any], merged: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """The primary's values with the merged record's filling the blanks, and how many values were filled."""
    created, modified = MERGEABLE[kind]
    system = {"hs_object_id", created, modified, MERGED_IDS_PROPERTY}
    values = dict(primary["properties"])
    moved = 0
    for name, value in merged["properties"].items():
        if name not in system and value not in (None, "") and values.get(name) in (None, ""):
            values[name] = value
            moved += 1
    return values, moved
