"""Salesforce SObject rows → canonical records.

Which fields each object pulls, and how each row becomes an ``Owner``/``Account``/…/``Activity``. A row that cannot
be mapped raises ``SkippableError`` naming the record and the field.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any, cast

from pydantic import ValidationError

from connectors.errors import skipped
from connectors.records import (
    Account,
    Activity,
    ActivityKind,
    CanonicalRecord,
    Contact,
    Direction,
    Lead,
    Opportunity,
    OpportunityContact,
    Owner,
    addresses,
    strip_nul,
)

COMMON = ["Id", "CreatedDate", "LastModifiedDate", "SystemModstamp"]

# Standard fields pulled per object. User has no IsDeleted (users are deactivated, never deleted).
FIELDS: dict[str, list[str]] = {
    "User": [*COMMON, "Name", "Email", "Title", "IsActive", "ManagerId"],
    "Account": [
        *COMMON,
        "IsDeleted",
        "Name",
        "OwnerId",
        "ParentId",
        "Industry",
        "Type",
        "BillingCountry",
        "AnnualRevenue",
        "NumberOfEmployees",
        "LastActivityDate",
    ],
    "Contact": [*COMMON, "IsDeleted", "Name", "Email", "Title", "AccountId", "OwnerId"],
    "Opportunity": [
        *COMMON,
        "IsDeleted",
        "Name",
        "AccountId",
        "OwnerId",
        "StageName",
        "Amount",
        "Probability",
        "CloseDate",
        "NextStep",
        "IsClosed",
        "IsWon",
        "ForecastCategoryName",
        "LastActivityDate",
        "LastStageChangeDate",
        "PushCount",
    ],
    "OpportunityContactRole": [*COMMON, "IsDeleted", "OpportunityId", "ContactId", "Role", "IsPrimary"],
    "Task": [
        *COMMON,
        "IsDeleted",
        "Subject",
        "TaskSubtype",
        "Type",
        "Status",
        "IsClosed",
        "ActivityDate",
        "CompletedDateTime",
        "CallDurationInSeconds",
        "CallType",
        "OwnerId",
        "WhoId",
        "WhatId",
        "AccountId",
    ],
    "Event": [
        *COMMON,
        "IsDeleted",
        "Subject",
        "Type",
        "StartDateTime",
        "EndDateTime",
        "DurationInMinutes",
        "OwnerId",
        "WhoId",
        "WhatId",
        "AccountId",
    ],
    # https://developer.salesforce.com/docs/atlas.en-us.object_reference.meta/object_reference/sforce_api_objects_lead.htm
    # A converted lead stays (IsConverted, ConvertedDate a date) and names what it became; its activities move to
    # the converted contact and to the opportunity (or the account), as the conversion re-parents them.
    "Lead": [
        *COMMON,
        "IsDeleted",
        "Name",
        "Email",
        "Company",
        "Status",
        "LeadSource",
        "OwnerId",
        "IsConverted",
        "ConvertedDate",
        "ConvertedAccountId",
        "ConvertedContactId",
        "ConvertedOpportunityId",
    ],
}
LEAD_STREAM = "Lead"

# Synced in this order so that parents usually land before children (nothing depends on it).
OBJECTS: tuple[str, ...] = tuple(FIELDS)

# Shared Activities: a task or event linked to several contacts has one TaskRelation/EventRelation row per contact
# (IsWhat = false; WhoId names only the primary one). Activity object -> (relation object, the relation's field
# naming the activity, child relationship name).
# https://developer.salesforce.com/docs/platform/object-reference/references/standard-objects/object-taskrelation.html
# https://developer.salesforce.com/docs/platform/object-reference/references/standard-objects/object-eventrelation.html
RELATIONS: dict[str, tuple[str, str, str]] = {
    "Task": ("TaskRelation", "TaskId", "TaskRelations"),
    "Event": ("EventRelation", "EventId", "EventRelations"),
}
RELATION_STREAMS: tuple[str, ...] = tuple(relation for relation, _field, _name in RELATIONS.values())

# Enhanced Email: an e-mail task's direction lives on its EmailMessage (Incoming: the customer wrote), linked by
# ActivityId; the task itself has none. The connector looks the e-mails of a page of tasks up and puts each one's
# {"Incoming": …} on its task row under EMAIL_KEY; the EmailMessage stream reads e-mails changed since the last run
# and brings their tasks again.
# https://developer.salesforce.com/docs/platform/object-reference/references/standard-objects/object-emailmessage.html
EMAIL_STREAM = "EmailMessage"
EMAIL_KEY = "EmailMessage"
EMAIL_FIELDS = ("Incoming", "FromAddress", "ToAddress", "CcAddress")  # what a task takes from its e-mail


def email_fields(email: dict[str, Any]) -> dict[str, Any]:
    """What an e-mail task keeps of its EmailMessage row (under EMAIL_KEY)."""
    return {name: email.get(name) for name in EMAIL_FIELDS}


# E-mails without a task: "ActivityId can only be specified for emails on cases. It's auto-created for other
# entities" (EmailMessage reference above), so an e-mail whose ActivityId is empty is an Email-to-Case e-mail: ParentId
# is its case (key prefix 500) and RelatedToId normally the same case. The EmailMessage stream maps each one to an
# activity of its own (``case_email``), related to the case's account and contact, read from Case.
# https://developer.salesforce.com/docs/atlas.en-us.object_reference.meta/object_reference/sforce_api_objects_case.htm
CASE_OBJECT = "Case"
CASE_FIELDS = ("Id", "AccountId", "ContactId", "OwnerId")  # what an e-mail takes from its case
# what the EmailMessage stream reads of each e-mail: a task's fields, and what a task-less e-mail needs on its own
EMAIL_STREAM_FIELDS = (
    "Id",
    "ActivityId",
    *EMAIL_FIELDS,
    "MessageDate",
    "Subject",
    "Status",
    "RelatedToId",
    "ParentId",
    "CreatedById",
    "CreatedDate",
    "LastModifiedDate",
    "SystemModstamp",
    "IsDeleted",
)
# EmailMessage.Status is stored as a digit (EmailMessage reference above); a draft has not been sent
EMAIL_STATUSES = {"0": "New", "1": "Read", "2": "Replied", "3": "Sent", "4": "Forwarded", "5": "Draft"}

EMAIL_SUBTYPES = frozenset({"Email", "ListEmail"})
PARENT_OF: dict[str, str] = {relation: parent for parent, (relation, _field, _name) in RELATIONS.items()}
_CHILD_KEYS = frozenset(name for _relation, _field, name in RELATIONS.values())


def relation_subquery(sobject: str) -> str | None:
    """The parent-to-child subquery that brings an activity's related contacts and leads with it, or None."""
    found = RELATIONS.get(sobject)
    return f"(SELECT RelationId FROM {found[2]} WHERE IsWhat = false)" if found else None


# Key prefixes of the first three id characters (https://help.salesforce.com/s/articleView?id=000385203).
PREFIX_OPPORTUNITY = "006"
PREFIX_ACCOUNT = "001"
PREFIX_CONTACT = "003"
PREFIX_LEAD = "00Q"
PREFIX_CASE = "500"


def has_is_deleted(sobject: str) -> bool:
    return "IsDeleted" in FIELDS[sobject]


def select_fields(sobject: str, *, custom: list[str], multi_currency: bool) -> list[str]:
    fields = list(FIELDS[sobject])
    if multi_currency and sobject == "Opportunity":
        fields.append("CurrencyIsoCode")
    fields.extend(name for name in custom if name not in fields)
    return fields


def parse_datetime(value: Any) -> datetime | None:
    if value in (None, ""):
        return None
    parsed = datetime.fromisoformat(str(value))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _date(value: Any) -> date | None:
    if value in (None, ""):
        return None
    return date.fromisoformat(str(value)[:10])


def _date_as_datetime(value: Any) -> datetime | None:
    day = _date(value)
    return datetime(day.year, day.month, day.day, tzinfo=UTC) if day else None


def _common(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "external_id": row["Id"],
        "modified_at": parse_datetime(row["SystemModstamp"]),
        "created_at": parse_datetime(row.get("CreatedDate")),
        "is_deleted": bool(row.get("IsDeleted") or False),
        "raw": {k: v for k, v in row.items() if k != "attributes" and k not in _CHILD_KEYS},
    }


def _owner(row: dict[str, Any], currency: str) -> Owner:
    return Owner(
        **_common(row),
        name=row.get("Name"),
        email=row.get("Email"),
        title=row.get("Title"),
        is_active=row.get("IsActive") is not False,
        manager_id=row.get("ManagerId"),
    )


def _account(row: dict[str, Any], currency: str) -> Account:
    return Account(
        **_common(row),
        name=row.get("Name"),
        owner_id=row.get("OwnerId"),
        parent_id=row.get("ParentId"),
        industry=row.get("Industry"),
        account_type=row.get("Type"),
        country=row.get("BillingCountry"),
        annual_revenue=row.get("AnnualRevenue"),
        employees=row.get("NumberOfEmployees"),
        last_activity_date=_date(row.get("LastActivityDate")),
    )


def _contact(row: dict[str, Any], currency: str) -> Contact:
    return Contact(
        **_common(row),
        name=row.get("Name"),
        email=row.get("Email"),
        title=row.get("Title"),
        account_id=row.get("AccountId"),
        owner_id=row.get("OwnerId"),
    )


def _opportunity(row: dict[str, Any], currency: str) -> Opportunity:
    return Opportunity(
        **_common(row),
        name=row.get("Name"),
        account_id=row.get("AccountId"),
        owner_id=row.get("OwnerId"),
        stage=row.get("StageName"),
        amount=row.get("Amount"),
        currency=row.get("CurrencyIsoCode") or currency,
        probability=row.get("Probability"),
        close_date=_date(row.get("CloseDate")),
        next_step=row.get("NextStep"),
        is_closed=bool(row.get("IsClosed")),
        is_won=bool(row.get("IsWon")),
        forecast_category=row.get("ForecastCategoryName"),
        last_activity_date=_date(row.get("LastActivityDate")),
        stage_entered_at=parse_datetime(row.get("LastStageChangeDate")),
        close_date_pushes=row.get("PushCount"),
    )


def _contact_role(row: dict[str, Any], currency: str) -> OpportunityContact:
    return OpportunityContact(
        **_common(row),
        opportunity_id=cast(str, row.get("OpportunityId")),
        contact_id=cast(str, row.get("ContactId")),
        role=row.get("Role"),
        is_primary=bool(row.get("IsPrimary")),
    )


def _links(row: dict[str, Any]) -> dict[str, Any]:
    what = row.get("WhatId") or ""
    who = [row.get("WhoId") or ""]
    for name in _CHILD_KEYS & row.keys():  # Shared Activities: every related contact, the WhoId among them
        who += [str(child.get("RelationId") or "") for child in (row[name] or {}).get("records") or ()]
    account_id = row.get("AccountId") or (what if what.startswith(PREFIX_ACCOUNT) else None)
    return {
        "owner_id": row.get("OwnerId"),
        "account_id": account_id,
        "opportunity_id": what if what.startswith(PREFIX_OPPORTUNITY) else None,
        # Leads (00Q) are not contacts; an activity on a lead names it alone (a lead cannot share one with contacts).
        "contact_ids": tuple(dict.fromkeys(i for i in who if i.startswith(PREFIX_CONTACT))),
        "lead_id": next((i for i in who if i.startswith(PREFIX_LEAD)), None),
    }


_TASK_KINDS = {"Call": ActivityKind.call, "Email": ActivityKind.email, "ListEmail": ActivityKind.email}
_CALL_DIRECTIONS = {
    "Inbound": Direction.inbound,
    "Outbound": Direction.outbound,
    "Internal": Direction.internal,
}


def _task(row: dict[str, Any], currency: str) -> Activity:
    kind = _TASK_KINDS.get(row.get("TaskSubtype") or "", ActivityKind.task)
    completed = parse_datetime(row.get("CompletedDateTime"))
    due = _date_as_datetime(row.get("ActivityDate"))
    occurred = completed or ((due or parse_datetime(row.get("CreatedDate"))) if row.get("IsClosed") else None)
    direction = _CALL_DIRECTIONS.get(row.get("CallType") or "")
    email = row.get(EMAIL_KEY)
    sender = recipients = None
    if kind is ActivityKind.email and isinstance(email, dict):
        if isinstance(email.get("Incoming"), bool):
            direction = Direction.inbound if email["Incoming"] else Direction.outbound
        sender = email.get("FromAddress") or None
        recipients = addresses(email.get("ToAddress"), email.get("CcAddress"))
    return Activity(
        **_common(row),
        **_links(row),
        activity_kind=kind,
        subject=row.get("Subject"),
        direction=direction,
        status=row.get("Status"),
        occurred_at=occurred,
        due_at=due if kind is ActivityKind.task else None,  # a logged call or email has no due date
        completed_at=completed,
        duration_seconds=row.get("CallDurationInSeconds"),
        email_from=sender,
        email_to=recipients,
    )


def case_ids(row: dict[str, Any]) -> list[str]:
    """The cases a task-less e-mail names (RelatedToId, then ParentId), for the Case look-up."""
    found = (str(row.get(name) or "") for name in ("RelatedToId", "ParentId"))
    return list(dict.fromkeys(i for i in found if i.startswith(PREFIX_CASE)))


def case_email(row: dict[str, Any], cases: dict[str, dict[str, Any]]) -> Activity | None:
    """A task-less EmailMessage (an Email-to-Case e-mail) as an e-mail activity, or None when it is related to
    nothing okrsync syncs (and is not deleted). ``cases``: case id → its ``CASE_FIELDS``, as read (none when the
    integration user cannot read Case).

    Its account and contact are its case's (RelatedToId, else ParentId), or what RelatedToId names directly (an
    account, contact or opportunity). Owner: an outbound e-mail is the sender's, ``CreatedById``; an inbound one
    (``Incoming``: the customer wrote) is created by Email-to-Case, not by a person of the team, and belongs to whoever
    owns the case (``Case.OwnerId``), as the inquiry it is. A draft has not been sent: it has not occurred. Raises
    ``SkippableError`` naming the record and the field when the row cannot be mapped."""
    record_id = row.get("Id")
    try:
        row = _checked(row)
        case = next((cases[i] for i in case_ids(row) if i in cases), None)
        related = str(row.get("RelatedToId") or "")
        account_id = opportunity_id = None
        contact_ids: tuple[str, ...] = ()
        if case is not None:
            account_id = case.get("AccountId") or None
            contact = str(case.get("ContactId") or "")
            contact_ids = (contact,) if contact.startswith(PREFIX_CONTACT) else ()
        elif related.startswith(PREFIX_ACCOUNT):
            account_id = related
        elif related.startswith(PREFIX_CONTACT):
            contact_ids = (related,)
        elif related.startswith(PREFIX_OPPORTUNITY):
            opportunity_id = related
        if not (account_id or contact_ids or opportunity_id or row.get("IsDeleted")):
            return None
        incoming = row.get("Incoming")
        if not isinstance(incoming, bool):
            raise ValueError(f"Incoming is {incoming!r}, not true or false")
        status = EMAIL_STATUSES.get(str(row.get("Status") or ""), row.get("Status"))
        owner = (case.get("OwnerId") if case else None) if incoming else row.get("CreatedById")
        occurred = None if status == "Draft" else parse_datetime(row.get("MessageDate"))
        return Activity(
            **_common(row),
            activity_kind=ActivityKind.email,
            subject=row.get("Subject"),
            direction=Direction.inbound if incoming else Direction.outbound,
            status=status,
            occurred_at=occurred,
            completed_at=occurred,  # sent or received: done, as a logged e-mail task is
            owner_id=owner or None,
            account_id=account_id,
            opportunity_id=opportunity_id,
            contact_ids=contact_ids,
            email_from=row.get("FromAddress") or None,
            email_to=addresses(row.get("ToAddress"), row.get("CcAddress")),
        )
    except (ValidationError, ValueError, TypeError) as exc:
        raise skipped(EMAIL_STREAM, record_id, exc) from exc


def _event(row: dict[str, Any], currency: str) -> Activity:
    minutes = row.get("DurationInMinutes")
    return Activity(
        **_common(row),
        **_links(row),
        activity_kind=ActivityKind.meeting,
        subject=row.get("Subject"),
        occurred_at=parse_datetime(row.get("StartDateTime")),
        completed_at=parse_datetime(row.get("EndDateTime")),
        duration_seconds=int(minutes) * 60 if minutes is not None else None,
    )


def _lead(row: dict[str, Any], currency: str) -> Lead:
    return Lead(
        **_common(row),
        name=row.get("Name"),
        email=row.get("Email"),
        company=row.get("Company"),
        status=row.get("Status"),
        source=row.get("LeadSource"),
        owner_id=row.get("OwnerId"),
        is_converted=bool(row.get("IsConverted")),
        converted_on=_date(row.get("ConvertedDate")),
        contact_id=row.get("ConvertedContactId"),
        account_id=row.get("ConvertedAccountId"),
        opportunity_id=row.get("ConvertedOpportunityId"),
    )


KINDS: dict[str, str] = {
    "User": "owner",
    "Account": "account",
    "Contact": "contact",
    "Opportunity": "opportunity",
    "OpportunityContactRole": "opportunity_contact",
    "Task": "activity",
    "Event": "activity",
    "Lead": "lead",
    # a relation stream brings the activities whose contacts changed, read again with all their contacts
    "TaskRelation": "activity",
    "EventRelation": "activity",
    # the e-mail stream brings the tasks whose e-mail changed, read again with its direction, and the e-mails
    # without a task (Email-to-Case) as activities of their own
    "EmailMessage": "activity",
}

MAPPERS: dict[str, Callable[[dict[str, Any], str], CanonicalRecord]] = {
    "User": _owner,
    "Account": _account,
    "Contact": _contact,
    "Opportunity": _opportunity,
    "OpportunityContactRole": _contact_role,
    "Task": _task,
    "Event": _event,
    "Lead": _lead,
}


def to_record(sobject: str, row: dict[str, Any], *, currency: str) -> CanonicalRecord:
    """Map one SObject row to its canonical record, or raise ``SkippableError`` naming the record and the problem."""
    record_id = row.get("Id")
    try:
        return MAPPERS[sobject](_checked(row), currency)
    except (ValidationError, ValueError, TypeError) as exc:
        raise skipped(sobject, record_id, exc) from exc


def _checked(row: dict[str, Any]) -> dict[str, Any]:
    """The row without NUL characters; ValueError when it has no Id or no SystemModstamp (nothing to key or order
    it by)."""
    if not row.get("Id"):
        raise ValueError("the row has no Id")
    if not row.get("SystemModstamp"):
        raise ValueError("SystemModstamp is empty")
    return strip_nul(row)
