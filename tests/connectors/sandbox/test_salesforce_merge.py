"""The sandbox org's merge() (salesforce_merge), as the Salesforce docs describe it: the losers go to the recycle bin
with MasterRecordId set, their related records move to the master with a new SystemModstamp only, the master is
updated; all in one transaction. Checked in the store and through simple-salesforce over HTTPS."""

import time
from datetime import UTC, datetime, timedelta

import pytest
from simple_salesforce import Salesforce

from connectors.sandbox.generator import generate_org
from connectors.sandbox.store import SandboxOrg

ANCHOR = datetime(2026, 9, 30, 17, 0, tzinfo=UTC)
_DATA = generate_org(anchor=ANCHOR, accounts=6, opportunities=12, activities=300, shared_activities=True)


@pytest.fixture
def org() -> SandboxOrg:
    return SandboxOrg({sobject: list(rows) for sobject, rows in _DATA.items()})


def _contacts_by_activity_count(org: SandboxOrg) -> list[str]:
    """Contact ids, the ones named by most tasks and relations first."""
    count = {c["Id"]: 0 for c in org.records("Contact")}
    for row in [*org.records("Task"), *org.records("TaskRelation")]:
        for name in ("WhoId", "RelationId"):
            if row.get(name) in count:
                count[row[name]] += 1
    return sorted(count, key=lambda i: (-count[i], i))


def _get(org: SandboxOrg, sobject: str, record_id: str) -> dict:
    found = org.get(sobject, record_id)
    assert found is not None, f"{sobject} {record_id} is gone"
    return found


def _children(org: SandboxOrg, sobject: str, field: str, parent: str) -> list[dict]:
    return [row for row in org.records(sobject) if row.get(field) == parent]


def test_a_contact_merge_deletes_the_losers_and_moves_their_children_to_the_master(org: SandboxOrg) -> None:
    master, *losers = _contacts_by_activity_count(org)[:3]
    moved = {
        (sobject, row["Id"]): row
        for loser in losers
        for sobject, field in (("Task", "WhoId"), ("Event", "WhoId"), ("OpportunityContactRole", "ContactId"))
        for row in _children(org, sobject, field, loser)
    }
    relations = [r for r in org.records("TaskRelation") if r["RelationId"] in losers]
    assert moved and relations, "the losers have activities and relations"
    before = org.get("Contact", master)
    assert before is not None
    time.sleep(0.002)  # a later millisecond than anything generated or written so far

    merged = org.merge("Contact", master, losers, fields={"Title": "Kept from a loser"})

    stamp = merged["SystemModstamp"]
    assert merged["Title"] == "Kept from a loser" and merged["LastModifiedDate"] == stamp > before["SystemModstamp"]
    for loser in losers:
        row = org.get("Contact", loser)
        assert row is not None and row["IsDeleted"] is True and row["MasterRecordId"] == master
        assert row["SystemModstamp"] == stamp and org.deleted_log("Contact")[loser] == stamp
        assert loser not in {c["Id"] for c in org.records("Contact")}
    for (sobject, record_id), old in moved.items():
        now = org.get(sobject, record_id)
        assert now is not None and master in (now.get("WhoId"), now.get("ContactId"))
        assert now["SystemModstamp"] == stamp, "re-parented by the system: a new SystemModstamp"
        assert now["LastModifiedDate"] == old["LastModifiedDate"], "... but no user changed it"
    assert not [r for r in org.records("TaskRelation") if r["RelationId"] in losers]
    pairs = [(r["TaskId"], r["RelationId"]) for r in org.records("TaskRelation")]
    assert len(pairs) == len(set(pairs)), "an activity related to a loser and the master keeps one relation"
    outcomes = set()
    for relation in relations:
        kept = org.get("TaskRelation", relation["Id"])
        outcomes.add(kept is not None)
        if kept is not None:
            assert kept["RelationId"] == master and kept["SystemModstamp"] == stamp
        else:
            assert (relation["TaskId"], master) in pairs and relation["Id"] in org.deleted_log("TaskRelation")
            task = org.get("Task", relation["TaskId"])
            assert task is not None and task["SystemModstamp"] == stamp, "its activity's related people changed"
    assert outcomes == {True, False}, "relations moved, and duplicates of the master's removed"


def test_an_account_merge_moves_contacts_opportunities_activities_and_child_accounts(org: SandboxOrg) -> None:
    accounts = sorted(org.records("Account"), key=lambda a: -len(_children(org, "Opportunity", "AccountId", a["Id"])))
    master, loser = accounts[0]["Id"], accounts[1]["Id"]
    child = accounts[2]["Id"]
    org.update("Account", child, {"ParentId": loser})
    children = {
        sobject: {r["Id"] for r in _children(org, sobject, "AccountId", loser)}
        for sobject in ("Contact", "Opportunity", "Task", "Event")
    }
    assert all(children.values()), children
    time.sleep(0.002)

    org.merge("Account", master, [loser])

    loser_row = org.get("Account", loser)
    assert loser_row is not None and loser_row["IsDeleted"] and loser_row["MasterRecordId"] == master
    stamp = loser_row["SystemModstamp"]
    for sobject, ids in children.items():
        for record_id in ids:
            row = org.get(sobject, record_id)
            assert row is not None and row["AccountId"] == master and row["SystemModstamp"] == stamp
            assert row.get("WhatId") != loser
    assert _get(org, "Account", child)["ParentId"] == master
    assert not [r for r in org.records("TaskRelation") if loser in (r["RelationId"], r["AccountId"])]


def test_a_merged_record_can_be_undeleted_but_its_children_stay_with_the_master(org: SandboxOrg) -> None:
    master, loser = _contacts_by_activity_count(org)[:2]
    tasks = {t["Id"] for t in _children(org, "Task", "WhoId", loser)}
    org.merge("Contact", master, [loser])
    time.sleep(0.002)
    restored = org.undelete("Contact", loser)
    assert restored["IsDeleted"] is False
    assert all(_get(org, "Task", t)["WhoId"] == master for t in tasks)
    assert not _children(org, "Task", "WhoId", loser)


@pytest.mark.parametrize(
    ("sobject", "losers", "error"),
    [
        ("Opportunity", 1, ValueError),
        ("Contact", 3, ValueError),  # four records: "up to three records [...] including the master record"
        ("Contact", 0, ValueError),
        ("Contact", "master", ValueError),
        ("Contact", "deleted", KeyError),
    ],
    ids=["unsupported-type", "too-many", "no-loser", "master-among-losers", "deleted-loser"],
)
def test_what_merge_refuses_changes_nothing(org: SandboxOrg, sobject: str, losers: object, error: type) -> None:
    ids = [r["Id"] for r in org.records(sobject)]
    master = ids[0]
    if losers == "master":
        chosen = [ids[1], master]
    elif losers == "deleted":
        org.delete(sobject, ids[2])
        chosen = [ids[1], ids[2]]
    else:
        chosen = ids[1 : 1 + int(str(losers))]
    snapshot = {name: org.records(name, include_deleted=True) for name in _DATA}
    with pytest.raises(error):
        org.merge(sobject, master, chosen)
    assert {name: org.records(name, include_deleted=True) for name in _DATA} == snapshot


def test_through_the_api_the_losers_are_deleted_and_the_children_changed(org: SandboxOrg, sf: Salesforce) -> None:
    master, loser = _contacts_by_activity_count(org)[:2]
    task = _children(org, "Task", "WhoId", loser)[0]
    since = (datetime.now(UTC) - timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    org.merge("Contact", master, [loser])

    deleted = sf.query_all(f"SELECT Id, IsDeleted FROM Contact WHERE Id = '{loser}'", include_deleted=True)
    assert [(r["Id"], r["IsDeleted"]) for r in deleted["records"]] == [(loser, True)]
    assert sf.query(f"SELECT Id FROM Contact WHERE Id = '{loser}'")["totalSize"] == 0
    changed = sf.query_all(
        f"SELECT Id, WhoId FROM Task WHERE SystemModstamp >= {since} ORDER BY SystemModstamp, Id", include_deleted=True
    )
    assert (task["Id"], master) in {(r["Id"], r["WhoId"]) for r in changed["records"]}
    window = sf.restful(
        "sobjects/Contact/deleted/",
        params={"start": since, "end": (datetime.now(UTC) + timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")},
    )
    assert window is not None and loser in {item["id"] for item in window["deletedRecords"]}


def test_a_record_purged_after_an_undelete_is_listed_as_deleted_then(org: SandboxOrg) -> None:
    """getDeleted lists a record by its last deletion: an undeleted record purged later is not listed at the
    deletion its undelete reverted (an incremental sync would take that for history and keep the record)."""
    task = org.records("Task")[0]["Id"]
    org.delete("Task", task)
    first = org.deleted_log("Task")[task]
    time.sleep(0.002)
    org.undelete("Task", task)
    time.sleep(0.002)
    org.purge("Task", task)
    assert org.deleted_log("Task")[task] > first
    other = org.records("Task")[0]["Id"]
    org.delete("Task", other)
    binned = org.deleted_log("Task")[other]
    time.sleep(0.002)
    org.purge("Task", other)  # emptied from the recycle bin: deleted when it went there
    assert org.deleted_log("Task")[other] == binned
