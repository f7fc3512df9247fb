"""The sandbox org stores e-mails as Enhanced Email does: an EmailMessage for every e-mail task (ActivityId), with
its direction (Incoming), date, addresses and the record it is about (RelatedToId), queryable and deletable like
any record (https://developer.salesforce.com/docs/platform/object-reference/references/standard-objects/object-emailmessage.html).
Email-to-Case e-mails have no task (ActivityId null) and belong to a Case (ParentId = RelatedToId = the case):
"ActivityId can only be specified for emails on cases"
(https://developer.salesforce.com/docs/atlas.en-us.object_reference.meta/object_reference/sforce_api_objects_emailmessage.htm);
a user without Read on Case is answered INVALID_TYPE and sees no case e-mail."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import requests
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceMalformedRequest

from connectors.sandbox.generator import generate_org
from connectors.sandbox.server import SandboxServer
from connectors.sandbox.store import SandboxOrg

FIELDS = (
    "Id, ActivityId, RelatedToId, ParentId, Incoming, MessageDate, FromAddress, ToAddress, CcAddress, Subject, "
    "Status, IsDeleted, SystemModstamp, LastModifiedDate"
)


def test_every_email_task_has_its_email_message_with_a_direction(sf: Salesforce, org: SandboxOrg) -> None:
    rows = sf.query_all(f"SELECT {FIELDS} FROM EmailMessage WHERE ActivityId != null ORDER BY SystemModstamp, Id")[
        "records"
    ]
    tasks = {t["Id"]: t for t in org.records("Task")}
    email_tasks = {i for i, t in tasks.items() if t["TaskSubtype"] == "Email"}
    assert email_tasks and {r["ActivityId"] for r in rows} == email_tasks and len(rows) == len(email_tasks)
    incoming = [r for r in rows if r["Incoming"]]
    assert 0 < len(incoming) < len(rows)  # the customers' e-mails and the team's
    owners = {u["Id"]: u["Email"] for u in org.records("User")}
    for row in rows:
        task = tasks[row["ActivityId"]]
        assert row["RelatedToId"] == task["WhatId"] and row["ParentId"] is None and row["Subject"] == task["Subject"]
        assert row["MessageDate"] == task["CompletedDateTime"]
        # the team's e-mails are sent by the task's owner (Status 3 Sent), the customer's reach them (1 Read)
        assert (row["ToAddress"] if row["Incoming"] else row["FromAddress"]) == owners[task["OwnerId"]]
        assert row["Status"] == ("1" if row["Incoming"] else "3")


def test_email_messages_are_filtered_by_direction_and_deletes_show_in_query_all(
    sf: Salesforce, org: SandboxOrg
) -> None:
    inbound = sf.query_all("SELECT Id FROM EmailMessage WHERE Incoming = true")["records"]
    assert inbound and len(inbound) == sum(1 for r in org.records("EmailMessage") if r["Incoming"])
    gone = inbound[0]["Id"]
    org.delete("EmailMessage", gone)
    assert gone not in {r["Id"] for r in sf.query_all("SELECT Id FROM EmailMessage")["records"]}
    deleted = sf.query_all(f"SELECT Id, IsDeleted FROM EmailMessage WHERE Id = '{gone}'", include_deleted=True)
    assert [(r["Id"], r["IsDeleted"]) for r in deleted["records"]] == [(gone, True)]


def test_case_emails_have_no_task_and_name_their_case(sf: Salesforce, org: SandboxOrg) -> None:
    rows = sf.query_all(f"SELECT {FIELDS}, CreatedById FROM EmailMessage WHERE ActivityId = null")["records"]
    assert rows and len(rows) == sum(1 for r in org.records("EmailMessage") if not r["ActivityId"])
    ids = sorted({r["ParentId"] for r in rows})
    assert all(r["RelatedToId"] == r["ParentId"] and r["ParentId"].startswith("500") for r in rows)
    listed = ", ".join(f"'{i}'" for i in ids)
    cases = {
        c["Id"]: c
        for c in sf.query_all(f"SELECT Id, AccountId, ContactId, OwnerId FROM Case WHERE Id IN ({listed})")["records"]
    }
    assert set(cases) == set(ids)
    users = {u["Id"] for u in org.records("User")}
    answers = [r for r in rows if not r["Incoming"]]
    assert answers and 0 < len(answers) < len(rows), "customers write; owners answer some of it"
    for row in answers:  # an answer is sent by the case owner
        assert row["CreatedById"] == cases[row["ParentId"]]["OwnerId"] in users
    hours = {int(r["MessageDate"][11:13]) for r in answers}
    assert any(6 <= h < 16 for h in hours) and any(h >= 17 for h in hours), "answers in and out of business hours"


def test_without_read_on_case_the_org_answers_invalid_type(tmp_path: object) -> None:
    data = generate_org(anchor=datetime(2026, 9, 30, 17, 0, tzinfo=UTC), accounts=10, opportunities=10, activities=100)
    org = SandboxOrg(data, cases=False)
    with SandboxServer(org) as server, requests.Session() as http:
        http.verify, http.trust_env = server.ca_path, False
        sf = Salesforce(instance_url=server.base_url, session_id=org.static_access_token, session=http, version="59.0")
        with pytest.raises(SalesforceMalformedRequest) as refused:
            sf.query("SELECT Id FROM Case")
        assert refused.value.content[0]["errorCode"] == "INVALID_TYPE"
        assert "'Case'" in refused.value.content[0]["message"]
        # and the case e-mails follow access to their case: none is visible; the e-mail tasks' e-mails are
        assert (
            org.records("EmailMessage")
            and sf.query("SELECT Id FROM EmailMessage WHERE ParentId != null")["totalSize"] == 0
        )
        visible = sf.query_all("SELECT Id FROM EmailMessage")["totalSize"]
        assert visible == sum(1 for e in org.records("EmailMessage") if e["ActivityId"]) > 0
