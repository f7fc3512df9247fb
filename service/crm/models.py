"""The local sales model: one table per canonical record, keyed by (connection, external id).

Rows are never removed by a sync: a record deleted in the CRM keeps its row with ``is_deleted`` set, so evidence
behind past key-result values survives. ``raw`` holds the CRM payload (custom fields sales ops map later).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import Index, Text, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from service.kit.db import JsonType, UtcDateTime


def _ts(*, index: bool = False, nullable: bool = True) -> Any:
    return Field(default=None, sa_type=UtcDateTime, index=index, nullable=nullable)


def _synced(table: str) -> Index:
    """What the syncs wrote since a time (``compute.repository.changed_since``: each loop pass, for each mapping,
    finds the records its incremental compute starts from). Without it every row was read: 4.5 s at a million
    activities on SQLite, on every webhook's pass."""
    return Index(f"ix_{table}_synced", "connection_id", "synced_at")


class CrmConnection(SQLModel, table=True):
    """One Salesforce org or HubSpot portal. A deployment may hold several; a team may span them."""

    __tablename__ = "crm_connection"
    __table_args__ = (UniqueConstraint("crm", "name"),)

    id: int | None = Field(default=None, primary_key=True)
    crm: str = Field(max_length=16, description="salesforce | hubspot")
    name: str = Field(max_length=100)
    instance_url: str | None = Field(default=None, max_length=500)
    created_at: datetime = Field(sa_type=UtcDateTime)


class RecordBase(SQLModel):
    connection_id: int = Field(foreign_key="crm_connection.id", primary_key=True)
    external_id: str = Field(primary_key=True, max_length=64)
    crm_object: str = Field(max_length=64, description="The CRM object it came from: Task, Event, calls, deals…")
    modified_at: datetime = Field(sa_type=UtcDateTime, description="CRM change stamp")
    created_at: datetime | None = _ts()
    is_deleted: bool = Field(default=False)
    deleted_at: datetime | None = _ts()
    synced_at: datetime = Field(sa_type=UtcDateTime)
    seen_at: datetime | None = _ts()  # set by full syncs; rows a full sync did not see are marked deleted
    raw: dict[str, Any] = Field(default_factory=dict, sa_type=JsonType)


class Owner(RecordBase, table=True):
    name: str | None = None
    email: str | None = None
    title: str | None = None
    is_active: bool = True
    manager_id: str | None = None


class Account(RecordBase, table=True):
    __table_args__ = (Index("ix_account_owner", "connection_id", "owner_id"), _synced("account"))

    name: str | None = Field(default=None, sa_type=Text)
    owner_id: str | None = None
    parent_id: str | None = None
    industry: str | None = None
    account_type: str | None = None
    country: str | None = None
    annual_revenue: float | None = None
    employees: int | None = None
    last_activity_date: date | None = None


class Contact(RecordBase, table=True):
    __table_args__ = (Index("ix_contact_account", "connection_id", "account_id"), _synced("contact"))

    name: str | None = Field(default=None, sa_type=Text)
    email: str | None = None
    title: str | None = Field(default=None, sa_type=Text)
    account_id: str | None = None
    owner_id: str | None = None


class Opportunity(RecordBase, table=True):
    __table_args__ = (
        Index("ix_opportunity_account", "connection_id", "account_id"),
        # covering for the team's open opportunities per owner and their stage ages (hygiene medians), read on every
        # computation that an opportunity changed: 0.5 s at 100,000 opportunities when each row had to be read
        Index(
            "ix_opportunity_owner_open",
            "connection_id",
            "owner_id",
            "is_closed",
            "is_deleted",
            "stage",
            "stage_entered_at",
        ),
        # each stage's open opportunities in the order of their entry into it: a stage's median age is a walk to its
        # middle (hygiene.stage_middle), without a sort of the stage's ages; covering (owner last)
        # the opportunities created since the last computation (compute.service._take_in_passed_dates)
        Index("ix_opportunity_created", "connection_id", "created_at"),
        _synced("opportunity"),
        Index(
            "ix_opportunity_stage_open",
            "connection_id",
            "is_closed",
            "is_deleted",
            "stage",
            "stage_entered_at",
            "owner_id",
        ),
    )

    name: str | None = Field(default=None, sa_type=Text)
    account_id: str | None = None
    owner_id: str | None = None
    stage: str | None = None
    amount: float | None = None
    currency: str | None = Field(default=None, max_length=3)
    probability: float | None = None
    close_date: date | None = None
    next_step: str | None = Field(default=None, sa_type=Text)
    is_closed: bool = False
    is_won: bool = False
    forecast_category: str | None = None
    last_activity_date: date | None = None
    stage_entered_at: datetime | None = _ts()
    close_date_pushes: int | None = None


class OpportunityContact(RecordBase, table=True):
    __tablename__ = "opportunity_contact"
    __table_args__ = (
        Index("ix_opportunity_contact_opp", "connection_id", "opportunity_id"),
        Index("ix_opportunity_contact_contact", "connection_id", "contact_id"),
        _synced("opportunity_contact"),
    )

    opportunity_id: str
    contact_id: str
    role: str | None = None
    is_primary: bool = False


class Activity(RecordBase, table=True):
    __table_args__ = (
        Index("ix_activity_owner_kind_time", "connection_id", "owner_id", "activity_kind", "occurred_at"),
        Index("ix_activity_kind_time", "connection_id", "activity_kind", "occurred_at"),
        # ends with the id: the first answer to an inquiry (mappings.query.response_evidence: the account's next
        # activities by time, then id) is the first matching entry, not a sort of all the account's later ones
        Index("ix_activity_account", "connection_id", "account_id", "occurred_at", "external_id"),
        Index("ix_activity_opportunity", "connection_id", "opportunity_id", "occurred_at"),
        # partial: only the activities logged on a lead. SQLite's statistics count the NULLs as one more value, so
        # over HubSpot's activities (none has a lead: a HubSpot lead is a contact) "rows per lead" was the whole
        # table and speed to lead's answers-by-lead walked ix_activity_owner_kind_time instead (1.6 s per changed
        # meeting at a million activities; migration 0021)
        Index(
            "ix_activity_lead",
            "connection_id",
            "lead_id",
            sqlite_where=text("lead_id IS NOT NULL"),
            postgresql_where=text("lead_id IS NOT NULL"),
        ),
        # the activities completed since the last computation, for key results counted by completion
        # (compute.service._take_in_passed_dates; those by occurred_at are found through ix_activity_kind_time)
        Index("ix_activity_completed", "connection_id", "completed_at"),
        _synced("activity"),
    )

    activity_kind: str = Field(max_length=16)
    subject: str | None = Field(default=None, sa_type=Text)
    direction: str | None = Field(default=None, max_length=16)
    status: str | None = None
    occurred_at: datetime | None = _ts()
    due_at: datetime | None = _ts()
    completed_at: datetime | None = _ts()
    duration_seconds: int | None = None
    owner_id: str | None = None
    account_id: str | None = None
    opportunity_id: str | None = None
    lead_id: str | None = Field(default=None, description="The lead it was logged on (Salesforce WhoId 00Q).")
    email_from: str | None = Field(default=None, sa_type=Text, description="An e-mail's sender address.")
    email_to: str | None = Field(default=None, sa_type=Text, description="An e-mail's recipients, To then Cc.")


class Lead(RecordBase, table=True):
    """Salesforce Lead; a HubSpot contact that became a lead (same id as the contact). ``created_at``: when it became
    a lead. ``contact_id``/``account_id``/``opportunity_id``: what it is or was converted to."""

    __table_args__ = (
        Index("ix_lead_owner_created", "connection_id", "owner_id", "created_at"),
        Index("ix_lead_contact", "connection_id", "contact_id"),
        _synced("lead"),
    )

    name: str | None = Field(default=None, sa_type=Text)
    email: str | None = None
    company: str | None = Field(default=None, sa_type=Text)
    status: str | None = None
    source: str | None = None
    owner_id: str | None = None
    is_converted: bool = False
    converted_on: date | None = None
    contact_id: str | None = None
    account_id: str | None = None
    opportunity_id: str | None = None


class ActivityContact(SQLModel, table=True):
    """Which contacts an activity involved (Salesforce WhoId, HubSpot engagement↔contact associations)."""

    __tablename__ = "activity_contact"
    __table_args__ = (Index("ix_activity_contact_contact", "connection_id", "contact_id"),)

    connection_id: int = Field(foreign_key="crm_connection.id", primary_key=True)
    activity_id: str = Field(primary_key=True, max_length=64)
    contact_id: str = Field(primary_key=True, max_length=64)


class ActivityOpportunity(SQLModel, table=True):
    """Every opportunity an activity is linked to, where the CRM allows several (HubSpot: an engagement associated
    with more than one deal). The activity's ``opportunity_id`` is one of them (HubSpot marks no primary deal: the
    lowest id). Rows are replaced whenever the activity is read again; when an opportunity is deleted, its rows go and
    activities that named it name their next linked opportunity. Salesforce activities have one ``WhatId`` and no
    rows here."""

    __tablename__ = "activity_opportunity"
    __table_args__ = (Index("ix_activity_opportunity_opportunity", "connection_id", "opportunity_id"),)

    connection_id: int = Field(foreign_key="crm_connection.id", primary_key=True)
    activity_id: str = Field(primary_key=True, max_length=64)
    opportunity_id: str = Field(primary_key=True, max_length=64)


class RecordAccount(SQLModel, table=True):
    """Every account a contact, opportunity or activity is linked to, where the CRM allows several (HubSpot: a deal,
    contact or engagement associated with more than one company). ``is_primary`` marks the one in the record's
    ``account_id``. A record's rows are replaced whenever it is read again, and removed when it or the account is
    deleted. Salesforce records have one account (``account_id``) and no rows here."""

    __tablename__ = "record_account"
    __table_args__ = (Index("ix_record_account_account", "connection_id", "account_id", "record_kind"),)

    connection_id: int = Field(foreign_key="crm_connection.id", primary_key=True)
    record_kind: str = Field(primary_key=True, max_length=16, description="contact | opportunity | activity")
    record_id: str = Field(primary_key=True, max_length=64)
    account_id: str = Field(primary_key=True, max_length=64)
    is_primary: bool = False
