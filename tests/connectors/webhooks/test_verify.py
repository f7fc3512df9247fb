"""Webhook signatures: HubSpot's published vectors, our own vectors computed by hand, and every way to be refused."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

import pytest
from hubspot.exceptions import InvalidSignatureTimestampError
from hubspot.utils.signature import Signature

from connectors.hubspot.webhooks import (
    decode_hubspot_uri,
    hubspot_signed_uri,
    hubspot_v2_signature,
    sign_hubspot_v3,
    verify_hubspot_v3,
)
from connectors.webhooks import SignatureError, Verified, sign_shared_hmac, verify_shared_hmac

# HubSpot's documentation example (legacydocs.hubspot.com/docs/faq/v2-request-validation, also used by the
# hubspot-api-nodejs and hubspot-api-php test suites)
DOC_SECRET = "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy"
DOC_URI = "https://www.example.com/webhook_uri"
DOC_BODY = '{"example_field":"example_value"}'

NOW_MS = 1_764_093_600_000
URI = "https://okrsync.example.com/webhooks/hubspot?portal=62515&source=crm:deals"
BODY = (
    b'[{"eventId":1,"subscriptionId":12345,"portalId":62515,"occurredAt":1764093600000,'
    b'"subscriptionType":"deal.creation","objectId":123}]'
)


def _hand_v3(secret: str, source: str) -> str:
    return base64.b64encode(hmac.new(secret.encode(), source.encode(), hashlib.sha256).digest()).decode()


GOOD_V3 = sign_hubspot_v3(client_secret=DOC_SECRET, method="POST", uri=URI, body=BODY, timestamp=NOW_MS)


def _verify(**overrides: object) -> Verified:
    request: dict[str, object] = {
        "client_secret": DOC_SECRET,
        "method": "POST",
        "uri": URI,
        "body": BODY,
        "timestamp": str(NOW_MS),
        "signature": sign_hubspot_v3(client_secret=DOC_SECRET, method="POST", uri=URI, body=BODY, timestamp=NOW_MS),
        "now_ms": NOW_MS,
    }
    return verify_hubspot_v3(**{**request, **overrides})  # type: ignore[arg-type]


# --- published vectors and cross-checks ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "body", "expected"),
    [
        ("GET", "", "eee2dddcc73c94d699f5e395f4b9d454a069a6855fbfa152e91e88823087200e"),
        ("POST", DOC_BODY, "9569219f8ba981ffa6f6f16aa0f48637d35d728c7e4d93d0d52efaa512af7900"),
    ],
    ids=["get-without-body", "post-with-body"],
)
def test_v2_matches_hubspots_published_vectors(method: str, body: str, expected: str) -> None:
    assert hubspot_v2_signature(client_secret=DOC_SECRET, method=method, uri=DOC_URI, body=body) == expected
    assert hubspot_v2_signature(client_secret=DOC_SECRET, method=method, uri=DOC_URI, body=body.encode()) == expected


def test_v3_matches_a_vector_computed_by_hand() -> None:
    # HubSpot publishes no v3 vector: the signed string is written out by hand, then MACed with the standard library
    source = (
        "POST"
        "https://okrsync.example.com/webhooks/hubspot?portal=62515&source=crm:deals"
        '[{"eventId":1,"subscriptionId":12345,"portalId":62515,"occurredAt":1764093600000,'
        '"subscriptionType":"deal.creation","objectId":123}]'
        "1764093600000"
    )
    expected = _hand_v3(DOC_SECRET, source)
    assert expected == "IM2V3M6kk2YrULpmtQHTqnwvceU74QpyPbMx7iavCJg="  # pinned so a change in both sides shows
    assert sign_hubspot_v3(client_secret=DOC_SECRET, method="POST", uri=URI, body=BODY, timestamp=NOW_MS) == expected
    _verify(signature=expected)


def test_v3_signs_the_uri_with_the_listed_escapes_decoded() -> None:
    sent = "https://okrsync.example.com/webhooks/hubspot?next=%2Fdeals%3Fid%3D1&tag=a%2Cb&sp=%20"
    source = "POST" + "https://okrsync.example.com/webhooks/hubspot?next=/deals?id%3D1&tag=a,b&sp=%20" + "[]" + "1"
    expected = _hand_v3(DOC_SECRET, source)
    assert sign_hubspot_v3(client_secret=DOC_SECRET, method="POST", uri=sent, body=b"[]", timestamp="1") == expected


def test_v3_agrees_with_hubspot_api_client() -> None:
    now_ms = int(time.time() * 1000)  # the library reads the real clock
    ours = sign_hubspot_v3(
        client_secret=DOC_SECRET, method="POST", uri=DOC_URI, body=DOC_BODY.encode(), timestamp=now_ms
    )
    theirs = Signature.get_signature(DOC_SECRET, DOC_BODY, "v3", DOC_URI, "POST", str(now_ms))
    assert ours == theirs
    assert Signature.is_valid(
        ours, DOC_SECRET, DOC_BODY, DOC_URI, "POST", signature_version="v3", timestamp=str(now_ms)
    )
    verify_hubspot_v3(
        client_secret=DOC_SECRET,
        method="POST",
        uri=DOC_URI,
        body=DOC_BODY.encode(),
        timestamp=str(now_ms),
        signature=theirs,
        now_ms=now_ms,
    )


def test_where_hubspot_api_client_differs() -> None:
    now_ms = int(time.time() * 1000)
    future = str(now_ms + 3_600_000)
    signature = Signature.get_signature(DOC_SECRET, DOC_BODY, "v3", DOC_URI, "POST", future)
    # the library takes a timestamp an hour ahead; we do not
    assert Signature.is_valid(
        signature, DOC_SECRET, DOC_BODY, DOC_URI, "POST", signature_version="v3", timestamp=future
    )
    with pytest.raises(SignatureError, match="timestamp in the future"):
        _verify(timestamp=future, signature=signature, now_ms=now_ms, uri=DOC_URI, body=DOC_BODY.encode())
    # the library raises on a stale timestamp instead of answering False
    stale = str(now_ms - 600_000)
    with pytest.raises(InvalidSignatureTimestampError):
        Signature.is_valid(signature, DOC_SECRET, DOC_BODY, DOC_URI, "POST", signature_version="v3", timestamp=stale)
    # the library signs the URI as given; HubSpot decodes %3A and friends first
    encoded = DOC_URI + "?next=%2Fdeals"
    theirs = Signature.get_signature(DOC_SECRET, DOC_BODY, "v3", encoded, "POST", future)
    ours = sign_hubspot_v3(
        client_secret=DOC_SECRET, method="POST", uri=encoded, body=DOC_BODY.encode(), timestamp=future
    )
    assert theirs != ours


# --- refusals -------------------------------------------------------------------------------------------------------


def test_a_valid_request_passes_with_the_raw_or_the_decoded_uri() -> None:
    raw = "https://okrsync.example.com/webhooks/hubspot?source=crm%3Adeals"
    signature = sign_hubspot_v3(client_secret=DOC_SECRET, method="POST", uri=raw, body=BODY, timestamp=NOW_MS)
    _verify(uri=raw, signature=signature)
    _verify(uri=decode_hubspot_uri(raw), signature=signature)


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"signature": _hand_v3("another-secret", "POST" + URI + BODY.decode() + str(NOW_MS))}, "signature mismatch"),
        ({"signature": "not base64 at all"}, "malformed signature header"),
        ({"signature": "signé"}, "malformed signature header"),
        ({"signature": GOOD_V3 + "\xa0"}, "malformed signature header"),
        ({"signature": GOOD_V3 + " "}, "malformed signature header"),
        ({"signature": " " + GOOD_V3}, "malformed signature header"),
        ({"signature": GOOD_V3.rstrip("=")}, "malformed signature header"),
        ({"signature": GOOD_V3 + GOOD_V3}, "malformed signature header"),
        ({"signature": GOOD_V3[:-2] + "A="}, "signature mismatch"),
        ({"body": BODY.replace(b'"objectId":123', b'"objectId":124')}, "signature mismatch"),
        ({"body": BODY + b" "}, "signature mismatch"),
        ({"uri": URI.replace("okrsync.example.com", "evil.example.com")}, "signature mismatch"),
        ({"uri": URI.replace("https://", "http://")}, "signature mismatch"),
        ({"uri": URI + "&extra=1"}, "signature mismatch"),
        ({"method": "PUT"}, "signature mismatch"),
        ({"client_secret": "rotated-secret"}, "signature mismatch"),
        ({"now_ms": NOW_MS + 300_001}, "stale timestamp"),
        ({"now_ms": NOW_MS - 300_001}, "timestamp in the future"),
        ({"signature": None}, "missing signature header"),
        ({"signature": ""}, "missing signature header"),
        ({"timestamp": None}, "missing timestamp header"),
        ({"timestamp": "1764093600000.0"}, "malformed timestamp header"),
        ({"timestamp": "-1"}, "malformed timestamp header"),
        ({"timestamp": "١٧٦"}, "malformed timestamp header"),
        ({"timestamp": "9" * 5000}, "malformed timestamp header"),
        ({"timestamp": str(NOW_MS) + "\n"}, "malformed timestamp header"),
    ],
    ids=[
        "forged-with-another-secret",
        "garbage-signature",
        "non-ascii-signature",
        "trailing-nbsp",
        "trailing-space",
        "leading-space",
        "padding-dropped",
        "signature-twice",
        "well-formed-but-wrong",
        "altered-body",
        "body-with-trailing-space",
        "altered-host",
        "altered-scheme",
        "altered-query",
        "altered-method",
        "wrong-secret",
        "stale",
        "future",
        "missing-signature",
        "empty-signature",
        "missing-timestamp",
        "fractional-timestamp",
        "negative-timestamp",
        "non-ascii-digits",
        "5000-digit-timestamp",
        "timestamp-with-newline",
    ],
)
def test_hubspot_v3_refusals(overrides: dict[str, object], reason: str) -> None:
    with pytest.raises(SignatureError) as caught:
        _verify(**overrides)
    assert caught.value.reason == reason


@pytest.mark.parametrize("skew_ms", [-300_000, 0, 300_000], ids=["5-min-old", "now", "5-min-ahead"])
def test_the_five_minute_window_is_inclusive(skew_ms: int) -> None:
    _verify(now_ms=NOW_MS + skew_ms)


def test_hubspot_verified_is_the_digest_of_the_signed_bytes() -> None:
    verified = _verify()
    signed = b"POST" + URI.encode() + BODY + str(NOW_MS).encode()
    assert verified == Verified(hashlib.sha256(signed).hexdigest(), NOW_MS)
    # the same signed request however its URI is escaped: one digest (the replay guard keys on it)
    raw = URI.replace("crm:deals", "crm%3Adeals")
    assert _verify(uri=raw) == verified
    # anything else under the MAC makes another request
    other = sign_hubspot_v3(client_secret=DOC_SECRET, method="POST", uri=URI, body=BODY, timestamp=NOW_MS + 1)
    assert _verify(timestamp=str(NOW_MS + 1), signature=other).digest != verified.digest


def test_a_replayed_request_is_refused_once_stale() -> None:
    _verify(now_ms=NOW_MS + 299_999)
    with pytest.raises(SignatureError, match="stale"):
        _verify(now_ms=NOW_MS + 300_001)


# --- URI decoding ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sent", "signed"),
    [
        ("%3A%2F%3F%40%21%24%27%28%29%2A%2C%3B", ":/?@!$'()*,;"),
        ("%3a%2f%3f%2a%2c%3b", ":/?*,;"),
        ("a%20b", "a%20b"),
        ("a+b", "a+b"),
        ("%2B%3D%26%23%25", "%2B%3D%26%23%25"),
        ("%253A", "%253A"),
        ("%%3A3A", "%:3A"),
        ("caf%C3%A9", "caf%C3%A9"),
        ("%3", "%3"),
        ("", ""),
    ],
    ids=[
        "all-twelve-upper",
        "lowercase-hex",
        "space-stays",
        "plus-stays",
        "plus-equals-amp-hash-percent-stay",
        "double-encoded-stays",
        "no-second-pass",
        "utf8-escapes-stay",
        "truncated-escape",
        "empty",
    ],
)
def test_decode_hubspot_uri(sent: str, signed: str) -> None:
    assert decode_hubspot_uri(sent) == signed
    assert decode_hubspot_uri(signed) == signed  # idempotent, so verify may decode an already decoded URI


@pytest.mark.parametrize(
    ("base", "path", "query", "signed"),
    [
        ("https://okrsync.acme.com", "/webhooks/hubspot", "", "https://okrsync.acme.com/webhooks/hubspot"),
        ("https://okrsync.acme.com/", "/webhooks/hubspot", "", "https://okrsync.acme.com/webhooks/hubspot"),
        ("https://acme.com/okrsync", "/webhooks/hubspot", "", "https://acme.com/okrsync/webhooks/hubspot"),
        ("https://okrsync.acme.com", "webhooks/hubspot", "", "https://okrsync.acme.com/webhooks/hubspot"),
        (
            "https://okrsync.acme.com",
            "/webhooks/hubspot",
            "a=1&next=%2Fdeals%3Fx%3D1",
            "https://okrsync.acme.com/webhooks/hubspot?a=1&next=/deals?x%3D1",
        ),
        (
            "https://okrsync.acme.com:8443",
            "/webhooks/hub%3Aspot%20x",
            "",
            "https://okrsync.acme.com:8443/webhooks/hub:spot%20x",
        ),
    ],
    ids=["plain", "base-trailing-slash", "base-with-prefix", "path-without-slash", "encoded-query", "encoded-path"],
)
def test_hubspot_signed_uri(base: str, path: str, query: str, signed: str) -> None:
    assert hubspot_signed_uri(base, path, query) == signed


# --- shared HMAC (Salesforce Flow) ----------------------------------------------------------------------------------

FLOW_SECRET = "whsec_test"
FLOW_BODY = b'{"organizationId":"00D000000000001AAA","events":[]}'
FLOW_T = 1_764_093_600


def test_shared_hmac_matches_a_vector_computed_by_hand() -> None:
    expected = hmac.new(FLOW_SECRET.encode(), b"1764093600." + FLOW_BODY, hashlib.sha256).hexdigest()
    assert expected == "b38e72da413f2e5543c55848b2d7abd314ee7634a9b452ef112bbbf081b61f6e"
    header = sign_shared_hmac(secret=FLOW_SECRET, body=FLOW_BODY, timestamp=FLOW_T)
    assert header == f"t=1764093600,v1={expected}"
    verify_shared_hmac(secret=FLOW_SECRET, body=FLOW_BODY, header=header, now_s=FLOW_T)


def _flow_header(*, timestamp: int = FLOW_T, secret: str = FLOW_SECRET, body: bytes = FLOW_BODY) -> str:
    return sign_shared_hmac(secret=secret, body=body, timestamp=timestamp)


GOOD_MAC = _flow_header().partition("v1=")[2]


@pytest.mark.parametrize(
    "header",
    [
        _flow_header(),
        f"t={FLOW_T},v1={GOOD_MAC.upper()}",
        f" t={FLOW_T} , v1={GOOD_MAC} ",
        f"t={FLOW_T},\tv1={GOOD_MAC}",
        f"t={FLOW_T},v1={'0' * 64},v1={GOOD_MAC}",
        f"v1={GOOD_MAC},t={FLOW_T},v0=ignored",
        f"t={FLOW_T},v1={GOOD_MAC},v2=a-future-scheme",
    ],
    ids=["as-signed", "uppercase-hex", "spaces", "tab", "rotation-second-secret", "any-order-v0", "future-v2"],
)
def test_shared_hmac_accepts(header: str) -> None:
    verified = verify_shared_hmac(secret=FLOW_SECRET, body=FLOW_BODY, header=header, now_s=FLOW_T + 10)
    # one signed request, one digest, however the header is written: the replay guard keys on it
    assert verified == Verified(hashlib.sha256(b"1764093600." + FLOW_BODY).hexdigest(), FLOW_T * 1000)


@pytest.mark.parametrize(
    ("header", "body", "now_s", "reason"),
    [
        (None, FLOW_BODY, FLOW_T, "missing signature header"),
        ("", FLOW_BODY, FLOW_T, "missing signature header"),
        (_flow_header(secret="other"), FLOW_BODY, FLOW_T, "signature mismatch"),
        (_flow_header(), FLOW_BODY + b" ", FLOW_T, "signature mismatch"),
        (f"t={FLOW_T + 60},v1={GOOD_MAC}", FLOW_BODY, FLOW_T, "signature mismatch"),
        (_flow_header(), FLOW_BODY, FLOW_T + 301, "stale timestamp"),
        (_flow_header(), FLOW_BODY, FLOW_T - 301, "timestamp in the future"),
        (f"v1={GOOD_MAC}", FLOW_BODY, FLOW_T, "malformed signature header"),
        (f"t={FLOW_T}", FLOW_BODY, FLOW_T, "malformed signature header"),
        (f"t=soon,v1={GOOD_MAC}", FLOW_BODY, FLOW_T, "malformed signature header"),
        (GOOD_MAC, FLOW_BODY, FLOW_T, "malformed signature header"),
        (f"t={FLOW_T},v1=signé", FLOW_BODY, FLOW_T, "malformed signature header"),
        (f"t={FLOW_T},v1={GOOD_MAC}\xa0", FLOW_BODY, FLOW_T, "malformed signature header"),
        (f"t={FLOW_T},v1={GOOD_MAC},v1=00", FLOW_BODY, FLOW_T, "malformed signature header"),
        (f"t={FLOW_T},v1={GOOD_MAC},x=1", FLOW_BODY, FLOW_T, "malformed signature header"),
        (f"t={FLOW_T},v1={GOOD_MAC},t={FLOW_T}", FLOW_BODY, FLOW_T, "malformed signature header"),
        (f"t={FLOW_T},v1={GOOD_MAC},", FLOW_BODY, FLOW_T, "malformed signature header"),
        (f"t={FLOW_T},v1=", FLOW_BODY, FLOW_T, "malformed signature header"),
        (f"t={FLOW_T},v1= {GOOD_MAC}", FLOW_BODY, FLOW_T, "malformed signature header"),
        (f"t={'9' * 5000},v1={GOOD_MAC}", FLOW_BODY, FLOW_T, "malformed signature header"),
        (f"t={FLOW_T},v1={'0' * 64}", FLOW_BODY, FLOW_T, "signature mismatch"),
    ],
    ids=[
        "missing",
        "empty",
        "other-secret",
        "altered-body",
        "timestamp-swapped",
        "stale",
        "future",
        "no-timestamp",
        "no-mac",
        "timestamp-not-a-number",
        "bare-mac",
        "non-ascii-mac",
        "trailing-nbsp",
        "short-extra-mac",
        "unknown-key",
        "second-timestamp",
        "empty-entry",
        "empty-mac",
        "space-inside-entry",
        "5000-digit-timestamp",
        "well-formed-but-wrong",
    ],
)
def test_shared_hmac_refusals(header: str | None, body: bytes, now_s: int, reason: str) -> None:
    with pytest.raises(SignatureError) as caught:
        verify_shared_hmac(secret=FLOW_SECRET, body=body, header=header, now_s=now_s)
    assert caught.value.reason == reason
