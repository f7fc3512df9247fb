"""Webhook bodies: HubSpot batches, Salesforce Outbound Messages (and hostile XML), the Flow callout JSON."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from xml.etree import ElementTree

import pytest

from connectors.hubspot.webhooks import MAX_INT64, MAX_OCCURRED_AT_MS, parse_hubspot_events
from connectors.salesforce.webhooks import (
    OUTBOUND_NS,
    SOAP_ENV_NS,
    outbound_ack,
    parse_flow_events,
    parse_outbound_message,
    salesforce_ids_match,
    soap_fault,
)
from connectors.webhooks import MAX_JSON_DEPTH, PayloadError

# --- HubSpot --------------------------------------------------------------------------------------------------------

OCCURRED = 1_764_093_600_000


def _event(subscription_type: str, **fields: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "eventId": 100,
        "subscriptionId": 2001,
        "portalId": 62515,
        "appId": 54321,
        "occurredAt": OCCURRED,
        "subscriptionType": subscription_type,
        "attemptNumber": 0,
        "objectId": 123,
        "changeSource": "CRM_UI",
    }
    event.update(fields)
    return {key: value for key, value in event.items() if value is not None}


def _body(*events: dict[str, Any]) -> bytes:
    return json.dumps(list(events)).encode()


ASSOCIATION = {
    "objectId": None,
    "associationType": "DEAL_TO_COMPANY",
    "fromObjectId": 123,
    "toObjectId": 456,
    "associationRemoved": False,
}

SUBSCRIPTION_CASES: list[tuple[str, dict[str, Any], str | None, str | None, str | None]] = [
    # (subscription type, extra fields, object_type, kind, untracked reason)
    ("deal.creation", {}, "deals", "creation", None),
    (
        "deal.propertyChange",
        {"propertyName": "dealstage", "propertyValue": "closedwon"},
        "deals",
        "propertyChange",
        None,
    ),
    ("deal.deletion", {}, "deals", "deletion", None),
    ("deal.associationChange", ASSOCIATION, "deals", "associationChange", None),
    ("deal.merge", {"primaryObjectId": 123, "mergedObjectIds": [124, 125]}, "deals", "merge", None),
    ("deal.restore", {}, "deals", "restore", None),
    ("company.creation", {}, "companies", "creation", None),
    ("company.propertyChange", {"propertyName": "name", "propertyValue": "Acme"}, "companies", "propertyChange", None),
    ("contact.deletion", {}, "contacts", "deletion", None),
    ("contact.privacyDeletion", {}, "contacts", "privacyDeletion", None),
    ("object.creation", {"objectTypeId": "0-3"}, "deals", "creation", None),
    ("object.creation", {"objectTypeId": "0-2"}, "companies", "creation", None),
    ("object.deletion", {"objectTypeId": "0-1"}, "contacts", "deletion", None),
    ("object.creation", {"objectTypeId": "0-48"}, "calls", "creation", None),
    (
        "object.propertyChange",
        {"objectTypeId": "0-49", "propertyName": "hs_email_status"},
        "emails",
        "propertyChange",
        None,
    ),
    ("object.restore", {"objectTypeId": "0-47"}, "meetings", "restore", None),
    ("object.merge", {"objectTypeId": "0-46", "primaryObjectId": 1, "mergedObjectIds": [2]}, "notes", "merge", None),
    (
        "object.propertyChange",
        {"objectTypeId": "0-27", "propertyName": "hs_task_status"},
        "tasks",
        "propertyChange",
        None,
    ),
    ("object.associationChange", {**ASSOCIATION, "fromObjectTypeId": "0-3"}, "deals", "associationChange", None),
    ("ticket.creation", {}, None, "creation", "subscription type ticket.creation is not tracked"),
    ("object.creation", {"objectTypeId": "0-5"}, None, "creation", "objectTypeId 0-5 is not tracked"),
    ("object.creation", {}, None, "creation", "object.creation without objectTypeId"),
    ("deal.somethingNew", {}, "deals", None, "subscription type deal.somethingNew is not tracked"),
    ("conversation.newMessage", {}, None, None, "subscription type conversation.newMessage is not tracked"),
]
SUBSCRIPTION_IDS = [
    "deal-creation",
    "deal-property-change",
    "deal-deletion",
    "deal-association-without-objectId",
    "deal-merge",
    "deal-restore",
    "company-creation",
    "company-property-change",
    "contact-deletion",
    "contact-privacy-deletion",
    "object-deal",
    "object-company",
    "object-contact",
    "object-call",
    "object-email",
    "object-meeting",
    "object-note",
    "object-task",
    "object-association-from-type",
    "ticket-untracked",
    "object-ticket-untracked",
    "object-without-type-untracked",
    "unknown-kind-untracked",
    "conversation-untracked",
]


@pytest.mark.parametrize(
    ("subscription_type", "fields", "object_type", "kind", "reason"), SUBSCRIPTION_CASES, ids=SUBSCRIPTION_IDS
)
def test_each_subscription_type(
    subscription_type: str, fields: dict[str, Any], object_type: str | None, kind: str | None, reason: str | None
) -> None:
    [event] = parse_hubspot_events(_body(_event(subscription_type, **fields)))
    assert (event.object_type, event.kind, event.untracked_reason) == (object_type, kind, reason)
    assert event.tracked is (reason is None)
    assert event.object_id == 123


def test_a_batch_with_every_subscription_type_parses_in_order() -> None:
    events = [_event(case[0], eventId=index, **case[1]) for index, case in enumerate(SUBSCRIPTION_CASES)]
    parsed = parse_hubspot_events(_body(*events))
    assert [event.event_id for event in parsed] == list(range(len(SUBSCRIPTION_CASES)))
    assert sum(event.tracked for event in parsed) == 19
    assert len({event.dedupe_key for event in parsed}) == len(parsed)


def test_event_fields_are_typed_and_the_raw_object_is_kept() -> None:
    sent = _event("deal.associationChange", **ASSOCIATION, futureField={"x": 1})
    [event] = parse_hubspot_events(_body(sent))
    assert event.raw == sent
    assert (event.from_object_id, event.to_object_id, event.association_removed) == (123, 456, False)
    assert event.association_type == "DEAL_TO_COMPANY"
    assert event.occurred_at == datetime(2025, 11, 25, 18, 0, tzinfo=UTC)
    assert (event.portal_id, event.subscription_id, event.app_id, event.attempt_number) == (62515, 2001, 54321, 0)
    [merge] = parse_hubspot_events(_body(_event("contact.merge", primaryObjectId=1, mergedObjectIds=[2, 3])))
    assert (merge.primary_object_id, merge.merged_object_ids) == (1, [2, 3])


def test_event_type_is_accepted_for_subscription_type() -> None:
    sent = _event("deal.creation")
    sent["eventType"] = sent.pop("subscriptionType")
    [event] = parse_hubspot_events(_body(sent))
    assert event.subscription_type == "deal.creation"


@pytest.mark.parametrize(
    ("value", "text"), [("closedwon", "closedwon"), (5000, "5000"), (True, "true"), (None, None)], ids=str
)
def test_property_value_is_text(value: Any, text: str | None) -> None:
    [event] = parse_hubspot_events(_body(_event("deal.propertyChange", propertyName="amount", propertyValue=value)))
    assert event.property_value == text


def test_repeat_deliveries_share_a_dedupe_key() -> None:
    first = _event("deal.propertyChange", propertyName="dealstage", propertyValue="closedwon")
    retry = {**first, "attemptNumber": 3}
    a, b = parse_hubspot_events(_body(first, retry))
    assert a.dedupe_key == b.dedupe_key == "62515:2001:100:1764093600000:123:deal.propertyChange:dealstage"


@pytest.mark.parametrize(
    "change",
    [
        {"occurredAt": OCCURRED + 1},
        {"objectId": 124},
        {"propertyName": "amount"},
        {"subscriptionId": 2002},
        {"portalId": 62516},
        {"subscriptionType": "deal.creation"},
    ],
    ids=["other-occurredAt", "other-object", "other-property", "other-subscription", "other-portal", "other-type"],
)
def test_an_event_id_collision_gets_different_dedupe_keys(change: dict[str, Any]) -> None:
    first = _event("deal.propertyChange", propertyName="dealstage")
    a, b = parse_hubspot_events(_body(first, {**first, **change}))
    assert a.event_id == b.event_id
    assert a.dedupe_key != b.dedupe_key


def test_at_most_100_events() -> None:
    assert len(parse_hubspot_events(_body(*[_event("deal.creation", eventId=n) for n in range(100)]))) == 100
    with pytest.raises(PayloadError, match="101 events in one request, at most 100"):
        parse_hubspot_events(_body(*[_event("deal.creation", eventId=n) for n in range(101)]))


def _without(event: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {key: value for key, value in event.items() if key not in keys}


GOOD = _event("deal.creation")


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"[{", "not JSON: Expecting property name enclosed in double quotes at line 1 column 3"),
        (b"\xff\xfe[", "not JSON"),
        (b"", "not JSON: Expecting value at line 1 column 1"),
        (json.dumps(GOOD).encode(), "expected a JSON array of events, got an object"),
        (b"null", "expected a JSON array of events, got null"),
        (_body(GOOD, GOOD, GOOD), None),
        (json.dumps([GOOD, 42]).encode(), "event 1: expected an object, got a number"),
        (_body(GOOD, GOOD, GOOD, _without(GOOD, "occurredAt")), "event 3: occurredAt missing"),
        (_body(_without(GOOD, "subscriptionType")), "event 0: subscriptionType missing"),
        (_body(_without(GOOD, "objectId")), "event 0: objectId missing"),
        (_body(_without(GOOD, "eventId", "portalId")), "event 0: eventId missing (and 1 more)"),
        (_body({**GOOD, "eventId": "abc"}), "event 0: eventId: Input should be a valid integer"),
        (_body({**GOOD, "occurredAt": 1.5}), "event 0: occurredAt: Input should be a valid integer"),
        (_body({**GOOD, "mergedObjectIds": [1, "x"]}), "event 0: mergedObjectIds[1]: Input should be a valid integer"),
    ],
    ids=[
        "truncated-json",
        "not-utf8",
        "empty-body",
        "object-not-array",
        "null",
        "three-good-events",
        "event-not-an-object",
        "occurredAt-missing",
        "subscriptionType-missing",
        "objectId-and-fromObjectId-missing",
        "two-problems",
        "eventId-not-a-number",
        "occurredAt-fraction",
        "bad-list-item",
    ],
)
def test_malformed_batches(body: bytes, reason: str | None) -> None:
    if reason is None:
        assert len(parse_hubspot_events(body)) == 3
        return
    with pytest.raises(PayloadError) as caught:
        parse_hubspot_events(body)
    assert caught.value.reason.startswith(reason)


def test_the_largest_values_fit_their_columns() -> None:
    biggest = _event(
        "deal.propertyChange" + "x" * 61, eventId=MAX_INT64, subscriptionId=MAX_INT64, portalId=MAX_INT64,
        objectId=MAX_INT64, occurredAt=MAX_OCCURRED_AT_MS, attemptNumber=MAX_INT64, propertyName="p" * 200,
    )  # fmt: skip
    [event] = parse_hubspot_events(_body(biggest))
    assert len(event.dedupe_key) <= 400  # webhook_event.dedupe_key
    assert event.occurred_at == datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC)
    [as_float] = parse_hubspot_events(_body({**GOOD, "occurredAt": 1.79e12}))  # a number without a fraction is taken
    assert as_float.occurred_at_ms == 1_790_000_000_000


def _raw_event(**replacements: str) -> bytes:
    """A batch of GOOD whose values are given as raw JSON text (what json.dumps cannot write: 1e30, NaN...)."""
    text = json.dumps(GOOD)
    for key, raw in replacements.items():
        text = text.replace(f'"{key}": {json.dumps(GOOD[key])}', f'"{key}": {raw}')
    return f"[{text}]".encode()


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (_raw_event(occurredAt="1e30"), "event 0: occurredAt: Value error, 1e+30 is out of range (0 to 2534023007999"),
        (_raw_event(occurredAt="1e17"), "event 0: occurredAt: Value error, 1e+17 is out of range (0 to 2534023007999"),
        (_raw_event(occurredAt=str(MAX_OCCURRED_AT_MS + 1)), "event 0: occurredAt: Input should be less than or eq"),
        (_raw_event(eventId=str(2**70)), "event 0: eventId: Input should be less than or equal to 922337203685477580"),
        (_raw_event(objectId="-1"), "event 0: objectId: Input should be greater than or equal to 0"),
        (_raw_event(portalId="true"), "event 0: portalId: Value error, expected an integer, got a boolean"),
        (_raw_event(occurredAt="1e999"), "event 0: occurredAt: a number too large for a float"),
        (_raw_event(occurredAt="NaN"), "not JSON: NaN is not a number JSON allows"),
        (_raw_event(objectId="-Infinity"), "not JSON: -Infinity is not a number JSON allows"),
        (_raw_event(eventId="9" * 5000), "not JSON okrsync accepts: an integer of more than 100 digits"),
        (_raw_event(changeSource="9" * 200), "event 0: changeSource: an integer of more than 100 digits"),
        (_nested(100_000).encode(), f"not JSON okrsync accepts: nested deeper than {MAX_JSON_DEPTH} levels"),
        (_raw_event(changeSource=_nested(100_000)), "not JSON okrsync accepts: nested deeper than"),
        (
            _body(GOOD, GOOD, {**GOOD, "propertyValue": json.loads(_nested(40))}),
            "event 2: propertyValue[0][0]",  # … down to the level past the limit
        ),
        (_body(GOOD, {**GOOD, "propertyValue": "a\x00b"}), "event 1: propertyValue: contains a NUL character"),
        (_raw_event(changeSource='"\\ud800"'), "event 0: changeSource: contains an unpaired surrogate"),
        (
            _raw_event(changeSource='"x"').replace(b'"x"', b'"\xed\xa0\x80"'),
            "event 0: changeSource: contains an unpaired surrogate",
        ),
        (_body({**GOOD, "future\x00": 1}), "event 0: a key contains a NUL character"),
        (_body({**GOOD, "propertyName": "p" * 201}), "event 0: propertyName: String should have at most 200 char"),
        (_body({**GOOD, "subscriptionType": "d" * 81}), "event 0: subscriptionType: String should have at most 80 "),
    ],
    ids=[
        "occurredAt-1e30",
        "occurredAt-1e17-past-timedelta",
        "occurredAt-after-9999",
        "eventId-over-64-bits",
        "objectId-negative",
        "portalId-boolean",
        "float-overflow",
        "nan",
        "minus-infinity",
        "5000-digit-integer",
        "200-digit-integer",
        "nested-100000-deep",
        "nested-100000-deep-in-an-event",
        "nested-40-deep-in-an-event",
        "nul-in-a-string",
        "escaped-lone-surrogate",
        "utf8-encoded-surrogate",
        "nul-in-a-key",
        "property-name-too-long",
        "subscription-type-too-long",
    ],
)
def test_values_that_cannot_be_stored_are_refused_with_where(body: bytes, reason: str) -> None:
    with pytest.raises(PayloadError) as caught:
        parse_hubspot_events(body)
    assert caught.value.reason.startswith(reason), caught.value.reason
    assert len(caught.value.reason) < 400  # a message never echoes the input at length


# --- Salesforce Outbound Messages -----------------------------------------------------------------------------------

# Shaped like a message Salesforce sent (www.mikesimonds.com/95-using-salesforce-outbound-soap-messages-php-post361,
# same envelope, namespaces, nil SessionId and per-sObject xmlns:sf), with an Opportunity and fictitious ids.
SESSION = '<SessionId xsi:nil="true"/>'


def _notification(notification_id: str, opportunity_id: str, stage: str) -> str:
    return f"""
   <Notification>
    <Id>{notification_id}</Id>
    <sObject xsi:type="sf:Opportunity" xmlns:sf="urn:sobject.enterprise.soap.sforce.com">
     <sf:Id>{opportunity_id}</sf:Id>
     <sf:Amount>125000.0</sf:Amount>
     <sf:CloseDate>2026-12-15</sf:CloseDate>
     <sf:Name>Acme - Platform renewal &amp; expansion</sf:Name>
     <sf:NextStep xsi:nil="true"/>
     <sf:OwnerId>0055e000001AbCdAAK</sf:OwnerId>
     <sf:StageName>{stage}</sf:StageName>
    </sObject>
   </Notification>"""


def _message(
    *notifications: str, session: str = SESSION, namespace: str = OUTBOUND_NS, envelope: str = SOAP_ENV_NS
) -> bytes:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="{envelope}" xmlns:xsd="http://www.w3.org/2001/XMLSchema"
 xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
 <soapenv:Body>
  <notifications xmlns="{namespace}">
   <OrganizationId>00D5e000000AbCdEAK</OrganizationId>
   <ActionId>04k5e000000XyZ1AAK</ActionId>
   {session}
   <EnterpriseUrl>https://acme.my.salesforce.com/services/Soap/c/61.0/00D5e000000AbCd</EnterpriseUrl>
   <PartnerUrl>https://acme.my.salesforce.com/services/Soap/u/61.0/00D5e000000AbCd</PartnerUrl>{"".join(notifications)}
  </notifications>
 </soapenv:Body>
</soapenv:Envelope>""".encode()


SAMPLE = _message(
    _notification("04l5e00000A1b2cAAB", "0065e00000Qw3rTAAR", "Negotiation/Review"),
    _notification("04l5e00000A1b2dAAB", "0065e00000Qw3rUAAR", "Closed Won"),
)


def test_a_message_with_two_notifications() -> None:
    message = parse_outbound_message(SAMPLE)
    assert message.organization_id == "00D5e000000AbCdEAK"
    assert message.action_id == "04k5e000000XyZ1AAK"
    assert message.session_id is None
    assert message.enterprise_url.endswith("/services/Soap/c/61.0/00D5e000000AbCd")
    assert message.partner_url.endswith("/services/Soap/u/61.0/00D5e000000AbCd")
    first, second = message.notifications
    assert (first.notification_id, first.sobject_type, first.record_id) == (
        "04l5e00000A1b2cAAB",
        "Opportunity",
        "0065e00000Qw3rTAAR",
    )
    assert first.fields == {
        "Id": "0065e00000Qw3rTAAR",
        "Amount": "125000.0",
        "CloseDate": "2026-12-15",
        "Name": "Acme - Platform renewal & expansion",
        "NextStep": None,
        "OwnerId": "0055e000001AbCdAAK",
        "StageName": "Negotiation/Review",
    }
    assert second.fields["StageName"] == "Closed Won"


def test_a_session_id_when_sent() -> None:
    message = parse_outbound_message(
        _message(_notification("04l5e00000A1b2c", "0065e00000Qw3rT", "x"), session="<SessionId>00D!AQ4A</SessionId>")
    )
    assert message.session_id == "00D!AQ4A"


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body>&lol4;</soapenv:Body>
</soapenv:Envelope>"""


@pytest.mark.parametrize(
    "body",
    [
        SAMPLE.replace(
            b"<soapenv:Envelope", b'<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>\n<soapenv:Envelope'
        ).replace(b"<ActionId>04k5e000000XyZ1AAK", b"<ActionId>&e;"),
        BILLION_LAUGHS,
        SAMPLE.replace(
            b"<soapenv:Envelope",
            b'<!DOCTYPE soapenv:Envelope SYSTEM "http://attacker.example/x.dtd">\n<soapenv:Envelope',
        ),
        SAMPLE.replace(b"<soapenv:Envelope", b"<!DOCTYPE soapenv:Envelope>\n<soapenv:Envelope"),
    ],
    ids=["xxe-file", "billion-laughs", "external-dtd", "harmless-dtd"],
)
def test_hostile_xml_is_refused(body: bytes) -> None:
    with pytest.raises(PayloadError, match="XML with a DTD is refused"):
        parse_outbound_message(body)


ONE = _notification("04l5e00000A1b2cAAB", "0065e00000Qw3rTAAR", "Prospecting")


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"not xml", "not well-formed XML"),
        (SAMPLE[:-30], "not well-formed XML"),
        (
            _message(ONE, namespace="http://soap.sforce.com/2005/09/inbound"),
            "SOAP Body holds {http://soap.sforce.com/2005/09/inbound}notifications, expected notifications in namespace http://soap.sforce.com/2005/09/outbound",
        ),
        (
            _message(ONE, envelope="http://www.w3.org/2003/05/soap-envelope"),
            "root element is {http://www.w3.org/2003/05/soap-envelope}Envelope, expected Envelope",
        ),
        (
            ONE.replace("urn:sobject.enterprise", "urn:sobject.partner"),
            "Notification 0: field Id is in namespace 'urn:sobject.partner.soap.sforce.com'",
        ),
        (_message(), "no Notification in the message"),
        (_message(ONE).replace(b"<OrganizationId>00D5e000000AbCdEAK</OrganizationId>", b""), "OrganizationId missing"),
        (_message(ONE).replace(b"<PartnerUrl>", b"<PartnerUrl>\n  "), None),
        (_message(ONE, ONE.replace("<sf:Id>0065e00000Qw3rTAAR</sf:Id>", "")), "Notification 1: sObject Id missing"),
        (_message(ONE.replace(' xsi:type="sf:Opportunity"', "")), "Notification 0: sObject has no xsi:type"),
        (_message(ONE.replace("<Id>04l5e00000A1b2cAAB</Id>", "")), "Notification 0: Id missing"),
        (
            b'<?xml version="1.0"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"/>',
            "SOAP Body missing",
        ),
    ],
    ids=[
        "not-xml",
        "truncated",
        "wrong-outbound-namespace",
        "soap-1.2-envelope",
        "partner-field-namespace",
        "no-notification",
        "organization-missing",
        "padded-url-is-fine",
        "record-id-missing",
        "no-xsi-type",
        "notification-id-missing",
        "no-body",
    ],
)
def test_malformed_messages(body: bytes | str, reason: str | None) -> None:
    raw = body if isinstance(body, bytes) else _message(body)
    if reason is None:
        assert parse_outbound_message(raw).partner_url.startswith("https://")
        return
    with pytest.raises(PayloadError) as caught:
        parse_outbound_message(raw)
    assert caught.value.reason.startswith(reason)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (_message(ONE.replace("<Id>04l5e00000A1b2cAAB</Id>", "<Id>04l5e00000A1b2cAAB-x</Id>")),
         "Notification 0: Id is not a Salesforce id"),
        (_message(ONE.replace("<Id>04l5e00000A1b2cAAB</Id>", f"<Id>{'0' * 1000}</Id>")),
         "Notification 0: Id is not a Salesforce id"),
        (_message(ONE.replace("<sf:Id>0065e00000Qw3rTAAR</sf:Id>", "<sf:Id>006 x</sf:Id>")),
         "Notification 0: sObject Id is not a Salesforce id"),
        (_message(ONE.replace('xsi:type="sf:Opportunity"', f'xsi:type="sf:{"O" * 65}"')),
         "Notification 0: sObject xsi:type is not an object's API name"),
        (_message(ONE.replace('xsi:type="sf:Opportunity"', 'xsi:type="sf:Opportunity; DROP"')),
         "Notification 0: sObject xsi:type is not an object's API name"),
        (_message(ONE.replace("<sf:StageName>Prospecting</sf:StageName>",
                              "<sf:StageName>" + "<sf:x>" * 100_000 + "</sf:x>" * 100_000 + "</sf:StageName>")),
         "Notification 0: field StageName holds elements, expected a simple value"),
    ],
    ids=["notification-id-with-suffix", "notification-id-1000-chars", "record-id-malformed", "type-too-long",
         "type-not-a-name", "field-nested-100000-deep"],
)  # fmt: skip
def test_notifications_are_values_okrsync_can_store(body: bytes, reason: str) -> None:
    with pytest.raises(PayloadError) as caught:
        parse_outbound_message(body)
    assert caught.value.reason.startswith(reason), caught.value.reason


def test_deep_xml_outside_the_notifications_costs_nothing() -> None:
    deep = "<x>" * 100_000 + "</x>" * 100_000
    body = _message(ONE).replace(b"<soapenv:Body>", f"<soapenv:Header>{deep}</soapenv:Header><soapenv:Body>".encode())
    assert len(parse_outbound_message(body).notifications) == 1


def test_the_organization_is_checked_before_the_notifications() -> None:
    seen: list[str] = []

    def refuse(org: str) -> None:
        seen.append(org)
        raise LookupError("not this org")

    broken = _message(ONE.replace("<Id>04l5e00000A1b2cAAB</Id>", "<Id>x</Id>"))
    with pytest.raises(LookupError, match="not this org"):
        parse_outbound_message(broken, check_organization=refuse)
    assert seen == ["00D5e000000AbCdEAK"]
    with pytest.raises(PayloadError, match="Notification 0: Id is not a Salesforce id"):
        parse_outbound_message(broken, check_organization=seen.append)


def test_at_most_100_notifications() -> None:
    assert len(parse_outbound_message(_message(*[ONE] * 100)).notifications) == 100
    with pytest.raises(PayloadError, match="101 notifications in one message, at most 100"):
        parse_outbound_message(_message(*[ONE] * 101))


def test_the_ack_is_what_salesforce_expects() -> None:
    root = ElementTree.fromstring(outbound_ack())
    ack = root.find(f"{{{SOAP_ENV_NS}}}Body/{{{OUTBOUND_NS}}}notificationsResponse/{{{OUTBOUND_NS}}}Ack")
    assert ack is not None and ack.text == "true"
    assert outbound_ack().startswith(b'<?xml version="1.0" encoding="UTF-8"?>')


@pytest.mark.parametrize(
    ("server", "code"), [(False, "soapenv:Client"), (True, "soapenv:Server")], ids=["client", "server"]
)
def test_a_soap_fault_escapes_its_reason(server: bool, code: str) -> None:
    root = ElementTree.fromstring(soap_fault('org <00D> & "x" refused', server=server))
    fault = root.find(f"{{{SOAP_ENV_NS}}}Body/{{{SOAP_ENV_NS}}}Fault")
    assert fault is not None
    assert fault.findtext("faultcode") == code
    assert fault.findtext("faultstring") == 'org <00D> & "x" refused'


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("00D5e000000AbCd", "00D5e000000AbCdEAK", True),
        ("00D5e000000AbCdEAK", "00D5e000000AbCdEAK", True),
        ("00D5e000000AbCd", "00D5e000000ABCD", False),
        ("00D5e000000AbCdEAK", "00D5e000000AbCe", False),
        ("00D5e000000AbC", "00D5e000000AbCdEAK", False),
        ("00D5e000000AbCdZZZ-anything", "00D5e000000AbCd", False),
        ("00D5e000000AbCdEAK", "00D5e000000AbCdZZZ", False),
        ("00D5e000000AbCdZZZ", "00D5e000000AbCd", True),
        ("00D5e000000AbCd ", "00D5e000000AbCd", False),
        ("00D5e000000AbCd\n", "00D5e000000AbCd", False),
        ("00D5e000000AbCé", "00D5e000000AbCé", False),
        ("00D5e000000AbCd", "00d5e000000abcd", False),
    ],
    ids=["15-vs-18", "18-vs-18", "case-matters", "different", "too-short", "18-plus-anything", "other-suffix",
         "suffix-not-recomputed", "trailing-space", "trailing-newline", "non-ascii", "lower-cased"],
)  # fmt: skip
def test_salesforce_ids_match(a: str, b: str, same: bool) -> None:
    assert salesforce_ids_match(a, b) is same


# --- Salesforce Flow callout ----------------------------------------------------------------------------------------

ORG = "00D5e000000AbCdEAK"


def _flow_event(**fields: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "id": "evt-0001",
        "sobject": "Opportunity",
        "recordId": "0065e00000Qw3rTAAR",
        "changeType": "update",
        "occurredAt": "2026-11-25T19:00:00.000+01:00",
    }
    event.update(fields)
    return {key: value for key, value in event.items() if value is not None}


def _flow(*events: dict[str, Any], org: Any = ORG) -> bytes:
    body: dict[str, Any] = {"events": list(events)}
    if org is not None:
        body["organizationId"] = org
    return json.dumps(body).encode()


def test_flow_events() -> None:
    events = parse_flow_events(
        _flow(
            _flow_event(),
            _flow_event(id="evt-0002", sobject="Task", recordId="00T5e00000AbCdE", changeType="create"),
            _flow_event(id="evt-0003", sobject="Custom_Object__c", changeType="delete", occurredAt="2026-11-25T18:00Z"),
        )
    )
    first, task, custom = events
    assert (first.organization_id, first.sobject, first.record_id, first.change_type) == (
        ORG,
        "Opportunity",
        "0065e00000Qw3rTAAR",
        "update",
    )
    assert first.occurred_at == datetime(2026, 11, 25, 18, 0, tzinfo=UTC)
    assert first.occurred_at.tzinfo is UTC
    assert first.dedupe_key == f"{ORG}:evt-0001"
    assert (task.sobject, task.record_id, task.change_type) == ("Task", "00T5e00000AbCdE", "create")
    assert (custom.sobject, custom.change_type, custom.occurred_at) == (
        "Custom_Object__c",
        "delete",
        datetime(2026, 11, 25, 18, 0, tzinfo=UTC),
    )
    assert parse_flow_events(_flow()) == []


def test_at_most_200_flow_events() -> None:
    assert len(parse_flow_events(_flow(*[_flow_event(id=f"e{n}") for n in range(200)]))) == 200
    with pytest.raises(PayloadError, match="events: 201 events in one request, at most 200"):
        parse_flow_events(_flow(*[_flow_event(id=f"e{n}") for n in range(201)]))


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{", "not JSON"),
        (b"[]", "expected a JSON object, got an array"),
        (_flow(_flow_event(), org=None), "organizationId missing"),
        (_flow(_flow_event(), org="acme"), "organizationId: String should match pattern"),
        (json.dumps({"organizationId": ORG}).encode(), "events missing"),
        (json.dumps({"organizationId": ORG, "events": {}}).encode(), "events: expected an array, got an object"),
        (json.dumps({"organizationId": ORG, "events": ["x"]}).encode(), "events[0]: expected an object, got a string"),
        (_flow(_flow_event(), _flow_event(recordId=None)), "events[1].recordId missing"),
        (_flow(_flow_event(recordId="006-not-an-id")), "events[0].recordId: String should match pattern"),
        (
            _flow(_flow_event(changeType="upsert")),
            "events[0].changeType: Input should be 'create', 'update' or 'delete'",
        ),
        (_flow(_flow_event(sobject="Opportunity; DROP")), "events[0].sobject: String should match pattern"),
        (_flow(_flow_event(id="")), "events[0].id: String should have at least 1 character"),
        (
            _flow(_flow_event(occurredAt="2026-11-25T18:00:00")),
            "events[0].occurredAt: Value error, ISO 8601 datetime without an offset",
        ),
        (_flow(_flow_event(occurredAt=1764093600)), "events[0].occurredAt: Value error, expected an ISO 8601 string"),
        (_flow(_flow_event(occurredAt="yesterday")), "events[0].occurredAt: Value error, Invalid isoformat string"),
        (
            _flow(_flow_event(occurredAt="0001-01-01T00:00:00+01:00")),
            "events[0].occurredAt: Value error, datetime out of range in UTC",
        ),
        (_flow(_flow_event(sobject="O" * 65)), "events[0].sobject: String should match pattern"),
        (_flow(_flow_event(id="evt\x00")), "events[0].id: contains a NUL character"),
        (_flow(_flow_event(extra=json.loads("[" * 40 + "]" * 40))), "events[0].extra[0][0]"),
        (
            b'{"organizationId": "' + ORG.encode() + b'", "events": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
            "not JSON okrsync accepts: nested deeper than",
        ),
        (
            _flow(_flow_event()).replace(b'"update"', b"1e999"),
            "events[0].changeType: a number too large for a float",
        ),
        (_flow(_flow_event()).replace(b'"update"', b"NaN"), "not JSON: NaN is not a number JSON allows"),
        (_flow(_flow_event(), org=123), "organizationId: Input should be a valid string"),
        (_flow(_flow_event(recordId=2**70)), "events[0].recordId: Input should be a valid string"),
    ],
    ids=[
        "not-json",
        "array",
        "organization-missing",
        "organization-malformed",
        "events-missing",
        "events-not-array",
        "event-not-object",
        "record-id-missing",
        "record-id-malformed",
        "unknown-change-type",
        "sobject-not-an-api-name",
        "empty-id",
        "naive-datetime",
        "unix-number",
        "not-a-datetime",
        "datetime-out-of-range",
        "sobject-too-long",
        "nul-in-id",
        "nested-40-deep",
        "nested-100000-deep",
        "float-overflow",
        "nan",
        "organization-a-number",
        "record-id-a-huge-number",
    ],
)
def test_malformed_flow_bodies(body: bytes, reason: str) -> None:
    with pytest.raises(PayloadError) as caught:
        parse_flow_events(body)
    assert caught.value.reason.startswith(reason)
