"""Deterministic generator of a quarter of a B2B sales team as a sandbox HubSpot portal.

`generate_portal(seed=..., anchor=...)` gives the same kind of quarter as `generator.generate_org` (it reuses its
names and its minute clock), in HubSpot's shape: every property value a string or None, timestamps ISO 8601 with
milliseconds and Z. Everything is drawn from one ``random.Random(seed)``: the same arguments give the same portal.
Engagements are built in one tight loop (no per-record locks or copies) so a million take well under a minute.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from connectors.sandbox.generator import (
    _COUNTRIES,
    _FIRST,
    _LAST,
    _NEXT_STEPS,
    _PRODUCTS,
    _SECTORS,
    _SEGMENTS,
    _TITLES,
    _WORDS,
    QUARTER_DAYS,
    _Clock,
)
from connectors.sandbox.hubspot_portal import HubSpotPortal, format_timestamp

# (id, label, probability, isClosed, weight)
DEAL_STAGES = [
    ("appointmentscheduled", "Appointment Scheduled", "0.2", False, 14),
    ("qualifiedtobuy", "Qualified To Buy", "0.4", False, 14),
    ("presentationscheduled", "Presentation Scheduled", "0.6", False, 12),
    ("decisionmakerboughtin", "Decision Maker Bought-In", "0.8", False, 12),
    ("contractsent", "Contract Sent", "0.9", False, 8),
    ("closedwon", "Closed Won", "1.0", True, 20),
    ("closedlost", "Closed Lost", "0.0", True, 20),
]
_CALL_TITLES = ["Discovery call", "Follow-up call", "Check-in call", "Pricing call"]
_EMAIL_SUBJECTS = ["Follow-up", "Proposal", "Meeting recap", "Introduction"]
_MEETING_TITLES = ["Demo", "Quarterly business review", "Workshop", "Executive alignment"]
_TASK_SUBJECTS = ["Prepare QBR deck", "Update deal", "Send contract", "Research company", "Follow up"]
_TASK_TYPES = ["CALL", "EMAIL", "TODO"]
_OUTCOMES = ["COMPLETED", "COMPLETED", "SCHEDULED", "NO_SHOW", "RESCHEDULED"]


def generate_portal(
    *,
    seed: int = 42,
    companies: int = 400,
    deals: int = 1000,
    engagements: int = 20000,
    anchor: datetime | None = None,
    **portal_options: Any,
) -> HubSpotPortal:
    """Generate owners, the default deal pipeline, companies, contacts, deals and engagements for one quarter
    ending at `anchor` (default: now, to the minute). Extra keyword arguments go to :class:`HubSpotPortal`."""
    if anchor is None:
        anchor = datetime.now(UTC).replace(second=0, microsecond=0)
    elif anchor.tzinfo is None:
        anchor = anchor.replace(tzinfo=UTC)
    anchor = anchor.astimezone(UTC)
    rnd = random.Random(seed)
    clock = _Clock(anchor)
    portal = HubSpotPortal(**portal_options)

    def stamp(minute: int, second: int = 0) -> str:
        return clock.stamp(minute, second)[:23] + "Z"

    def long_ago(max_days: int) -> str:
        return format_timestamp(
            anchor - timedelta(days=QUARTER_DAYS + rnd.randint(1, max_days), minutes=rnd.randint(0, 600))
        )

    owner_ids = _owners(portal, long_ago)
    portal.pipelines["deals"] = [_pipeline(long_ago(800))]
    reps, kams = owner_ids[1:9], owner_ids[9:]
    company_ids, contacts_of = _companies(portal, rnd, clock, stamp, long_ago, companies, reps, kams)
    deals_of = _deals(portal, rnd, clock, stamp, deals, company_ids, contacts_of)
    _engagements(portal, rnd, clock, stamp, engagements, company_ids, contacts_of, deals_of, reps)
    portal.version += 1
    return portal


def _record(record_id: int, properties: dict[str, Any], created: str, modified: str) -> dict[str, Any]:
    properties["hs_object_id"] = str(record_id)
    return {
        "id": str(record_id),
        "properties": properties,
        "createdAt": created,
        "updatedAt": modified,
        "archived": False,
    }


def _owners(portal: HubSpotPortal, long_ago: Callable[[int], str]) -> list[str]:
    people = [("Maria", "Schneider", "Sales Leadership")]
    people += [(_FIRST[i * 3 % 24], _LAST[i * 5 % 24], "Account Executives") for i in range(8)]
    people += [("Katrin", "Lindqvist", "Key Accounts"), ("Tobias", "Marchetti", "Key Accounts")]
    teams = {name: str(4_000_001 + index) for index, name in enumerate(dict.fromkeys(team for *_n, team in people))}
    for index, (first, last, team) in enumerate(people):
        created = long_ago(400)
        portal.owners.append(
            {
                "id": str(100_001 + index),
                "email": f"{first.lower()}.{last.lower()}@sandbox.okrsync.dev",
                "type": "PERSON",
                "firstName": first,
                "lastName": last,
                "userId": 9_000_001 + index,
                "userIdIncludingInactive": 9_000_001 + index,
                "createdAt": created,
                "updatedAt": created,
                "archived": False,
                "teams": [{"id": teams[team], "name": team, "primary": True}],
            }
        )
    return [owner["id"] for owner in portal.owners]


def _pipeline(created: str) -> dict[str, Any]:
    stages = [
        {
            "id": stage_id,
            "label": label,
            "displayOrder": order,
            "metadata": {"isClosed": "true" if closed else "false", "probability": probability},
            "createdAt": created,
            "updatedAt": created,
            "archived": False,
            "writePermissions": "CRM_PERMISSIONS_ENFORCEMENT",
        }
        for order, (stage_id, label, probability, closed, _weight) in enumerate(DEAL_STAGES)
    ]
    return {
        "id": "default",
        "label": "Sales Pipeline",
        "displayOrder": 0,
        "stages": stages,
        "createdAt": created,
        "updatedAt": created,
        "archived": False,
    }


def _companies(
    portal: HubSpotPortal,
    rnd: random.Random,
    clock: _Clock,
    stamp: Callable[..., str],
    long_ago: Callable[[int], str],
    count: int,
    reps: list[str],
    kams: list[str],
) -> tuple[list[int], dict[int, list[tuple[int, str]]]]:
    company_ids: list[int] = []
    contacts_of: dict[int, list[tuple[int, str]]] = {}  # company id -> (contact id, owner id)
    contact_number = 0
    for index in range(count):
        sector, industry = rnd.choice(_SECTORS)
        key_account = rnd.random() < 0.1
        tier = "A" if key_account or rnd.random() < 0.15 else rnd.choice(["B", "B", "C", "C", "C"])
        employees = rnd.choice([20, 50, 120, 300, 800, 2500, 9000]) + rnd.randint(0, 50)
        owner = rnd.choice(kams) if key_account else rnd.choice(reps)
        created = long_ago(700)
        word = rnd.choice(_WORDS)
        company_id = 20_000_001 + index
        properties = {
            "name": f"{word} {sector} {index + 1}",
            "domain": f"{word.lower()}-{sector.lower()}-{index + 1}.example.com",
            "industry": industry.upper().replace(" & ", "_").replace(" ", "_"),
            "country": rnd.choice(_COUNTRIES),
            "annualrevenue": str(employees * rnd.randint(80, 250) * 1000),
            "numberofemployees": str(employees),
            "hubspot_owner_id": owner,
            "createdate": created,
            "hs_lastmodifieddate": created,
            "key_account": "true" if key_account else "false",
            "tier": tier,
        }
        portal.add_record("companies", _record(company_id, properties, created, created))
        company_ids.append(company_id)
        own: list[tuple[int, str]] = []
        for _ in range(rnd.randint(2, 5)):
            contact_number += 1
            first, last = rnd.choice(_FIRST), rnd.choice(_LAST)
            contact_id = 30_000_000 + contact_number
            modified = stamp(clock.later(rnd, clock.first)) if rnd.random() < 0.2 else created
            contact = {
                "firstname": first,
                "lastname": last,
                "email": f"{first.lower()}.{last.lower()}{contact_number}@example.com",
                "jobtitle": rnd.choice(_TITLES),
                "hubspot_owner_id": owner,
                "associatedcompanyid": str(company_id),
                "createdate": created,
                "lastmodifieddate": modified,
            }
            portal.add_record("contacts", _record(contact_id, contact, created, modified))
            portal.link("contacts", contact_id, "companies", company_id)
            portal.mark_primary("contacts", contact_id, company_id)
            own.append((contact_id, owner))
        contacts_of[company_id] = own
    return company_ids, contacts_of


def _deals(
    portal: HubSpotPortal,
    rnd: random.Random,
    clock: _Clock,
    stamp: Callable[..., str],
    count: int,
    company_ids: list[int],
    contacts_of: dict[int, list[tuple[int, str]]],
) -> dict[int, list[int]]:
    deals_of: dict[int, list[int]] = {}
    weights = [stage[4] for stage in DEAL_STAGES]
    today = clock.anchor.replace(hour=0, minute=0, second=0, microsecond=0)
    for index in range(count):
        company_id = company_ids[rnd.randrange(len(company_ids))]
        company = portal.get("companies", company_id)
        assert company is not None
        stage_id, _label, probability, closed, _weight = rnd.choices(DEAL_STAGES, weights)[0]
        employees = int(company["properties"]["numberofemployees"])
        segment = "Enterprise" if employees > 2000 else "Mid-Market" if employees > 200 else "SMB"
        low, high = _SEGMENTS[segment]
        created_minute = clock.working_minute(rnd)
        created = (
            stamp(created_minute)
            if rnd.random() < 0.6
            else format_timestamp(clock.datetime_at(created_minute) - timedelta(days=rnd.randint(1, 180)))
        )
        modified = max(stamp(clock.later(rnd, created_minute)), created)
        if closed:
            close = clock.base + timedelta(days=rnd.randrange(len(clock.day_date) - 1))
        elif rnd.random() < 0.15:  # overdue: close date in the past on an open deal
            close = today - timedelta(days=rnd.randint(1, 40))
        else:
            close = today + timedelta(days=rnd.randint(1, 120))
        deal_id = 10_000_001 + index
        amount = None if rnd.random() < 0.04 else str(int(round(rnd.uniform(low, high), -2)))
        properties = {
            "dealname": f"{company['properties']['name']} - {rnd.choice(_PRODUCTS)}",
            "amount": amount,
            "deal_currency_code": "EUR",
            "dealstage": stage_id,
            "pipeline": "default",
            "closedate": format_timestamp(close),
            "hubspot_owner_id": company["properties"]["hubspot_owner_id"],
            "hs_next_step": None if rnd.random() < 0.25 else rnd.choice(_NEXT_STEPS),
            "hs_deal_stage_probability": probability,
            "createdate": created,
            "hs_lastmodifieddate": modified,
            "notes_last_updated": None,
            "hs_is_closed": "true" if closed else "false",
            "hs_is_closed_won": "true" if stage_id == "closedwon" else "false",
            "segment": segment,
        }
        portal.add_record("deals", _record(deal_id, properties, created, modified))
        portal.link("deals", deal_id, "companies", company_id)
        portal.mark_primary("deals", deal_id, company_id)
        people = contacts_of[company_id]
        for contact_id, _owner in rnd.sample(people, min(len(people), rnd.randint(1, 3))):
            portal.link("deals", deal_id, "contacts", contact_id)
        deals_of.setdefault(company_id, []).append(deal_id)
    return deals_of


def _engagements(
    portal: HubSpotPortal,
    rnd: random.Random,
    clock: _Clock,
    stamp: Callable[..., str],
    count: int,
    company_ids: list[int],
    contacts_of: dict[int, list[tuple[int, str]]],
    deals_of: dict[int, list[int]],
    reps: list[str],
) -> None:
    random_ = rnd.random
    numbers = {
        "calls": 40_000_000,
        "emails": 50_000_000,
        "meetings": 60_000_000,
        "notes": 70_000_000,
        "tasks": 80_000_000,
    }
    last_touch: dict[int, str] = {}  # deal id -> latest engagement timestamp (notes_last_updated)
    for _ in range(count):
        company_id = company_ids[int(random_() * len(company_ids))]
        people = contacts_of[company_id]
        contact_id, company_owner = people[int(random_() * len(people))]
        company_deals = deals_of.get(company_id)
        deal_id = company_deals[int(random_() * len(company_deals))] if company_deals and random_() < 0.7 else None
        owner = company_owner if random_() < 0.85 else reps[int(random_() * len(reps))]
        minute = clock.working_minute(rnd)
        when = stamp(minute, int(random_() * 60))
        modified = when if random_() < 0.85 else stamp(clock.later(rnd, minute), 59)
        kind = random_()
        props: dict[str, Any] = {"hs_timestamp": when, "hubspot_owner_id": owner}
        if kind < 0.45:
            kind_name = "calls"
            props.update(
                hs_call_title=_CALL_TITLES[int(random_() * 4)],
                hs_call_direction="OUTBOUND" if random_() < 0.75 else "INBOUND",
                hs_call_duration=str(int(20 + random_() * 2400) * 1000),
                hs_call_status="COMPLETED",
            )
        elif kind < 0.70:
            kind_name = "emails"
            props.update(
                hs_email_direction="EMAIL" if random_() < 0.6 else "INCOMING_EMAIL",
                hs_email_subject=_EMAIL_SUBJECTS[int(random_() * 4)],
            )
        elif kind < 0.85:
            kind_name = "meetings"
            start = minute - minute % 30
            end = clock.datetime_at(start) + timedelta(minutes=(30, 45, 60, 90)[int(random_() * 4)])
            props.update(
                hs_timestamp=stamp(start),
                hs_meeting_title=_MEETING_TITLES[int(random_() * 4)],
                hs_meeting_start_time=stamp(start),
                hs_meeting_end_time=format_timestamp(end),
                hs_meeting_outcome=_OUTCOMES[int(random_() * 5)],
            )
        elif kind < 0.95:
            kind_name = "tasks"
            done = random_() < 0.6
            due = minute if done else minute + int(random_() * 30 * 1440)
            props.update(
                hs_task_subject=_TASK_SUBJECTS[int(random_() * 5)],
                hs_task_status="COMPLETED" if done else "NOT_STARTED",
                hs_task_type=_TASK_TYPES[int(random_() * 3)],
                hs_timestamp=stamp(due, 0) if due <= clock.last else format_timestamp(clock.datetime_at(due)),
            )
        else:
            kind_name = "notes"
            props["hs_note_body"] = "Spoke with the buyer; next step agreed."
        numbers[kind_name] += 1
        record_id = numbers[kind_name]
        props["hs_createdate"] = when
        props["hs_lastmodifieddate"] = modified
        portal.add_record(kind_name, _record(record_id, props, when, modified))
        portal.link(kind_name, record_id, "contacts", contact_id)
        portal.link(kind_name, record_id, "companies", company_id)
        if deal_id is not None:
            portal.link(kind_name, record_id, "deals", deal_id)
            if last_touch.get(deal_id, "") < when:
                last_touch[deal_id] = when
    for deal_id, touched in last_touch.items():
        deal = portal.get("deals", deal_id)
        assert deal is not None
        deal["properties"]["notes_last_updated"] = touched  # still being built: no reader holds it yet
