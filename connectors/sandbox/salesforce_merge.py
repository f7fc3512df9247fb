"""merge() in the sandbox org: up to three accounts or contacts combined into one.

Modelled on the API's merge() (https://developer.salesforce.com/docs/atlas.en-us.api.meta/api/sforce_api_calls_merge.htm)
and on "Triggers and Merge Statements"
(https://developer.salesforce.com/docs/atlas.en-us.apexcode.meta/apexcode/apex_triggers_merge_statements.htm):

- Up to three records of one type, the main (master) record included, are merged in one transaction. The call
  supports leads, contacts and accounts (later versions also individuals and cases); the sandbox has accounts and
  contacts.
- "merge() deletes the other records, known as the victim records": they go to the recycle bin (IsDeleted true,
  listed by queryAll and getDeleted), and "when a record is deleted after losing a merge operation, its
  MasterRecordId field is set to the ID of the winning record". The sandbox's SOQL parses against the built-in
  schema, which has no MasterRecordId: the field is on the record (``SandboxOrg.get``), not selectable.
- "If a victim record has related records, merge() makes the main record the new parent of the related records":
  a losing account's contacts, opportunities, child accounts and activities (WhatId, AccountId), a losing
  contact's activities (WhoId) and opportunity contact roles, and the TaskRelation/EventRelation rows naming
  either. The platform does that itself ("any child records that are reparented as a result of the merge operation
  do not fire triggers"): a child gets a new SystemModstamp, not a new LastModifiedDate, which records a user's
  change (https://developer.salesforce.com/docs/atlas.en-us.api.meta/api/system_fields.htm).
- "The system does the specific updates required for the master record": the master is updated (a new
  LastModifiedDate and SystemModstamp), with the field values from the losers that the caller chose to keep, "set
  [...] in the record identified by the masterRecord of the MergeRequest", "similar to a call to update".
- A merged record can be undeleted, "but the child objects are reparented, which can't be undone"
  (https://developer.salesforce.com/docs/atlas.en-us.api.meta/api/sforce_api_calls_undelete.htm):
  ``SandboxOrg.undelete`` leaves the children with the master.

Not documented, so chosen here: children in the recycle bin stay where they are; an activity related to a loser
and to the master keeps one relation (the loser's row is deleted, not moved, and the activity gets a new
SystemModstamp, as when a relation is deleted on its own); the master keeps a ParentId that named a loser.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from connectors.sandbox.salesforce_relations import RELATIONS_OF

if TYPE_CHECKING:  # the type only: store imports this module, SandboxOrg.merge delegates here
    from connectors.sandbox.store import SandboxOrg

MAX_RECORDS = 3  # "Up to three records can be merged in a single request, including the master record."

# merged object -> (child object, its fields that name the merged record) re-parented to the master
CHILDREN: dict[str, tuple[tuple[str, tuple[str, ...]], ...]] = {
    "Account": (
        ("Account", ("ParentId",)),
        ("Contact", ("AccountId",)),
        ("Opportunity", ("AccountId",)),
        ("Task", ("WhatId", "AccountId")),
        ("Event", ("WhatId", "AccountId")),
    ),
    "Contact": (
        ("OpportunityContactRole", ("ContactId",)),
        ("Task", ("WhoId",)),
        ("Event", ("WhoId",)),
    ),
}
# fields of a TaskRelation/EventRelation row that name an account or contact
RELATION_FIELDS: dict[str, tuple[str, ...]] = {"Account": ("RelationId", "AccountId"), "Contact": ("RelationId",)}


def merge(
    org: SandboxOrg, sobject: str, master_id: str, loser_ids: list[str], *, fields: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Merge ``loser_ids`` (one or two live records of ``sobject``, Account or Contact) into ``master_id`` in one
    transaction, everything stamped with one SystemModstamp; ``fields`` are the values the master takes over.
    Returns the master record. Refuses (ValueError, KeyError) and changes nothing for anything merge() refuses."""
    if sobject not in CHILDREN:
        raise ValueError(f"merge() supports {', '.join(CHILDREN)} in the sandbox, not {sobject}")
    losers = list(dict.fromkeys(loser_ids))
    if not losers or len(losers) + 1 > MAX_RECORDS or master_id in losers:
        raise ValueError(f"merge one or two records other than the master into it, not {loser_ids}")
    with org.transaction() as transaction:
        try:
            for record_id in (master_id, *losers):
                row = org.get(sobject, record_id)
                if row is None or row.get("IsDeleted"):
                    raise KeyError(f"{sobject} {record_id} does not exist or is deleted")
            stamp = org.now()
            gone = set(losers)
            # relations first: an activity whose WhoId/WhatId moves then finds its relation row already moved
            _reparent_relations(org, sobject, master_id, gone, stamp)
            for child, names in CHILDREN[sobject]:
                for row in org.snapshot(child):
                    changes = {name: master_id for name in names if row.get(name) in gone}
                    if changes and row["Id"] not in gone and row["Id"] != master_id:
                        org.update(child, row["Id"], changes, modstamp=stamp, by_system=True)
            for record_id in losers:
                org.delete(sobject, record_id, modstamp=stamp, master_record_id=master_id)
            return org.update(sobject, master_id, fields or {}, modstamp=stamp)
        except Exception:
            transaction.rollback()
            raise


def _reparent_relations(org: SandboxOrg, sobject: str, master_id: str, gone: set[str], stamp: Any) -> None:
    for parent_sobject, (relation, parent_field, _name) in RELATIONS_OF.items():
        if org.sobject(relation) is None:  # no Shared Activities in this org
            continue
        rows = org.snapshot(relation)
        related = {(row[parent_field], row["RelationId"]) for row in rows}
        for row in sorted(rows, key=lambda r: r["Id"]):
            changes = {name: master_id for name in RELATION_FIELDS[sobject] if row.get(name) in gone}
            if not changes:
                continue
            if "RelationId" in changes and (row[parent_field], master_id) in related:
                # the activity is related to the master already: the loser's row goes, and the activity's list of
                # related people changes, as when a relation is deleted on its own (SandboxOrg.unrelate)
                org.purge(relation, row["Id"])
                parent = org.get(parent_sobject, row[parent_field])
                if parent is not None and not parent.get("IsDeleted"):
                    org.update(parent_sobject, parent["Id"], {}, modstamp=stamp, by_system=True)
                continue
            org.update(relation, row["Id"], changes, modstamp=stamp, by_system=True)
            related.add((row[parent_field], changes.get("RelationId", row["RelationId"])))
