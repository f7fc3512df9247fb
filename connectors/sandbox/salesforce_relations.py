"""Shared Activities in the sandbox org: TaskRelation and EventRelation, the rows that link one task or event to
several contacts (``WhoId`` names only the primary one) and to its ``WhatId``.

Modelled on the object reference:

- TaskRelation (https://developer.salesforce.com/docs/platform/object-reference/references/standard-objects/object-taskrelation.html):
  ``TaskId, RelationId, IsWhat, AccountId``, the audit fields and ``IsDeleted``; supported calls include query(),
  queryAll(), getDeleted() and getUpdated(). "When a TaskRelation record is deleted, it isn't moved to the Recycle
  Bin and can't be undeleted, unless the record was cascade-deleted when the parent object was deleted": a relation
  deleted directly is gone from queryAll and listed by getDeleted; relations of a deleted task keep IsDeleted = true.
  A task has one lead or up to 50 contacts.
- EventRelation (https://developer.salesforce.com/docs/platform/object-reference/references/standard-objects/object-eventrelation.html):
  ``EventId, RelationId, IsParent, IsInvitee, IsWhat, Status``; related contacts have IsParent = true, invitees
  IsInvitee = true. "If you delete the EventRelation record representing the WhoId on an event, then another Who,
  if any, [...] will be promoted to the WhoId" and "the corresponding relation field may be cleared on the event":
  deleting a relation changes its parent (the sandbox re-stamps it). "If you restore a deleted event, relations
  [...] are also restored."
- Both exist only when Shared Activities is enabled ("TaskRelation is only available if you've enabled Shared
  Activities"): an org without it answers INVALID_TYPE.
- Parent-to-child subqueries ``(SELECT RelationId FROM TaskRelations WHERE IsWhat = false)`` use the child
  relationship names Task.TaskRelations and Event.EventRelations
  (https://developer.salesforce.com/docs/atlas.en-us.soql_sosl.meta/soql_sosl/sforce_api_calls_soql_relationships_query_using.htm).
  A parent without children answers null, otherwise ``{"totalSize", "done", "records"}``
  (https://developer.salesforce.com/docs/atlas.en-us.soql_sosl.meta/soql_sosl/sforce_api_calls_soql_relationships_query_results.htm);
  queryAll also returns deleted children ("ALL ROWS queries all rows for both top level and aggregate
  relationships, including deleted records",
  https://developer.salesforce.com/docs/atlas.en-us.apexcode.meta/apexcode/langCon_apex_dml_examples_undelete.htm).
"""

from __future__ import annotations

from typing import Any

from connectors.sandbox.schema import BOOLEAN, DATETIME, ID, PICKLIST, REFERENCE, SObjectSchema, find_sobject

_AUDIT = {"CreatedDate": DATETIME, "LastModifiedDate": DATETIME, "SystemModstamp": DATETIME, "IsDeleted": BOOLEAN}

TASK_RELATION = SObjectSchema(
    "TaskRelation",
    "0RT",
    {"Id": ID, "TaskId": REFERENCE, "RelationId": REFERENCE, "IsWhat": BOOLEAN, "AccountId": REFERENCE, **_AUDIT},
)
EVENT_RELATION = SObjectSchema(
    "EventRelation",
    "0RE",
    {
        "Id": ID,
        "EventId": REFERENCE,
        "RelationId": REFERENCE,
        "IsParent": BOOLEAN,
        "IsInvitee": BOOLEAN,
        "IsWhat": BOOLEAN,
        "Status": PICKLIST,
        "AccountId": REFERENCE,
        **_AUDIT,
    },
)
RELATION_OBJECTS: dict[str, SObjectSchema] = {schema.name: schema for schema in (TASK_RELATION, EVENT_RELATION)}

# activity object -> (its relation object, the relation's field naming the activity, child relationship name)
RELATIONS_OF: dict[str, tuple[str, str, str]] = {
    "Task": ("TaskRelation", "TaskId", "TaskRelations"),
    "Event": ("EventRelation", "EventId", "EventRelations"),
}
PARENT_FIELD: dict[str, str] = {relation: field for relation, field, _name in RELATIONS_OF.values()}
# Who ids: contacts (003) and leads (00Q); anything else related to an activity is its What.
WHO_PREFIXES = ("003", "00Q")
MAX_CONTACTS = 50


def find_any_sobject(name: str) -> SObjectSchema | None:
    """The built-in schema of ``name`` (any case), the Shared Activities relation objects included."""
    return find_sobject(name) or next((s for key, s in RELATION_OBJECTS.items() if key.lower() == name.lower()), None)


def child_relationship(parent: str, name: str) -> tuple[SObjectSchema, str, str] | None:
    """(child schema, the child's field naming the parent, relationship name in schema casing) of the child
    relationship ``name`` (any case) of ``parent``, or None when the parent has no such relationship."""
    found = RELATIONS_OF.get(parent)
    if found is None or found[2].lower() != name.lower():
        return None
    relation, field, relationship = found
    return RELATION_OBJECTS[relation], field, relationship


def is_who(record_id: str | None) -> bool:
    """True for a contact or lead id: a who of an activity, related with IsWhat = false."""
    return bool(record_id) and str(record_id)[:3] in WHO_PREFIXES


def relation_row(
    sobject: str,
    *,
    record_id: str,
    parent_id: str,
    relation_id: str,
    account_id: Any,
    stamp: str,
    invitee: bool = False,
) -> dict[str, Any]:
    """A new relation row in API shape (relations of the primary who and what are parents, not invitees)."""
    row: dict[str, Any] = {
        "Id": record_id,
        PARENT_FIELD[sobject]: parent_id,
        "RelationId": relation_id,
        "IsWhat": not is_who(relation_id),
        "AccountId": account_id,
        "CreatedDate": stamp,
        "LastModifiedDate": stamp,
        "SystemModstamp": stamp,
        "IsDeleted": False,
    }
    if sobject == "EventRelation":
        row.update(IsParent=not invitee, IsInvitee=invitee, Status="New" if invitee else None)
    return {name: row.get(name) for name in RELATION_OBJECTS[sobject].fields}
