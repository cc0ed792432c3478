"""Telnyx specifics: Ed25519 signatures and replay window, event filtering, sends and their error codes."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

import pytest
import responses
from hypothesis import given, settings
from hypothesis import strategies as st
from responses import matchers

from adapters.base import WebhookRequest
from adapters.telnyx import TelnyxAdapter
from gateway.errors import ConfigError, MissingSecretError, PayloadError, ProviderError, VerificationError
from gateway.messages import DeliveryStatus, OutboundMessage, SendOutcome
from tests.adapters.cases.telnyx import CASE, URL, finalized_event, received_event, signed
from tests.adapters.strategies import mutations

SEND_URL = CASE.send_url
T = 1_700_000_000


def adapter(now: float | None = None, **settings: Any) -> TelnyxAdapter:
    built = TelnyxAdapter.from_config({**CASE.settings, **settings}, dict(CASE.env))
    if now is not None:
        built.clock = lambda: now
    return built


def inbound_at(timestamp: int, text: str = "STOP") -> WebhookRequest:
    return signed(received_event(text, "+14155550100", "+14155550199", "M"), timestamp=timestamp)


# ---- signatures -----------------------------------------------------------------------------------


def test_signature_within_the_window_is_accepted_from_either_side() -> None:
    for now in (T, T + 300, T - 300):
        adapter(now).verify(inbound_at(T))


@pytest.mark.parametrize("now", [T + 301, T - 301, T + 86_400])
def test_replay_outside_the_window_is_rejected(now: int) -> None:
    # The very same, correctly signed request is refused once it is too old (or from the future).
    with pytest.raises(VerificationError, match="window"):
        adapter(now).verify(inbound_at(T))


def test_tolerance_is_configurable() -> None:
    adapter(T + 900, timestamp_tolerance=1000).verify(inbound_at(T))
    with pytest.raises(VerificationError):
        adapter(T + 60, timestamp_tolerance=30).verify(inbound_at(T))


def test_the_timestamp_is_part_of_the_signed_message() -> None:
    req = inbound_at(T)
    moved = WebhookRequest.build("POST", URL, req.body, {**req.headers, "telnyx-timestamp": str(T + 1)})
    with pytest.raises(VerificationError, match="does not match"):
        adapter(T).verify(moved)


def test_raw_bytes_are_verified_not_reserialised_json() -> None:
    req = inbound_at(T)
    pretty = json.dumps(json.loads(req.body), indent=2).encode()
    with pytest.raises(VerificationError):
        adapter(T).verify(WebhookRequest.build("POST", URL, pretty, dict(req.headers)))


def test_headers_are_case_insensitive() -> None:
    req = inbound_at(T)
    headers = {k.title(): v for k, v in req.headers.items()}
    adapter(T).verify(WebhookRequest.build("POST", URL, req.body, headers))


@pytest.mark.parametrize(
    ("header", "value", "message"),
    [
        ("telnyx-timestamp", "yesterday", "Unix time"),
        ("telnyx-signature-ed25519", "not base64!", "base64"),
        ("telnyx-signature-ed25519", base64.b64encode(b"short").decode(), "does not match"),
    ],
)
def test_malformed_headers_are_verification_errors(header: str, value: str, message: str) -> None:
    req = inbound_at(T)
    with pytest.raises(VerificationError, match=message):
        adapter(T).verify(WebhookRequest.build("POST", URL, req.body, {**req.headers, header: value}))


def test_a_bad_public_key_is_a_config_error_that_does_not_echo_it() -> None:
    for bad in ("c2hvcnQ=", "not-base64-at-all", "KEY-THAT-LOOKS-LIKE-AN-API-KEY"):
        with pytest.raises(ConfigError) as err:
            TelnyxAdapter.from_config({}, {**CASE.env, "TELNYX_PUBLIC_KEY": bad})
        assert bad not in str(err.value)


def test_missing_public_key_names_the_variable() -> None:
    with pytest.raises(MissingSecretError, match="TELNYX_PUBLIC_KEY"):
        TelnyxAdapter.from_config({}, {"TELNYX_API_KEY": "k"})


# ---- events ---------------------------------------------------------------------------------------


def test_inbound_fields() -> None:
    [msg] = adapter().parse_inbound(inbound_at(T, "Stop texting me"))
    assert (msg.sender, msg.recipient, msg.text) == ("+14155550100", "+14155550199", "Stop texting me")
    assert msg.received_at == datetime(2019, 1, 23, 18, 10, 2, 574000, tzinfo=UTC)
    assert msg.raw["data"]["payload"]["parts"] == 1


@pytest.mark.parametrize("event_type", ["message.sent", "message.finalized", "call.initiated", "x"])
def test_events_other_than_message_received_are_ignored_inbound(event_type: str) -> None:
    event = finalized_event("M", "delivered")
    event["data"]["event_type"] = event_type
    assert adapter().parse_inbound(signed(event)) == []


def test_other_events_need_no_payload_to_be_ignored() -> None:
    event = {"data": {"event_type": "number_order.complete", "id": "x"}}
    assert adapter().parse_inbound(signed(event)) == []
    assert adapter().parse_status(signed(event)) == []


def test_inbound_events_are_ignored_by_the_status_parser() -> None:
    assert adapter().parse_status(inbound_at(T)) == []


def test_mms_without_text_has_empty_text() -> None:
    event = received_event("x", "+14155550100", "+14155550199", "M")
    event["data"]["payload"]["text"] = None
    [msg] = adapter().parse_inbound(signed(event))
    assert msg.text == ""


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        (("data",), "oops", "data"),
        (("data", "event_type"), None, "data.event_type"),
        (("data", "event_type"), 7, "data.event_type"),
        (("data", "payload"), [], "data.payload"),
        (("data", "payload", "from"), "+14155550100", "data.payload.from"),
        (("data", "payload", "from", "phone_number"), None, "data.payload.from.phone_number"),
        (("data", "payload", "to"), [], "data.payload.to"),
        (("data", "payload", "to"), ["+14155550199"], "data.payload.to"),
        (("data", "payload", "text"), 42, "data.payload.text"),
        (("data", "payload", "id"), {"uuid": "x"}, "data.payload.id"),
    ],
)
def test_wrong_shapes_name_the_field(path: tuple[str, ...], value: Any, field: str) -> None:
    event = received_event("STOP", "+14155550100", "+14155550199", "M")
    target = event
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(PayloadError) as err:
        adapter().parse_inbound(signed(event))
    assert err.value.field == field


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("queued", DeliveryStatus.QUEUED),
        ("sending", DeliveryStatus.QUEUED),
        ("sent", DeliveryStatus.SENT),
        ("delivery_unconfirmed", DeliveryStatus.SENT),
        ("delivered", DeliveryStatus.DELIVERED),
        ("delivery_failed", DeliveryStatus.UNDELIVERED),
        ("expired", DeliveryStatus.UNDELIVERED),
        ("sending_failed", DeliveryStatus.FAILED),
        ("cancelled", DeliveryStatus.FAILED),
        ("brand_new", DeliveryStatus.UNKNOWN),
    ],
)
def test_statuses_map_onto_the_closed_set(raw: str, expected: DeliveryStatus) -> None:
    [update] = adapter().parse_status(signed(finalized_event("M", raw)))
    assert update.status is expected and update.raw_status == raw
    assert update.recipient == "+14155550100" and not update.opted_out


def test_one_update_per_recipient_and_carrier_errors_are_kept() -> None:
    event = finalized_event("M", "delivery_failed", ("40008",))
    event["data"]["event_type"] = "message.sent"
    event["data"]["payload"]["to"].append({"phone_number": "+14155550101", "status": "sent"})
    updates = adapter().parse_status(signed(event))
    assert [(u.recipient, u.status) for u in updates] == [
        ("+14155550100", DeliveryStatus.UNDELIVERED),
        ("+14155550101", DeliveryStatus.SENT),
    ]
    assert all(u.error_code == "40008" and not u.opted_out for u in updates)


def test_integer_error_codes_are_understood() -> None:
    event = finalized_event("M", "sending_failed")
    event["data"]["payload"]["errors"] = [{"code": 40300}]
    [update] = adapter().parse_status(signed(event))
    assert update.opted_out and update.error_code == "40300"


# ---- sending --------------------------------------------------------------------------------------


def test_send_payload() -> None:
    message = OutboundMessage(
        channel="sms",  # type: ignore[arg-type]
        to="+14155550100",
        body="hi",
        status_callback="https://gateway.example.com/status/telnyx",
    )
    with responses.RequestsMock() as rsps:
        rsps.add("POST", SEND_URL, json={"data": {"id": "T-1"}})
        result = adapter().send(message)
        sent = json.loads(rsps.calls[0].request.body or b"{}")
    assert result.outcome is SendOutcome.ACCEPTED and result.provider_message_id == "T-1"
    assert sent == {
        "to": "+14155550100",
        "text": "hi",
        "messaging_profile_id": "0f512bda-ae2f-4d0f-8c4d-5c43f7f2f0a1",
        "webhook_url": "https://gateway.example.com/status/telnyx",
    }


@pytest.mark.parametrize(
    ("status", "code", "outcome"),
    [
        (409, "40300", SendOutcome.OPTED_OUT),
        (409, 40300, SendOutcome.OPTED_OUT),
        (429, "10011", SendOutcome.RETRY),
        (400, "10011", SendOutcome.RETRY),
        (400, "10016", SendOutcome.FAILED),
        (401, "10009", SendOutcome.FAILED),
        (503, "10007", SendOutcome.RETRY),
    ],
)
def test_error_codes_decide_the_outcome(status: int, code: Any, outcome: SendOutcome) -> None:
    with responses.RequestsMock() as rsps:
        rsps.add("POST", SEND_URL, status=status, json={"errors": [{"code": code, "detail": "why"}]})
        result = adapter().send(CASE.outbound)
    assert result.outcome is outcome and result.error_code == str(code) and result.error_message == "why"


def test_error_without_a_body_uses_the_http_status() -> None:
    with responses.RequestsMock() as rsps:
        rsps.add("POST", SEND_URL, status=422, body="")
        result = adapter().send(CASE.outbound)
    assert result.outcome is SendOutcome.FAILED and result.error_code == "422"


def test_no_sender_and_no_profile_fails() -> None:
    built = TelnyxAdapter.from_config({}, dict(CASE.env))
    message = OutboundMessage(channel="sms", to="+14155550100", body="hi")  # type: ignore[arg-type]
    assert built.send(message).error_code == "no_sender"


def test_unreadable_success_body_is_retried() -> None:
    with responses.RequestsMock() as rsps:
        rsps.add("POST", SEND_URL, json={"data": []})
        result = adapter().send(CASE.outbound)
    assert result.outcome is SendOutcome.RETRY


# ---- robustness -----------------------------------------------------------------------------------


EVENTS = [
    received_event("STOP", "+14155550100", "+14155550199", "M"),
    finalized_event("M", "delivered", ("40300",)),
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


# ---- the opt-out list ---------------------------------------------------------------------------------

OPTOUTS_URL = "https://api.telnyx.com/v2/messaging_optouts"


def test_optout_list_without_page_count_stops_at_a_short_page() -> None:
    listing = adapter()
    listing.optout_page_size = 2
    rows = [{"from": "+14155550199", "to": f"+1415555010{i}", "keyword": "STOP",
             "created_at": "2025-04-28 12:00:38.631252"} for i in range(3)]
    with responses.RequestsMock() as rsps:
        for number, page in ((1, rows[:2]), (2, rows[2:])):
            rsps.add("GET", OPTOUTS_URL, json={"data": page}, match=[matchers.query_param_matcher(
                {"page[number]": str(number), "page[size]": "2",
                 "filter[messaging_profile_id]": CASE.settings["messaging_profile_id"]})])
        entries = list(listing.sync_optouts())
    assert [e.address for e in entries] == ["+14155550100", "+14155550101", "+14155550102"]
    assert entries[0].sender == "+14155550199" and entries[0].keyword == "STOP"
    assert entries[0].created_at == datetime(2025, 4, 28, 12, 0, 38, 631252, tzinfo=UTC)


def test_optout_list_that_is_not_a_list_is_a_provider_error() -> None:
    with responses.RequestsMock() as rsps:
        rsps.add("GET", OPTOUTS_URL, json={"data": {"to": "+14155550100"}})
        with pytest.raises(ProviderError, match="unexpected answer"):
            list(adapter().sync_optouts())
