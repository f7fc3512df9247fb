"""Is this webhook request really from the CRM? Pure functions: no FastAPI, no database, no clock.

HubSpot, request signature v3 (https://developers.hubspot.com/docs/api/webhooks/validating-requests,
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

Salesforce Flow HTTP callout (ours, Stripe-style, https://docs.stripe.com/webhooks#verify-manually): header
``X-Okrsync-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(shared secret, "<t>." + body)>``; the timestamp is inside
the MAC so it cannot be swapped; 5 minutes tolerance either way; several ``v1=`` entries are allowed so the secret can
be rotated without downtime. The header is ASCII ``key=value`` entries separated by commas (spaces around an entry
are allowed), in any order: exactly one ``t`` (1 to 12 digits), at least one ``v1`` (64 hex digits, either case), and
entries of other signature schemes ``v<n>`` (``v0``, a future ``v2``) are ignored, as Stripe does, so the scheme can
evolve; any other key, an empty entry or a second ``t`` is malformed. Salesforce Outbound Messages carry no signature
at all: they are trusted by TLS and by checking their OrganizationId (see ``parse.py``, ``routing.py``).

A valid signature returns ``Verified``: the SHA-256 of exactly the bytes the MAC covers (method, URI, body and
timestamp for HubSpot; timestamp and body for the Flow callout) and the signed time. Every copy of one signed request
has the same digest however its headers are written (hex case, order of entries, extra ``v1=``), so the replay guard
(``endpoints.py``) keys on it, never on the header text.

Errors: ``SignatureError(reason)`` — answer 401 and log the reason; never retry, never show the expected value.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass

HUBSPOT_SIGNATURE_HEADER = "X-HubSpot-Signature-v3"
HUBSPOT_TIMESTAMP_HEADER = "X-HubSpot-Request-Timestamp"
SHARED_HMAC_HEADER = "X-Okrsync-Signature"
MAX_AGE_MS = 300_000
SHARED_HMAC_TOLERANCE_S = 300

# Base64 of 32 bytes: 43 characters and one "=" of padding
_HUBSPOT_SIGNATURE = re.compile(r"[A-Za-z0-9+/]{43}=")
_TIMESTAMP_MS = re.compile(r"[0-9]{1,15}")  # ASCII digits only; 15 reach the year 33658, and int() stays cheap
_TIMESTAMP_S = re.compile(r"[0-9]{1,12}")
_HEX_MAC = re.compile(r"[0-9a-fA-F]{64}")
_OTHER_SCHEME = re.compile(r"v[0-9]+")
_SHARED_HMAC_ENTRY_VALUE = re.compile(r"[!-~]+")  # printable ASCII, no space, no comma (split on it)

# Only these twelve escapes, hex case-insensitive. One pass, so "%253A" stays as it is (it is "%25" + "3A").
_HUBSPOT_DECODED_ESCAPES = re.compile(r"%(3A|2F|3F|40|21|24|27|28|29|2A|2C|3B)", re.IGNORECASE)


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


def decode_hubspot_uri(uri: str) -> str:
    """Decode the twelve escapes HubSpot decodes before signing; every other escape is left as sent.

    Idempotent: the decoded characters are never ``%`` or hex digits, so no new escape can appear.
    """
    return _HUBSPOT_DECODED_ESCAPES.sub(lambda match: chr(int(match.group(1), 16)), uri)


def hubspot_signed_uri(public_base_url: str, path: str, query: str) -> str:
    """The URI HubSpot signed, rebuilt from configuration rather than from the socket.

    ``public_base_url`` is the public URL of the application root (``https://okrsync.acme.com``, or
    ``https://acme.com/okrsync`` when the proxy strips that prefix); behind a proxy the Host header and scheme the
    server sees are not the ones HubSpot used. ``path`` must be the path as sent, still percent-encoded (ASGI
    ``raw_path``, not the decoded ``path``), and ``query`` the raw query string without ``?``.
    """
    if not path.startswith("/"):
        path = "/" + path
    uri = public_base_url.rstrip("/") + path
    if query:
        uri += "?" + query
    return decode_hubspot_uri(uri)


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
