"""Webhook bodies turned into typed events. Pure functions: no FastAPI, no database; verify the signature first.

HubSpot (https://developers.hubspot.com/docs/api/webhooks): a JSON array of at most 100 events. Each has ``eventId,
subscriptionId, portalId, occurredAt`` (Unix ms), ``subscriptionType`` (some samples say ``eventType``) and
``objectId`` (absent from some association events: ``fromObjectId`` stands in), plus optional ``attemptNumber,
changeSource, propertyName, propertyValue, appId``, association fields (``associationType, fromObjectId, toObjectId,
associationRemoved``), merge fields (``primaryObjectId, mergedObjectIds``) and, for the generic ``object.*`` types,
``objectTypeId`` (https://developers.hubspot.com/changelog/public-beta-generic-webhook-subscriptions; for
``object.associationChange`` we fall back on ``fromObjectTypeId`` — unverified). Deliveries repeat, arrive out of
order, and ``eventId`` alone is not unique, hence ``dedupe_key``. An event okrsync does not track (a ticket, an
unknown subscription type) is kept with ``tracked=False`` and a reason; it does not fail the batch.

Salesforce Outbound Messages (https://developer.salesforce.com/docs/atlas.en-us.api.meta/api/sforce_api_om_outboundmessaging_wsdl.htm):
a SOAP 1.1 envelope whose Body holds ``notifications`` (namespace ``http://soap.sforce.com/2005/09/outbound``):
``OrganizationId, ActionId, SessionId`` (nil unless "Send Session ID" is ticked), ``EnterpriseUrl, PartnerUrl`` and
1 to 100 ``Notification`` elements, each an ``Id`` and an ``sObject`` (``xsi:type="sf:Opportunity"``, fields in
``urn:sobject.enterprise.soap.sforce.com``). Delivery repeats (deduplicate on the Notification ``Id``) and carries no
signature: check ``OrganizationId``. Answer ``outbound_ack()``; anything else makes Salesforce retry for 24 hours.
XML is parsed with defusedxml and any DTD is refused: a SOAP message must not contain one (SOAP 1.1 §3), and a DTD is
where external entities (XXE) and entity expansion ("billion laughs") live.

Salesforce Flow HTTP callout (ours): ``{"organizationId": "...", "events": [{"id", "sobject", "recordId",
"changeType": "create"|"update"|"delete", "occurredAt": ISO 8601 with offset}]}``, at most 200 events.

Salesforce ids: 15 case-sensitive letters and digits, or 18 whose last 3 encode the case of the first 15
(``salesforce_ids_match``).

What every body must also be, so that whatever is accepted can be stored (PostgreSQL's jsonb and varchar columns) and
nothing a sender controls ends in a 500: JSON without NaN/Infinity, numbers of at most 100 digits that fit a float,
at most ``MAX_JSON_DEPTH`` levels deep (Python's parser would otherwise raise RecursionError somewhere past 900), no
NUL character and no unpaired surrogate in any string or key; integer fields in range (ids are 64-bit, ``occurredAt``
before the year 10000), text fields within their column's length, datetimes within Python's range; XML fields that are
simple values.

Errors: ``PayloadError(reason)`` — the body is not what the sender promised; answer 400 (a SOAP fault for Salesforce),
log the reason, which says what is wrong and where ("event 3: occurredAt missing", "events[2].recordId: ...").
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal
from xml.etree.ElementTree import Element, ParseError
from xml.sax.saxutils import escape

from defusedxml import DefusedXmlException, DTDForbidden, EntitiesForbidden, ExternalReferenceForbidden
from defusedxml.ElementTree import fromstring as defused_fromstring
from pydantic import (
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

SOAP_ENV_NS = "http://schemas.xmlsoap.org/soap/envelope/"
OUTBOUND_NS = "http://soap.sforce.com/2005/09/outbound"
SOBJECT_NS = "urn:sobject.enterprise.soap.sforce.com"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"

HUBSPOT_OBJECT_TYPES = {"deal": "deals", "company": "companies", "contact": "contacts"}
HUBSPOT_OBJECT_TYPE_IDS = {
    "0-3": "deals",
    "0-2": "companies",
    "0-1": "contacts",
    "0-48": "calls",
    "0-49": "emails",
    "0-47": "meetings",
    "0-46": "notes",
    "0-27": "tasks",
}
HUBSPOT_KINDS = frozenset(
    {"creation", "propertyChange", "deletion", "associationChange", "merge", "restore", "privacyDeletion"}
)
SALESFORCE_ID_PATTERN = r"^[A-Za-z0-9]{15}([A-Za-z0-9]{3})?$"
SOBJECT_NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9_]{0,63}$"  # an API name that fits webhook_event.object_type
MAX_JSON_DEPTH = 32  # HubSpot's events are 3 levels deep, the Flow callout's 3
MAX_JSON_INT_DIGITS = 100
MAX_INT64 = 2**63 - 1  # HubSpot's ids are Java longs
MAX_OCCURRED_AT_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z, the last instant a datetime can hold
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SALESFORCE_ID = re.compile(SALESFORCE_ID_PATTERN)
_SOBJECT_NAME = re.compile(SOBJECT_NAME_PATTERN)


class PayloadError(ValueError):
    """The body is malformed or not the promised shape; ``reason`` names what is wrong and where."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _describe(exc: ValidationError) -> str:
    """The first problem as ``path missing`` or ``path: message``, with ``events[3].recordId``-style paths."""
    errors = exc.errors(include_url=False)
    first = errors[0]
    path = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in first["loc"]).lstrip(".")
    text = f"{path} missing" if first["type"] == "missing" else f"{path}: {first['msg']}"
    return text + (f" (and {len(errors) - 1} more)" if len(errors) > 1 else "")


def _json_path(path: tuple[str | int, ...]) -> str:
    """``[3].propertyValue``-style; a key a sender made up is cut short, so a message never echoes a megabyte."""
    parts = (f"[{part}]" if isinstance(part, int) else f".{part[:40]}{'…' if len(part) > 40 else ''}" for part in path)
    return "".join(parts).lstrip(".")


def _refuse_constant(name: str) -> Any:
    raise PayloadError(f"not JSON: {name} is not a number JSON allows")


def _text_problem(text: str) -> str | None:
    if "\x00" in text:
        return "contains a NUL character (\\u0000), which cannot be stored"
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return "contains an unpaired surrogate (\\ud800-\\udfff), which is not Unicode text"
    return None


_TOO_BIG = 10**MAX_JSON_INT_DIGITS


def _value_problem(value: Any) -> str | None:
    """What is wrong with a scalar okrsync would store (None for containers and for what is fine)."""
    if isinstance(value, str):
        return _text_problem(value)
    if isinstance(value, float) and not math.isfinite(value):
        return "a number too large for a float"
    if isinstance(value, int) and not -_TOO_BIG < value < _TOO_BIG:
        return f"an integer of more than {MAX_JSON_INT_DIGITS} digits"
    return None


def _json_problem(data: Any) -> tuple[tuple[str | int, ...], str] | None:
    """A value okrsync cannot store, with its path: a container nested deeper than ``MAX_JSON_DEPTH``, a string or
    key ``_text_problem`` refuses, an infinite float (``1e999``) or an integer of more than ``MAX_JSON_INT_DIGITS``
    digits. Iterative, so depth costs no stack; scalars are checked where they sit, containers in document order."""
    problem = _value_problem(data)
    if problem is not None:
        return (), problem
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(data, ())] if isinstance(data, dict | list) else []
    while stack:
        container, path = stack.pop()
        if len(path) >= MAX_JSON_DEPTH:
            return path, f"nested deeper than {MAX_JSON_DEPTH} levels"
        inner: list[tuple[Any, tuple[str | int, ...]]] = []
        items = container.items() if isinstance(container, dict) else enumerate(container)
        for key, value in items:
            if isinstance(key, str) and (problem := _text_problem(key)) is not None:
                return path, f"a key {problem}"
            if isinstance(value, dict | list):
                inner.append((value, (*path, key)))
            elif (problem := _value_problem(value)) is not None:
                return (*path, key), problem
        stack.extend(reversed(inner))
    return None


def _load_json(body: bytes) -> Any:
    try:
        return json.loads(body, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        raise PayloadError(f"not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except UnicodeDecodeError:
        raise PayloadError("not JSON: the body is not UTF-8") from None
    except PayloadError:
        raise
    except ValueError:  # int() refuses more than 4,300 digits
        raise PayloadError(f"not JSON okrsync accepts: an integer of more than {MAX_JSON_INT_DIGITS} digits") from None
    except RecursionError:
        raise PayloadError(f"not JSON okrsync accepts: nested deeper than {MAX_JSON_DEPTH} levels") from None


def _refuse_unstorable(data: Any, where: Callable[[tuple[str | int, ...]], str]) -> None:
    """PayloadError for a value ``_json_problem`` finds; ``where`` turns its path into the message's prefix. Called
    once the batch's size is checked, so an oversized batch costs no walk."""
    found = _json_problem(data)
    if found is not None:
        path, problem = found
        raise PayloadError(f"{where(path)}{problem}")


def _whole_number(high: int) -> Callable[[Any], Any]:
    """Before pydantic's int from 0 to ``high``: a number without a fraction (``1e3``) or an integer in a string is
    taken, as pydantic takes them, but never a boolean, and a huge float is refused with the range rather than with
    pydantic's overflow message."""

    def check(value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError("expected an integer, got a boolean")
        if isinstance(value, float) and value.is_integer() and not 0 <= value <= high:
            raise ValueError(f"{value:g} is out of range (0 to {high})")
        return value

    return check


HubSpotId = Annotated[int, BeforeValidator(_whole_number(MAX_INT64)), Field(ge=0, le=MAX_INT64)]
UnixMs = Annotated[int, BeforeValidator(_whole_number(MAX_OCCURRED_AT_MS)), Field(ge=0, le=MAX_OCCURRED_AT_MS)]


def _json_kind(value: Any) -> str:
    names: dict[type, str] = {
        dict: "an object",
        list: "an array",
        str: "a string",
        bool: "a boolean",
        type(None): "null",
    }
    return names.get(type(value), "a number")


# --- HubSpot -----------------------------------------------------------------------------------------------------


class HubSpotEvent(BaseModel):
    """One HubSpot webhook event; ``raw`` is the object as received (for storage), the rest is validated."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="ignore")

    # the lengths keep dedupe_key (five numbers, the type and the property name) within its 400 characters
    event_id: HubSpotId = Field(alias="eventId")
    subscription_id: HubSpotId = Field(alias="subscriptionId")
    portal_id: HubSpotId = Field(alias="portalId")
    occurred_at_ms: UnixMs = Field(alias="occurredAt", description="Unix milliseconds, as sent")
    subscription_type: str = Field(validation_alias=AliasChoices("subscriptionType", "eventType"), max_length=80)
    object_id: HubSpotId = Field(alias="objectId")
    attempt_number: HubSpotId | None = Field(default=None, alias="attemptNumber")
    change_source: str | None = Field(default=None, alias="changeSource")
    property_name: str | None = Field(default=None, alias="propertyName", max_length=200)
    property_value: str | None = Field(default=None, alias="propertyValue")
    app_id: HubSpotId | None = Field(default=None, alias="appId")
    object_type_id: str | None = Field(default=None, alias="objectTypeId")
    from_object_type_id: str | None = Field(default=None, alias="fromObjectTypeId")
    association_type: str | None = Field(default=None, alias="associationType")
    from_object_id: HubSpotId | None = Field(default=None, alias="fromObjectId")
    to_object_id: HubSpotId | None = Field(default=None, alias="toObjectId")
    association_removed: bool | None = Field(default=None, alias="associationRemoved")
    primary_object_id: HubSpotId | None = Field(default=None, alias="primaryObjectId")
    merged_object_ids: list[HubSpotId] | None = Field(default=None, alias="mergedObjectIds", max_length=100)
    new_object_id: HubSpotId | None = Field(default=None, alias="newObjectId")
    raw: dict[str, Any] = Field(default_factory=dict, exclude=True, repr=False)

    @model_validator(mode="before")
    @classmethod
    def _keep_raw_and_default_object_id(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        prepared = {**data, "raw": data}
        if prepared.get("objectId") is None and prepared.get("fromObjectId") is not None:
            prepared["objectId"] = prepared["fromObjectId"]
        return prepared

    @field_validator("property_value", mode="before")
    @classmethod
    def _property_value_as_text(cls, value: Any) -> Any:
        # documented as a string; a number or boolean is kept as its JSON text rather than refusing the batch
        return value if value is None or isinstance(value, str) else json.dumps(value)

    @property
    def kind(self) -> str | None:
        """creation, propertyChange, deletion, associationChange, merge, restore or privacyDeletion."""
        suffix = self.subscription_type.partition(".")[2]
        return suffix if suffix in HUBSPOT_KINDS else None

    @property
    def object_type(self) -> str | None:
        """okrsync's name for the object (``deals``, ``calls``...); None when okrsync does not track it."""
        prefix = self.subscription_type.partition(".")[0]
        if prefix == "object":
            return HUBSPOT_OBJECT_TYPE_IDS.get(self.object_type_id or self.from_object_type_id or "")
        return HUBSPOT_OBJECT_TYPES.get(prefix)

    @property
    def untracked_reason(self) -> str | None:
        """Why okrsync ignores this event, or None when it processes it."""
        if self.object_type is None:
            type_id = self.object_type_id or self.from_object_type_id
            if not self.subscription_type.startswith("object."):
                return f"subscription type {self.subscription_type} is not tracked"
            if type_id is None:
                return f"{self.subscription_type} without objectTypeId"
            return f"objectTypeId {type_id} is not tracked"
        if self.kind is None:
            return f"subscription type {self.subscription_type} is not tracked"
        return None

    @property
    def tracked(self) -> bool:
        """False for events okrsync stores as ignored (see ``untracked_reason``); they never fail the batch."""
        return self.untracked_reason is None

    @property
    def occurred_at(self) -> datetime:
        """``occurredAt`` as an aware UTC datetime."""
        # exact, unlike fromtimestamp(ms / 1000), which goes through a float
        return _EPOCH + timedelta(milliseconds=self.occurred_at_ms)

    @property
    def dedupe_key(self) -> str:
        """Equal for repeat deliveries of one event, different for distinct events sharing an eventId.

        ``attemptNumber`` is left out on purpose: a retry is the same event. ``propertyName`` comes last, so a
        colon in it cannot make two keys collide.
        """
        parts = (self.portal_id, self.subscription_id, self.event_id, self.occurred_at_ms, self.object_id)
        return ":".join(map(str, parts)) + f":{self.subscription_type}:{self.property_name or ''}"


def _hubspot_where(path: tuple[str | int, ...]) -> str:
    if not path:
        return ""
    index, rest = path[0], _json_path(path[1:])
    return f"event {index}: {rest}: " if rest else f"event {index}: "


def parse_hubspot_events(body: bytes, *, max_events: int = 100) -> list[HubSpotEvent]:
    """Parse a HubSpot webhook batch; raise ``PayloadError`` for bad JSON, a wrong shape or an invalid event.

    Event positions in messages are 0-based indexes into the array ("event 3" is the fourth).
    """
    data = _load_json(body)
    if not isinstance(data, list):
        raise PayloadError(f"expected a JSON array of events, got {_json_kind(data)}")
    if len(data) > max_events:
        raise PayloadError(f"{len(data)} events in one request, at most {max_events}")
    _refuse_unstorable(data, _hubspot_where)
    events: list[HubSpotEvent] = []
    for index, item in enumerate(data):
        if not isinstance(item, dict):
            raise PayloadError(f"event {index}: expected an object, got {_json_kind(item)}")
        try:
            events.append(HubSpotEvent.model_validate(item))
        except ValidationError as exc:
            raise PayloadError(f"event {index}: {_describe(exc)}") from None
    return events


# --- Salesforce Flow HTTP callout ----------------------------------------------------------------------------------


class FlowEvent(BaseModel):
    """One record change sent by okrsync's Salesforce Flow; ``organization_id`` is copied from the batch."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="ignore")

    organization_id: str = Field(alias="organizationId", pattern=SALESFORCE_ID_PATTERN)
    id: str = Field(min_length=1, max_length=255)
    sobject: str = Field(pattern=SOBJECT_NAME_PATTERN)
    record_id: str = Field(alias="recordId", pattern=SALESFORCE_ID_PATTERN)
    change_type: Literal["create", "update", "delete"] = Field(alias="changeType")
    occurred_at: datetime = Field(alias="occurredAt")

    @field_validator("occurred_at", mode="before")
    @classmethod
    def _iso_8601_with_offset(cls, value: Any) -> datetime:
        # pydantic alone would also take Unix numbers and numeric strings; the contract says ISO 8601
        if not isinstance(value, str):
            raise ValueError("expected an ISO 8601 string")
        parsed = datetime.fromisoformat(value)
        if parsed.tzinfo is None:
            raise ValueError("ISO 8601 datetime without an offset (add Z or +hh:mm)")
        try:
            return parsed.astimezone(UTC)
        except OverflowError:  # 0001-01-01T00:00+01:00 is before the first datetime in UTC
            raise ValueError("datetime out of range in UTC") from None

    @property
    def dedupe_key(self) -> str:
        return f"{self.organization_id}:{self.id}"


def parse_flow_events(body: bytes, *, max_events: int = 200) -> list[FlowEvent]:
    """Parse the Flow callout body; raise ``PayloadError`` naming the path of the first problem."""
    data = _load_json(body)
    if not isinstance(data, dict):
        raise PayloadError(f"expected a JSON object, got {_json_kind(data)}")
    organization_id = data.get("organizationId")
    if organization_id is None:
        raise PayloadError("organizationId missing")
    events = data.get("events")
    if not isinstance(events, list):
        raise PayloadError(
            "events missing" if events is None else f"events: expected an array, got {_json_kind(events)}"
        )
    if len(events) > max_events:
        raise PayloadError(f"events: {len(events)} events in one request, at most {max_events}")
    _refuse_unstorable(data, lambda path: f"{_json_path(path)}: " if path else "")
    parsed: list[FlowEvent] = []
    for index, item in enumerate(events):
        if not isinstance(item, dict):
            raise PayloadError(f"events[{index}]: expected an object, got {_json_kind(item)}")
        try:
            parsed.append(FlowEvent.model_validate({**item, "organizationId": organization_id}))
        except ValidationError as exc:
            problem = _describe(exc)
            # an invalid organizationId is the batch's, not the event's
            raise PayloadError(
                problem if problem.startswith("organizationId") else f"events[{index}].{problem}"
            ) from None
    return parsed


# --- Salesforce Outbound Messages ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class OutboundNotification:
    """One record in an Outbound Message; ``fields`` holds every field sent (``Id`` included), nil as None."""

    notification_id: str
    sobject_type: str
    record_id: str
    fields: dict[str, str | None]


@dataclass(frozen=True)
class OutboundMessage:
    organization_id: str
    action_id: str
    session_id: str | None
    enterprise_url: str
    partner_url: str
    notifications: list[OutboundNotification]


def _is_nil(element: Element) -> bool:
    return element.get(f"{{{XSI_NS}}}nil") in ("true", "1")


def _text(parent: Element, name: str, where: str) -> str:
    element = parent.find(f"{{{OUTBOUND_NS}}}{name}")
    if element is None or _is_nil(element) or not (element.text or "").strip():
        raise PayloadError(f"{where}{name} missing")
    return (element.text or "").strip()


def _notification(element: Element, index: int) -> OutboundNotification:
    where = f"Notification {index}: "
    notification_id = _text(element, "Id", where)
    if not is_salesforce_id(notification_id):
        raise PayloadError(f"{where}Id is not a Salesforce id (15 or 18 letters and digits)")
    sobject = element.find(f"{{{OUTBOUND_NS}}}sObject")
    if sobject is None:
        raise PayloadError(f"{where}sObject missing")
    xsi_type = sobject.get(f"{{{XSI_NS}}}type")
    if not xsi_type:
        raise PayloadError(f"{where}sObject has no xsi:type")
    sobject_type = xsi_type.rpartition(":")[2]
    if not _SOBJECT_NAME.fullmatch(sobject_type):
        raise PayloadError(f"{where}sObject xsi:type is not an object's API name (at most 64 letters, digits, _)")
    fields: dict[str, str | None] = {}
    for child in sobject:
        namespace, _, name = child.tag.lstrip("{").rpartition("}")
        if namespace != SOBJECT_NS:
            raise PayloadError(f"{where}field {name} is in namespace {namespace or '(none)'!r}, expected {SOBJECT_NS}")
        # Outbound Messages only carry the object's own fields, which are simple values: text is the whole value
        if len(child):
            raise PayloadError(f"{where}field {name} holds elements, expected a simple value")
        fields[name] = None if _is_nil(child) else (child.text or "")
    record_id = (fields.get("Id") or "").strip()
    if not record_id:
        raise PayloadError(f"{where}sObject Id missing")
    if not is_salesforce_id(record_id):
        raise PayloadError(f"{where}sObject Id is not a Salesforce id (15 or 18 letters and digits)")
    return OutboundNotification(notification_id, sobject_type, record_id, fields)


def parse_outbound_message(
    body: bytes, *, max_notifications: int = 100, check_organization: Callable[[str], object] | None = None
) -> OutboundMessage:
    """Parse a Salesforce Outbound Message; raise ``PayloadError`` for unsafe XML, bad XML or a wrong shape.

    ``check_organization`` is called with the OrganizationId as soon as it is read, before any Notification: what it
    raises (a refused org) propagates, so a message from an org that is not accepted is refused as such, whatever
    else it holds. An Outbound Message has no signature: the org id is its only credential."""
    try:
        root = defused_fromstring(body, forbid_dtd=True)
    except DTDForbidden:
        raise PayloadError("XML with a DTD is refused (a SOAP message never has one)") from None
    except (EntitiesForbidden, ExternalReferenceForbidden, DefusedXmlException) as exc:
        raise PayloadError(f"unsafe XML refused ({type(exc).__name__})") from None
    except ParseError as exc:
        raise PayloadError(f"not well-formed XML: {exc}") from None
    if root.tag != f"{{{SOAP_ENV_NS}}}Envelope":
        raise PayloadError(f"root element is {root.tag}, expected Envelope in namespace {SOAP_ENV_NS}")
    soap_body = root.find(f"{{{SOAP_ENV_NS}}}Body")
    if soap_body is None:
        raise PayloadError("SOAP Body missing")
    notifications = soap_body.find(f"{{{OUTBOUND_NS}}}notifications")
    if notifications is None:
        found = ", ".join(child.tag for child in soap_body) or "nothing"
        raise PayloadError(f"SOAP Body holds {found}, expected notifications in namespace {OUTBOUND_NS}")
    organization_id = _text(notifications, "OrganizationId", "")
    if check_organization is not None:
        check_organization(organization_id)
    items = notifications.findall(f"{{{OUTBOUND_NS}}}Notification")
    if not items:
        raise PayloadError("no Notification in the message")
    if len(items) > max_notifications:
        raise PayloadError(f"{len(items)} notifications in one message, at most {max_notifications}")
    session = notifications.find(f"{{{OUTBOUND_NS}}}SessionId")
    session_id = None if session is None or _is_nil(session) else (session.text or "").strip() or None
    return OutboundMessage(
        organization_id=organization_id,
        action_id=_text(notifications, "ActionId", ""),
        session_id=session_id,
        enterprise_url=_text(notifications, "EnterpriseUrl", ""),
        partner_url=_text(notifications, "PartnerUrl", ""),
        notifications=[_notification(item, index) for index, item in enumerate(items)],
    )


def is_salesforce_id(value: str) -> bool:
    """15 or 18 ASCII letters and digits, nothing around them."""
    return _SALESFORCE_ID.fullmatch(value) is not None


def salesforce_ids_match(a: str, b: str) -> bool:
    """True when two Salesforce ids name the same record: both well formed, the same 15 characters (case matters:
    ``…AbCd`` and ``…ABCD`` are different records), and, when both have 18, the same suffix.

    The suffix encodes the case of the first 15 characters (per block of 5, bit i set when character i is A-Z,
    mapped onto ``A``-``Z0``-``5``). It is compared but not recomputed: the sandbox CRM's ids carry a placeholder
    ``AAA`` suffix (its org is ``00D000000000001AAA``), which recomputing would refuse."""
    if not (is_salesforce_id(a) and is_salesforce_id(b)) or a[:15] != b[:15]:
        return False
    return len(a) != 18 or len(b) != 18 or a[15:] == b[15:]


_ENVELOPE = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    f'<soapenv:Envelope xmlns:soapenv="{SOAP_ENV_NS}"><soapenv:Body>{{}}</soapenv:Body></soapenv:Envelope>'
)


def outbound_ack() -> bytes:
    """The answer that tells Salesforce the message was received (send with HTTP 200, ``text/xml``)."""
    return _ENVELOPE.format(
        f'<notificationsResponse xmlns="{OUTBOUND_NS}"><Ack>true</Ack></notificationsResponse>'
    ).encode()


def soap_fault(reason: str, *, server: bool = False) -> bytes:
    """A SOAP 1.1 fault: ``Client`` when the message was refused, ``Server`` when okrsync failed (HTTP 500 for both).

    Salesforce retries either way; the reason shows in its Outbound Messages delivery status.
    """
    code = "soapenv:Server" if server else "soapenv:Client"
    fault = f"<soapenv:Fault><faultcode>{code}</faultcode><faultstring>{escape(reason)}</faultstring></soapenv:Fault>"
    return _ENVELOPE.format(fault).encode()
