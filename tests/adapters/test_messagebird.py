"""MessageBird specifics: the SDKs' shared JWT test vectors, claims, inbound variants, status reports, sends."""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import jwt
import pytest
import responses
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.base import WebhookRequest
from adapters.messagebird import MessageBirdAdapter
from gateway.errors import MissingSecretError, PayloadError, VerificationError
from gateway.messages import DeliveryStatus, OutboundMessage, SendOutcome
from tests.adapters.cases.messagebird import (
    CASE,
    FORM,
    SIGNING_KEY,
    STATUS_URL,
    URL,
    inbound_fields,
    signed,
    status_report,
    token,
)

SEND_URL = CASE.send_url


def adapter(now: float | None = None, key: str = SIGNING_KEY) -> MessageBirdAdapter:
    built = MessageBirdAdapter.from_config(dict(CASE.settings), {**CASE.env, "MESSAGEBIRD_SIGNING_KEY": key})
    if now is not None:
        built.clock = lambda: now
    return built


# ---- the shared webhook-signature vectors of MessageBird's SDKs ------------------------------------
# Secret, URLs, payloads and tokens from the SDKs' webhook_signature_test_data.json, all issued for
# 2021-07-05T12:00:00+02:00 and valid for 60 seconds. The failing cases pair those tokens with an altered
# URL or body, as the SDK cases do.

VECTOR_SECRET = "36efdd1aace2e26cd490f0d951138253bef2f7c6d34d18981da781555cc4cebb"
VECTOR_NOW = 1_625_479_200.0
_HEAD = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
_ROOT_CLAIMS = (
    "eyJpc3MiOiJNZXNzYWdlQmlyZCIsIm5iZiI6MTYyNTQ3OTIwMCwiZXhwIjoxNjI1NDc5MjYwLCJqdGkiOiI1OWEyNDRkYy1lOWFkLTRl"
    "MjMtOTc3OC0zNzFmYWEyMzhmNzIiLCJ1cmxfaGFzaCI6IjBmMTE1ZGIwNjJiN2MwZGQwMzBiMTY4NzhjOTlkZWE1YzM1NGI0OWRjMzdi"
    "MzhlYjg4NDYxNzljNzc4M2U5ZDcifQ"
)
ROOT = _HEAD + _ROOT_CLAIMS + ".6Fp0rVOsRr1fj9S2GidXAfkmPVofKr8_RTffC6G6r2E"
WITH_PAYLOAD = (
    _HEAD
    + "eyJpc3MiOiJNZXNzYWdlQmlyZCIsIm5iZiI6MTYyNTQ3OTIwMCwiZXhwIjoxNjI1NDc5MjYwLCJqdGkiOiI5M2U1NTAwNi1hMGU4"
    "LTQ1MjYtYTE5MC1mYTVmZjAwZWExMTYiLCJ1cmxfaGFzaCI6IjQxZjA1ZjBkZGQwYTIyYWIyMDlhYzQ2ZjQ3YzQ1NzJkOWNlZmEyNTdl"
    "ZDc0YjI0MDA0YmFlNzUzZWNlNmMyNjAiLCJwYXlsb2FkX2hhc2giOiJkZmZkNjAyMWJiMmJkNWIwYWY2NzYyOTA4MDllYzNhNTMxOTFk"
    "ZDgxYzdmNzBhNGIyODY4OGEzNjIxODI5ODZmIn0._H--TOuYFLpeEH39-rg5E3IHVkjHozBcaKVWPRC5m9I"
)
VECTORS: list[tuple[str, str, str, bytes, str | None]] = [
    # (name, url, token, body, expected failure or None)
    ("valid, no query or payload", "https://example.com/", ROOT, b"", None),
    (
        "valid, query and payload",
        "https://example.com/path?bar=1&foo=2",
        WITH_PAYLOAD,
        b"Hello, World!",
        None,
    ),
    (
        "valid, port in URL",
        "https://example.com:8080/",
        _HEAD
        + "eyJpc3MiOiJNZXNzYWdlQmlyZCIsIm5iZiI6MTYyNTQ3OTIwMCwiZXhwIjoxNjI1NDc5MjYwLCJqdGkiOiI1OWEyNDRkYy1l"
        "OWFkLTRlMjMtOTc3OC0zNzFmYWEyMzhmNzIiLCJ1cmxfaGFzaCI6IjA3Zjc4NjFhNjliMTNjMjI5YzZhZTU5NmQxOThiMjc2M2IwNTRj"
        "ZjVlMDAwZDczNmQxYzQ4MTAyZDc3MGNmZmMifQ.vcpa0IicGAbpo064dOjiA2VbVOR2S5uZBEaBOP16sS8",
        b"",
        None,
    ),
    (
        "valid, HS512",
        "https://example.com/",
        "eyJhbGciOiJIUzUxMiIsInR5cCI6IkpXVCJ9."
        + _ROOT_CLAIMS
        + ".rd6r0iMyNGnVPCwurETphE3Y8rpAyvvnUK0S8WvGUkt2E1QSRAZ7NZJZBHw1Y_Wb5W-sK9HJr_PRL2vz4jRT3Q",
        b"",
        None,
    ),
    ("query reordered", "https://example.com/path?foo=2&bar=1", WITH_PAYLOAD, b"Hello, World!", "url_hash"),
    (
        "payload changed",
        "https://example.com/path?bar=1&foo=2",
        WITH_PAYLOAD,
        b"Hello, World?",
        "payload_hash",
    ),
    ("payload removed", "https://example.com/path?bar=1&foo=2", WITH_PAYLOAD, b"", "payload_hash"),
    ("payload added", "https://example.com/", ROOT, b"Hello, World!", "payload_hash"),
    (
        "different secret",
        "https://example.com/",
        _HEAD
        + "eyJpc3MiOiJNZXNzYWdlQmlyZCIsIm5iZiI6MTYyNTQ3OTIwMCwiZXhwIjoxNjI1NDc5MjYwLCJqdGkiOiIyNDNjMjdhZS0yZjAy"
        "LTQ2YTAtODg1Mi1jNjZmMzdlYTlmNDYiLCJ1cmxfaGFzaCI6IjBmMTE1ZGIwNjJiN2MwZGQwMzBiMTY4NzhjOTlkZWE1YzM1NGI0OWRj"
        "MzdiMzhlYjg4NDYxNzljNzc4M2U5ZDcifQ.JgSeYyOtlEKAXk8bz30iJI4tXgf4lxknoiezawuVhb4",
        b"",
        "invalid signature token",
    ),
    (
        "alg none",
        "https://example.com/",
        "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJpc3MiOiJNZXNzYWdlQmlyZCIsImlhdCI6MTYyNTQ3OTIwMCwiZXhwIjoxNjI1NDc5"
        "MjYwLCJqdGkiOiI1OWEyNDRkYy1lOWFkLTRlMjMtOTc3OC0zNzFmYWEyMzhmNzIiLCJ1cmxfaGFzaCI6IjBmMTE1ZGIwNjJiN2MwZGQw"
        "MzBiMTY4NzhjOTlkZWE1YzM1NGI0OWRjMzdiMzhlYjg4NDYxNzljNzc4M2U5ZDcifQ.",
        b"",
        "invalid signature token",
    ),
]


@pytest.mark.parametrize(
    ("name", "url", "jwt_token", "body", "failure"), VECTORS, ids=[v[0] for v in VECTORS]
)
def test_sdk_signature_vectors(name: str, url: str, jwt_token: str, body: bytes, failure: str | None) -> None:
    req = WebhookRequest.build("POST", url, body, {"MessageBird-Signature-JWT": jwt_token})
    built = adapter(VECTOR_NOW + 10, key=VECTOR_SECRET)
    if failure is None:
        built.verify(req)
    else:
        with pytest.raises(VerificationError, match=failure):
            built.verify(req)


@pytest.mark.parametrize(
    ("now", "ok"),
    [
        (VECTOR_NOW - 2, False),
        (VECTOR_NOW, True),
        (VECTOR_NOW + 59, True),
        (VECTOR_NOW + 61, False),
        (VECTOR_NOW + 3600, False),
    ],
)
def test_sdk_vector_is_valid_only_between_nbf_and_exp(now: float, ok: bool) -> None:
    req = WebhookRequest.build("GET", "https://example.com/", b"", {"MessageBird-Signature-JWT": ROOT})
    if ok:
        adapter(now, key=VECTOR_SECRET).verify(req)
    else:
        with pytest.raises(VerificationError, match="not valid at this time"):
            adapter(now, key=VECTOR_SECRET).verify(req)


# ---- claims ---------------------------------------------------------------------------------------


def claims_token(**claims: Any) -> str:
    base = {"iss": "MessageBird", "nbf": 1_700_000_000, "exp": 1_700_000_060, "url_hash": _sha(URL.encode())}
    merged = {k: v for k, v in {**base, **claims}.items() if v is not None}
    return jwt.encode(merged, SIGNING_KEY, algorithm="HS256")


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize(
    "claims",
    [
        {"iss": "Someone"},
        {"iss": None},
        {"nbf": None},
        {"exp": None},
        {"url_hash": None},
        {"nbf": "soon"},
        {"url_hash": _sha(b"https://attacker.example.com/")},
    ],
)
def test_claims_are_required_and_checked(claims: dict[str, Any]) -> None:
    req = WebhookRequest.build("GET", URL, b"", {"MessageBird-Signature-JWT": claims_token(**claims)})
    with pytest.raises(VerificationError):
        adapter(1_700_000_030).verify(req)


def test_well_formed_claims_pass() -> None:
    req = WebhookRequest.build("GET", URL, b"", {"MessageBird-Signature-JWT": claims_token()})
    adapter(1_700_000_030).verify(req)


def test_garbage_token_is_a_verification_error() -> None:
    for garbage in ("not-a-jwt", "a.b.c", "\u00e9\u00e9\u00e9"):
        with pytest.raises(VerificationError):
            adapter().verify(WebhookRequest.build("GET", URL, b"", {"MessageBird-Signature-JWT": garbage}))


def test_missing_signing_key_names_the_variable() -> None:
    with pytest.raises(MissingSecretError, match="MESSAGEBIRD_SIGNING_KEY"):
        MessageBirdAdapter.from_config({}, {"MESSAGEBIRD_ACCESS_KEY": "k"})


# ---- inbound --------------------------------------------------------------------------------------


def test_virtual_number_inbound() -> None:
    req = CASE.inbound("Stop", "+31612345678", "+3197010260", "ab3d8e0a1b2c4d5e")
    adapter().verify(req)
    [msg] = adapter().parse_inbound(req)
    assert (msg.sender, msg.recipient, msg.text) == ("31612345678", "3197010260", "Stop")
    assert msg.received_at == datetime(2016, 5, 3, 14, 26, 57, tzinfo=UTC)


def test_short_code_inbound_uses_its_own_field_names() -> None:
    fields = {
        "mid": "12345",
        "shortcode": "1008",
        "keyword": "STOP",
        "originator": "31612345678",
        "operator": "20401",
        "message": "STOP",
        "receive_datetime": "20160503142657",
    }
    [msg] = adapter().parse_inbound(signed("POST", URL, urlencode(fields).encode()))
    assert (msg.provider_message_id, msg.recipient, msg.text) == ("12345", "1008", "STOP")
    assert msg.received_at == datetime(2016, 5, 3, 14, 26, 57, tzinfo=UTC)


def test_get_inbound_is_read_from_the_query() -> None:
    fields = inbound_fields("STOP", "+31612345678", "+3197010260", "Q1")
    [msg] = adapter().parse_inbound(signed("GET", f"{URL}?{urlencode(fields)}"))
    assert msg.provider_message_id == "Q1"


def test_empty_body_text_is_a_message_and_bad_dates_are_dropped() -> None:
    fields = {**inbound_fields("", "+1", "+2", "E"), "createdDatetime": "last tuesday"}
    [msg] = adapter().parse_inbound(signed("POST", URL, urlencode(fields).encode()))
    assert msg.text == "" and msg.received_at is None


@pytest.mark.parametrize("missing", ["id", "originator", "recipient", "body"])
def test_missing_inbound_field_is_named(missing: str) -> None:
    fields = {k: v for k, v in inbound_fields("STOP", "+1", "+2", "M").items() if k != missing}
    with pytest.raises(PayloadError) as err:
        adapter().parse_inbound(signed("POST", URL, urlencode(fields).encode()))
    assert err.value.field == missing


# ---- status reports -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("scheduled", DeliveryStatus.QUEUED),
        ("buffered", DeliveryStatus.QUEUED),
        ("sent", DeliveryStatus.SENT),
        ("delivered", DeliveryStatus.DELIVERED),
        ("expired", DeliveryStatus.UNDELIVERED),
        ("delivery_failed", DeliveryStatus.FAILED),
        ("teleported", DeliveryStatus.UNKNOWN),
    ],
)
def test_statuses_map_onto_the_closed_set(raw: str, expected: DeliveryStatus) -> None:
    req = status_report("MB-1", raw)
    adapter().verify(req)
    [update] = adapter().parse_status(req)
    assert update.status is expected and update.raw_status == raw and update.recipient == "14155550100"
    assert update.occurred_at == datetime(2024, 3, 1, 10, 0, 5, tzinfo=UTC)


@pytest.mark.parametrize(("code", "opted_out"), [("103", True), ("104", False), ("", False)])
def test_only_status_error_code_103_is_an_opt_out(code: str, opted_out: bool) -> None:
    [update] = adapter().parse_status(status_report("MB-1", "delivery_failed", code))
    assert update.opted_out is opted_out and update.error_code == (code or None)


def test_status_report_query_is_covered_by_the_url_hash() -> None:
    req = status_report("MB-1", "delivery_failed", "103")
    forged = WebhookRequest.build(
        "GET", req.url.replace("statusErrorCode=103", "statusErrorCode=0"), b"", dict(req.headers)
    )
    with pytest.raises(VerificationError, match="url_hash"):
        adapter().verify(forged)


def test_stale_token_is_refused_and_fresh_one_accepted_by_clock() -> None:
    req = signed("GET", f"{STATUS_URL}?id=1&status=sent", not_before=1_700_000_000)
    adapter(1_700_000_030).verify(req)
    with pytest.raises(VerificationError):
        adapter(1_700_000_000 + 3600).verify(req)


# ---- sending --------------------------------------------------------------------------------------


def test_send_payload() -> None:
    message = OutboundMessage(
        channel="sms",  # type: ignore[arg-type]
        to="+31612345678",
        body="hi",
        idempotency_key="outbox-42",
        status_callback="https://gateway.example.com/webhooks/messagebird/status",
    )
    with responses.RequestsMock() as rsps:
        rsps.add("POST", SEND_URL, status=201, json={"id": "MB-OUT"})
        result = adapter().send(message)
        sent = json.loads(rsps.calls[0].request.body or b"{}")
    assert result.outcome is SendOutcome.ACCEPTED and result.provider_message_id == "MB-OUT"
    assert sent == {
        "recipients": ["31612345678"],
        "originator": "AcmeInc",
        "body": "hi",
        "reference": "outbox-42",
        "reportUrl": "https://gateway.example.com/webhooks/messagebird/status",
    }


@pytest.mark.parametrize(
    ("status", "errors", "code"),
    [
        (
            401,
            [{"code": 2, "description": "Request not allowed (incorrect access_key)", "parameter": None}],
            "2",
        ),
        (422, [{"code": 9, "description": "no (correct) recipients found", "parameter": "recipient"}], "9"),
        (422, [], "422"),
    ],
)
def test_api_errors_are_permanent_and_named(status: int, errors: list[dict[str, Any]], code: str) -> None:
    with responses.RequestsMock() as rsps:
        rsps.add("POST", SEND_URL, status=status, json={"errors": errors})
        result = adapter().send(CASE.outbound)
    assert result.outcome is SendOutcome.FAILED and result.error_code == code


def test_throttling_passes_retry_after_on() -> None:
    with responses.RequestsMock() as rsps:
        rsps.add("POST", SEND_URL, status=429, headers={"Retry-After": "7"}, json={"errors": []})
        result = adapter().send(CASE.outbound)
    assert result.outcome is SendOutcome.RETRY and result.retry_after == 7


def test_no_sender_fails() -> None:
    built = MessageBirdAdapter.from_config({}, dict(CASE.env))
    message = OutboundMessage(channel="sms", to="+14155550100", body="hi")  # type: ignore[arg-type]
    assert built.send(message).error_code == "no_sender"


def test_unreadable_success_body_is_retried() -> None:
    with responses.RequestsMock() as rsps:
        rsps.add("POST", SEND_URL, status=201, body="created")
        assert adapter().send(CASE.outbound).outcome is SendOutcome.RETRY


# ---- robustness -----------------------------------------------------------------------------------

FIELDS = [
    "id",
    "mid",
    "originator",
    "recipient",
    "shortcode",
    "body",
    "message",
    "createdDatetime",
    "receive_datetime",
    "status",
    "statusErrorCode",
    "statusDatetime",
]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6,
)
fields = st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=6), st.text(max_size=12), max_size=10)


@st.composite
def arbitrary_requests(draw: st.DrawFn) -> WebhookRequest:
    """Query, form, JSON or raw bodies, mostly with MessageBird's field names, any values, any token."""
    headers = {"MessageBird-Signature-JWT": draw(st.text(max_size=40) | st.just(token(URL, b"")))}
    kind = draw(st.sampled_from(["query", "form", "json", "raw"]))
    if kind == "query":
        return WebhookRequest.build("GET", f"{URL}?{urlencode(draw(fields))}", b"", headers)
    if kind == "form":
        return WebhookRequest.build(
            "POST", URL, urlencode(draw(fields)).encode(), {**headers, "Content-Type": FORM}
        )
    if kind == "json":
        body = json.dumps(draw(st.dictionaries(st.sampled_from(FIELDS), json_values) | json_values)).encode()
        return WebhookRequest.build("POST", URL, body, {**headers, "Content-Type": "application/json"})
    ctype = draw(st.sampled_from(["application/json", FORM, "text/plain"]))
    return WebhookRequest.build("POST", URL, draw(st.binary(max_size=64)), {**headers, "Content-Type": ctype})


@settings(max_examples=300, deadline=None)
@given(arbitrary_requests())
def test_parsing_arbitrary_input_raises_only_payload_errors(req: WebhookRequest) -> None:
    built = adapter(time.time())
    for parse in (built.parse_inbound, built.parse_status):
        try:
            parsed = parse(req)
        except PayloadError:
            continue
        assert isinstance(parsed, list)
    with contextlib.suppress(VerificationError):  # and nothing else
        built.verify(req)
