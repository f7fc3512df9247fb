"""The fields a filter may name, per record type, and how a name like ``account.custom.key_account`` resolves.

Field names are the canonical ones (``connectors.records``) so one mapping file works for Salesforce and HubSpot.
A custom CRM field is declared once under ``custom_fields`` with its name in each CRM and is then used as
``custom.<name>``; ``raw.<CRM field>`` reaches any field of the stored payload directly (CRM-specific).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

# A Salesforce API name or HubSpot internal property name, dotted for a path into the payload (raw.Owner.Email).
# Both CRMs allow only these characters; the database's JSON paths break on quotes, braces or empty steps.
CRM_NAME_PATTERN = r"^[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*$"
_CRM_NAME = re.compile(CRM_NAME_PATTERN)


class FieldType(StrEnum):
    text = "text"
    number = "number"
    boolean = "boolean"
    date = "date"
    datetime = "datetime"


class RecordType(StrEnum):
    activity = "activity"
    opportunity = "opportunity"
    account = "account"
    contact = "contact"
    owner = "owner"
    lead = "lead"


_COMMON = {"external_id": FieldType.text, "crm_object": FieldType.text, "created_at": FieldType.datetime}

CANONICAL: dict[RecordType, dict[str, FieldType]] = {
    RecordType.activity: {
        **_COMMON,
        "activity_kind": FieldType.text,
        "subject": FieldType.text,
        "direction": FieldType.text,
        "status": FieldType.text,
        "occurred_at": FieldType.datetime,
        "due_at": FieldType.datetime,
        "completed_at": FieldType.datetime,
        "duration_seconds": FieldType.number,
        "owner_id": FieldType.text,
        "account_id": FieldType.text,
        "opportunity_id": FieldType.text,
        "lead_id": FieldType.text,
        "email_from": FieldType.text,
        "email_to": FieldType.text,
    },
    RecordType.opportunity: {
        **_COMMON,
        "name": FieldType.text,
        "account_id": FieldType.text,
        "owner_id": FieldType.text,
        "stage": FieldType.text,
        "amount": FieldType.number,
        "currency": FieldType.text,
        "probability": FieldType.number,
        "close_date": FieldType.date,
        "next_step": FieldType.text,
        "is_closed": FieldType.boolean,
        "is_won": FieldType.boolean,
        "forecast_category": FieldType.text,
        "last_activity_date": FieldType.date,
        "stage_entered_at": FieldType.datetime,
        "close_date_pushes": FieldType.number,
    },
    RecordType.account: {
        **_COMMON,
        "name": FieldType.text,
        "owner_id": FieldType.text,
        "parent_id": FieldType.text,
        "industry": FieldType.text,
        "account_type": FieldType.text,
        "country": FieldType.text,
        "annual_revenue": FieldType.number,
        "employees": FieldType.number,
        "last_activity_date": FieldType.date,
    },
    RecordType.contact: {
        **_COMMON,
        "name": FieldType.text,
        "email": FieldType.text,
        "title": FieldType.text,
        "account_id": FieldType.text,
        "owner_id": FieldType.text,
    },
    RecordType.owner: {**_COMMON, "name": FieldType.text, "email": FieldType.text, "title": FieldType.text},
    RecordType.lead: {
        **_COMMON,
        "name": FieldType.text,
        "email": FieldType.text,
        "company": FieldType.text,
        "status": FieldType.text,
        "source": FieldType.text,
        "owner_id": FieldType.text,
        "is_converted": FieldType.boolean,
        "converted_on": FieldType.date,
        "contact_id": FieldType.text,
        "account_id": FieldType.text,
        "opportunity_id": FieldType.text,
    },
}

# which related records a field path may step into, from each record type
RELATIONS: dict[RecordType, tuple[RecordType, ...]] = {
    RecordType.activity: (RecordType.account, RecordType.opportunity, RecordType.contact, RecordType.owner),
    RecordType.opportunity: (RecordType.account, RecordType.contact, RecordType.owner),
    RecordType.account: (RecordType.owner,),
    RecordType.contact: (RecordType.account, RecordType.owner),
    RecordType.owner: (),
    RecordType.lead: (RecordType.account, RecordType.owner),
}


@dataclass(frozen=True)
class CustomField:
    """A custom CRM field as declared in the mapping file: its type and its name in each CRM."""

    record: RecordType
    type: FieldType
    salesforce: str | None
    hubspot: str | None

    def name_in(self, crm: str) -> str | None:
        """The field's name in the CRM called ``crm`` (None when the file gives none)."""
        name = getattr(self, crm, None)
        return name if isinstance(name, str) else None


@dataclass(frozen=True)
class ResolvedField:
    """Where a field path leads: the record it lives on (``via`` a relation or not) and what kind of field."""

    via: RecordType | None  # None: the counted record itself
    record: RecordType
    kind: str  # "canonical" | "custom" | "raw"
    name: str  # column name, custom field key, or raw path
    type: FieldType


class UnknownField(ValueError):
    pass


def resolve(path: str, base: RecordType, custom: dict[str, CustomField]) -> ResolvedField:
    """Resolve a filter's field path on records of type ``base``; raises UnknownField saying what exists."""
    parts = path.split(".")
    via: RecordType | None = None
    record = base
    if parts[0] in {r.value for r in RELATIONS[base]} and len(parts) > 1:
        via = record = RecordType(parts[0])
        parts = parts[1:]
    head, rest = parts[0], ".".join(parts[1:])
    where = f"on {record.value}" + (f" (reached from {base.value})" if via else "")
    if head == "custom":
        spec = custom.get(rest)
        if spec is None:
            known = ", ".join(sorted(k for k, v in custom.items() if v.record == record)) or "none declared"
            raise UnknownField(f'custom field "{rest}" is not declared under custom_fields (declared: {known})')
        if spec.record != record:
            raise UnknownField(f'custom field "{rest}" is declared for {spec.record.value}, not {record.value}')
        return ResolvedField(via, record, "custom", rest, spec.type)
    if head == "raw":
        if not rest:
            raise UnknownField("raw needs a CRM field name, e.g. raw.Type")
        if not _CRM_NAME.fullmatch(rest):
            raise UnknownField(
                f'"raw.{rest}" is not a CRM field name: Salesforce and HubSpot names are letters, digits and '
                "underscores (a dot steps into a nested field)"
            )
        return ResolvedField(via, record, "raw", rest, FieldType.text)
    if rest:
        raise UnknownField(f'"{path}" is not a field {where}')
    field_type = CANONICAL[record].get(head)
    if field_type is None:
        relations = ", ".join(f"{r.value}.<field>" for r in RELATIONS[record if via else base]) if not via else ""
        known = ", ".join(sorted(CANONICAL[record]))
        hint = f"; related records: {relations}" if relations else ""
        raise UnknownField(f'"{head}" is not a field {where}; fields: {known}{hint}; or custom.<name>, raw.<field>')
    return ResolvedField(via, record, "canonical", head, field_type)
