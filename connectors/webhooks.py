"""Inbound webhooks, the CRM-neutral half: how a CRM's receiver is asked, what it answers, and the checks every body
and every signature goes through. Pure: no FastAPI, no database, no clock (``Inbound.now`` is the receiver's).

The sidecar (``service/webhooks/endpoints.py``) serves one route per ``Receiver`` that a CRM's adapter lists
(``CrmAdapter.receivers``, found in ``connectors/<crm>/webhooks.py``). For each request it reads the body (within
OKRSYNC_WEBHOOKS__MAX_BODY_BYTES), calls ``receive`` and stores what comes back: ``Received.events`` as
``webhook_event`` rows, claiming ``Received.verified`` in the replay guard when the request was signed, and answers
with ``Received.reply`` (or the JSON count of accepted events). A ``Refused`` is answered with its status (and body,
for senders that need one, such as a SOAP fault) and counted under its ``reason``; nothing of it is stored.

What every JSON body must also be, so that whatever is accepted can be stored (PostgreSQL's jsonb and varchar
columns) and nothing a sender controls ends in a 500: JSON without NaN/Infinity, numbers of at most 100 digits that
fit a float, at most ``MAX_JSON_DEPTH`` levels deep (Python's parser would otherwise raise RecursionError somewhere
past 900), no NUL character and no unpaired surrogate in any string or key (``load_json``, ``refuse_unstorable``).

okrsync's own signature (``sign_shared_hmac``/``verify_shared_hmac``, for callouts we write, such as the Salesforce
Flow's; Stripe-style, https://docs.stripe.com/webhooks#verify-manually): header ``X-Okrsync-Signature:
t=<unix seconds>,v1=<hex HMAC-SHA256(shared secret, "<t>." + body)>``; the timestamp is inside the MAC so it cannot be
swapped; 5 minutes tolerance either way; several ``v1=`` entries are allowed so the secret can be rotated without
downtime. The header is ASCII ``key=value`` entries separated by commas (spaces around an entry are allowed), in any
order: exactly one ``t`` (1 to 12 digits), at least one ``v1`` (64 hex digits, either case), and entries of other
signature schemes ``v<n>`` (``v0``, a future ``v2``) are ignored, as Stripe does, so the scheme can evolve; any other
key, an empty entry or a second ``t`` is malformed.

A valid signature returns ``Verified``: the SHA-256 of exactly the bytes the MAC covers and the signed time. Every
copy of one signed request has the same digest however its headers are written (hex case, order of entries, extra
``v1=``), so the replay guard keys on it, never on the header text.

Errors: ``PayloadError(reason)`` — the body is not what the sender promised (answer 400), the reason says what is
wrong and where ("event 3: occurredAt missing", "events[2].recordId: ..."); ``SignatureError(reason)`` — the request
is not proven to come from the CRM (answer 401, log the reason; never retry, never show the expected value).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

from pydantic import ValidationError

WEBHOOKS_PREFIX = "/webhooks"  # the sidecar serves a receiver at POST {WEBHOOKS_PREFIX}{Receiver.path}
MAX_JSON_DEPTH = 32  # HubSpot's events are 3 levels deep, the Flow callout's 3
MAX_JSON_INT_DIGITS = 100
MAX_AGE_MS = 300_000  # a signed request is accepted for 5 minutes either side of its timestamp
SHARED_HMAC_HEADER = "X-Okrsync-Signature"
SHARED_HMAC_TOLERANCE_S = 300

_TIMESTAMP_S = re.compile(r"[0-9]{1,12}")
_HEX_MAC = re.compile(r"[0-9a-fA-F]{64}")
_OTHER_SCHEME = re.compile(r"v[0-9]+")
_SHARED_HMAC_ENTRY_VALUE = re.compile(r"[!-~]+")  # printable ASCII, no space, no comma (split on it)


# --- what a receiver is given and answers -----------------------------------------------------------------------


@dataclass(frozen=True)
class Inbound:
    """One webhook request as the sidecar received it."""

    method: str
    public_uri: str  # the URL the sender called: OKRSYNC_WEBHOOKS__PUBLIC_BASE_URL + the raw path + the query
    headers: Mapping[str, str]  # case-insensitive (the server's header mapping)
    body: bytes
    now: float  # the receiver's clock, Unix seconds


@dataclass(frozen=True)
class Routes:
    """What verifies and routes one CRM's webhooks: the webhook settings section (OKRSYNC_WEBHOOKS__…: secrets, the
    default org's id) and the CRM's extra connections (OKRSYNC_CONNECTIONS), name → the value of its adapter's
    ``routing_setting`` (None where it is not set)."""

    hooks: Any
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Event:
    """One ``webhook_event`` row to store. ``ignored``: why okrsync does not track it (kept, never processed);
    ``connection`` None: the CRM's default connection."""

    dedupe_key: str
    object_type: str | None
    object_id: str | None
    kind: str | None
    occurred_at: datetime | None
    payload: dict[str, Any]
    ignored: str | None = None
    connection: str | None = None


@dataclass(frozen=True)
class Received:
    """What a receiver accepted. ``verified``: the proof of a signed request (its digest is claimed in the replay
    guard); ``reply``: the body the sender expects (None: the JSON count of accepted, duplicate and ignored events)."""

    events: list[Event]
    verified: Verified | None = None
    reply: bytes | None = None
    media_type: str = "application/json"


class Refused(Exception):
    """The request is refused: answer ``status`` with ``message`` (or with ``body`` when the sender needs its own
    format, such as a SOAP fault); ``reason`` labels the refusal in ``okrsync_webhooks_rejected_total`` (None: not a
    refusal of the request but of okrsync's set-up, not counted)."""

    def __init__(
        self, status: int, message: str, *, reason: str | None, body: bytes | None = None, media_type: str = ""
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.reason, self.body, self.media_type = status, message, reason, body, media_type


class Receiver(Protocol):
    """One inbound route of a CRM, ``POST /webhooks{path}``."""

    name: str  # the route's name (its OpenAPI operation id starts with it): "hubspot", "salesforce_flow"
    path: str  # under /webhooks: "/hubspot"
    source: str  # the label of its metrics and the replay guard's key: "hubspot", "salesforce_flow"
    description: str  # the OpenAPI description
    responses: dict[int | str, dict[str, Any]]  # the OpenAPI responses besides the JSON 200
    replies: Literal["json", "raw"]  # json: the count of accepted events; raw: ``Received.reply`` as it is
    replay_message: str  # the 401's message when a signed request was accepted before

    def not_set_up(self, routes: Routes) -> str | None:
        """What to set before this route can accept anything (answered 503 before the body is read); None: ready."""
        ...

    def receive(self, inbound: Inbound, routes: Routes) -> Received:
        """Verify, parse and route the request; ``Refused`` when it is not accepted."""
        ...


def public_uri(public_base_url: str, path: str, query: str) -> str:
    """The URL the sender called, rebuilt from configuration rather than from the socket.

    ``public_base_url`` is the public URL of the application root (``https://okrsync.acme.com``, or
    ``https://acme.com/okrsync`` when the proxy strips that prefix); behind a proxy the Host header and scheme the
    server sees are not the ones the sender used. ``path`` is the path as sent, still percent-encoded (ASGI
    ``raw_path``, not the decoded ``path``), and ``query`` the raw query string without ``?``.
    """
    if not path.startswith("/"):
        path = "/" + path
    uri = public_base_url.rstrip("/") + path
    return uri + "?" + query if query else uri


# --- bodies ------------------------------------------------------------------------------------------------------


class PayloadError(ValueError):
    """The body is malformed or not the promised shape; ``reason`` names what is wrong and where."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def describe(exc: ValidationError) -> str:
    """The first problem as ``path missing`` or ``path: message``, with ``events[3].recordId``-style paths."""
    errors = exc.errors(include_url=False)
    first = errors[0]
    path = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in first["loc"]).lstrip(".")
    text = f"{path} missing" if first["type"] == "missing" else f"{path}: {first['msg']}"
    return text + (f" (and {len(errors) - 1} more)" if len(errors) > 1 else "")


def json_path(path: tuple[str | int, ...]) -> str:
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


def load_json(body: bytes) -> Any:
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


def refuse_unstorable(data: Any, where: Callable[[tuple[str | int, ...]], str]) -> None:
    """PayloadError for a value ``_json_problem`` finds; ``where`` turns its path into the message's prefix. Called
    once the batch's size is checked, so an oversized batch costs no walk."""
    found = _json_problem(data)
    if found is not None:
        path, problem = found
        raise PayloadError(f"{where(path)}{problem}")


def whole_number(high: int) -> Callable[[Any], Any]:
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


def json_kind(value: Any) -> str:
    names: dict[type, str] = {
        dict: "an object",
        list: "an array",
        str: "a string",
        bool: "a boolean",
        type(None): "null",
    }
    return names.get(type(value), "a number")


# --- okrsync's own signature ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verified:
    """What a valid signature proved. ``digest``: SHA-256 (hex) of the exact bytes the MAC covers, equal for every
    copy of the request; ``signed_at_ms``: the timestamp under the MAC, Unix milliseconds."""

    digest: str
    signed_at_ms: int


class SignatureError(Exception):
    """The request is not proven to come from the CRM; ``reason`` is short and safe to log."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _shared_hmac_message(timestamp: str, body: bytes) -> bytes:
    return timestamp.encode() + b"." + body


def _shared_hmac_digest(secret: str, timestamp: str, body: bytes) -> str:
    return hmac.new(secret.encode(), _shared_hmac_message(timestamp, body), hashlib.sha256).hexdigest()


def sign_shared_hmac(*, secret: str, body: bytes, timestamp: int) -> str:
    """The ``X-Okrsync-Signature`` header value for ``body`` sent at ``timestamp`` (Unix seconds).

    In Apex: ``EncodingUtil.convertToHex(Crypto.generateMac('hmacSHA256', Blob.valueOf(t + '.' + body),
    Blob.valueOf(secret)))``.
    """
    return f"t={timestamp},v1={_shared_hmac_digest(secret, str(timestamp), body)}"


def _read_shared_hmac_header(header: str) -> tuple[str, list[str]]:
    """The timestamp and the ``v1`` MACs (lower case) of an ``X-Okrsync-Signature`` value; malformed otherwise."""
    if not header.isascii():
        raise SignatureError("malformed signature header")
    timestamp: str | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip(" \t").partition("=")
        if not sep or not _SHARED_HMAC_ENTRY_VALUE.fullmatch(value):
            raise SignatureError("malformed signature header")
        if key == "t":
            if timestamp is not None or not _TIMESTAMP_S.fullmatch(value):
                raise SignatureError("malformed signature header")
            timestamp = value
        elif key == "v1":
            if not _HEX_MAC.fullmatch(value):
                raise SignatureError("malformed signature header")
            candidates.append(value.lower())
        elif not _OTHER_SCHEME.fullmatch(key):
            raise SignatureError("malformed signature header")
    if timestamp is None or not candidates:
        raise SignatureError("malformed signature header")
    return timestamp, candidates


def verify_shared_hmac(
    *, secret: str, body: bytes, header: str | None, now_s: float, tolerance_s: int = SHARED_HMAC_TOLERANCE_S
) -> Verified:
    """Raise ``SignatureError`` unless ``header`` (``t=...,v1=...``) signs ``body`` with ``secret``, recently."""
    if not header:
        raise SignatureError("missing signature header")
    timestamp, candidates = _read_shared_hmac_header(header)
    if now_s - int(timestamp) > tolerance_s:
        raise SignatureError("stale timestamp")
    if int(timestamp) - now_s > tolerance_s:
        raise SignatureError("timestamp in the future")
    expected = _shared_hmac_digest(secret, timestamp, body).encode()
    # check every candidate (no early exit) so the time taken does not tell which one matched
    matched = False
    for candidate in candidates:
        matched |= hmac.compare_digest(expected, candidate.encode())
    if not matched:
        raise SignatureError("signature mismatch")
    return Verified(hashlib.sha256(_shared_hmac_message(timestamp, body)).hexdigest(), int(timestamp) * 1000)
