"""Salesforce's inbound messages: Outbound Messages (SOAP) and okrsync's Flow HTTP callout, and which connection each
is for. Pure: no FastAPI, no database. ``RECEIVERS`` are the ``POST /webhooks/salesforce`` and
``POST /webhooks/salesforce/flow`` routes' receivers (``connectors.webhooks.Receiver``).

Outbound Messages (https://developer.salesforce.com/docs/atlas.en-us.api.meta/api/sforce_api_om_outboundmessaging_wsdl.htm):
a SOAP 1.1 envelope whose Body holds ``notifications`` (namespace ``http://soap.sforce.com/2005/09/outbound``):
``OrganizationId, ActionId, SessionId`` (nil unless "Send Session ID" is ticked), ``EnterpriseUrl, PartnerUrl`` and
1 to 100 ``Notification`` elements, each an ``Id`` and an ``sObject`` (``xsi:type="sf:Opportunity"``, fields in
``urn:sobject.enterprise.soap.sforce.com``). Delivery repeats (deduplicate on the Notification ``Id``) and carries no
signature: it is trusted by TLS and by checking ``OrganizationId``. Answer ``outbound_ack()``; anything else makes
Salesforce retry for 24 hours; a refusal is a SOAP fault, which Salesforce shows in its delivery status. XML is
parsed with defusedxml and any DTD is refused: a SOAP message must not contain one (SOAP 1.1 §3), and a DTD is where
external entities (XXE) and entity expansion ("billion laughs") live. XML fields must be simple values.

Flow HTTP callout (ours): ``{"organizationId": "...", "events": [{"id", "sobject", "recordId", "changeType":
"create"|"update"|"delete", "occurredAt": ISO 8601 with offset}]}``, at most 200 events, signed with okrsync's shared
secret (``connectors.webhooks.verify_shared_hmac``, header ``X-Okrsync-Signature``).

Salesforce ids: 15 case-sensitive letters and digits, or 18 whose last 3 encode the case of the first 15
(``salesforce_ids_match``).

Routing. Outbound Messages by ``OrganizationId``: a well-formed id naming the same org as the default one
(OKRSYNC_WEBHOOKS__SALESFORCE_ORG_ID) or an OKRSYNC_CONNECTIONS salesforce entry's ``salesforce_org_id`` (15-character
case-sensitive prefix, so 15 and 18 forms match) goes to that connection; anything else is refused without saying
which org ids are expected: the org id is an Outbound Message's only credential. An extra org's Notification ids are
keyed with its connection, never to collide with another org's. The Flow callout is the default connection's only:
its shared secret is the default org's.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal
from xml.etree.ElementTree import Element, ParseError
from xml.sax.saxutils import escape

from defusedxml import DefusedXmlException, DTDForbidden, EntitiesForbidden, ExternalReferenceForbidden
from defusedxml.ElementTree import fromstring as defused_fromstring
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from connectors.webhooks import (
    SHARED_HMAC_HEADER,
    Event,
    Inbound,
    PayloadError,
    Received,
    Refused,
    Routes,
    SignatureError,
    describe,
    json_kind,
    json_path,
    load_json,
    refuse_unstorable,
    verify_shared_hmac,
)

SOAP_ENV_NS = "http://schemas.xmlsoap.org/soap/envelope/"
OUTBOUND_NS = "http://soap.sforce.com/2005/09/outbound"
SOBJECT_NS = "urn:sobject.enterprise.soap.sforce.com"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
SALESFORCE_ID_PATTERN = r"^[A-Za-z0-9]{15}([A-Za-z0-9]{3})?$"
SOBJECT_NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9_]{0,63}$"  # an API name that fits webhook_event.object_type
_SALESFORCE_ID = re.compile(SALESFORCE_ID_PATTERN)
_SOBJECT_NAME = re.compile(SOBJECT_NAME_PATTERN)


# --- the Flow HTTP callout ----------------------------------------------------------------------------------------


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
    data = load_json(body)
    if not isinstance(data, dict):
        raise PayloadError(f"expected a JSON object, got {json_kind(data)}")
    organization_id = data.get("organizationId")
    if organization_id is None:
        raise PayloadError("organizationId missing")
    events = data.get("events")
    if not isinstance(events, list):
        raise PayloadError(
            "events missing" if events is None else f"events: expected an array, got {json_kind(events)}"
        )
    if len(events) > max_events:
        raise PayloadError(f"events: {len(events)} events in one request, at most {max_events}")
    refuse_unstorable(data, lambda path: f"{json_path(path)}: " if path else "")
    parsed: list[FlowEvent] = []
    for index, item in enumerate(events):
        if not isinstance(item, dict):
            raise PayloadError(f"events[{index}]: expected an object, got {json_kind(item)}")
        try:
            parsed.append(FlowEvent.model_validate({**item, "organizationId": organization_id}))
        except ValidationError as exc:
            problem = describe(exc)
            # an invalid organizationId is the batch's, not the event's
            raise PayloadError(
                problem if problem.startswith("organizationId") else f"events[{index}].{problem}"
            ) from None
    return parsed


# --- Outbound Messages -------------------------------------------------------------------------------------------


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


# --- routing -----------------------------------------------------------------------------------------------------


class UnknownOrgError(Exception):
    """An Outbound Message from an org no connection is set up for; the message says what to configure."""


def salesforce_connection(routes: Routes, organization_id: str) -> str | None:
    """None for the default org, the extra connection's name for one of theirs; UnknownOrgError otherwise (the
    message never names an org id that is configured)."""
    # the connections' ids are validated by the settings; the default one is not, and may carry a newline from a file
    default_id = routes.hooks.salesforce_org_id
    default = default_id.strip() if default_id else None
    extra = [(name, org) for name, org in routes.extra.items() if org]
    if default is None and not extra:
        raise UnknownOrgError(
            "this okrsync is not set up for Outbound Messages (OKRSYNC_WEBHOOKS__SALESFORCE_ORG_ID, or"
            " salesforce_org_id in OKRSYNC_CONNECTIONS)"
        )
    if not is_salesforce_id(organization_id):
        raise UnknownOrgError(
            "Outbound Message refused: OrganizationId is not a Salesforce id (15 or 18 letters and digits)"
        )
    if default is not None and salesforce_ids_match(organization_id, default):
        return None
    for name, org in extra:
        if salesforce_ids_match(organization_id, org):
            return str(name)
    raise UnknownOrgError(
        f"Outbound Message from org {organization_id} refused: no connection of this okrsync is for that org"
    )


# --- the routes --------------------------------------------------------------------------------------------------


def _soap_refusal(status: int, message: str, reason: str) -> Refused:
    return Refused(status, message, reason=reason, body=soap_fault(message), media_type="text/xml")


class OutboundMessageReceiver:
    name = "salesforce"
    path = "/salesforce"
    source = "salesforce"
    description = "Salesforce Outbound Message (SOAP notifications, up to 100); answered with the Ack envelope."
    responses: dict[int | str, dict[str, Any]] = {
        200: {"content": {"text/xml": {}}, "description": "the SOAP Ack"},
        400: {"content": {"text/xml": {}}, "description": "a SOAP fault: the message is malformed"},
        401: {"content": {"text/xml": {}}, "description": "a SOAP fault: the message is from an org not configured"},
        413: {},
    }
    replies: Literal["json", "raw"] = "raw"
    replay_message = ""  # unsigned: repeats are duplicates by Notification Id

    def not_set_up(self, routes: Routes) -> str | None:
        return None  # an org that is not set up is refused per message, with a SOAP fault Salesforce shows

    def receive(self, inbound: Inbound, routes: Routes) -> Received:
        try:
            # the org is checked as soon as it is read: a message from another org is refused as such (401)
            message = parse_outbound_message(
                inbound.body, check_organization=lambda org: salesforce_connection(routes, org)
            )
        except PayloadError as exc:
            raise _soap_refusal(400, str(exc), "payload") from None
        except UnknownOrgError as exc:
            raise _soap_refusal(401, str(exc), "organization") from None
        connection = salesforce_connection(routes, message.organization_id)
        # each org numbers its own notifications: an extra org's are keyed with its connection, never to collide
        prefix = "" if connection is None else f"{connection}:"
        events = [
            Event(prefix + n.notification_id, n.sobject_type, n.record_id, "change", None,
                  {"fields": n.fields, "action": message.action_id}, connection=connection)
            for n in message.notifications
        ]  # fmt: skip
        return Received(events, reply=outbound_ack(), media_type="text/xml")


class FlowReceiver:
    name = "salesforce_flow"
    path = "/salesforce/flow"
    source = "salesforce_flow"
    description = (
        "JSON events from a Salesforce Flow HTTP callout, signed with the shared secret (X-Okrsync-Signature); for the"
        "\ndefault Salesforce connection only (the secret is its org's)."
    )
    responses: dict[int | str, dict[str, Any]] = {400: {}, 401: {}, 413: {}}
    replies: Literal["json", "raw"] = "json"
    replay_message = "signature refused: this request was already received (replay)"

    def not_set_up(self, routes: Routes) -> str | None:
        if routes.hooks.flow_secret is None:
            return "Flow callouts are not set up: set OKRSYNC_WEBHOOKS__FLOW_SECRET"
        return None

    def receive(self, inbound: Inbound, routes: Routes) -> Received:
        try:
            verified = verify_shared_hmac(
                secret=routes.hooks.flow_secret.get_secret_value(),
                body=inbound.body,
                header=inbound.headers.get(SHARED_HMAC_HEADER.lower()),
                now_s=inbound.now,
            )
        except SignatureError as exc:
            raise Refused(401, f"signature refused: {exc}", reason="signature") from None
        try:
            events = parse_flow_events(inbound.body)
        except PayloadError as exc:
            raise Refused(400, str(exc), reason="payload") from None
        return Received(
            [
                Event(e.dedupe_key, e.sobject, e.record_id, e.change_type, e.occurred_at,
                      {"sobject": e.sobject, "recordId": e.record_id, "changeType": e.change_type})
                for e in events
            ],
            verified,
        )  # fmt: skip


OUTBOUND, FLOW = OutboundMessageReceiver(), FlowReceiver()
RECEIVERS = (OUTBOUND, FLOW)
