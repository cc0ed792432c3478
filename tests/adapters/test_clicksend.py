"""ClickSend specifics beyond the contract: push shapes, legacy aliases, the token, per-message status."""

from __future__ import annotations

import base64
import contextlib
import json
from datetime import UTC, datetime
from urllib.parse import urlencode

import pytest
import responses
from hypothesis import given, settings
from hypothesis import strategies as st
from responses import matchers

import adapters.base
from adapters.base import WebhookRequest
from adapters.clicksend import SOURCE, ClickSendAdapter, receipt_status
from gateway.errors import MissingSecretError, PayloadError, VerificationError
from gateway.messages import Channel, DeliveryStatus, OutboundMessage, SendOutcome
from tests.adapters.cases.clicksend import (
    API_KEY,
    INBOUND_URL,
    ORIGINAL_ID,
    RECEIPT_URL,
    SEND_URL,
    USERNAME,
    WEBHOOK_TOKEN,
    form_push,
    inbound_fields,
    json_push,
    receipt_fields,
    send_answer,
    with_token,
)

ENV = {"CLICKSEND_USERNAME": USERNAME, "CLICKSEND_API_KEY": API_KEY, "CLICKSEND_WEBHOOK_TOKEN": WEBHOOK_TOKEN}
MESSAGE = OutboundMessage(
    channel=Channel.SMS, to="+61411111111", body="hello", sender="+61422222222", custom_string="order-42"
)
URL = with_token(INBOUND_URL)


def make(**settings: object) -> ClickSendAdapter:
    return ClickSendAdapter.from_config(settings, ENV)


def documented_fields() -> dict[str, str]:
    """Only the documented ``InboundSms`` fields (what the ``json`` and ``get`` webhook types carry)."""
    return {
        "timestamp": "1700000000",
        "from": "+61411111111",
        "to": "+61422222222",
        "body": "Yes please",
        "original_message_id": ORIGINAL_ID,
        "original_body": "Want the offer?",
        "custom_string": "order-42",
        "message_id": "ABCD1234-0000-0000-0000-000000000001",
    }


# ---- the token ------------------------------------------------------------------------------------------


def test_right_token_passes() -> None:
    make().verify(form_push(URL, documented_fields()))


@pytest.mark.parametrize(
    "url",
    [
        INBOUND_URL,
        f"{INBOUND_URL}?token=",
        f"{INBOUND_URL}?token=wrong",
        f"{INBOUND_URL}?token={WEBHOOK_TOKEN}x",
        f"{INBOUND_URL}?token={WEBHOOK_TOKEN}&token=wrong",
        f"{INBOUND_URL}?Token={WEBHOOK_TOKEN}",
    ],
)
def test_missing_wrong_or_repeated_token_is_rejected(url: str) -> None:
    with pytest.raises(VerificationError):
        make().verify(form_push(url, documented_fields()))


def test_token_in_the_body_does_not_count() -> None:
    fields = {**documented_fields(), "token": WEBHOOK_TOKEN}
    with pytest.raises(VerificationError):
        make().verify(form_push(INBOUND_URL, fields))


def test_token_is_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[bytes, bytes]] = []
    real = adapters.base.hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        seen.append((a, b))
        return real(a, b)

    monkeypatch.setattr(adapters.base.hmac, "compare_digest", spy)
    with pytest.raises(VerificationError):
        make().verify(form_push(with_token(INBOUND_URL, "guess"), documented_fields()))
    make().verify(form_push(URL, documented_fields()))
    assert seen == [(b"guess", WEBHOOK_TOKEN.encode()), (WEBHOOK_TOKEN.encode(), WEBHOOK_TOKEN.encode())]


def test_missing_webhook_token_stops_start_up() -> None:
    env = {k: v for k, v in ENV.items() if k != "CLICKSEND_WEBHOOK_TOKEN"}
    with pytest.raises(MissingSecretError, match="CLICKSEND_WEBHOOK_TOKEN") as exc:
        ClickSendAdapter.from_config({}, env)
    assert API_KEY not in str(exc.value)


# ---- inbound in every shape -------------------------------------------------------------------------------


def _json_fields() -> dict[str, object]:
    # The json webhook type sends numbers as numbers.
    return {**documented_fields(), "timestamp": 1700000000}


@pytest.mark.parametrize(
    "request_",
    [
        pytest.param(form_push(URL, documented_fields()), id="post-form"),
        pytest.param(form_push(URL, documented_fields(), method="GET"), id="get-query"),
        pytest.param(json_push(URL, _json_fields()), id="json"),
        pytest.param(
            WebhookRequest.build(
                "POST", URL, json.dumps(_json_fields()).encode(), {"Content-Type": "text/plain"}
            ),
            id="json-labelled-text",
        ),
        pytest.param(
            WebhookRequest.build("POST", URL, json.dumps(_json_fields()).encode()), id="json-unlabelled"
        ),
    ],
)
def test_every_push_shape_parses_the_same(request_: WebhookRequest) -> None:
    adapter = make()
    adapter.verify(request_)
    [msg] = adapter.parse_inbound(request_)
    assert msg.provider == "clicksend"
    assert msg.provider_message_id == "ABCD1234-0000-0000-0000-000000000001"
    assert (msg.sender, msg.recipient, msg.text) == ("+61411111111", "+61422222222", "Yes please")
    assert msg.in_reply_to == ORIGINAL_ID
    assert msg.custom_string == "order-42"
    assert msg.received_at == datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)
    assert "token" not in msg.raw
    assert WEBHOOK_TOKEN not in repr(dict(msg.raw))
    assert msg.raw["original_body"] == "Want the offer?"


def test_legacy_aliases_alone_are_enough() -> None:
    fields = {
        "sms": "+61411111111",
        "to": "+61422222222",
        "message": "STOP",
        "message_id": "LEGACY-1",
        "originalmessageid": ORIGINAL_ID,
        "customstring": "order-7",
    }
    [msg] = make().parse_inbound(form_push(URL, fields))
    assert (msg.sender, msg.text, msg.in_reply_to, msg.custom_string) == (
        "+61411111111",
        "STOP",
        ORIGINAL_ID,
        "order-7",
    )


def test_current_names_win_over_legacy_ones() -> None:
    fields = {**inbound_fields("STOP", "+61411111111", "+61422222222", "M1"), "message": "old", "sms": "+1"}
    [msg] = make().parse_inbound(form_push(URL, fields))
    assert (msg.text, msg.sender) == ("STOP", "+61411111111")


def test_empty_custom_string_and_reply_are_none() -> None:
    fields = {**documented_fields(), "custom_string": "", "original_message_id": ""}
    [msg] = make().parse_inbound(form_push(URL, fields))
    assert (msg.custom_string, msg.in_reply_to) == (None, None)


def test_json_null_fields_are_absent() -> None:
    fields = {**_json_fields(), "custom_string": None, "original_message_id": None}
    [msg] = make().parse_inbound(json_push(URL, fields))
    assert (msg.custom_string, msg.in_reply_to) == (None, None)


@pytest.mark.parametrize("value", ["", "0", "yesterday", "nan", "inf", "1e400", "-5", "99999999999999999"])
def test_unusable_timestamp_keeps_the_message(value: str) -> None:
    [msg] = make().parse_inbound(form_push(URL, {**documented_fields(), "timestamp": value}))
    assert msg.received_at is None
    assert msg.text == "Yes please"


@pytest.mark.parametrize("missing", ["from", "to", "message_id"])
def test_missing_field_is_named(missing: str) -> None:
    fields = {k: v for k, v in documented_fields().items() if k != missing}
    with pytest.raises(PayloadError) as exc:
        make().parse_inbound(form_push(URL, fields))
    assert exc.value.field == missing


@pytest.mark.parametrize(
    "body",
    [b"[" * 100_000, b'{"message_id": ' + b"9" * 5000 + b"}", b"\xff\xfe{}"],
    ids=["deep-nesting", "huge-integer", "not-utf8"],
)
def test_hostile_json_is_payload_error(body: bytes) -> None:
    request = WebhookRequest.build("POST", URL, body, {"Content-Type": "application/json"})
    with pytest.raises(PayloadError):
        make().parse_inbound(request)


def test_json_array_is_payload_error() -> None:
    with pytest.raises(PayloadError):
        make().parse_inbound(
            WebhookRequest.build("POST", URL, b"[1, 2]", {"Content-Type": "application/json"})
        )


# ---- receipts -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "text", "expected"),
    [
        ("201", "Delivered", DeliveryStatus.DELIVERED),
        ("201", "Sent", DeliveryStatus.DELIVERED),  # 201 = delivered to the handset, whatever the text
        ("200", "Sent", DeliveryStatus.SENT),
        ("200", "Queued", DeliveryStatus.QUEUED),
        ("200", "Scheduled", DeliveryStatus.QUEUED),
        ("200", "WaitApproval", DeliveryStatus.QUEUED),
        ("200", "", DeliveryStatus.SENT),
        ("300", "Failed", DeliveryStatus.QUEUED),  # temporary: ClickSend retries it
        ("301", "Failed", DeliveryStatus.FAILED),
        ("301", "Cancelled", DeliveryStatus.FAILED),
        ("", "Delivered", DeliveryStatus.DELIVERED),
        ("", "Undelivered", DeliveryStatus.UNDELIVERED),
        ("", "Cancelled After Review", DeliveryStatus.FAILED),
        ("999", "Something New", DeliveryStatus.UNKNOWN),
    ],
)
def test_receipt_status_mapping(code: str, text: str, expected: DeliveryStatus) -> None:
    assert receipt_status(code, text) is expected


def test_failed_receipt_keeps_codes_and_time() -> None:
    url = with_token(RECEIPT_URL)
    request = form_push(url, receipt_fields("M1", "301", "Failed", "8", "Unknown subscriber"))
    adapter = make()
    adapter.verify(request)
    [update] = adapter.parse_status(request)
    assert (update.provider_message_id, update.status, update.raw_status) == (
        "M1",
        DeliveryStatus.FAILED,
        "Failed",
    )
    assert (update.error_code, update.opted_out) == ("8", False)
    assert update.occurred_at == datetime(2023, 11, 14, 22, 14, 2, tzinfo=UTC)
    assert update.raw["error_text"] == "Unknown subscriber"
    assert "token" not in update.raw


def test_json_receipt_with_numbers_and_nulls() -> None:
    payload = {**receipt_fields("M2", "201", "Delivered"), "status_code": 201, "error_code": None}
    [update] = make().parse_status(json_push(with_token(RECEIPT_URL), payload))
    assert (update.status, update.error_code) == (DeliveryStatus.DELIVERED, None)


def test_receipt_without_any_status_is_payload_error() -> None:
    fields = {k: v for k, v in receipt_fields("M3", "201", "Delivered").items() if not k.startswith("status")}
    with pytest.raises(PayloadError) as exc:
        make().parse_status(form_push(with_token(RECEIPT_URL), fields))
    assert exc.value.field == "status_code"


def test_ack_is_empty_200() -> None:
    response = make().ack([])
    assert (response.status, response.body) == (200, b"")


# ---- sending --------------------------------------------------------------------------------------------


def test_send_posts_the_documented_json_with_basic_auth() -> None:
    auth = "Basic " + base64.b64encode(f"{USERNAME}:{API_KEY}".encode()).decode()
    expected = {
        "messages": [
            {
                "to": "+61411111111",
                "from": "+61422222222",
                "body": "hello",
                "source": SOURCE,
                "custom_string": "order-42",
            }
        ]
    }
    with responses.RequestsMock() as rsps:
        rsps.add(
            "POST",
            SEND_URL,
            json=send_answer("MID-1"),
            match=[matchers.json_params_matcher(expected), matchers.header_matcher({"Authorization": auth})],
        )
        result = make().send(MESSAGE)
    assert (result.outcome, result.provider_message_id, result.status) == (
        SendOutcome.ACCEPTED,
        "MID-1",
        DeliveryStatus.QUEUED,
    )


def test_send_without_sender_or_note_omits_them() -> None:
    expected = {"messages": [{"to": "+61411111111", "body": "hi", "source": SOURCE}]}
    with responses.RequestsMock() as rsps:
        rsps.add("POST", SEND_URL, json=send_answer("MID-2"), match=[matchers.json_params_matcher(expected)])
        result = make().send(OutboundMessage(channel=Channel.SMS, to="+61411111111", body="hi"))
    assert result.outcome is SendOutcome.ACCEPTED


@pytest.mark.parametrize(
    "status", ["INVALID_RECIPIENT", "COUNTRY_NOT_ENABLED", "INSUFFICIENT_CREDIT", "FAILURE"]
)
def test_per_message_failure_in_a_200_fails(status: str) -> None:
    with responses.RequestsMock() as rsps:
        rsps.add("POST", SEND_URL, json=send_answer("MID-3", status=status))
        result = make().send(MESSAGE)
    assert (result.outcome, result.error_code) == (SendOutcome.FAILED, status)


def test_queued_status_is_accepted() -> None:
    with responses.RequestsMock() as rsps:
        rsps.add("POST", SEND_URL, json=send_answer("MID-4", status="QUEUED"))
        assert make().send(MESSAGE).outcome is SendOutcome.ACCEPTED


def test_per_message_throttling_is_retried() -> None:
    with responses.RequestsMock() as rsps:
        rsps.add("POST", SEND_URL, json=send_answer("MID-5", status="TOO_MANY_REQUESTS"))
        result = make().send(MESSAGE)
    assert (result.outcome, result.error_code) == (SendOutcome.RETRY, "TOO_MANY_REQUESTS")


@pytest.mark.parametrize(
    "answer",
    [
        {"http_code": 200, "response_code": "SUCCESS", "data": {"messages": []}},
        {"http_code": 200, "response_code": "SUCCESS"},
        send_answer("", status="SUCCESS"),
        "not json",
    ],
)
def test_unreadable_200_is_retried_like_a_timeout(answer: object) -> None:
    with responses.RequestsMock() as rsps:
        if isinstance(answer, str):
            rsps.add("POST", SEND_URL, body=answer)
        else:
            rsps.add("POST", SEND_URL, json=answer)
        result = make().send(MESSAGE)
    assert (result.outcome, result.error_code) == (SendOutcome.RETRY, "bad_response")


@pytest.mark.parametrize(
    ("status", "code", "outcome"),
    [
        (400, "BAD_REQUEST", SendOutcome.FAILED),
        (401, "UNAUTHORIZED", SendOutcome.FAILED),
        (403, "FORBIDDEN", SendOutcome.FAILED),
        (429, "TOO_MANY_REQUESTS", SendOutcome.RETRY),
        (500, "INTERNAL_SERVER_ERROR", SendOutcome.RETRY),
    ],
)
def test_http_errors(status: int, code: str, outcome: SendOutcome) -> None:
    with responses.RequestsMock() as rsps:
        rsps.add(
            "POST",
            SEND_URL,
            status=status,
            json={"http_code": status, "response_code": code, "response_msg": "nope", "data": None},
        )
        result = make().send(MESSAGE)
    assert (result.outcome, result.error_code, result.error_message) == (outcome, code, "nope")


def test_base_url_setting_is_honoured() -> None:
    with responses.RequestsMock() as rsps:
        rsps.add("POST", "http://clicksend.test/v3/sms/send", json=send_answer("MID-6"))
        assert make(base_url="http://clicksend.test/").send(MESSAGE).outcome is SendOutcome.ACCEPTED


# ---- robustness: malformed input is a PayloadError, never anything else ------------------------------------

_text = st.text(max_size=40)
_forms = st.dictionaries(_text, st.lists(_text, min_size=1, max_size=3), max_size=8)
_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | _text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3),
    max_leaves=10,
)


@settings(max_examples=300, deadline=None)
@given(query=_forms, form=_forms)
def test_parse_on_any_form_raises_only_payload_error(
    query: dict[str, list[str]], form: dict[str, list[str]]
) -> None:
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    request = WebhookRequest("POST", URL, "/webhooks/clicksend/inbound", headers, b"", query=query, form=form)
    for parse in (make().parse_inbound, make().parse_status):
        with contextlib.suppress(PayloadError):
            parse(request)


@settings(max_examples=300, deadline=None)
@given(
    body=st.binary(max_size=300)
    | st.dictionaries(_text, _json_values, max_size=8).map(lambda d: json.dumps(d).encode()),
    content_type=st.sampled_from(["application/x-www-form-urlencoded", "application/json", "text/plain", ""]),
)
def test_parse_on_any_bytes_raises_only_payload_error(body: bytes, content_type: str) -> None:
    request = WebhookRequest.build("POST", URL, body, {"Content-Type": content_type})
    for parse in (make().parse_inbound, make().parse_status):
        with contextlib.suppress(PayloadError):
            parse(request)


def test_get_query_fields_with_token_url() -> None:
    # The rule's URL already has ?token=...; a get push appends its fields after it.
    request = WebhookRequest.build("GET", f"{URL}&{urlencode(documented_fields())}")
    make().verify(request)
    [msg] = make().parse_inbound(request)
    assert msg.raw == documented_fields()
