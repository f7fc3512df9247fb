"""The sandbox org stores e-mails as Enhanced Email does: an EmailMessage for every e-mail task (ActivityId), with
its direction (Incoming), date, addresses and the record it is about (RelatedToId), queryable and deletable like
any record (https://developer.salesforce.com/docs/platform/object-reference/references/standard-objects/object-emailmessage.html).
The groundwork for pulling e-mail direction from Salesforce (issue 19); the connector does not read it yet."""

from __future__ import annotations

from simple_salesforce import Salesforce

from connectors.sandbox.store import SandboxOrg

FIELDS = (
    "Id, ActivityId, RelatedToId, ParentId, Incoming, MessageDate, FromAddress, ToAddress, CcAddress, Subject, "
    "Status, IsDeleted, SystemModstamp, LastModifiedDate"
)


def test_every_email_task_has_its_email_message_with_a_direction(sf: Salesforce, org: SandboxOrg) -> None:
    rows = sf.query_all(f"SELECT {FIELDS} FROM EmailMessage ORDER BY SystemModstamp, Id")["records"]
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
