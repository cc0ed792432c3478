"""Bandwidth specifics: callback basic auth, event arrays, recipient selection, sends and error codes."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

import pytest
import responses
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.bandwidth import BandwidthAdapter
from adapters.base import WebhookRequest
from gateway.errors import ConfigError, MissingSecretError, PayloadError, VerificationError
from gateway.messages import DeliveryStatus, OutboundMessage, SendOutcome
from tests.adapters.cases.bandwidth import (
    APPLICATION_ID,
    CALLBACK_PASSWORD,
    CALLBACK_USER,
    CASE,
    URL,
    basic,
    callback,
    delivery,
    received,
)
from tests.adapters.strategies import mutations

SEND_URL = CASE.send_url


def adapter(**settings: Any) -> BandwidthAdapter:
    return BandwidthAdapter.from_config({**CASE.settings, **settings}, dict(CASE.env))


def with_auth(value: str) -> WebhookRequest:
    body = json.dumps([received("STOP", "+14155550100", "+14155550199", "M")]).encode()
    return WebhookRequest.build(
        "POST", URL, body, {"Content-Type": "application/json", "Authorization": value}
    )


# ---- callback credentials -------------------------------------------------------------------------


def test_scheme_is_case_insensitive() -> None:
    token = base64.b64encode(f"{CALLBACK_USER}:{CALLBACK_PASSWORD}".encode()).decode()
    adapter().verify(with_auth(f"basic {token}"))


@pytest.mark.parametrize(
    "value",
    [
        basic("someone-else", CALLBACK_PASSWORD),
        basic(CALLBACK_USER, "guess"),
        basic(CALLBACK_USER, CALLBACK_PASSWORD + "x"),
        basic(CALLBACK_USER, ""),
        "Bearer " + base64.b64encode(f"{CALLBACK_USER}:{CALLBACK_PASSWORD}".encode()).decode(),
        "Basic not*base64",
        "Basic " + base64.b64encode(b"\xff\xfe:\xff").decode(),
        "Basic",
        "",
    ],
)
def test_wrong_or_malformed_credentials_are_rejected(value: str) -> None:
    with pytest.raises(VerificationError):
        adapter().verify(with_auth(value))


def test_password_may_contain_colons() -> None:
    env = {**CASE.env, "BANDWIDTH_CALLBACK_PASSWORD": "a:b:c"}
    built = BandwidthAdapter.from_config(dict(CASE.settings), env)
    built.verify(with_auth(basic(CALLBACK_USER, "a:b:c")))


def test_application_id_is_required() -> None:
    with pytest.raises(ConfigError, match="application_id"):
        BandwidthAdapter.from_config({}, dict(CASE.env))


@pytest.mark.parametrize("var", ["BANDWIDTH_ACCOUNT_ID", "BANDWIDTH_CALLBACK_USER", "BANDWIDTH_PASSWORD"])
def test_each_missing_credential_is_named(var: str) -> None:
    env = {k: v for k, v in CASE.env.items() if k != var}
    with pytest.raises(MissingSecretError, match=var):
        BandwidthAdapter.from_config(dict(CASE.settings), env)


# ---- callbacks ------------------------------------------------------------------------------------


def test_inbound_fields() -> None:
    [msg] = adapter().parse_inbound(callback([received("Stop", "+14155550100", "+14155550199", "BW-1")]))
    assert (msg.provider_message_id, msg.sender, msg.recipient, msg.text) == (
        "BW-1",
        "+14155550100",
        "+14155550199",
        "Stop",
    )
    assert msg.received_at == datetime(2016, 9, 14, 18, 20, 16, tzinfo=UTC)
    assert msg.raw["type"] == "message-received"


def test_every_received_event_in_the_array_is_a_message_and_others_are_skipped() -> None:
    events = [
        received("STOP", "+14155550100", "+14155550199", "A"),
        delivery("message-delivered", "OUT-1"),
        received("HELP", "+14155550101", "+14155550199", "B"),
    ]
    messages = adapter().parse_inbound(callback(events))
    assert [(m.provider_message_id, m.text) for m in messages] == [("A", "STOP"), ("B", "HELP")]
    [update] = adapter().parse_status(callback(events))
    assert update.provider_message_id == "OUT-1"


def test_group_message_recipient_is_the_owner() -> None:
    event = received("STOP", "+14155550100", "+14155550199", "G")
    event["message"]["to"] = ["+14155550177", "+14155550199"]
    del event["to"]
    [msg] = adapter().parse_inbound(callback([event]))
    assert msg.recipient == "+14155550199"


def test_recipient_falls_back_to_the_first_to() -> None:
    event = received("STOP", "+14155550100", "+14155550199", "G")
    del event["to"], event["message"]["owner"]
    [msg] = adapter().parse_inbound(callback([event]))
    assert msg.recipient == "+14155550199"


def test_mms_without_text_has_empty_text() -> None:
    event = received("x", "+14155550100", "+14155550199", "MMS")
    del event["message"]["text"]
    event["message"]["media"] = ["https://messaging.bandwidth.com/api/v2/users/9900000/media/abc.jpg"]
    [msg] = adapter().parse_inbound(callback([event]))
    assert msg.text == ""


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda e: {"not": "an array"}, "[]"),
        (lambda e: [e, "oops"], "[1]"),
        (lambda e: [{**e, "message": None}], "[0].message"),
        (lambda e: [{**e, "message": {**e["message"], "from": 14155550100}}], "[0].message.from"),
        (lambda e: [{**e, "message": {**e["message"], "id": ""}}], "[0].message.id"),
        (lambda e: [{**e, "message": {**e["message"], "text": ["STOP"]}}], "[0].message.text"),
        (
            lambda e: [{k: v for k, v in e.items() if k != "to"} | {"message": {"id": "M", "from": "+1"}}],
            "[0].message.to",
        ),
    ],
)
def test_wrong_shapes_name_the_field(mutate: Any, field: str) -> None:
    event = received("STOP", "+14155550100", "+14155550199", "M")
    body = json.dumps(mutate(event)).encode()
    req = WebhookRequest.build("POST", URL, body, {"Content-Type": "application/json"})
    with pytest.raises(PayloadError) as err:
        adapter().parse_inbound(req)
    assert err.value.field == field


@pytest.mark.parametrize(
    ("kind", "code", "status", "error_code", "opted_out"),
    [
        ("message-delivered", 0, DeliveryStatus.DELIVERED, None, False),
        ("message-sending", None, DeliveryStatus.SENT, None, False),
        ("message-failed", 4720, DeliveryStatus.FAILED, "4720", False),
        ("message-failed", 4775, DeliveryStatus.FAILED, "4775", True),
        ("message-failed", "4775", DeliveryStatus.FAILED, "4775", True),
        ("message-redacted", None, DeliveryStatus.UNKNOWN, None, False),
    ],
)
def test_delivery_events(
    kind: str, code: Any, status: DeliveryStatus, error_code: str | None, opted_out: bool
) -> None:
    [update] = adapter().parse_status(callback([delivery(kind, "OUT-1", code)]))
    assert (update.status, update.error_code, update.opted_out) == (status, error_code, opted_out)
    assert update.raw_status == kind and update.recipient == "+14155550100"
    assert update.occurred_at == datetime(2024, 3, 1, 10, 0, 5, tzinfo=UTC)


# ---- sending --------------------------------------------------------------------------------------


def test_send_tags_the_message_with_our_key() -> None:
    message = OutboundMessage(
        channel="sms",  # type: ignore[arg-type]
        to="+14155550100",
        body="hi",
        sender="+14155550199",
        idempotency_key="outbox-42",
    )
    with responses.RequestsMock() as rsps:
        rsps.add("POST", SEND_URL, status=202, json={"id": "BW-OUT"})
        result = adapter().send(message)
        sent = json.loads(rsps.calls[0].request.body or b"{}")
    assert result.outcome is SendOutcome.ACCEPTED and result.provider_message_id == "BW-OUT"
    assert sent == {
        "applicationId": APPLICATION_ID,
        "to": ["+14155550100"],
        "from": "+14155550199",
        "text": "hi",
        "tag": "outbox-42",
    }


def test_request_validation_error_is_permanent() -> None:
    with responses.RequestsMock() as rsps:
        rsps.add(
            "POST",
            SEND_URL,
            status=400,
            json={"type": "request-validation", "description": "Your request could not be accepted"},
        )
        result = adapter().send(CASE.outbound)
    assert result.outcome is SendOutcome.FAILED and result.error_code == "request-validation"
    assert result.error_message == "Your request could not be accepted"


def test_throttling_passes_retry_after_on() -> None:
    with responses.RequestsMock() as rsps:
        rsps.add(
            "POST", SEND_URL, status=429, headers={"Retry-After": "3"}, json={"type": "too-many-requests"}
        )
        result = adapter().send(CASE.outbound)
    assert result.outcome is SendOutcome.RETRY and result.retry_after == 3


def test_no_sender_fails() -> None:
    message = OutboundMessage(channel="sms", to="+14155550100", body="hi")  # type: ignore[arg-type]
    assert adapter().send(message).error_code == "no_sender"


def test_configured_sender_and_base_url() -> None:
    built = adapter(**{"from": "+14155550111", "base_url": "https://bw.example.com"})
    message = OutboundMessage(channel="sms", to="+14155550100", body="hi")  # type: ignore[arg-type]
    with responses.RequestsMock() as rsps:
        rsps.add("POST", "https://bw.example.com/api/v2/users/9900000/messages", status=202, json={"id": "X"})
        assert built.send(message).outcome is SendOutcome.ACCEPTED
        assert json.loads(rsps.calls[0].request.body or b"{}")["from"] == "+14155550111"


def test_unreadable_success_body_is_retried() -> None:
    with responses.RequestsMock() as rsps:
        rsps.add("POST", SEND_URL, status=202, body="accepted")
        assert adapter().send(CASE.outbound).outcome is SendOutcome.RETRY


# ---- robustness -----------------------------------------------------------------------------------


BODIES = [
    [received("STOP", "+14155550100", "+14155550199", "M")],
    [delivery("message-failed", "OUT-1", 4775), received("HELP", "+1", "+2", "N")],
]


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(BODIES).flatmap(mutations) | st.binary(max_size=64))
def test_parsing_arbitrary_input_raises_only_payload_errors(body: Any) -> None:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    req = WebhookRequest.build("POST", URL, raw, {"Content-Type": "application/json"})
    built = adapter()
    for parse in (built.parse_inbound, built.parse_status):
        try:
            parsed = parse(req)
        except PayloadError:
            continue
        assert isinstance(parsed, list)
