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

Errors: ``PayloadError(reason)`` — the body is not what the sender promised; answer 400 (a SOAP fault for Salesforce),
log the reason, which says what is wrong and where ("event 3: occurredAt missing", "events[2].recordId: ...").
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from xml.etree.ElementTree import Element, ParseError
from xml.sax.saxutils import escape

from defusedxml import DefusedXmlException, DTDForbidden, EntitiesForbidden, ExternalReferenceForbidden
from defusedxml.ElementTree import fromstring as defused_fromstring
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

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
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


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


def _load_json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except json.JSONDecodeError as exc:
        raise PayloadError(f"not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except UnicodeDecodeError:
        raise PayloadError("not JSON: the body is not UTF-8") from None


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

    event_id: int = Field(alias="eventId")
    subscription_id: int = Field(alias="subscriptionId")
    portal_id: int = Field(alias="portalId")
    occurred_at_ms: int = Field(alias="occurredAt", description="Unix milliseconds, as sent")
    subscription_type: str = Field(validation_alias=AliasChoices("subscriptionType", "eventType"))
    object_id: int = Field(alias="objectId")
    attempt_number: int | None = Field(default=None, alias="attemptNumber")
    change_source: str | None = Field(default=None, alias="changeSource")
    property_name: str | None = Field(default=None, alias="propertyName")
    property_value: str | None = Field(default=None, alias="propertyValue")
    app_id: int | None = Field(default=None, alias="appId")
    object_type_id: str | None = Field(default=None, alias="objectTypeId")
    from_object_type_id: str | None = Field(default=None, alias="fromObjectTypeId")
    association_type: str | None = Field(default=None, alias="associationType")
    from_object_id: int | None = Field(default=None, alias="fromObjectId")
    to_object_id: int | None = Field(default=None, alias="toObjectId")
    association_removed: bool | None = Field(default=None, alias="associationRemoved")
    primary_object_id: int | None = Field(default=None, alias="primaryObjectId")
    merged_object_ids: list[int] | None = Field(default=None, alias="mergedObjectIds")
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


def parse_hubspot_events(body: bytes, *, max_events: int = 100) -> list[HubSpotEvent]:
    """Parse a HubSpot webhook batch; raise ``PayloadError`` for bad JSON, a wrong shape or an invalid event.

    Event positions in messages are 0-based indexes into the array ("event 3" is the fourth).
    """
    data = _load_json(body)
    if not isinstance(data, list):
        raise PayloadError(f"expected a JSON array of events, got {_json_kind(data)}")
    if len(data) > max_events:
        raise PayloadError(f"{len(data)} events in one request, at most {max_events}")
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
    sobject: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_]*$", max_length=80)
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
        return parsed.astimezone(UTC)

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
    sobject = element.find(f"{{{OUTBOUND_NS}}}sObject")
    if sobject is None:
        raise PayloadError(f"{where}sObject missing")
    xsi_type = sobject.get(f"{{{XSI_NS}}}type")
    if not xsi_type:
        raise PayloadError(f"{where}sObject has no xsi:type")
    fields: dict[str, str | None] = {}
    for child in sobject:
        namespace, _, name = child.tag.lstrip("{").rpartition("}")
        if namespace != SOBJECT_NS:
            raise PayloadError(f"{where}field {name} is in namespace {namespace or '(none)'!r}, expected {SOBJECT_NS}")
        # Outbound Messages only carry the object's own fields, which are simple values: text is the whole value
        fields[name] = None if _is_nil(child) else (child.text or "")
    record_id = fields.get("Id")
    if not record_id:
        raise PayloadError(f"{where}sObject Id missing")
    return OutboundNotification(notification_id, xsi_type.rpartition(":")[2], record_id.strip(), fields)


def parse_outbound_message(body: bytes, *, max_notifications: int = 100) -> OutboundMessage:
    """Parse a Salesforce Outbound Message; raise ``PayloadError`` for unsafe XML, bad XML or a wrong shape."""
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
    items = notifications.findall(f"{{{OUTBOUND_NS}}}Notification")
    if not items:
        raise PayloadError("no Notification in the message")
    if len(items) > max_notifications:
        raise PayloadError(f"{len(items)} notifications in one message, at most {max_notifications}")
    session = notifications.find(f"{{{OUTBOUND_NS}}}SessionId")
    session_id = None if session is None or _is_nil(session) else (session.text or "").strip() or None
    return OutboundMessage(
        organization_id=_text(notifications, "OrganizationId", ""),
        action_id=_text(notifications, "ActionId", ""),
        session_id=session_id,
        enterprise_url=_text(notifications, "EnterpriseUrl", ""),
        partner_url=_text(notifications, "PartnerUrl", ""),
        notifications=[_notification(item, index) for index, item in enumerate(items)],
    )


def salesforce_ids_match(a: str, b: str) -> bool:
    """True when two Salesforce ids name the same record: an 18-character id is the 15-character one + a suffix."""
    return len(a) in (15, 18) and len(b) in (15, 18) and a[:15] == b[:15]


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
