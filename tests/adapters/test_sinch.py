"""Sinch specifics: HMAC headers and replay window, callback types, batch and recipient reports, sends."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime
from typing import Any

import pytest
import responses
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.base import WebhookRequest
from adapters.sinch import SinchAdapter
from gateway.errors import MissingSecretError, PayloadError, VerificationError
from gateway.messages import DeliveryStatus, OutboundMessage, SendOutcome
from tests.adapters.cases.sinch import CASE, SECRET, URL, mo_text, recipient_report, signed
from tests.adapters.strategies import mutations

SEND_URL = CASE.send_url
T = 1_700_000_000


def adapter(now: float | None = None, **settings: Any) -> SinchAdapter:
    built = SinchAdapter.from_config({**CASE.settings, **settings}, dict(CASE.env))
    if now is not None:
        built.clock = lambda: now
    return built


def inbound_at(timestamp: int) -> WebhookRequest:
    return signed(mo_text("STOP", "+14155550100", "+14155550199", "MO-1"), timestamp=timestamp)


def replace_header(req: WebhookRequest, name: str, value: str | None) -> WebhookRequest:
    headers = {k: v for k, v in req.headers.items() if k.lower() != name}
    if value is not None:
        headers[name] = value
    return WebhookRequest.build(req.method, req.url, req.body, headers)


# ---- signatures -----------------------------------------------------------------------------------


def test_signature_is_base64_hmac_sha256_of_body_nonce_timestamp() -> None:
    expected = base64.b64encode(
        hmac.new(SECRET.encode(), b'{"a":1}.n0nce.1700000000', hashlib.sha256).digest()
    )
    assert adapter().signature(b'{"a":1}', "n0nce", "1700000000") == expected.decode()


def test_window_is_enforced_both_ways() -> None:
    for now in (T, T + 300, T - 300):
        adapter(now).verify(inbound_at(T))
    for now in (T + 301, T - 301):
        with pytest.raises(VerificationError, match="window"):
            adapter(now).verify(inbound_at(T))


def test_tolerance_is_configurable() -> None:
    adapter(T + 3000, timestamp_tolerance=3600).verify(inbound_at(T))


@pytest.mark.parametrize("header", ["x-sinch-webhook-signature-nonce", "x-sinch-webhook-signature-timestamp"])
def test_nonce_and_timestamp_are_signed(header: str) -> None:
    req = inbound_at(T)
    value = str(T + 1) if header.endswith("timestamp") else "another-nonce"
    with pytest.raises(VerificationError, match="does not match"):
        adapter(T).verify(replace_header(req, header, value))


@pytest.mark.parametrize(
    "header",
    ["x-sinch-webhook-signature", "x-sinch-webhook-signature-nonce", "x-sinch-webhook-signature-timestamp"],
)
def test_each_signature_header_is_required(header: str) -> None:
    with pytest.raises(VerificationError, match="missing"):
        adapter(T).verify(replace_header(inbound_at(T), header, None))


def test_algorithm_header_is_optional_but_must_be_hmac_sha256() -> None:
    adapter(T).verify(replace_header(inbound_at(T), "x-sinch-webhook-signature-algorithm", None))
    with pytest.raises(VerificationError, match="algorithm"):
        adapter(T).verify(replace_header(inbound_at(T), "x-sinch-webhook-signature-algorithm", "HmacSHA1"))


def test_unreadable_timestamp_is_rejected() -> None:
    req = signed(mo_text("STOP", "+1", "+2", "M"))
    with pytest.raises(VerificationError, match="timestamp"):
        adapter(T).verify(replace_header(req, "x-sinch-webhook-signature-timestamp", "soon"))


def test_missing_webhook_secret_names_the_variable() -> None:
    env = {k: v for k, v in CASE.env.items() if k != "SINCH_WEBHOOK_SECRET"}
    with pytest.raises(MissingSecretError, match="SINCH_WEBHOOK_SECRET"):
        SinchAdapter.from_config({}, env)


# ---- callbacks ------------------------------------------------------------------------------------


def test_mo_text_fields() -> None:
    event = {**mo_text("Stop", "+14155550100", "12345", "MO-9"), "client_reference": "campaign-7"}
    [msg] = adapter().parse_inbound(signed(event))
    assert (msg.provider_message_id, msg.sender, msg.recipient, msg.text) == (
        "MO-9",
        "+14155550100",
        "12345",
        "Stop",
    )
    assert msg.received_at == datetime(2024, 3, 1, 10, 0, 0, 123000, tzinfo=UTC)
    assert msg.custom_string == "campaign-7"


@pytest.mark.parametrize("kind", ["mo_binary", "mo_media", "recipient_delivery_report_sms", "something_new"])
def test_other_callback_types_are_not_messages(kind: str) -> None:
    event = {**mo_text("x", "+1", "+2", "M"), "type": kind}
    assert adapter().parse_inbound(signed(event)) == []


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"type": None}, "type"),
        ({"type": ["mo_text"]}, "type"),
        ({"from": None}, "from"),
        ({"to": 12345}, "to"),
        ({"id": ""}, "id"),
        ({"body": {"text": "STOP"}}, "body"),
    ],
)
def test_wrong_shapes_name_the_field(changes: dict[str, Any], field: str) -> None:
    event = {k: v for k, v in {**mo_text("STOP", "+1", "+2", "M"), **changes}.items() if v is not None}
    with pytest.raises(PayloadError) as err:
        adapter().parse_inbound(signed(event))
    assert err.value.field == field


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Queued", DeliveryStatus.QUEUED),
        ("Dispatched", DeliveryStatus.SENT),
        ("Delivered", DeliveryStatus.DELIVERED),
        ("Expired", DeliveryStatus.UNDELIVERED),
        ("Deleted", DeliveryStatus.UNDELIVERED),
        ("Aborted", DeliveryStatus.FAILED),
        ("Cancelled", DeliveryStatus.FAILED),
        ("Rejected", DeliveryStatus.FAILED),
        ("FAILED", DeliveryStatus.FAILED),
        ("Unknown", DeliveryStatus.UNKNOWN),
        ("Teleported", DeliveryStatus.UNKNOWN),
    ],
)
def test_statuses_map_onto_the_closed_set(raw: str, expected: DeliveryStatus) -> None:
    [update] = adapter().parse_status(signed(recipient_report("B1", raw, 402)))
    assert update.status is expected and update.raw_status == raw
    assert update.error_code == "402" and not update.opted_out
    assert update.recipient == "+14155550100"
    assert update.occurred_at == datetime(2024, 3, 1, 10, 0, 5, 462000, tzinfo=UTC)


def test_full_batch_report_gives_one_update_per_recipient() -> None:
    event = {
        "type": "delivery_report_sms",
        "batch_id": "B2",
        "total_message_count": 3,
        "statuses": [
            {"code": 0, "status": "Delivered", "count": 2, "recipients": ["+14155550100", "+14155550101"]},
            {"code": 402, "status": "Failed", "count": 1, "recipients": ["+14155550102"]},
        ],
    }
    updates = adapter().parse_status(signed(event))
    assert [(u.provider_message_id, u.recipient, u.status, u.error_code) for u in updates] == [
        ("B2", "+14155550100", DeliveryStatus.DELIVERED, None),
        ("B2", "+14155550101", DeliveryStatus.DELIVERED, None),
        ("B2", "+14155550102", DeliveryStatus.FAILED, "402"),
    ]


def test_summary_batch_report_has_no_recipients() -> None:
    event = {
        "type": "delivery_report_sms",
        "batch_id": "B3",
        "statuses": [{"code": 0, "status": "Delivered", "count": 5}],
    }
    [update] = adapter().parse_status(signed(event))
    assert update.recipient is None and update.status is DeliveryStatus.DELIVERED


def test_inbound_callbacks_are_not_receipts() -> None:
    assert adapter().parse_status(inbound_at(T)) == []


@pytest.mark.parametrize(
    "event",
    [
        {"type": "delivery_report_sms", "batch_id": "B"},
        {"type": "delivery_report_sms", "batch_id": "B", "statuses": ["Delivered"]},
        {
            "type": "delivery_report_sms",
            "batch_id": "B",
            "statuses": [{"status": "Delivered", "recipients": "+1"}],
        },
        {"type": "recipient_delivery_report_sms", "batch_id": "B", "status": "Delivered"},
        {"type": "recipient_delivery_report_sms", "recipient": "+1", "status": "Delivered"},
    ],
)
def test_malformed_reports_are_payload_errors(event: dict[str, Any]) -> None:
    with pytest.raises(PayloadError):
        adapter().parse_status(signed(event))


# ---- sending --------------------------------------------------------------------------------------


def test_send_payload() -> None:
    message = OutboundMessage(
        channel="sms",  # type: ignore[arg-type]
        to="+14155550100",
        body="hi",
        idempotency_key="outbox-42",
        status_callback="https://gateway.example.com/status/sinch",
    )
    with responses.RequestsMock() as rsps:
        rsps.add("POST", SEND_URL, status=201, json={"id": "B-9"})
        result = adapter().send(message)
        sent = json.loads(rsps.calls[0].request.body or b"{}")
    assert result.outcome is SendOutcome.ACCEPTED and result.provider_message_id == "B-9"
    # No sender configured: Sinch falls back to the service plan's default originator.
    assert sent == {
        "to": ["+14155550100"],
        "body": "hi",
        "delivery_report": "per_recipient",
        "callback_url": "https://gateway.example.com/status/sinch",
        "client_reference": "outbox-42",
    }


def test_default_host_is_the_us_region_and_base_url_wins() -> None:
    assert SinchAdapter.from_config({}, dict(CASE.env)).base_url == "https://us.sms.api.sinch.com"
    built = SinchAdapter.from_config({"region": "eu", "base_url": "https://sms.example.com/"}, dict(CASE.env))
    assert built.base_url == "https://sms.example.com"


def test_api_error_is_permanent_and_named() -> None:
    with responses.RequestsMock() as rsps:
        rsps.add(
            "POST",
            SEND_URL,
            status=400,
            json={"code": "syntax_invalid_parameter_format", "text": "Invalid parameter format: to"},
        )
        result = adapter().send(CASE.outbound)
    assert result.outcome is SendOutcome.FAILED and result.error_code == "syntax_invalid_parameter_format"


def test_throttling_passes_retry_after_on() -> None:
    with responses.RequestsMock() as rsps:
        rsps.add(
            "POST", SEND_URL, status=429, headers={"Retry-After": "2"}, json={"code": "too_many_requests"}
        )
        result = adapter().send(CASE.outbound)
    assert result.outcome is SendOutcome.RETRY and result.retry_after == 2


def test_unreadable_success_body_is_retried() -> None:
    with responses.RequestsMock() as rsps:
        rsps.add("POST", SEND_URL, status=201, json={"batch": "?"})
        assert adapter().send(CASE.outbound).outcome is SendOutcome.RETRY


# ---- robustness -----------------------------------------------------------------------------------


EVENTS = [
    mo_text("STOP", "+14155550100", "+14155550199", "M"),
    recipient_report("B", "Delivered", 0),
    {
        "type": "delivery_report_sms",
        "batch_id": "B",
        "statuses": [{"code": 0, "status": "Delivered", "recipients": ["+14155550100"]}],
    },
]


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(EVENTS).flatmap(mutations) | st.binary(max_size=64))
def test_parsing_arbitrary_input_raises_only_payload_errors(event: Any) -> None:
    body = event if isinstance(event, bytes) else json.dumps(event).encode()
    req = WebhookRequest.build("POST", URL, body, {"Content-Type": "application/json"})
    built = adapter()
    for parse in (built.parse_inbound, built.parse_status):
        try:
            parsed = parse(req)
        except PayloadError:
            continue
        assert isinstance(parsed, list)
