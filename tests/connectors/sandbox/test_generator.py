from collections import Counter
from datetime import UTC, datetime

import pytest

from connectors.sandbox.generator import generate_org
from connectors.sandbox.schema import SOBJECTS

ANCHOR = datetime(2026, 9, 30, 17, 0, tzinfo=UTC)
ANCHOR_TEXT = "2026-09-30T17:00:00.000+0000"


@pytest.fixture(scope="module")
def org_data() -> dict[str, list[dict]]:
    return generate_org(anchor=ANCHOR)


def test_same_arguments_give_identical_data(org_data: dict[str, list[dict]]) -> None:
    assert generate_org(anchor=ANCHOR) == org_data
    assert generate_org(anchor=ANCHOR, seed=43) != org_data


def test_records_have_exactly_the_schema_fields_and_unique_prefixed_ids(org_data: dict[str, list[dict]]) -> None:
    assert set(org_data) == set(SOBJECTS)
    for sobject, rows in org_data.items():
        schema = SOBJECTS[sobject]
        assert rows, sobject
        assert all(list(row) == list(schema.fields) or set(row) == set(schema.fields) for row in rows), sobject
        ids = [row["Id"] for row in rows]
        assert len(set(ids)) == len(ids)
        assert all(len(i) == 18 and i.startswith(schema.key_prefix) for i in ids)


def test_team_and_volumes(org_data: dict[str, list[dict]]) -> None:
    titles = Counter(user["Title"] for user in org_data["User"])
    assert titles == {"Account Executive": 8, "Key Account Manager": 2, "Head of Sales": 1}
    assert len(org_data["Account"]) == 400
    assert len(org_data["Opportunity"]) == 1000
    story = [t for t in org_data["Task"] if t["Subject"] in STORY_SUBJECTS]  # leads and out-of-hours e-mails
    assert len(org_data["Task"]) + len(org_data["Event"]) - len(story) == 20000
    assert any(account["Key_Account__c"] for account in org_data["Account"])
    per_account = Counter(contact["AccountId"] for contact in org_data["Contact"])
    assert set(per_account.values()) <= {2, 3, 4, 5}
    per_opp = Counter(role["OpportunityId"] for role in org_data["OpportunityContactRole"])
    assert set(per_opp.values()) <= {1, 2, 3} and len(per_opp) == 1000


STORY_SUBJECTS = ("First call", "Re: your enquiry", "Question about our order")


def test_leads_arrive_at_any_hour_and_some_are_converted(org_data: dict[str, list[dict]]) -> None:
    leads = org_data["Lead"]
    assert len(leads) == 200 and all(lead["Id"].startswith("00Q") for lead in leads)
    converted = [lead for lead in leads if lead["IsConverted"]]
    assert 0 < len(converted) < len(leads)
    contacts = {contact["Id"]: contact for contact in org_data["Contact"]}
    for lead in converted:  # conversion names the contact and its account; the lead carries the person's name
        contact = contacts[lead["ConvertedContactId"]]
        assert contact["AccountId"] == lead["ConvertedAccountId"] and contact["Name"] == lead["Name"]
        assert lead["Status"] == "Closed - Converted" and lead["CreatedDate"][:10] <= lead["ConvertedDate"]
    assert all(
        not lead["ConvertedContactId"] and not lead["ConvertedDate"] for lead in leads if not lead["IsConverted"]
    )
    hours = {int(lead["CreatedDate"][11:13]) for lead in leads}
    assert {0, 3, 21} <= hours, "web forms arrive at night too"
    weekdays = {datetime.strptime(lead["CreatedDate"][:10], "%Y-%m-%d").weekday() for lead in leads}
    assert {5, 6} <= weekdays
    incoming = {e["ActivityId"]: e["Incoming"] for e in org_data["EmailMessage"]}
    weekend = [
        t
        for t in org_data["Task"]
        if incoming.get(t["Id"]) and datetime.strptime(t["CreatedDate"][:10], "%Y-%m-%d").weekday() >= 5
    ]
    assert weekend, "customers write at the weekend"


def test_timestamps_are_api_shaped_and_consistent(org_data: dict[str, list[dict]]) -> None:
    for sobject, rows in org_data.items():
        for row in rows:
            assert row["CreatedDate"] <= row["SystemModstamp"] <= ANCHOR_TEXT, (sobject, row["Id"])
            assert row["LastModifiedDate"] == row["SystemModstamp"]
            datetime.strptime(row["CreatedDate"], "%Y-%m-%dT%H:%M:%S.%f%z")
    activity_days = {task["CreatedDate"][:10] for task in org_data["Task"]}
    assert min(activity_days) >= "2026-07-01" and len(activity_days) > 50


def test_opportunity_stages_and_hygiene_cases(org_data: dict[str, list[dict]]) -> None:
    opps = org_data["Opportunity"]
    assert {opp["StageName"] for opp in opps} >= {"Prospecting", "Negotiation/Review", "Closed Won", "Closed Lost"}
    for opp in opps:
        assert opp["IsClosed"] == opp["StageName"].startswith("Closed")
        assert opp["IsWon"] == (opp["StageName"] == "Closed Won")
        assert opp["Probability"] == {"Closed Won": 100.0, "Closed Lost": 0.0}.get(opp["StageName"], opp["Probability"])
        assert 0 <= opp["PushCount"] <= 4
    assert any(opp["NextStep"] is None for opp in opps)
    assert any(not opp["IsClosed"] and opp["CloseDate"] < "2026-09-30" for opp in opps)
    assert {opp["Segment__c"] for opp in opps} == {"SMB", "Mid-Market", "Enterprise"}


def test_activity_mix_and_links(org_data: dict[str, list[dict]]) -> None:
    tasks, events = org_data["Task"], org_data["Event"]
    mix = Counter(task["TaskSubtype"] for task in tasks)
    total = len(tasks) + len(events)
    assert 0.40 < mix["Call"] / total < 0.50
    assert 0.20 < mix["Email"] / total < 0.30
    assert 0.15 < len(events) / total < 0.25
    calls = [task for task in tasks if task["TaskSubtype"] == "Call"]
    assert {call["CallType"] for call in calls} == {"Inbound", "Outbound"}
    assert all(call["CallDurationInSeconds"] > 0 for call in calls)
    assert all(task["CallType"] is None for task in tasks if task["TaskSubtype"] != "Call")
    assert any(not task["IsClosed"] and task["ActivityDate"] > "2026-09-30" for task in tasks)
    contact_ids = {contact["Id"] for contact in org_data["Contact"]}
    lead_ids = {lead["Id"] for lead in org_data["Lead"]}
    on_leads = [row for row in tasks if row["WhoId"] in lead_ids]
    others = [row for row in tasks + events if row["WhoId"] not in lead_ids]
    assert on_leads and all(row["WhatId"] is None and row["AccountId"] is None for row in on_leads)
    assert all(row["WhoId"] in contact_ids and row["AccountId"] for row in others)
    assert all(row["WhatId"][:3] in ("001", "006") for row in others)
    assert all(event["EventSubtype"] == "Event" and event["StartDateTime"] < event["EndDateTime"] for event in events)
