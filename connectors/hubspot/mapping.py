"""HubSpot CRM objects → canonical records.

Property names: https://developers.hubspot.com/docs/api/crm/understanding-the-crm (deals, companies, contacts) and
the engagement pages (calls, emails, meetings, notes, tasks). HubSpot sends every property value as a string.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from pydantic import ValidationError

from connectors.errors import SkippableError, skipped
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

ENGAGEMENTS = ("calls", "emails", "meetings", "notes", "tasks")
OBJECT_STREAMS = ("companies", "contacts", "deals", *ENGAGEMENTS)
STREAMS = ("owners", *OBJECT_STREAMS)
# Sales Hub Professional/Enterprise portals have a leads object (objectTypeId 0-136, scope crm.objects.leads.read):
# read as the stream "leads" when the connection says so (HubSpotConfig.leads = "object"); every other portal's
# leads are contacts by lifecycle stage (contact_lead). https://developers.hubspot.com/docs/api-reference/crm-leads-v3/guide
LEAD_STREAM = "leads"
KINDS = {
    "owners": "owner",
    LEAD_STREAM: "lead",
    "companies": "account",
    "contacts": "contact",
    "deals": "opportunity",
    **{e: "activity" for e in ENGAGEMENTS},
}

# Contacts carry their change stamp in `lastmodifieddate`; every other object in `hs_lastmodifieddate`.
MODIFIED = {t: "lastmodifieddate" if t == "contacts" else "hs_lastmodifieddate" for t in (*OBJECT_STREAMS, LEAD_STREAM)}

PROPERTIES: dict[str, list[str]] = {
    "companies": [
        "name",
        "domain",
        "industry",
        "country",
        "annualrevenue",
        "numberofemployees",
        "type",
        "hubspot_owner_id",
        "notes_last_updated",
        "createdate",
        "hs_lastmodifieddate",
        "hs_merged_object_ids",
    ],
    "contacts": [
        "firstname",
        "lastname",
        "email",
        "jobtitle",
        "hubspot_owner_id",
        "associatedcompanyid",
        "createdate",
        "lastmodifieddate",
        "hs_merged_object_ids",
        # a contact that became a lead is a lead (contact_lead)
        "lifecyclestage",
        "hs_lifecyclestage_lead_date",
        "hs_lifecyclestage_opportunity_date",
        "hs_lifecyclestage_customer_date",
        "hs_lead_status",
        "hs_analytics_source",
        "company",
    ],
    "deals": [
        "dealname",
        "amount",
        "deal_currency_code",
        "dealstage",
        "pipeline",
        "closedate",
        "hubspot_owner_id",
        "hs_next_step",
        "hs_deal_stage_probability",
        "hs_is_closed",
        "hs_is_closed_won",
        "notes_last_updated",
        "createdate",
        "hs_lastmodifieddate",
        "hs_merged_object_ids",
    ],
    "calls": [
        "hs_timestamp",
        "hs_call_title",
        "hs_call_direction",
        "hs_call_duration",
        "hs_call_status",
        "hs_call_disposition",
        "hubspot_owner_id",
        "hs_createdate",
        "hs_lastmodifieddate",
    ],
    "emails": [
        "hs_timestamp",
        "hs_email_subject",
        "hs_email_direction",
        "hs_email_status",
        "hs_email_from_email",
        "hs_email_to_email",
        "hs_email_cc_email",
        "hubspot_owner_id",
        "hs_createdate",
        "hs_lastmodifieddate",
    ],
    "meetings": [
        "hs_timestamp",
        "hs_meeting_title",
        "hs_meeting_start_time",
        "hs_meeting_end_time",
        "hs_meeting_outcome",
        "hubspot_owner_id",
        "hs_createdate",
        "hs_lastmodifieddate",
    ],
    # the lead's date of entering a converted stage is added per portal (lead_converted_properties): its name carries
    # a suffix only the portal's property list tells
    LEAD_STREAM: [
        "hs_lead_name",
        "hs_pipeline",
        "hs_pipeline_stage",
        "hubspot_owner_id",
        "hs_createdate",
        "hs_lastmodifieddate",
    ],
    "notes": ["hs_timestamp", "hs_note_body", "hubspot_owner_id", "hs_createdate", "hs_lastmodifieddate"],
    "tasks": [
        "hs_timestamp",
        "hs_task_subject",
        "hs_task_status",
        "hs_task_type",
        "hs_task_completion_date",
        "hubspot_owner_id",
        "hs_createdate",
        "hs_lastmodifieddate",
    ],
}

# Which associations each stream needs (inline on full-sync list pages, else v4 batch reads).
ASSOCIATIONS: dict[str, tuple[str, ...]] = {
    "contacts": ("companies",),
    "deals": ("companies", "contacts"),
    **{e: ("companies", "deals", "contacts") for e in ENGAGEMENTS},
    LEAD_STREAM: ("contacts", "companies"),
}
# Streams whose associations are read by the v4 batch read, not inline with the list page: the v3 list names inline
# association types by name, and the lead's primary-contact and primary-company type names are not documented; the
# v4 read gives their type ids (PRIMARY_TYPE).
NOT_INLINE = frozenset({LEAD_STREAM})

# The HUBSPOT_DEFINED association type that marks a record's primary company; the unlabelled type (deal → company
# 341, contact → company 279) is listed beside it, and links come in no priority order. HubSpot's table of type ids
# lists a primary company for contacts and deals only, none for calls, emails, meetings, notes or tasks:
# https://developers.hubspot.com/docs/api/crm/associations#association-type-id-values
PRIMARY_COMPANY_TYPE: dict[str, int] = {"contacts": 1, "deals": 5}

# The same primary type as the list endpoint names it inline (``GET /crm/v3/objects/{objectType}?associations=…``):
# v3 lists one ``{"id", "type"}`` entry per association type of a link, by type name, not id — every link as
# ``deal_to_company_unlabeled``, the primary company once more as ``deal_to_company``, a labelled one under its label
# (response shown in https://community.hubspot.com/t5/APIs-Integrations/Object-data-fetch-sorting-out-associations/td-p/658333;
# the names match the v3 association types, https://developers.hubspot.com/docs/api-reference/crm-associations-v3/guide).
INLINE_PRIMARY_COMPANY_TYPE: dict[str, str] = {"contacts": "contact_to_company", "deals": "deal_to_company"}

# A lead's primary contact and primary company (HUBSPOT_DEFINED 578 and 580, from lead to contact/company). HubSpot
# requires a lead to be associated with a contact on creation (https://developers.hubspot.com/docs/api-reference/crm-leads-v3/guide,
# "Must be associated with an existing contact"); the type ids are the ones integrations create leads with (the
# guide's example body does not print them): a lead without a link of these types takes its only (else lowest) one.
PRIMARY_TYPE: dict[tuple[str, str], int] = {(LEAD_STREAM, "contacts"): 578, (LEAD_STREAM, "companies"): 580}


@dataclass(frozen=True)
class Stage:
    id: str
    label: str
    display_order: int
    probability: float | None
    is_closed: bool
    is_won: bool


@dataclass
class Pipelines:
    """Deal stages by stage id, from the pipelines API."""

    stages: dict[str, Stage] = field(default_factory=dict)

    def entered_properties(self) -> list[str]:
        return [f"hs_date_entered_{stage_id}" for stage_id in self.stages]


def parse_timestamp(value: Any) -> datetime | None:
    """HubSpot timestamps come as ISO 8601 strings or epoch milliseconds."""
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    text = str(value)
    if text.isdigit():
        return datetime.fromtimestamp(int(text) / 1000, tz=UTC)
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _date(value: Any) -> date | None:
    stamp = parse_timestamp(value)
    return stamp.date() if stamp else None


def _number(value: Any) -> float | None:
    return None if value in (None, "") else float(value)


def _int(value: Any) -> int | None:
    return None if value in (None, "") else int(float(value))


def _bool(value: Any) -> bool:
    return str(value).lower() == "true"


@dataclass(frozen=True)
class Link:
    """One association: the associated record's id and its (category, typeId) pairs. A v4 read gives every type; a
    list page's inline associations name types, not ids, and only the primary-company type is translated."""

    to_id: str
    types: frozenset[tuple[str, int]] = frozenset()


@dataclass
class HubSpotRow:
    """One object as the API returns it, with its associations resolved (to-type → ids, in API order) and the
    primary company, when an association carries the primary type."""

    object_type: str
    id: str
    properties: dict[str, Any]
    created_at: datetime | None
    updated_at: datetime | None
    archived: bool = False
    associations: dict[str, list[str]] = field(default_factory=dict)
    primary_company: str | None = None
    primary_contact: str | None = None

    def raw(self) -> dict[str, Any]:
        raw = {
            "id": self.id,
            "properties": self.properties,
            "archived": self.archived,
            "associations": self.associations,
        }
        return raw | ({"primaryCompany": self.primary_company} if self.primary_company else {})

    def link(self, to_type: str, links: list[Link]) -> None:
        """Take the associations read for ``to_type``."""
        self.associations[to_type] = [link.to_id for link in links]
        primary = PRIMARY_TYPE.get((self.object_type, to_type))
        if primary is None and to_type == "companies":
            primary = PRIMARY_COMPANY_TYPE.get(self.object_type)
        if primary is not None:
            marked = [link.to_id for link in links if ("HUBSPOT_DEFINED", primary) in link.types]
            if to_type == "companies":
                self.primary_company = marked[0] if marked else None
            else:
                self.primary_contact = marked[0] if marked else None


def by_id(ids: list[str]) -> tuple[str, ...]:
    """Ids in numeric order, once each: the API lists associations in no particular order."""
    return tuple(sorted(set(ids), key=lambda i: (len(i), i)))


def _companies(row: HubSpotRow, fallback: str | None = None) -> dict[str, Any]:
    """account_id: the primary company; without one (none marked, or engagements, which have no primary type)
    ``fallback`` if given, else the only company, else the lowest id (a stable choice, not a meaningful one: every
    company is in account_ids)."""
    companies = by_id(row.associations.get("companies") or [])
    if fallback is not None and "companies" in row.associations and fallback not in companies:
        fallback = None  # a property naming a company the record is no longer associated with (the link was removed)
    primary = row.primary_company or fallback or (companies[0] if companies else None)
    return {"account_id": primary, "account_ids": companies}


def _common(row: HubSpotRow) -> dict[str, Any]:
    props = row.properties
    modified = parse_timestamp(props.get(MODIFIED.get(row.object_type, "hs_lastmodifieddate"))) or row.updated_at
    if modified is None:
        raise ValueError(f"{MODIFIED.get(row.object_type)} is empty")
    created = parse_timestamp(props.get("createdate") or props.get("hs_createdate")) or row.created_at
    return {
        "external_id": row.id,
        "modified_at": modified,
        "created_at": created,
        "is_deleted": row.archived,
        "raw": row.raw(),
        "merged_ids": merged_ids(props.get("hs_merged_object_ids"), own=row.id),
    }


def merged_ids(value: Any, *, own: str) -> tuple[str, ...]:
    """The ids ``hs_merged_object_ids`` names (';'-separated), the record's own id left out: a merge gives the result
    a new id and the old ids stop existing (CRM-API-NOTES, "Merges";
    https://knowledge.hubspot.com/records/merge-records). Anything that is not an id is ignored."""
    if not value:
        return ()
    found = {part.strip() for part in str(value).split(";")}
    return tuple(sorted((i for i in found if i.isdigit() and i != own), key=int))


def _name(*parts: Any) -> str | None:
    return " ".join(str(p) for p in parts if p) or None


def _company(row: HubSpotRow, pipelines: Pipelines) -> Account:
    p = row.properties
    return Account(
        **_common(row),
        name=p.get("name"),
        owner_id=p.get("hubspot_owner_id") or None,
        industry=p.get("industry"),
        account_type=p.get("type") or None,
        country=p.get("country"),
        annual_revenue=_number(p.get("annualrevenue")),
        employees=_int(p.get("numberofemployees")),
        last_activity_date=_date(p.get("notes_last_updated")),
    )


def _contact(row: HubSpotRow, pipelines: Pipelines) -> Contact:
    p = row.properties
    return Contact(
        **_common(row),
        name=_name(p.get("firstname"), p.get("lastname")),
        email=p.get("email"),
        title=p.get("jobtitle"),
        # associatedcompanyid is the primary company as a property (the same company the association marks)
        **_companies(row, fallback=p.get("associatedcompanyid") or None),
        owner_id=p.get("hubspot_owner_id") or None,
    )


def _deal(row: HubSpotRow, pipelines: Pipelines) -> Opportunity:
    p = row.properties
    stage_id = p.get("dealstage")
    stage = pipelines.stages.get(stage_id or "")
    if stage_id and stage is None:
        raise ValueError(f"dealstage {stage_id!r} is in no pipeline the portal lists (deleted pipeline?)")
    probability = _number(p.get("hs_deal_stage_probability"))
    if probability is None and stage is not None:
        probability = stage.probability
    return Opportunity(
        **_common(row),
        name=p.get("dealname"),
        owner_id=p.get("hubspot_owner_id") or None,
        **_companies(row),
        contact_ids=by_id(row.associations.get("contacts") or []),
        stage=stage.label if stage else None,
        amount=_number(p.get("amount")),
        currency=p.get("deal_currency_code") or None,
        probability=round(probability * 100, 4) if probability is not None else None,
        close_date=_date(p.get("closedate")),
        next_step=p.get("hs_next_step") or None,
        is_closed=stage.is_closed if stage else _bool(p.get("hs_is_closed")),
        is_won=stage.is_won if stage else _bool(p.get("hs_is_closed_won")),
        last_activity_date=_date(p.get("notes_last_updated")),
        stage_entered_at=parse_timestamp(p.get(f"hs_date_entered_{stage_id}")) if stage_id else None,
    )


_DIRECTIONS = {
    "INBOUND": Direction.inbound,
    "OUTBOUND": Direction.outbound,
    "INCOMING_EMAIL": Direction.inbound,
    "EMAIL": Direction.outbound,
    # https://developers.hubspot.com/docs/api/crm/email: EMAIL sent from or logged to the CRM, INCOMING_EMAIL a reply
    # to a logged e-mail, FORWARDED_EMAIL forwarded to the CRM. A forward did not answer the customer: neither an
    # inquiry nor a response (internal), unless the mapping file counts internal activities (internal_responses)
    "FORWARDED_EMAIL": Direction.internal,
}


def _links(row: HubSpotRow) -> dict[str, Any]:
    deals = by_id(row.associations.get("deals") or [])
    return {
        "owner_id": row.properties.get("hubspot_owner_id") or None,
        **_companies(row),
        "opportunity_id": deals[0] if deals else None,  # no primary deal either: the lowest id, a stable choice
        "opportunity_ids": deals,
        "contact_ids": by_id(row.associations.get("contacts") or []),
    }


def _engagement(row: HubSpotRow, pipelines: Pipelines) -> Activity:
    p = row.properties
    at = parse_timestamp(p.get("hs_timestamp"))
    common = {**_common(row), **_links(row)}
    if row.object_type == "calls":
        duration = _int(p.get("hs_call_duration"))
        return Activity(
            **common,
            activity_kind=ActivityKind.call,
            subject=p.get("hs_call_title"),
            direction=_DIRECTIONS.get(p.get("hs_call_direction") or ""),
            status=p.get("hs_call_status"),
            occurred_at=at,
            completed_at=at,
            duration_seconds=duration // 1000 if duration is not None else None,
        )
    if row.object_type == "emails":
        return Activity(
            **common,
            activity_kind=ActivityKind.email,
            subject=p.get("hs_email_subject"),
            direction=_DIRECTIONS.get(p.get("hs_email_direction") or ""),
            status=p.get("hs_email_status"),
            occurred_at=at,
            completed_at=at,
            # hs_email_to_email / hs_email_cc_email list several addresses separated by ";"
            email_from=p.get("hs_email_from_email") or None,
            email_to=addresses(p.get("hs_email_to_email"), p.get("hs_email_cc_email")),
        )
    if row.object_type == "meetings":
        start = parse_timestamp(p.get("hs_meeting_start_time")) or at
        end = parse_timestamp(p.get("hs_meeting_end_time"))
        seconds = int((end - start).total_seconds()) if start and end and end >= start else None
        return Activity(
            **common,
            activity_kind=ActivityKind.meeting,
            subject=p.get("hs_meeting_title"),
            status=p.get("hs_meeting_outcome"),
            occurred_at=start,
            completed_at=end,
            duration_seconds=seconds,
        )
    if row.object_type == "tasks":
        done = parse_timestamp(p.get("hs_task_completion_date"))
        status = p.get("hs_task_status")
        return Activity(
            **common,
            activity_kind=ActivityKind.task,
            subject=p.get("hs_task_subject"),
            status=status,
            due_at=at,
            completed_at=done,
            occurred_at=done or (at if status == "COMPLETED" else None),
        )
    return Activity(
        **common, activity_kind=ActivityKind.note, subject=(p.get("hs_note_body") or "")[:255] or None, occurred_at=at
    )


MAPPERS: dict[str, Callable[[HubSpotRow, Pipelines], CanonicalRecord]] = {
    "companies": _company,
    "contacts": _contact,
    "deals": _deal,
    **{e: _engagement for e in ENGAGEMENTS},
}


def push_count(value: Any) -> int | None:
    """A close-date push counter kept in a deal property (text in the API); negative or garbage reads as unknown."""
    number = _int(value)
    return number if number is not None and number >= 0 else None


def to_record(row: HubSpotRow, pipelines: Pipelines) -> CanonicalRecord:
    """Map one HubSpot object to its canonical record, or raise ``SkippableError`` naming it."""
    try:
        row.properties = strip_nul(row.properties)
        return MAPPERS[row.object_type](row, pipelines)
    except (ValidationError, ValueError, TypeError) as exc:
        raise skipped(row.object_type, row.id, exc) from exc


def owner_record(raw: dict[str, Any]) -> Owner:
    """An owner from the owners API (no change stamp in properties: updatedAt is used). An archived owner is a
    deactivated user: kept, with ``is_active`` false, so that the records they owned still show their name and count
    for them."""
    try:
        modified = parse_timestamp(raw.get("updatedAt"))
        if modified is None:
            raise ValueError("updatedAt is empty")
        return Owner(
            external_id=str(raw["id"]),
            modified_at=modified,
            created_at=parse_timestamp(raw.get("createdAt")),
            name=_name(raw.get("firstName"), raw.get("lastName")),
            email=raw.get("email"),
            is_active=not raw.get("archived"),
            raw=strip_nul(raw),
        )
    except (ValidationError, ValueError, KeyError) as exc:
        raise SkippableError(f"owner {raw.get('id')}: {exc}") from exc


def contact_lead(row: HubSpotRow, contact: Contact) -> Lead | None:
    """The lead a contact is or was, when it became one (``hs_lifecyclestage_lead_date``, "Became a Lead Date"),
    under the contact's id; None for a contact that never was a lead (created as a customer, say).

    Converted: it went on to opportunity or customer (the earlier of ``hs_lifecyclestage_opportunity_date`` and
    ``hs_lifecyclestage_customer_date``, as a UTC date). Status: ``hs_lead_status``; source:
    ``hs_analytics_source`` ("Original Source").
    https://knowledge.hubspot.com/records/use-lifecycle-stages ·
    https://knowledge.hubspot.com/properties/hubspots-default-contact-properties
    """
    p = row.properties
    became = parse_timestamp(p.get("hs_lifecyclestage_lead_date"))
    if became is None:
        return None
    onward = [d for k in ("opportunity", "customer") if (d := parse_timestamp(p.get(f"hs_lifecyclestage_{k}_date")))]
    converted = min(onward).date() if onward else None
    return Lead(
        external_id=contact.external_id,
        modified_at=contact.modified_at,
        created_at=became,
        is_deleted=contact.is_deleted,
        raw=contact.raw,
        merged_ids=contact.merged_ids,
        name=contact.name,
        email=contact.email,
        company=p.get("company") or None,
        status=p.get("hs_lead_status") or None,
        source=p.get("hs_analytics_source") or None,
        owner_id=contact.owner_id,
        is_converted=converted is not None,
        converted_on=converted,
        contact_id=contact.external_id,
        account_id=contact.account_id,
    )


@dataclass
class LeadStages:
    """What a lead's stage means in one portal: its label (lead pipelines API), whether it counts as converted
    (``HubSpotConfig.lead_converted_stages``), and the property holding the time a lead entered each converted stage.

    HubSpot keeps "date entered stage" properties for leads as ``hs_v2_date_entered_<stage id>``; a stage id that is
    not a number (the default lead pipeline's ``qualified-stage-id``) has its hyphens made underscores and a suffix
    only the portal knows appended (``hs_v2_date_entered_qualified_stage_id_233247981``), so the name is looked up
    in the portal's lead properties (``entered_property``), never built."""

    labels: dict[str, str] = field(default_factory=dict)
    converted: frozenset[str] = frozenset()
    entered: dict[str, str] = field(default_factory=dict)  # converted stage id -> its date-entered property


def entered_property(stage_id: str, names: set[str]) -> str | None:
    """The portal's "date entered" property of a lead stage among its property ``names``, or None: the exact
    ``hs_v2_date_entered_<id>`` (numeric ids), else ``hs_v2_date_entered_<id with _ for ->_<digits>``; when several
    carry a suffix, the one with the lowest suffix (a stable choice; the connector warns)."""
    base = "hs_v2_date_entered_" + stage_id.replace("-", "_")
    if base in names:
        return base
    suffixed = sorted(
        (int(name[len(base) + 1 :]), name)
        for name in names
        if name.startswith(base + "_") and name[len(base) + 1 :].isdigit()
    )
    return suffixed[0][1] if suffixed else None


def lead_record(row: HubSpotRow, stages: LeadStages) -> Lead:
    """A record of the leads object as a canonical lead (``HubSpotConfig.leads = "object"``).

    created: ``hs_createdate`` (when the lead was created: where speed to lead starts); status: the label of its
    stage (``hs_pipeline_stage``), the stage id when the pipelines API does not list it; converted: its stage is one
    of the converted stages, on the UTC date it entered that stage; ``contact_id``/``account_id``: its primary
    contact and company (``PRIMARY_TYPE``). A lead has no source property HubSpot documents: ``source`` is empty
    (filter on the contact's Original Source through ``contact.…`` is not offered either; see docs/metrics.md)."""
    try:
        row.properties = strip_nul(row.properties)
        p = row.properties
        stage = p.get("hs_pipeline_stage") or None
        converted = stage in stages.converted
        entered = stages.entered.get(stage or "")
        contacts = by_id(row.associations.get("contacts") or [])
        companies = by_id(row.associations.get("companies") or [])
        return Lead(
            **_common(row),
            name=p.get("hs_lead_name") or None,
            status=stages.labels.get(stage or "", stage),
            owner_id=p.get("hubspot_owner_id") or None,
            is_converted=converted,
            converted_on=_date(p.get(entered)) if converted and entered else None,
            contact_id=row.primary_contact or (contacts[0] if contacts else None),
            account_id=row.primary_company or (companies[0] if companies else None),
        )
    except (ValidationError, ValueError, TypeError) as exc:
        raise skipped(row.object_type, row.id, exc) from exc


def deal_contacts(row: HubSpotRow, modified_at: datetime) -> list[OpportunityContact]:
    """Deal↔contact associations as opportunity contacts (HubSpot has no contact-role object and no primary contact
    of a deal: none is marked primary). The deal's ``contact_ids`` names the whole set, so links it no longer has
    are marked deleted by the sync."""
    return [
        OpportunityContact(
            external_id=f"{row.id}:{contact_id}",
            modified_at=modified_at,
            opportunity_id=row.id,
            contact_id=contact_id,
            is_deleted=row.archived,
        )
        for contact_id in by_id(row.associations.get("contacts") or [])
    ]
