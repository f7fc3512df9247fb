"""The sandbox org's Shared Activities (TaskRelation/EventRelation), undelete and concurrent request limit, through
simple-salesforce over HTTPS, as the Salesforce docs describe them (see salesforce_relations and salesforce_api)."""

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import requests
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceMalformedRequest, SalesforceRefusedRequest

from connectors.sandbox.generator import generate_org
from connectors.sandbox.schema import parse_datetime
from connectors.sandbox.server import SandboxServer
from connectors.sandbox.store import SandboxOrg

ANCHOR = datetime(2026, 9, 30, 17, 0, tzinfo=UTC)
_DATA = generate_org(anchor=ANCHOR, accounts=20, opportunities=30, activities=400, shared_activities=True)
WHO = "(SELECT RelationId FROM TaskRelations WHERE IsWhat = false)"


@pytest.fixture
def org() -> SandboxOrg:
    return SandboxOrg({sobject: list(rows) for sobject, rows in _DATA.items()})


def _task_with_contacts(org: SandboxOrg, at_least: int) -> dict:
    for task in org.records("Task"):
        who = [r for r in org.records("TaskRelation") if r["TaskId"] == task["Id"] and not r["IsWhat"]]
        if len(who) >= at_least:
            return task
    raise AssertionError("the generator gives some tasks several contacts")


def _contacts_of(sf: Salesforce, task_id: str) -> list[str]:
    row = sf.query(f"SELECT Id, {WHO} FROM Task WHERE Id = '{task_id}'")["records"][0]
    return sorted(child["RelationId"] for child in (row["TaskRelations"] or {"records": []})["records"])


def test_generated_relations_leave_every_other_record_as_it_was() -> None:
    plain = generate_org(anchor=ANCHOR, accounts=20, opportunities=30, activities=400)
    assert {k: v for k, v in _DATA.items() if k in plain} == plain, "the HubSpot portal is derived from these"
    tasks = {t["Id"]: t for t in _DATA["Task"]}
    for relation in _DATA["TaskRelation"]:
        task = tasks[relation["TaskId"]]
        assert relation["IsWhat"] == relation["RelationId"].startswith(("001", "006"))
        assert relation["SystemModstamp"] == task["CreatedDate"] and relation["AccountId"] == task["AccountId"]
    assert any(r["RelationId"] == tasks[r["TaskId"]]["WhoId"] for r in _DATA["TaskRelation"])
    assert len(_DATA["TaskRelation"]) > 2 * len(_DATA["Task"]), "some tasks have more contacts than their WhoId"


def test_a_subquery_brings_every_related_contact_with_its_activity(sf: Salesforce, org: SandboxOrg) -> None:
    task = _task_with_contacts(org, 2)
    row = sf.query(f"SELECT Id, WhoId, {WHO} FROM Task WHERE Id = '{task['Id']}'")["records"][0]
    related = row["TaskRelations"]
    assert related["done"] is True and related["totalSize"] == len(related["records"]) >= 2
    assert related["records"][0]["attributes"]["type"] == "TaskRelation"
    assert set(related["records"][0]) == {"attributes", "RelationId"}
    assert task["WhoId"] in {child["RelationId"] for child in related["records"]}
    none = sf.query(
        f"SELECT Id, (SELECT RelationId FROM TaskRelations WHERE RelationId = 'nobody') FROM Task"
        f" WHERE Id = '{task['Id']}'"
    )
    assert none["records"][0]["TaskRelations"] is None, "no children: null, not an empty result"
    event = org.records("Event")[0]
    meeting = sf.query(
        "SELECT Id, (SELECT RelationId, IsParent, IsInvitee FROM EventRelations WHERE IsWhat = false)"
        f" FROM Event WHERE Id = '{event['Id']}'"
    )["records"][0]
    assert {c["RelationId"] for c in meeting["EventRelations"]["records"]} >= {event["WhoId"]}
    assert org.api_calls == {"query": 3}


def test_relations_are_replicable_by_system_modstamp(sf: Salesforce, org: SandboxOrg) -> None:
    task = org.records("Task")[0]
    extra = next(c["Id"] for c in org.records("Contact") if c["Id"] not in _contacts_of(sf, task["Id"]))
    since = org.now()
    added = org.relate("Task", task["Id"], extra)
    assert org.get("Task", task["Id"]) == task, "adding a relation does not re-stamp the task (not documented)"
    changed = sf.query_all(
        "SELECT Id, TaskId, RelationId, IsWhat FROM TaskRelation"
        f" WHERE SystemModstamp >= {since.strftime('%Y-%m-%dT%H:%M:%S.%f')[:-3]}Z"
    )["records"]
    assert [(r["Id"], r["TaskId"], r["RelationId"], r["IsWhat"]) for r in changed] == [
        (added["Id"], task["Id"], extra, False)
    ]
    assert extra in _contacts_of(sf, task["Id"])
    with pytest.raises(ValueError, match="already related"):
        org.relate("Task", task["Id"], extra)


def test_a_relation_deleted_on_its_own_is_gone_for_good_and_changes_its_activity(
    sf: Salesforce, org: SandboxOrg
) -> None:
    task = _task_with_contacts(org, 2)
    start = datetime.now(UTC) - timedelta(minutes=1)
    primary = next(
        r for r in org.records("TaskRelation") if r["TaskId"] == task["Id"] and r["RelationId"] == task["WhoId"]
    )
    org.unrelate(primary["Id"])
    after = org.get("Task", task["Id"])
    assert after is not None and after["SystemModstamp"] > task["SystemModstamp"], "its WhoId changed"
    assert after["WhoId"] != task["WhoId"] and after["WhoId"] in _contacts_of(sf, task["Id"])
    everything = sf.query_all(f"SELECT Id FROM TaskRelation WHERE TaskId = '{task['Id']}'", include_deleted=True)
    assert primary["Id"] not in {r["Id"] for r in everything["records"]}, "not in the recycle bin"
    deleted = sf.TaskRelation.deleted(start, datetime.now(UTC) + timedelta(minutes=1))
    assert [r["id"] for r in deleted["deletedRecords"]] == [primary["Id"]]


def test_deleting_an_activity_deletes_its_relations_and_undeleting_restores_them(
    sf: Salesforce, org: SandboxOrg
) -> None:
    task = _task_with_contacts(org, 2)
    start = datetime.now(UTC) - timedelta(minutes=1)
    query = f"SELECT Id, IsDeleted FROM TaskRelation WHERE TaskId = '{task['Id']}'"
    ids = {r["Id"] for r in sf.query(query)["records"]}
    org.delete("Task", task["Id"])
    assert sf.query(query)["totalSize"] == 0
    in_bin = sf.query_all(query, include_deleted=True)["records"]
    assert {r["Id"]: r["IsDeleted"] for r in in_bin} == dict.fromkeys(ids, True)
    deleted_row = sf.query_all(f"SELECT Id, {WHO} FROM Task WHERE Id = '{task['Id']}'", include_deleted=True)
    deleted_row = deleted_row["records"][0]
    assert deleted_row["TaskRelations"]["totalSize"] >= 2, "queryAll: deleted children too (ALL ROWS)"

    restored = org.undelete("Task", task["Id"])
    assert restored["IsDeleted"] is False and restored["SystemModstamp"] > task["SystemModstamp"]
    assert {r["Id"] for r in sf.query(query)["records"]} == ids
    listed = sf.Task.deleted(start, datetime.now(UTC) + timedelta(minutes=1))["deletedRecords"]
    assert [r["id"] for r in listed] == [task["Id"]], "the deletion stays listed: it happened in the time span"
    assert parse_datetime(listed[0]["deletedDate"]) < parse_datetime(restored["SystemModstamp"])


def test_changing_the_who_moves_the_relation(sf: Salesforce, org: SandboxOrg) -> None:
    task = org.records("Task")[1]
    other = next(c["Id"] for c in org.records("Contact") if c["Id"] not in _contacts_of(sf, task["Id"]))
    org.update("Task", task["Id"], {"WhoId": other})
    contacts = _contacts_of(sf, task["Id"])
    assert other in contacts and task["WhoId"] not in contacts


@pytest.fixture
def plain_org() -> Iterator[SandboxServer]:
    org = SandboxOrg({k: v for k, v in _DATA.items() if "Relation" not in k}, shared_activities=False)
    with SandboxServer(org) as server:
        yield server


def test_an_org_without_shared_activities_does_not_know_the_relations(plain_org: SandboxServer) -> None:
    session = plain_org.session()
    sf = Salesforce(
        instance_url=plain_org.base_url, session_id=plain_org.org.static_access_token, session=session, version="59.0"
    )
    with pytest.raises(SalesforceMalformedRequest) as raised:
        sf.query("SELECT Id FROM TaskRelation")
    assert raised.value.content[0]["errorCode"] == "INVALID_TYPE"
    with pytest.raises(SalesforceMalformedRequest) as raised:
        sf.query(f"SELECT Id, {WHO} FROM Task")
    assert raised.value.content[0]["errorCode"] == "INVALID_TYPE"
    assert "Didn't understand relationship 'TaskRelations'" in raised.value.content[0]["message"]
    session.close()


@pytest.mark.slow  # waits out a 1 s request
def test_too_many_long_running_requests_are_refused_until_one_ends(
    server: SandboxServer, sf: Salesforce, org: SandboxOrg
) -> None:
    org.concurrent_long_limit, org.long_request_seconds = 1, 0.2
    org.faults.add("latency", match="limits", seconds=1.0)
    other = requests.Session()
    other.verify, other.trust_env = server.ca_path, False
    slow = threading.Thread(
        target=lambda: other.get(
            f"{server.base_url}/services/data/v59.0/limits",
            headers={"Authorization": f"Bearer {org.static_access_token}"},
            timeout=10,
        )
    )
    slow.start()
    deadline = time.monotonic() + 5
    while org.long_requests_running() < 1:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    used = org.api_usage_used
    with pytest.raises(SalesforceRefusedRequest) as raised:
        sf.query("SELECT Id FROM Account LIMIT 1")
    assert raised.value.content == [
        {"message": "ConcurrentPerOrgLongTxn Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}
    ]
    assert org.api_usage_used == used, "a refused request does not count against the daily allowance"
    slow.join()
    other.close()
    assert sf.query("SELECT Id FROM Account LIMIT 1")["totalSize"] == 1
