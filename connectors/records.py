"""Canonical sales records that every CRM connector maps into.

Both Salesforce and HubSpot land in these plain, typed records so that a key result gives the same number whatever
CRM the team works in. Every record keeps the CRM's raw payload (``raw``) for evidence and for custom fields that
sales ops map later. Records know nothing about the database.

Timestamps are timezone-aware UTC ``datetime``; dates are ``date``. ``modified_at`` is the CRM's own change stamp
(Salesforce ``SystemModstamp``, HubSpot ``hs_lastmodifieddate``) and orders changes to one record.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class ActivityKind(StrEnum):
    call = "call"
    email = "email"
    meeting = "meeting"
    task = "task"
    note = "note"


class Direction(StrEnum):
    inbound = "inbound"
    outbound = "outbound"
    internal = "internal"


def strip_nul(value: Any) -> Any:
    """PostgreSQL rejects NUL characters in text and JSON; a CRM may still return them. Connectors apply this to
    each row before mapping it. A value without any NUL is returned as it is (no copy): finding none is a scan,
    copying every row cost 0.6 s of the reading thread in a first sync of 100,000 Salesforce activities."""
    return _without_nul(value) if _has_nul(value) else value


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    for item in value.values() if isinstance(value, dict) else value if isinstance(value, list) else ():
        if isinstance(item, str):  # a row's values are mostly text: checked here, not in a call each
            if "\x00" in item:
                return True
        elif isinstance(item, dict | list) and _has_nul(item):
            return True
    return False


def _without_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, dict):
        return {k: _without_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_nul(v) for v in value]
    return value


def addresses(*parts: str | None) -> str | None:
    """E-mail address lists (To, Cc, …; each may hold several, separated by ';') as one ``email_to`` value."""
    return "; ".join(part for part in parts if part) or None


class CrmRecord(BaseModel):
    """Fields every canonical record carries."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    external_id: str = Field(min_length=1, max_length=64, description="The CRM's id of the record.")
    modified_at: datetime = Field(description="The CRM's change stamp (SystemModstamp / hs_lastmodifieddate).")
    created_at: datetime | None = None
    is_deleted: bool = False
    raw: dict[str, Any] = Field(default_factory=dict, description="The record exactly as the CRM returned it.")
    merged_ids: tuple[str, ...] = Field(
        default=(),
        description="Ids of records the CRM merged into this one and that no longer exist (HubSpot "
        "hs_merged_object_ids): the sync retires them and moves what pointed at them to this record.",
    )

    @field_validator("modified_at", "created_at", check_fields=False)
    @classmethod
    def _aware_utc(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("timestamp has no time zone")
        return value.astimezone(UTC) if value is not None else None


class Owner(CrmRecord):
    kind: Literal["owner"] = "owner"
    name: str | None = None
    email: str | None = None
    title: str | None = None
    is_active: bool = True
    manager_id: str | None = None


class Account(CrmRecord):
    kind: Literal["account"] = "account"
    name: str | None = None
    owner_id: str | None = None
    parent_id: str | None = None
    industry: str | None = None
    account_type: str | None = None
    country: str | None = None
    annual_revenue: float | None = None
    employees: int | None = None
    last_activity_date: date | None = None


class Contact(CrmRecord):
    kind: Literal["contact"] = "contact"
    name: str | None = None
    email: str | None = None
    title: str | None = None
    account_id: str | None = None
    owner_id: str | None = None
    account_ids: tuple[str, ...] | None = Field(
        default=None,
        description="Every account the record is linked to, account_id (the primary one) included, when the CRM allows "
        "several (HubSpot companies); None: the CRM has only account_id.",
    )


class Opportunity(CrmRecord):
    kind: Literal["opportunity"] = "opportunity"
    name: str | None = None
    account_id: str | None = None
    owner_id: str | None = None
    stage: str | None = None
    amount: float | None = None
    currency: str | None = Field(default=None, max_length=3)
    probability: float | None = Field(default=None, ge=0, le=100)
    close_date: date | None = None
    next_step: str | None = None
    is_closed: bool = False
    is_won: bool = False
    forecast_category: str | None = None
    last_activity_date: date | None = None
    stage_entered_at: datetime | None = Field(default=None, description="When the current stage was entered.")
    close_date_pushes: int | None = Field(default=None, ge=0, description="Times the close date moved later.")
    account_ids: tuple[str, ...] | None = Field(
        default=None, description="Every linked account, account_id included (see Contact.account_ids)."
    )
    contact_ids: tuple[str, ...] | None = Field(
        default=None,
        description="The opportunity's whole set of contacts when the CRM reads it with the opportunity (HubSpot "
        "associations): opportunity contacts not in it are no longer linked. None: contact roles come as records of "
        "their own (Salesforce OpportunityContactRole).",
    )


class OpportunityContact(CrmRecord):
    """A contact's role on an opportunity (Salesforce OpportunityContactRole, HubSpot deal↔contact association)."""

    kind: Literal["opportunity_contact"] = "opportunity_contact"
    opportunity_id: str
    contact_id: str
    role: str | None = None
    is_primary: bool = False


class Activity(CrmRecord):
    """A call, email, meeting, task or note a rep logged, with its links to account, opportunity and contacts."""

    kind: Literal["activity"] = "activity"
    activity_kind: ActivityKind
    subject: str | None = None
    direction: Direction | None = None
    status: str | None = None
    occurred_at: datetime | None = Field(default=None, description="When it happened (None: not done yet).")
    due_at: datetime | None = None
    completed_at: datetime | None = None
    duration_seconds: int | None = Field(default=None, ge=0)
    owner_id: str | None = None
    account_id: str | None = None
    opportunity_id: str | None = None
    contact_ids: tuple[str, ...] = ()
    account_ids: tuple[str, ...] | None = Field(
        default=None, description="Every linked account, account_id included (see Contact.account_ids)."
    )
    opportunity_ids: tuple[str, ...] | None = Field(
        default=None,
        description="Every linked opportunity, opportunity_id included, when the CRM allows several (HubSpot "
        "deals); None: the CRM has only opportunity_id.",
    )
    email_from: str | None = Field(default=None, description="An e-mail's sender address.")
    email_to: str | None = Field(
        default=None,
        description="An e-mail's recipients, To then Cc, as the CRM lists them ('a@x.com; b@y.com').",
    )
    lead_id: str | None = Field(
        default=None,
        description="The lead it was logged on (Salesforce WhoId of a lead, 00Q). A converted lead's activities "
        "move to its contact and account; a HubSpot lead is a contact, so its activities name it in contact_ids.",
    )

    @field_validator("occurred_at", "due_at", "completed_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("timestamp has no time zone")
        return value.astimezone(UTC) if value is not None else None


class Lead(CrmRecord):
    """A prospect who showed interest and is not (yet) a customer contact: Salesforce ``Lead``; in HubSpot a contact
    that became a lead (``hs_lifecyclestage_lead_date``), with the contact's id.

    ``created_at`` is when it became a lead (Salesforce CreatedDate, HubSpot hs_lifecyclestage_lead_date): where
    speed to lead starts. ``contact_id``/``account_id`` are the contact and account it is or was converted to.
    """

    kind: Literal["lead"] = "lead"
    name: str | None = None
    email: str | None = None
    company: str | None = None
    status: str | None = None
    source: str | None = None
    owner_id: str | None = None
    is_converted: bool = False
    converted_on: date | None = None
    contact_id: str | None = None
    account_id: str | None = None
    opportunity_id: str | None = None


CanonicalRecord = Owner | Account | Contact | Opportunity | OpportunityContact | Activity | Lead


class Deletion(BaseModel):
    """A record the CRM reports as deleted (soft-deleted, purged, or gone from a full listing)."""

    model_config = ConfigDict(frozen=True)

    external_id: str
    deleted_at: datetime | None = None


class SkippedRecord(BaseModel):
    """A record the connector could not map; the sync logs it by id and keeps its raw payload."""

    model_config = ConfigDict(frozen=True)

    external_id: str | None
    reason: str
    raw: dict[str, Any]
