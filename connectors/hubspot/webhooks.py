"""HubSpot's webhooks and app-card requests: signature v3, the event batch, and which connection each is for.

Pure: no FastAPI, no database. ``RECEIVER`` is the ``POST /webhooks/hubspot`` route's receiver
(``connectors.webhooks.Receiver``); ``card_connections`` serves the app card (``GET /api/v1/hubspot/card``).

Request signature v3 (https://developers.hubspot.com/docs/api/webhooks/validating-requests,
https://developers.hubspot.com/changelog/introducing-version-3-of-webhook-signatures):

- headers ``X-HubSpot-Signature-v3`` (the signature) and ``X-HubSpot-Request-Timestamp`` (Unix milliseconds);
- signed string = method + URI + body + timestamp, UTF-8; signature = base64(HMAC-SHA256(app client secret, string));
- the URI is the full URL HubSpot called (scheme, host, path, query) with these escapes decoded:
  %3A %2F %3F %40 %21 %24 %27 %28 %29 %2A %2C %3B, and no others;
- a timestamp older than 5 minutes is refused. HubSpot's rule is only about age; we also refuse one more than
  5 minutes in the future, because a far-future timestamp would make a captured request replayable for longer;
- the signature is the Base64 (with padding) of a 32-byte digest: exactly 44 ASCII characters. Anything else (a
  trailing space or NBSP, another alphabet) is refused as malformed, never trimmed: the header is taken as sent or
  not at all.

hubspot-api-client's ``Signature.is_valid(..., signature_version="v3")`` computes the same HMAC, but it does not
decode the URI, it raises (rather than returns False) on a stale timestamp, and it accepts any future timestamp.

The batch (https://developers.hubspot.com/docs/api/webhooks): a JSON array of at most 100 events. Each has
``eventId, subscriptionId, portalId, occurredAt`` (Unix ms), ``subscriptionType`` (some samples say ``eventType``)
and ``objectId`` (absent from some association events: ``fromObjectId`` stands in), plus optional ``attemptNumber,
changeSource, propertyName, propertyValue, appId``, association fields (``associationType, fromObjectId, toObjectId,
associationRemoved``), merge fields (``primaryObjectId, mergedObjectIds``) and, for the generic ``object.*`` types,
``objectTypeId`` (https://developers.hubspot.com/changelog/public-beta-generic-webhook-subscriptions; for
``object.associationChange`` we fall back on ``fromObjectTypeId`` — unverified). Deliveries repeat, arrive out of
order, and ``eventId`` alone is not unique, hence ``dedupe_key``. An event okrsync does not track (a ticket, an
unknown subscription type) is kept with ``tracked=False`` and a reason; it does not fail the batch. Integer fields
must be in range (ids are 64-bit, ``occurredAt`` before the year 10000), text fields within their column's length.

Routing, by the event's ``portalId``: an OKRSYNC_CONNECTIONS hubspot entry whose ``hubspot_portal_id`` matches gets
it; any other portal's event goes to the default HubSpot connection (as with one portal: HubSpot only sends what the
app's installs subscribed to, and the default portal's id is not configured). One app client secret verifies every
portal's requests: a public app installed in several portals signs them all with its one secret.

The app card is stricter, because it answers with a record: ``portalId`` must be an extra connection's
``hubspot_portal_id`` or the portal the default connection's sync read from the account details API (stored with the
connection as its record pages, ``https://<uiDomain>/contacts/<portalId>``). Any other portal — one the app is
installed in but okrsync does not sync, or the default one before its first sync — is ``UnknownPortalError`` (404),
never the default portal's record with the same id.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

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

from connectors.webhooks import (
    MAX_AGE_MS,
    Event,
    Inbound,
    PayloadError,
    Received,
    Refused,
    Routes,
    SignatureError,
    Verified,
    describe,
    json_kind,
    json_path,
    load_json,
    public_uri,
    refuse_unstorable,
    whole_number,
)

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
MAX_INT64 = 2**63 - 1  # HubSpot's ids are Java longs
MAX_OCCURRED_AT_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z, the last instant a datetime can hold
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_RECORD_PAGES_PORTAL = re.compile(r"/contacts/([0-9]{1,19})/?$")

HubSpotId = Annotated[int, BeforeValidator(whole_number(MAX_INT64)), Field(ge=0, le=MAX_INT64)]
UnixMs = Annotated[int, BeforeValidator(whole_number(MAX_OCCURRED_AT_MS)), Field(ge=0, le=MAX_OCCURRED_AT_MS)]


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
    index, rest = path[0], json_path(path[1:])
    return f"event {index}: {rest}: " if rest else f"event {index}: "


def parse_hubspot_events(body: bytes, *, max_events: int = 100) -> list[HubSpotEvent]:
    """Parse a HubSpot webhook batch; raise ``PayloadError`` for bad JSON, a wrong shape or an invalid event.

    Event positions in messages are 0-based indexes into the array ("event 3" is the fourth).
    """
    data = load_json(body)
    if not isinstance(data, list):
        raise PayloadError(f"expected a JSON array of events, got {json_kind(data)}")
    if len(data) > max_events:
        raise PayloadError(f"{len(data)} events in one request, at most {max_events}")
    refuse_unstorable(data, _hubspot_where)
    events: list[HubSpotEvent] = []
    for index, item in enumerate(data):
        if not isinstance(item, dict):
            raise PayloadError(f"event {index}: expected an object, got {json_kind(item)}")
        try:
            events.append(HubSpotEvent.model_validate(item))
        except ValidationError as exc:
            raise PayloadError(f"event {index}: {describe(exc)}") from None
    return events


# --- signature v3 --------------------------------------------------------------------------------------------------


HUBSPOT_SIGNATURE_HEADER = "X-HubSpot-Signature-v3"
HUBSPOT_TIMESTAMP_HEADER = "X-HubSpot-Request-Timestamp"

# Base64 of 32 bytes: 43 characters and one "=" of padding
_HUBSPOT_SIGNATURE = re.compile(r"[A-Za-z0-9+/]{43}=")
_TIMESTAMP_MS = re.compile(r"[0-9]{1,15}")  # ASCII digits only; 15 reach the year 33658, and int() stays cheap

# Only these twelve escapes, hex case-insensitive. One pass, so "%253A" stays as it is (it is "%25" + "3A").
_HUBSPOT_DECODED_ESCAPES = re.compile(r"%(3A|2F|3F|40|21|24|27|28|29|2A|2C|3B)", re.IGNORECASE)


def decode_hubspot_uri(uri: str) -> str:
    """Decode the twelve escapes HubSpot decodes before signing; every other escape is left as sent.

    Idempotent: the decoded characters are never ``%`` or hex digits, so no new escape can appear.
    """
    return _HUBSPOT_DECODED_ESCAPES.sub(lambda match: chr(int(match.group(1), 16)), uri)


def hubspot_signed_uri(public_base_url: str, path: str, query: str) -> str:
    """The URI HubSpot signed: ``connectors.webhooks.public_uri`` with HubSpot's twelve escapes decoded."""
    return decode_hubspot_uri(public_uri(public_base_url, path, query))


def _hubspot_v3_message(*, method: str, uri: str, body: bytes, timestamp: str) -> bytes:
    # The MAC over the bytes equals the MAC over the UTF-8 encoding of the decoded body for every body HubSpot can
    # send (it sends UTF-8 JSON), without decoding and re-encoding up to a megabyte first.
    return method.upper().encode() + decode_hubspot_uri(uri).encode() + body + timestamp.encode()


def _hubspot_v3_digest(*, client_secret: str, message: bytes) -> str:
    digest = hmac.new(client_secret.encode(), message, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def sign_hubspot_v3(*, client_secret: str, method: str, uri: str, body: bytes, timestamp: str | int) -> str:
    """The ``X-HubSpot-Signature-v3`` value HubSpot would send (for tests, the benchmark and the sandbox)."""
    message = _hubspot_v3_message(method=method, uri=uri, body=body, timestamp=str(timestamp))
    return _hubspot_v3_digest(client_secret=client_secret, message=message)


def verify_hubspot_v3(
    *,
    client_secret: str,
    method: str,
    uri: str,
    body: bytes,
    timestamp: str | None,
    signature: str | None,
    now_ms: int,
    max_age_ms: int = MAX_AGE_MS,
) -> Verified:
    """Raise ``SignatureError`` unless ``signature`` is HubSpot's v3 signature of this request, made recently.

    ``uri`` may be raw or already decoded with ``hubspot_signed_uri`` (decoding is idempotent). ``timestamp`` and
    ``signature`` are the header values, None when absent; ``now_ms`` is the receiver's clock in Unix milliseconds.
    """
    if not signature:
        raise SignatureError("missing signature header")
    if not timestamp:
        raise SignatureError("missing timestamp header")
    if not _TIMESTAMP_MS.fullmatch(timestamp):
        raise SignatureError("malformed timestamp header")
    if not _HUBSPOT_SIGNATURE.fullmatch(signature):
        raise SignatureError("malformed signature header")
    sent_ms = int(timestamp)
    if now_ms - sent_ms > max_age_ms:
        raise SignatureError("stale timestamp")
    if sent_ms - now_ms > max_age_ms:
        raise SignatureError("timestamp in the future")
    message = _hubspot_v3_message(method=method, uri=uri, body=body, timestamp=timestamp)
    expected = _hubspot_v3_digest(client_secret=client_secret, message=message)
    if not hmac.compare_digest(expected.encode(), signature.encode()):
        raise SignatureError("signature mismatch")
    return Verified(hashlib.sha256(message).hexdigest(), sent_ms)


def hubspot_v2_signature(*, client_secret: str, method: str, uri: str, body: bytes | str) -> str:
    """HubSpot's legacy v2 signature: hex SHA-256 of secret + method + URI + body (no timestamp, so replayable).

    Kept to check HubSpot's published test vector and to read old logs; do not accept requests with it.
    """
    raw = body if isinstance(body, bytes) else body.encode()
    return hashlib.sha256(client_secret.encode() + method.upper().encode() + uri.encode() + raw).hexdigest()


# --- routing -----------------------------------------------------------------------------------------------------


class UnknownPortalError(Exception):
    """An app-card request from a HubSpot portal no connection is for; the message says what to configure."""


def hubspot_connection(routes: Routes, portal_id: int) -> str | None:
    """The extra connection whose portal id this is, else None (the default HubSpot connection)."""
    for name, portal in routes.extra.items():
        if portal == portal_id:
            return name
    return None


def portal_of_record_pages(record_pages: str | None) -> int | None:
    """The portal id in the record pages a HubSpot sync stored (``https://app.hubspot.com/contacts/145000001``)."""
    found = _RECORD_PAGES_PORTAL.search(record_pages or "")
    return int(found.group(1)) if found else None


def hubspot_card_connections(routes: Routes, portal_id: int, *, record_pages: Mapping[str, str | None]) -> set[str]:
    """The names (as in ``crm_connection.name``) of the HubSpot connections an app card of portal ``portal_id`` may
    read: the extra connection configured with that portal id, else the default connections (every hubspot one that
    is not an extra connection: ``sandbox``, OKRSYNC_CONNECTION_NAME) whose sync learned that portal id.
    ``record_pages``: each HubSpot connection's stored record pages, by name. UnknownPortalError for any other portal.
    """
    routed = hubspot_connection(routes, portal_id)
    if routed is not None:
        return {routed}
    default = {
        name
        for name, pages in record_pages.items()
        if name not in routes.extra and portal_of_record_pages(pages) == portal_id
    }
    if not default:
        raise UnknownPortalError(
            f"HubSpot portal {portal_id} is not connected to this okrsync (an extra portal needs its"
            " hubspot_portal_id in OKRSYNC_CONNECTIONS; the default portal is known after its first sync)"
        )
    return default


# --- the route and the app card ----------------------------------------------------------------------------------


def _not_set_up(routes: Routes, what: str) -> str | None:
    if routes.hooks.hubspot_client_secret is None:
        return f"{what} is not set up: set OKRSYNC_WEBHOOKS__HUBSPOT_CLIENT_SECRET"
    return None


def _verify(inbound: Inbound, routes: Routes) -> Verified:
    try:
        return verify_hubspot_v3(
            client_secret=routes.hooks.hubspot_client_secret.get_secret_value(),
            method=inbound.method,
            uri=inbound.public_uri,
            body=inbound.body,
            timestamp=inbound.headers.get(HUBSPOT_TIMESTAMP_HEADER.lower()),
            signature=inbound.headers.get(HUBSPOT_SIGNATURE_HEADER.lower()),
            now_ms=int(inbound.now * 1000),
        )
    except SignatureError as exc:
        raise Refused(401, f"HubSpot signature refused: {exc}", reason="signature") from None


class HubSpotReceiver:
    name = "hubspot"
    path = "/hubspot"
    source = "hubspot"
    description = "HubSpot webhook batch (CRM subscriptions, up to 100 events)."
    responses: dict[int | str, dict[str, Any]] = {
        400: {"description": "malformed batch"}, 401: {"description": "bad signature"}, 413: {}
    }  # fmt: skip
    replies: Literal["json", "raw"] = "json"
    replay_message = "HubSpot signature refused: this request was already received (replay)"

    def not_set_up(self, routes: Routes) -> str | None:
        return _not_set_up(routes, "HubSpot webhooks")

    def receive(self, inbound: Inbound, routes: Routes) -> Received:
        verified = _verify(inbound, routes)
        try:
            events = parse_hubspot_events(inbound.body)
        except PayloadError as exc:
            raise Refused(400, str(exc), reason="payload") from None
        return Received(
            [
                Event(e.dedupe_key, e.object_type, str(e.object_id), e.kind, e.occurred_at, e.raw,
                      ignored=None if e.tracked else e.untracked_reason,
                      connection=hubspot_connection(routes, e.portal_id))
                for e in events
            ],
            verified,
        )  # fmt: skip


RECEIVER = HubSpotReceiver()


def card_connections(
    inbound: Inbound, routes: Routes, portal_id: int | None, record_pages: Mapping[str, str | None]
) -> set[str]:
    """The connections an app-card request (a signed GET) may read, or ``Refused``: 503 while the app's client
    secret is not set, 401 for a bad signature, 400 without ``portalId``, 404 for a portal okrsync does not sync."""
    problem = _not_set_up(routes, "the HubSpot app")
    if problem is not None:
        raise Refused(503, problem, reason=None)
    _verify(inbound, routes)
    if portal_id is None:
        raise Refused(400, "portalId missing: HubSpot adds it to every app card request", reason=None)
    try:
        return hubspot_card_connections(routes, portal_id, record_pages=record_pages)
    except UnknownPortalError as exc:
        raise Refused(404, str(exc), reason=None) from None
