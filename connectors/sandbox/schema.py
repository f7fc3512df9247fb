"""Field lists and types of the SObjects the sandbox Salesforce org serves.

Only the standard and custom fields okrsync reads are modelled. Field names are the exact API names; lookups
by name are case-insensitive (as in SOQL) through :func:`find_sobject` and :meth:`SObjectSchema.field`.

Record ids are 18-character Salesforce ids with the real key prefixes and the real case-safe checksum suffix,
so code that validates or shortens ids behaves as it would against a real org.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime

# Field types, named as describe() names them.
ID = "id"
STRING = "string"
TEXTAREA = "textarea"
EMAIL = "email"
REFERENCE = "reference"
PICKLIST = "picklist"
BOOLEAN = "boolean"
INT = "int"
DOUBLE = "double"
CURRENCY = "currency"
PERCENT = "percent"
DATE = "date"
DATETIME = "datetime"

TEXT_TYPES = frozenset({ID, STRING, TEXTAREA, EMAIL, REFERENCE, PICKLIST})
# Ids compare exactly (their 18-char form is case-safe), so ORDER BY Id and `Id > '...'` keyset paging agree.
FOLDED_TEXT_TYPES = TEXT_TYPES - {ID, REFERENCE}
NUMBER_TYPES = frozenset({INT, DOUBLE, CURRENCY, PERCENT})

_AUDIT = {"CreatedDate": DATETIME, "LastModifiedDate": DATETIME, "SystemModstamp": DATETIME}


@dataclass(frozen=True)
class SObjectSchema:
    """One SObject type: its API name, id key prefix and fields (API name -> type)."""

    name: str
    key_prefix: str
    fields: dict[str, str]
    _by_lower: dict[str, str] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._by_lower.update({name.lower(): name for name in self.fields})

    def field(self, name: str) -> str | None:
        """Return the schema casing of field `name` (any case), or None when the SObject has no such field."""
        return self._by_lower.get(name.lower())

    @property
    def soft_deletes(self) -> bool:
        """True when records of this type carry IsDeleted (User has none: users are deactivated instead)."""
        return "IsDeleted" in self.fields


SOBJECTS: dict[str, SObjectSchema] = {
    schema.name: schema
    for schema in (
        SObjectSchema(
            "User",
            "005",
            {
                "Id": ID,
                "Name": STRING,
                "FirstName": STRING,
                "LastName": STRING,
                "Email": EMAIL,
                "Title": STRING,
                "IsActive": BOOLEAN,
                "ManagerId": REFERENCE,
                **_AUDIT,
            },
        ),
        SObjectSchema(
            "Account",
            "001",
            {
                "Id": ID,
                "Name": STRING,
                "OwnerId": REFERENCE,
                "Type": PICKLIST,
                "Industry": PICKLIST,
                "AnnualRevenue": CURRENCY,
                "NumberOfEmployees": INT,
                "BillingCountry": STRING,
                "ParentId": REFERENCE,
                "LastActivityDate": DATE,
                **_AUDIT,
                "IsDeleted": BOOLEAN,
                "Key_Account__c": BOOLEAN,
                "Tier__c": PICKLIST,
            },
        ),
        SObjectSchema(
            "Contact",
            "003",
            {
                "Id": ID,
                "FirstName": STRING,
                "LastName": STRING,
                "Name": STRING,
                "Email": EMAIL,
                "Title": STRING,
                "AccountId": REFERENCE,
                "OwnerId": REFERENCE,
                **_AUDIT,
                "IsDeleted": BOOLEAN,
            },
        ),
        SObjectSchema(
            "Opportunity",
            "006",
            {
                "Id": ID,
                "Name": STRING,
                "AccountId": REFERENCE,
                "OwnerId": REFERENCE,
                "StageName": PICKLIST,
                "Amount": CURRENCY,
                "Probability": PERCENT,
                "CloseDate": DATE,
                "NextStep": STRING,
                "IsClosed": BOOLEAN,
                "IsWon": BOOLEAN,
                "ForecastCategoryName": PICKLIST,
                "Type": PICKLIST,
                "LeadSource": PICKLIST,
                "LastActivityDate": DATE,
                "LastStageChangeDate": DATETIME,
                "PushCount": INT,
                **_AUDIT,
                "IsDeleted": BOOLEAN,
                "Segment__c": PICKLIST,
            },
        ),
        SObjectSchema(
            "OpportunityContactRole",
            "00K",
            {
                "Id": ID,
                "OpportunityId": REFERENCE,
                "ContactId": REFERENCE,
                "Role": PICKLIST,
                "IsPrimary": BOOLEAN,
                **_AUDIT,
                "IsDeleted": BOOLEAN,
            },
        ),
        SObjectSchema(
            "Task",
            "00T",
            {
                "Id": ID,
                "Subject": STRING,
                "TaskSubtype": PICKLIST,
                "Type": PICKLIST,
                "Status": PICKLIST,
                "Priority": PICKLIST,
                "ActivityDate": DATE,
                "CompletedDateTime": DATETIME,
                "CallDurationInSeconds": INT,
                "CallType": PICKLIST,
                "CallDisposition": STRING,
                "Description": TEXTAREA,
                "OwnerId": REFERENCE,
                "WhoId": REFERENCE,
                "WhatId": REFERENCE,
                "AccountId": REFERENCE,
                "IsClosed": BOOLEAN,
                **_AUDIT,
                "IsDeleted": BOOLEAN,
            },
        ),
        # Lead: key prefix 00Q. Conversion sets IsConverted, ConvertedDate (a date) and the Converted*Id lookups; the
        # lead stays queryable. Status is the org's lead status picklist (converted ones: "Closed - Converted").
        # https://developer.salesforce.com/docs/atlas.en-us.object_reference.meta/object_reference/sforce_api_objects_lead.htm
        SObjectSchema(
            "Lead",
            "00Q",
            {
                "Id": ID,
                "FirstName": STRING,
                "LastName": STRING,
                "Name": STRING,
                "Email": EMAIL,
                "Company": STRING,
                "Status": PICKLIST,
                "LeadSource": PICKLIST,
                "OwnerId": REFERENCE,
                "IsConverted": BOOLEAN,
                "ConvertedDate": DATE,
                "ConvertedAccountId": REFERENCE,
                "ConvertedContactId": REFERENCE,
                "ConvertedOpportunityId": REFERENCE,
                **_AUDIT,
                "IsDeleted": BOOLEAN,
            },
        ),
        # Enhanced Email: every e-mail is an EmailMessage and a Task (ActivityId); without Enhanced Email only
        # Email-to-Case creates EmailMessages. Incoming says whether the customer wrote it. Status is stored as a
        # digit: 0 New, 1 Read, 2 Replied, 3 Sent, 4 Forwarded, 5 Draft. Key prefix 02s.
        # https://developer.salesforce.com/docs/platform/object-reference/references/standard-objects/object-emailmessage.html
        SObjectSchema(
            "EmailMessage",
            "02s",
            {
                "Id": ID,
                "ActivityId": REFERENCE,
                "RelatedToId": REFERENCE,
                "ParentId": REFERENCE,
                "Incoming": BOOLEAN,
                "MessageDate": DATETIME,
                "FromAddress": EMAIL,
                "FromName": STRING,
                "ToAddress": STRING,
                "CcAddress": STRING,
                "Subject": STRING,
                "Status": PICKLIST,
                "CreatedById": REFERENCE,
                **_AUDIT,
                "IsDeleted": BOOLEAN,
            },
        ),
        # Case: key prefix 500. Email-to-Case e-mails are EmailMessages whose ParentId is the case; AccountId and
        # ContactId say whose it is, OwnerId who works it (a user; a queue in real orgs, not modelled).
        # https://developer.salesforce.com/docs/atlas.en-us.object_reference.meta/object_reference/sforce_api_objects_case.htm
        SObjectSchema(
            "Case",
            "500",
            {
                "Id": ID,
                "AccountId": REFERENCE,
                "ContactId": REFERENCE,
                "OwnerId": REFERENCE,
                "Subject": STRING,
                "Status": PICKLIST,
                "Origin": PICKLIST,
                **_AUDIT,
                "IsDeleted": BOOLEAN,
            },
        ),
        SObjectSchema(
            "Event",
            "00U",
            {
                "Id": ID,
                "Subject": STRING,
                "Type": PICKLIST,
                "EventSubtype": PICKLIST,
                "StartDateTime": DATETIME,
                "EndDateTime": DATETIME,
                "DurationInMinutes": INT,
                "ActivityDateTime": DATETIME,
                "Description": TEXTAREA,
                "OwnerId": REFERENCE,
                "WhoId": REFERENCE,
                "WhatId": REFERENCE,
                "AccountId": REFERENCE,
                **_AUDIT,
                "IsDeleted": BOOLEAN,
            },
        ),
    )
}

_SOBJECTS_BY_LOWER = {name.lower(): schema for name, schema in SOBJECTS.items()}


def find_sobject(name: str) -> SObjectSchema | None:
    """Return the schema of SObject `name` (any case), or None when the org has no such type."""
    return _SOBJECTS_BY_LOWER.get(name.lower())


_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_CHECKSUM_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"


def _checksum(id15: str) -> str:
    # The 3-char suffix encodes, per 5-char chunk, which characters are upper case (so ids survive
    # case-insensitive systems).
    suffix = ""
    for chunk_start in range(0, 15, 5):
        flags = 0
        for bit, char in enumerate(id15[chunk_start : chunk_start + 5]):
            if "A" <= char <= "Z":
                flags |= 1 << bit
        suffix += _CHECKSUM_CHARS[flags]
    return suffix


def make_id(key_prefix: str, number: int) -> str:
    """Return the deterministic 18-char id number `number` of the SObject with `key_prefix` (e.g. '006')."""
    digits = ""
    while number:
        number, remainder = divmod(number, 62)
        digits = _BASE62[remainder] + digits
    id15 = f"{key_prefix}5g{digits.rjust(10, '0')}"
    return id15 + _checksum(id15)


def case_safe_id(value: object) -> str | None:
    """The 18-char form of a 15- or 18-char record id, or None when `value` is not a well-formed id."""
    if not isinstance(value, str) or len(value) not in (15, 18) or not value.isascii() or not value.isalnum():
        return None
    if len(value) == 18 and value[15:].upper() != _checksum(value[:15]):
        return None
    return value[:15] + _checksum(value[:15])


def format_datetime(value: datetime) -> str:
    """Format an aware (or naive-UTC) datetime as the API does: '2026-07-01T09:30:00.000+0000'."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}+0000"


def format_date(value: date) -> str:
    """Format a date as the API does: '2026-07-15'."""
    return value.isoformat()


def parse_datetime(value: str) -> datetime:
    """Parse an API or ISO 8601 datetime ('...000+0000', '...Z', '...+00:00') into an aware UTC datetime."""
    text = value.strip().replace(" ", "+")
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    elif len(text) > 5 and text[-5] in "+-" and text[-4:].isdigit():
        text = f"{text[:-2]}:{text[-2:]}"
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)
