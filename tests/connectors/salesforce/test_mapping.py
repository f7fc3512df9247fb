"""Salesforce rows → canonical records, including the malformed rows a real org produces."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from connectors.errors import SkippableError
from connectors.records import ActivityKind, Direction
from connectors.salesforce.mapping import to_record

STAMP = "2026-08-03T10:15:00.000+0000"


def test_call_task_maps_kind_direction_duration_and_links() -> None:
    row = {
        "attributes": {"type": "Task"},
        "Id": "00T000000000001AAA",
        "SystemModstamp": STAMP,
        "CreatedDate": STAMP,
        "IsDeleted": False,
        "Subject": "Discovery call",
        "TaskSubtype": "Call",
        "CallType": "Inbound",
        "CallDurationInSeconds": 420,
        "Status": "Completed",
        "IsClosed": True,
        "ActivityDate": "2026-08-03",
        "CompletedDateTime": "2026-08-03T10:00:00.000+0000",
        "OwnerId": "005000000000001AAA",
        "WhoId": "003000000000001AAA",
        "WhatId": "006000000000001AAA",
        "AccountId": "001000000000001AAA",
    }
    activity = to_record("Task", row, currency="EUR")
    assert activity.activity_kind is ActivityKind.call  # type: ignore[union-attr]
    assert activity.direction is Direction.inbound  # type: ignore[union-attr]
    assert activity.duration_seconds == 420  # type: ignore[union-attr]
    assert activity.occurred_at == datetime(2026, 8, 3, 10, 0, tzinfo=UTC)  # type: ignore[union-attr]
    assert (activity.opportunity_id, activity.account_id) == ("006000000000001AAA", "001000000000001AAA")  # type: ignore[union-attr]
    assert activity.contact_ids == ("003000000000001AAA",)  # type: ignore[union-attr]
    assert "attributes" not in activity.raw and activity.raw["Subject"] == "Discovery call"


@pytest.mark.parametrize(
    ("subtype", "closed", "kind", "has_occurred"),
    [
        ("Email", True, ActivityKind.email, True),
        ("Task", False, ActivityKind.task, False),
        (None, True, ActivityKind.task, True),
        ("LinkedIn", True, ActivityKind.task, True),
    ],
    ids=["email", "open-task", "no-subtype", "unknown-subtype"],
)
def test_task_subtypes(subtype: str | None, closed: bool, kind: ActivityKind, has_occurred: bool) -> None:
    row = {
        "Id": "00T1",
        "SystemModstamp": STAMP,
        "TaskSubtype": subtype,
        "IsClosed": closed,
        "ActivityDate": "2026-08-10",
        "WhoId": "00Q000000000001AAA",
    }
    activity = to_record("Task", row, currency="EUR")
    assert activity.activity_kind is kind  # type: ignore[union-attr]
    assert (activity.occurred_at is not None) is has_occurred  # type: ignore[union-attr]
    assert activity.contact_ids == ()  # a lead is not a contact  # type: ignore[union-attr]


def test_event_is_a_meeting_with_duration() -> None:
    row = {
        "Id": "00U1",
        "SystemModstamp": STAMP,
        "StartDateTime": "2026-08-04T09:00:00.000+0000",
        "EndDateTime": "2026-08-04T09:45:00.000+0000",
        "DurationInMinutes": 45,
        "WhatId": "001000000000009AAA",
    }
    meeting = to_record("Event", row, currency="EUR")
    assert meeting.activity_kind is ActivityKind.meeting  # type: ignore[union-attr]
    assert meeting.duration_seconds == 2700 and meeting.account_id == "001000000000009AAA"  # type: ignore[union-attr]


def test_opportunity_fields_and_default_currency() -> None:
    row = {
        "Id": "0061",
        "SystemModstamp": STAMP,
        "Name": "Ünïcödé — 日本語 deal",
        "StageName": "Made-up stage",
        "Amount": 50000,
        "Probability": 40,
        "CloseDate": "2026-09-30",
        "IsClosed": False,
        "PushCount": 2,
        "LastStageChangeDate": "2026-07-01T08:00:00.000+0000",
        "NextStep": "x" * 32_000,
    }
    opportunity = to_record("Opportunity", row, currency="EUR")
    assert opportunity.currency == "EUR" and opportunity.close_date == date(2026, 9, 30)  # type: ignore[union-attr]
    assert opportunity.stage == "Made-up stage", "unknown picklist values are kept as they are"  # type: ignore[union-attr]
    assert opportunity.name == "Ünïcödé — 日本語 deal" and len(opportunity.next_step) == 32_000  # type: ignore[union-attr,arg-type]
    assert opportunity.close_date_pushes == 2  # type: ignore[union-attr]


def test_nul_characters_are_dropped_because_postgresql_refuses_them() -> None:
    row = {"Id": "0011", "SystemModstamp": STAMP, "Name": "Acme\x00 GmbH"}
    account = to_record("Account", row, currency="EUR")
    assert account.name == "Acme GmbH" and account.raw["Name"] == "Acme GmbH"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("sobject", "row", "message"),
    [
        ("Opportunity", {"Id": "0062", "SystemModstamp": STAMP, "Amount": "lots"}, "Opportunity 0062: amount"),
        ("Opportunity", {"Id": "0063", "SystemModstamp": STAMP, "Probability": 150}, "Opportunity 0063: probability"),
        ("Task", {"Id": "00T2", "SystemModstamp": None}, "Task 00T2: SystemModstamp is empty"),
        ("Account", {"SystemModstamp": STAMP}, "Account <no Id>: the row has no Id"),
        ("Event", {"Id": "00U2", "SystemModstamp": "yesterday"}, "Event 00U2: Invalid isoformat"),
        (
            "OpportunityContactRole",
            {"Id": "00K1", "SystemModstamp": STAMP, "ContactId": "0031"},
            "OpportunityContactRole 00K1: opportunity_id",
        ),
    ],
    ids=["amount-not-a-number", "probability-out-of-range", "null-modstamp", "no-id", "bad-datetime", "null-link"],
)
def test_malformed_rows_raise_a_skippable_error_naming_the_record(sobject: str, row: dict, message: str) -> None:
    with pytest.raises(SkippableError) as caught:
        to_record(sobject, row, currency="EUR")
    assert message in str(caught.value)
