"""The sandbox's Salesforce scenario told in HubSpot's terms: one sales quarter, two CRMs.

``portal_from_org`` turns the Salesforce seed (``generator.generate_org``) into a HubSpot portal holding the same
owners, companies, contacts, deals (in a pipeline whose stages carry the Salesforce stage names) and engagements
with their associations, so that a test can prove both connectors derive the same canonical records.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

from connectors.records import Activity, ActivityKind, Direction
from connectors.salesforce.mapping import (
    CASE_FIELDS,
    CASE_OBJECT,
    EMAIL_KEY,
    EMAIL_STREAM,
    case_email,
    email_fields,
    to_record,
)
from connectors.sandbox.hubspot_portal import (
    HubSpotPortal,
    _strings,
    created_property,
    format_timestamp,
    modified_property,
)


def _stamp(value: Any) -> str | None:
    if value in (None, ""):
        return None
    if isinstance(value, str) and len(value) == 28 and value.endswith(".000+0000"):
        return value[:23] + "Z"  # the API's own format, already UTC: what the parse and format below give, 5x faster
    if isinstance(value, datetime):
        return format_timestamp(value)
    parsed = datetime.fromisoformat(str(value))
    # a date-only value ('2026-09-12') is midnight UTC, not midnight wherever the sandbox runs
    return format_timestamp(parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC))


def stage_id(label: str) -> str:
    return re.sub(r"[^a-z0-9]+", "", label.lower())


class IdMap(dict[str, str]):
    """Salesforce id → HubSpot id. ``leads``: Salesforce lead id → the HubSpot lead object's id (a portal seeded
    with ``leads_object``), kept apart because the Salesforce lead id already names the contact an open lead became."""

    def __init__(self) -> None:
        super().__init__()
        self.leads: dict[str, str] = {}


# The default lead pipeline's stages (https://knowledge.hubspot.com/object-settings/customize-the-lead-pipeline;
# ids as the API names them), their labels edited to the org's lead statuses (HubSpot allows it), so that a lead's
# status reads the same from both CRMs. "qualified-stage-id" is the converted stage.
LEAD_STAGES: dict[str, str] = {
    "Open - Not Contacted": "new-stage-id",
    "Working - Contacted": "attempting-stage-id",
    "Closed - Converted": "qualified-stage-id",
    "Closed - Not Converted": "unqualified-stage-id",
}
# HubSpot names a lead's "date entered" property after the stage id with a suffix only the portal knows when the id
# is not a number (hs_v2_date_entered_qualified_stage_id_233247981 in one portal): the sandbox's suffix is its own.
LEAD_ENTERED_SUFFIX = "_611904723"


def portal_from_org(
    data: dict[str, list[dict[str, Any]]], *, consume: bool = False, leads_object: bool = False, **portal_options: Any
) -> tuple[HubSpotPortal, IdMap]:
    """The portal telling the story of ``data`` (``generate_org`` output), and the Salesforce id → HubSpot id map.

    ``leads_object``: the portal also has the leads object (Sales Hub Professional/Enterprise), one lead per
    Salesforce lead, associated with the contact it is (converted: the contact it was converted to; open: the contact
    made for it) and, once converted, its company (see ``_lead_objects``).

    ``consume``: empty ``data``'s Task, Event and EmailMessage lists while seeding, each row freed once its
    engagement is in the portal, so that a million activities are not held twice (at a million activities the peak
    is then about the portal's own size, not the portal's and the org's)."""
    portal = HubSpotPortal(**portal_options)
    ids = IdMap()
    next_id: dict[str, int] = {}
    # the int of every company, contact and deal id, so that the links of a million engagements share one int object
    # per record instead of making one per link; engagements are linked from nothing later
    numbers: dict[str, int] = {}

    def new_id(kind: str, sf_id: str, start: int) -> str:
        next_id[kind] = next_id.get(kind, start) + 1
        ids[sf_id] = str(next_id[kind])
        return ids[sf_id]

    for user in data["User"]:
        owner_id = new_id("owners", user["Id"], 100_000)
        portal.owners.append(
            {
                "id": owner_id,
                "email": user.get("Email"),
                "type": "PERSON",
                "firstName": user.get("FirstName"),
                "lastName": user.get("LastName"),
                "userId": int(owner_id) + 9_000_000,
                "createdAt": _stamp(user["CreatedDate"]),
                "updatedAt": _stamp(user["SystemModstamp"]),
                "archived": False,
            }
        )

    stages: dict[str, dict[str, Any]] = {}
    for opportunity in data["Opportunity"]:
        label = opportunity["StageName"]
        if label not in stages:
            stages[label] = {
                "id": stage_id(label),
                "label": label,
                "displayOrder": len(stages),
                "metadata": {
                    "isClosed": "true" if opportunity["IsClosed"] else "false",
                    "probability": str((opportunity.get("Probability") or 0) / 100),
                },
                "createdAt": _stamp(opportunity["CreatedDate"]),
                "updatedAt": _stamp(opportunity["CreatedDate"]),
                "archived": False,
            }
    first = min((s["createdAt"] for s in stages.values()), default=None)
    portal.pipelines["deals"] = [
        {
            "id": "default",
            "label": "Sales Pipeline",
            "displayOrder": 0,
            "stages": list(stages.values()),
            "createdAt": first,
            "updatedAt": first,
            "archived": False,
        }
    ]

    def owner(row: dict[str, Any]) -> str | None:
        return ids.get(row.get("OwnerId") or "")

    def insert(
        kind: str,
        sf_row: dict[str, Any],
        start: int,
        properties: dict[str, Any],
        associations: Sequence[tuple[str, str]] = (),
        primary_company: str | None = None,
    ) -> None:
        # engagements share one id space, as in HubSpot (they all land in the activity table)
        engagement = start == 20_000_000
        hs_id = new_id("engagements" if engagement else kind, sf_row["Id"], start)
        record_id = int(hs_id)
        if not engagement:
            numbers[hs_id] = record_id
        # what portal.insert stores, built here without its per-call checks and the copy it returns (a million
        # engagements are seeded); the version moves as one insert and one associate per link would move it
        created = _stamp(sf_row["CreatedDate"])
        modified = _stamp(sf_row["SystemModstamp"])
        if modified == created:
            modified = created  # one string for both
        values = {"hs_object_id": hs_id, created_property(kind): created, modified_property(kind): modified}
        values.update(_strings(properties))
        portal.add_record(
            kind,
            {"id": hs_id, "properties": values, "createdAt": created, "updatedAt": modified, "archived": False},
        )
        for to_kind, to_id in associations:
            if to_id:
                portal.link(kind, record_id, to_kind, numbers.get(to_id) or int(to_id))
                portal.version += 1
        if primary_company:
            portal.mark_primary(kind, record_id, numbers.get(primary_company) or int(primary_company))
        portal.version += 1

    for account in data["Account"]:
        insert(
            "companies",
            account,
            5_000_000,
            {
                "name": account.get("Name"),
                "industry": account.get("Industry"),
                # the portal's company "type" options are edited to the org's account types (HubSpot allows it)
                "type": account.get("Type"),
                "country": account.get("BillingCountry"),
                "annualrevenue": account.get("AnnualRevenue"),
                "numberofemployees": account.get("NumberOfEmployees"),
                "hubspot_owner_id": owner(account),
                "notes_last_updated": _stamp(account.get("LastActivityDate")),
                "key_account": account.get("Key_Account__c"),
                "tier": account.get("Tier__c"),
            },
        )
    # A Salesforce lead is a HubSpot contact that became a lead: a converted lead is its converted contact (which
    # went on to opportunity when the lead was converted), an open one a contact of no company yet.
    converted = {lead["ConvertedContactId"]: lead for lead in data.get("Lead", ()) if lead.get("ConvertedContactId")}
    for contact in data["Contact"]:
        company = ids.get(contact.get("AccountId") or "")
        lead = converted.get(contact["Id"])
        row = {**contact, "SystemModstamp": max(contact["SystemModstamp"], lead["SystemModstamp"])} if lead else contact
        insert(
            "contacts",
            row,
            7_000_000,
            {
                "firstname": contact.get("FirstName"),
                "lastname": contact.get("LastName"),
                "email": contact.get("Email"),
                "jobtitle": contact.get("Title"),
                "hubspot_owner_id": owner(contact),
                "associatedcompanyid": company,
                **(_lead_properties(lead, owner(lead)) if lead else {}),
            },
            [("companies", company or "")],
            primary_company=company,
        )
    for lead in data.get("Lead", ()):
        if lead.get("ConvertedContactId") or lead.get("IsDeleted"):
            continue
        insert(
            "contacts",
            lead,
            7_000_000,
            {
                "firstname": lead.get("FirstName"),
                "lastname": lead.get("LastName"),
                "email": lead.get("Email"),
                **_lead_properties(lead, owner(lead)),  # its owner too
            },
        )
    if leads_object:
        _lead_objects(portal, data, ids, owner)
    roles: dict[str, list[str]] = {}
    for role in data["OpportunityContactRole"]:
        roles.setdefault(role["OpportunityId"], []).append(role["ContactId"])
    for opportunity in data["Opportunity"]:
        stage = stages[opportunity["StageName"]]
        company = ids.get(opportunity.get("AccountId") or "")
        insert(
            "deals",
            opportunity,
            9_000_000,
            {
                "dealname": opportunity.get("Name"),
                "amount": opportunity.get("Amount"),
                "deal_currency_code": "EUR",
                "dealstage": stage["id"],
                "pipeline": "default",
                "closedate": _stamp(opportunity.get("CloseDate")),
                "hubspot_owner_id": owner(opportunity),
                "hs_next_step": opportunity.get("NextStep"),
                "hs_deal_stage_probability": (opportunity.get("Probability") or 0) / 100,
                "notes_last_updated": _stamp(opportunity.get("LastActivityDate")),
                f"hs_date_entered_{stage['id']}": _stamp(opportunity.get("LastStageChangeDate")),
                "segment": opportunity.get("Segment__c"),
                "close_date_pushes": opportunity.get("PushCount"),  # kept by a workflow in a real portal
            },
            [
                ("companies", company or ""),
                *[("contacts", ids.get(c, "")) for c in roles.get(opportunity["Id"], [])],
            ],
            primary_company=company,
        )

    # an e-mail's direction is on its EmailMessage (Enhanced Email): the portal's hs_email_direction tells the same
    emails = {e["ActivityId"]: email_fields(e) for e in data.get(EMAIL_STREAM, ()) if e.get("ActivityId")}
    # an e-mail without a task (Email-to-Case) is an e-mail engagement of its own in HubSpot, on the case's contact
    # and company, owned as the Salesforce connector owns it (the sender of an answer, the case owner of an inquiry)
    taskless = [e for e in data.get(EMAIL_STREAM, ()) if not e.get("ActivityId")]
    cases = {c["Id"]: {f: c.get(f) for f in CASE_FIELDS} for c in data.get(CASE_OBJECT, ())}
    if consume and EMAIL_STREAM in data:
        data[EMAIL_STREAM] = []
    for sobject in ("Task", "Event"):
        rows = data[sobject]
        if consume:
            data[sobject] = []
        for row in _drain(rows) if consume else rows:
            if row["Id"] in emails:
                row = {**row, EMAIL_KEY: emails.pop(row["Id"]) if consume else emails[row["Id"]]}
            activity = to_record(sobject, row, currency="EUR")
            assert isinstance(activity, Activity)
            kind, properties = _engagement(activity)
            links = [
                ("companies", ids.get(activity.account_id or "", "")),
                ("deals", ids.get(activity.opportunity_id or "", "")),
                *[("contacts", ids.get(c, "")) for c in (*activity.contact_ids, activity.lead_id) if c],
            ]
            insert(kind, row, 20_000_000, {**properties, "hubspot_owner_id": ids.get(activity.owner_id or "")}, links)
    for row in taskless:  # after every other engagement, so their ids stay what they were
        found = case_email(row, cases)
        if found is None or found.is_deleted:
            continue
        kind, properties = _engagement(found)
        links = [
            ("companies", ids.get(found.account_id or "", "")),
            ("deals", ids.get(found.opportunity_id or "", "")),
            *[("contacts", ids.get(c, "")) for c in found.contact_ids],
        ]
        insert(kind, row, 20_000_000, {**properties, "hubspot_owner_id": ids.get(found.owner_id or "")}, links)
    return portal, ids


def _lead_objects(portal: HubSpotPortal, data: dict[str, list[dict[str, Any]]], ids: IdMap, owner: Any) -> None:
    """Each live Salesforce lead as a record of the leads object: name, owner, pipeline stage (``LEAD_STAGES``),
    created and modified as in Salesforce, the date it entered the converted stage, and its primary contact (578)
    and, when converted, primary company (580)."""
    first = min((_stamp(lead["CreatedDate"]) or "" for lead in data.get("Lead", ())), default=None)
    portal.pipelines["leads"] = [
        {
            "id": "lead-pipeline-id",
            "label": "Lead pipeline",
            "displayOrder": 0,
            "stages": [
                {
                    "id": stage,
                    "label": label,
                    "displayOrder": order,
                    "metadata": {},
                    "createdAt": first,
                    "updatedAt": first,
                    "archived": False,
                }
                for order, (label, stage) in enumerate(LEAD_STAGES.items())
            ],
            "createdAt": first,
            "updatedAt": first,
            "archived": False,
        }
    ]
    number = 90_000_000
    for lead in data.get("Lead", ()):
        if lead.get("IsDeleted"):
            continue
        number += 1
        hs_id = str(number)
        ids.leads[lead["Id"]] = hs_id
        stage = LEAD_STAGES[lead["Status"]]
        created, modified = _stamp(lead["CreatedDate"]), _stamp(lead["SystemModstamp"])
        values = {
            "hs_object_id": hs_id,
            "hs_createdate": created,
            "hs_lastmodifieddate": modified,
            "hs_lead_name": lead.get("Name"),
            "hs_pipeline": "lead-pipeline-id",
            "hs_pipeline_stage": stage,
            "hubspot_owner_id": owner(lead),
        }
        if lead.get("IsConverted"):
            values["hs_v2_date_entered_qualified_stage_id" + LEAD_ENTERED_SUFFIX] = _stamp(lead.get("ConvertedDate"))
        portal.add_record(
            "leads",
            {
                "id": hs_id,
                "properties": _strings(values),
                "createdAt": created,
                "updatedAt": modified,
                "archived": False,
            },
        )
        contact = ids.get(lead.get("ConvertedContactId") or lead["Id"])
        if contact:
            portal.link("leads", number, "contacts", int(contact))
        company = ids.get(lead.get("ConvertedAccountId") or "")
        if company:
            portal.link("leads", number, "companies", int(company))
        portal.version += 1


def _drain(rows: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """The rows in order, each taken out of the list as it is handed out (the list is empty at the end)."""
    rows.reverse()
    while rows:
        yield rows.pop()


# HubSpot's Original Source values (hs_analytics_source) for the sandbox org's lead sources
_SOURCES = {
    "Web": "ORGANIC_SEARCH",
    "Phone Inquiry": "OFFLINE",
    "Partner Referral": "REFERRALS",
    "Trade Show": "OFFLINE",
}


def _lead_properties(lead: dict[str, Any], owner_id: str | None) -> dict[str, Any]:
    """A lead's story in contact properties: when it became a lead, and an opportunity when it was converted. The
    portal's lead status options are edited to the org's lead statuses (HubSpot allows it)."""
    return {
        "lifecyclestage": "opportunity" if lead.get("IsConverted") else "lead",
        "hs_lifecyclestage_lead_date": _stamp(lead["CreatedDate"]),
        "hs_lifecyclestage_opportunity_date": _stamp(lead.get("ConvertedDate")),
        "hs_lead_status": lead.get("Status"),
        "hs_analytics_source": _SOURCES.get(lead.get("LeadSource") or "", "OTHER_CAMPAIGNS"),
        "company": lead.get("Company"),
        "hubspot_owner_id": owner_id,
    }


_CALL_DIRECTION = {Direction.inbound: "INBOUND", Direction.outbound: "OUTBOUND"}
_EMAIL_DIRECTION = {Direction.inbound: "INCOMING_EMAIL", Direction.outbound: "EMAIL"}


def _engagement(activity: Activity) -> tuple[str, dict[str, Any]]:
    at = _stamp(activity.occurred_at)
    if activity.activity_kind is ActivityKind.call:
        duration = activity.duration_seconds * 1000 if activity.duration_seconds is not None else None
        return "calls", {
            "hs_timestamp": at,
            "hs_call_title": activity.subject,
            "hs_call_status": activity.status,
            "hs_call_direction": _CALL_DIRECTION.get(activity.direction) if activity.direction else None,
            "hs_call_duration": duration,
        }
    if activity.activity_kind is ActivityKind.email:
        return "emails", {
            "hs_timestamp": at,
            "hs_email_subject": activity.subject,
            "hs_email_direction": _EMAIL_DIRECTION.get(activity.direction) if activity.direction else None,
            "hs_email_status": activity.status,
            "hs_email_from_email": activity.email_from,
            "hs_email_to_email": activity.email_to,
        }
    if activity.activity_kind is ActivityKind.meeting:
        return "meetings", {
            "hs_timestamp": at,
            "hs_meeting_title": activity.subject,
            "hs_meeting_start_time": at,
            "hs_meeting_end_time": _stamp(activity.completed_at),
        }
    return "tasks", {
        "hs_timestamp": _stamp(activity.due_at),
        "hs_task_subject": activity.subject,
        "hs_task_status": "COMPLETED" if activity.occurred_at else "NOT_STARTED",
        "hs_task_completion_date": _stamp(activity.completed_at),
        "hs_task_type": "TODO",
    }
