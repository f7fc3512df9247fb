"""Shared Activities: a task or event with several contacts links all of them (activity_contact), not only its
WhoId, and keeps them in step when relations are added or removed. Real simple-salesforce over HTTPS against the
sandbox org (TaskRelation/EventRelation), real database."""

from __future__ import annotations

import logging
from collections import defaultdict

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlmodel import Session

from connectors.salesforce import mapping
from connectors.salesforce.config import SalesforceConfig
from connectors.salesforce.connector import SalesforceConnector
from connectors.sandbox.generator import generate_org
from connectors.sandbox.server import SandboxServer
from connectors.sandbox.store import SandboxOrg
from service.crm.models import ActivityContact
from service.sync.service import SyncReport, run_sync
from tests.conftest import ANCHOR, fast_config
from tests.service.sync.helpers import assert_local_equals_org, minimum_query_calls

pytestmark = pytest.mark.slow  # every test syncs a sandbox org of thousands of records several times

DELETABLE = sum(1 for s in mapping.OBJECTS if mapping.has_is_deleted(s))
SIZES = {"seed": 7, "accounts": 30, "opportunities": 80, "activities": 3200}


def sync(engine: Engine, config: SalesforceConfig, *, full: bool = False) -> SyncReport:
    return run_sync(engine, SalesforceConnector(config), connection_name="sandbox", full=full)


@pytest.fixture
def org() -> SandboxOrg:
    return SandboxOrg(generate_org(anchor=ANCHOR, shared_activities=True, **SIZES))


def stored_links(engine: Engine) -> dict[str, set[str]]:
    links: dict[str, set[str]] = defaultdict(set)
    with Session(engine) as session:
        for activity_id, contact_id in session.execute(select(ActivityContact.activity_id, ActivityContact.contact_id)):
            links[activity_id].add(contact_id)
    return dict(links)


def org_links(org: SandboxOrg) -> dict[str, set[str]]:
    """Every contact of every live task and event: its WhoId and its relations with IsWhat = false."""
    links: dict[str, set[str]] = defaultdict(set)
    for sobject, (relation, field, _name) in mapping.RELATIONS.items():
        for activity in org.records(sobject):
            if (activity["WhoId"] or "").startswith("003"):
                links[activity["Id"]].add(activity["WhoId"])
        live = {a["Id"] for a in org.records(sobject)}
        for row in org.records(relation):
            if not row["IsWhat"] and row["RelationId"].startswith("003") and row[field] in live:
                links[row[field]].add(row["RelationId"])
    return dict(links)


def live_links(engine: Engine, org: SandboxOrg) -> dict[str, set[str]]:
    live = {a["Id"] for sobject in mapping.RELATIONS for a in org.records(sobject)}
    return {a: c for a, c in stored_links(engine).items() if a in live}


def test_every_contact_of_a_shared_activity_is_linked(
    engine: Engine, org: SandboxOrg, config: SalesforceConfig
) -> None:
    org.reset_stats()
    report = sync(engine, config)
    assert report.status == "ok"
    want = org_links(org)
    assert sum(1 for contacts in want.values() if len(contacts) > 1) > 300, "many activities have several contacts"
    assert live_links(engine, org) == want
    assert org.api_calls_total == minimum_query_calls(org), "the relations come with their activities: no extra call"
    assert_local_equals_org(engine, org, config)


def test_contacts_added_or_removed_later_follow(engine: Engine, org: SandboxOrg, config: SalesforceConfig) -> None:
    sync(engine, config)
    task = org.records("Task")[3]
    event = org.records("Event")[4]
    contacts = [c["Id"] for c in org.records("Contact")]
    new_for_task = next(c for c in contacts if c not in org_links(org).get(task["Id"], set()))
    new_for_event = next(c for c in contacts if c not in org_links(org).get(event["Id"], set()))
    # Added through the relation objects: the task and the event keep their SystemModstamp.
    org.relate("Task", task["Id"], new_for_task)
    org.relate("Event", event["Id"], new_for_event, invitee=True)
    org.reset_stats()
    added = sync(engine, config)
    assert live_links(engine, org) == org_links(org)
    assert new_for_task in stored_links(engine)[task["Id"]] and new_for_event in stored_links(engine)[event["Id"]]
    assert added.counts["TaskRelation"].fetched == 1 and added.counts["EventRelation"].fetched == 1
    # one query per object, per relation object and for the EmailMessage stream, one getDeleted per deletable object,
    # one re-read per activity, and the re-read e-mail task's direction looked up
    email_lookup = int(task["TaskSubtype"] in mapping.EMAIL_SUBTYPES)
    assert (
        org.api_calls_total == len(mapping.OBJECTS) + len(mapping.RELATION_STREAMS) + 1 + DELETABLE + 2 + email_lookup
    )

    shared = next(
        r for r in org.records("TaskRelation") if r["TaskId"] == task["Id"] and r["RelationId"] == new_for_task
    )
    org.unrelate(shared["Id"])
    primary = next(
        r for r in org.records("EventRelation") if r["EventId"] == event["Id"] and r["RelationId"] == event["WhoId"]
    )
    org.unrelate(primary["Id"])  # another contact becomes the event's WhoId
    sync(engine, config)
    assert live_links(engine, org) == org_links(org)
    assert new_for_task not in stored_links(engine)[task["Id"]]
    assert event["WhoId"] not in stored_links(engine).get(event["Id"], set())
    assert_local_equals_org(engine, org, config)


def test_a_quiet_run_costs_one_query_per_object_and_relation_object(
    engine: Engine, org: SandboxOrg, config: SalesforceConfig
) -> None:
    sync(engine, config)
    org.reset_stats()
    quiet = sync(engine, config)
    assert sum(c.fetched for c in quiet.counts.values()) == 0
    # one query per object, per relation object and for the EmailMessage stream, one getDeleted per deletable object
    assert org.api_calls_total == len(mapping.OBJECTS) + len(mapping.RELATION_STREAMS) + 1 + DELETABLE


def test_a_deleted_activity_takes_its_relations_along(
    engine: Engine, org: SandboxOrg, config: SalesforceConfig
) -> None:
    sync(engine, config)
    task = next(t for t in org.records("Task") if len(org_links(org).get(t["Id"], ())) > 1)
    org.delete("Task", task["Id"])
    report = sync(engine, config)
    assert report.counts["Task"].deleted == 1
    assert live_links(engine, org) == org_links(org)
    org.undelete("Task", task["Id"])
    sync(engine, config)
    assert live_links(engine, org) == org_links(org) and len(stored_links(engine)[task["Id"]]) > 1


@pytest.fixture
def plain_org() -> SandboxOrg:
    return SandboxOrg(generate_org(anchor=ANCHOR, **SIZES), shared_activities=False)


@pytest.fixture
def plain_sandbox(plain_org: SandboxOrg, tmp_path) -> SandboxServer:  # type: ignore[no-untyped-def]
    with SandboxServer(plain_org, cert_dir=tmp_path / "plain") as server:
        yield server


def test_an_org_without_shared_activities_links_the_who_and_says_how_to_save_the_call(
    engine: Engine, plain_org: SandboxOrg, plain_sandbox: SandboxServer, caplog: pytest.LogCaptureFixture
) -> None:
    config = fast_config(plain_sandbox)
    plain_org.reset_stats()
    with caplog.at_level(logging.WARNING):
        report = sync(engine, config)
    assert report.status == "ok"
    assert any("SHARED_ACTIVITIES=false" in r.getMessage() for r in caplog.records)
    assert plain_org.api_calls_total == minimum_query_calls(plain_org) + 1, "one refused query"
    assert_local_equals_org(engine, plain_org, config)

    configured = fast_config(plain_sandbox, shared_activities=False)
    plain_org.reset_stats()
    sync(engine, configured)
    # one query per object and for the EmailMessage stream, one getDeleted per deletable object
    assert plain_org.api_calls_total == len(mapping.OBJECTS) + 1 + DELETABLE
