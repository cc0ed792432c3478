"""Vonage specifics: SDK signature vectors, signing methods, concatenated parts, GET/form/JSON, sends."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import pytest
import responses
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.base import WebhookRequest
from adapters.vonage import VonageAdapter
from gateway.errors import ConfigError, MissingSecretError, PayloadError, VerificationError
from gateway.messages import DeliveryStatus, OutboundMessage, SendOutcome
from tests.adapters.cases.vonage import (
    CASE,
    URL,
    form_request,
    get_request,
    inbound_params,
    json_request,
    sign,
)

SEND_URL = "https://rest.nexmo.com/sms/json"


def adapter(**settings: Any) -> VonageAdapter:
    env = dict(CASE.env)
    return VonageAdapter.from_config({**CASE.settings, **settings}, env)


def at(now: float, **settings: Any) -> VonageAdapter:
    """An adapter whose clock reads ``now``."""
    built = adapter(**settings)
    built.clock = lambda: now
    return built


# ---- signatures -----------------------------------------------------------------------------------

# Vectors from Vonage's Python SDKs (v3 client tests for the MD5 hash method, v4 http_client auth tests for
# the HMAC methods), with the secrets those tests use.
SDK_VECTORS = [
    (
        "md5hash",
        "secret",
        {"a": "1", "b": "2", "timestamp": "1461605396"},
        "6af838ef94998832dbfc29020b564830",
    ),
    (
        "md5",
        "signature_secret",
        {"param1": "value1", "param2": "value2", "timestamp": "1234567890"},
        "724c2bf6ca423c36e20631b11d1c5753",
    ),
    (
        "md5",
        "signature_secret",
        {"param": "value", "timestamp": "1234567890"},
        "655a4d0b7f064dff438defc52b012cf5",
    ),
    (
        "sha256",
        "signature_secret",
        {"param1": "value1", "param2": "value2", "timestamp": "1234567890"},
        "280c4320703dbc98bfa22db676655ed2acfbfe8792b062ff7622e67f1183c287",
    ),
]


@pytest.mark.parametrize(("method", "secret", "params", "expected"), SDK_VECTORS)
def test_sdk_signature_vectors(method: str, secret: str, params: dict[str, str], expected: str) -> None:
    built = VonageAdapter("key", "secret", secret, signature_method=method)
    assert built.signature(params) == expected


@pytest.mark.parametrize(("method", "secret", "params", "expected"), SDK_VECTORS)
def test_sdk_vectors_verify_as_webhooks_in_any_case(
    method: str, secret: str, params: dict[str, str], expected: str
) -> None:
    built = VonageAdapter("key", "secret", secret, signature_method=method)
    built.clock = lambda: float(params["timestamp"]) + 5
    for sig in (expected, expected.upper()):
        built.verify(get_request({**params, "sig": sig}))


@pytest.mark.parametrize("method", ["sha1", "sha512", "HMAC-SHA256", "hmac_md5"])
def test_other_signing_methods_and_aliases_are_accepted(method: str) -> None:
    built = VonageAdapter("key", "secret", "another-secret", signature_method=method)
    built.clock = lambda: 1_700_000_000
    params = {"msisdn": "14155550100", "timestamp": "1700000000"}
    built.verify(get_request({**params, "sig": built.signature(params)}))


def test_unknown_signing_method_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="signature_method"):
        adapter(signature_method="sha3")


def test_ampersand_and_equals_in_values_are_replaced_before_signing() -> None:
    built = VonageAdapter("key", "secret", "secret", signature_method="md5hash")
    assert built.signature({"text": "a&b=c", "timestamp": "1"}) == built.signature(
        {"text": "a_b_c", "timestamp": "1"}
    )
    assert built.signature({"text": "a&b=c", "timestamp": "1"}) != built.signature(
        {"text": "a b c", "timestamp": "1"}
    )


def test_timestamp_outside_tolerance_is_rejected_both_ways() -> None:
    req = form_request(sign({**inbound_params("STOP", "+1", "+2", "M"), "timestamp": "1700000000"}))
    at(1_700_000_000 + 299).verify(req)
    at(1_700_000_000 - 299).verify(req)
    with pytest.raises(VerificationError, match="window"):
        at(1_700_000_000 + 301).verify(req)
    with pytest.raises(VerificationError, match="window"):
        at(1_700_000_000 - 301).verify(req)


def test_tolerance_is_configurable() -> None:
    req = form_request(sign({**inbound_params("STOP", "+1", "+2", "M"), "timestamp": "1700000000"}))
    at(1_700_000_000 + 900, timestamp_tolerance=1000).verify(req)
    with pytest.raises(VerificationError):
        at(1_700_000_000 + 60, timestamp_tolerance=30).verify(req)


def test_signed_webhook_without_timestamp_is_rejected() -> None:
    built = adapter()
    params = inbound_params("STOP", "+1", "+2", "M")
    with pytest.raises(VerificationError, match="timestamp"):
        built.verify(get_request({**params, "sig": built.signature(params)}))


def test_query_parameters_are_covered_by_the_signature() -> None:
    # A field smuggled into the query of a signed form post must break the signature, since parsing reads it.
    req = CASE.inbound("STOP", "+14155550100", "+14155550199", "M")
    smuggled = WebhookRequest.build("POST", f"{URL}?concat-ref=1", req.body, dict(req.headers))
    with pytest.raises(VerificationError):
        adapter().verify(smuggled)


def test_unreadable_json_body_is_a_verification_error() -> None:
    req = WebhookRequest.build("POST", URL, b"{not json", {"Content-Type": "application/json"})
    with pytest.raises(VerificationError):
        adapter().verify(req)


def test_unsigned_webhooks_pass_only_when_signatures_are_off() -> None:
    req = form_request(inbound_params("STOP", "+14155550100", "+14155550199", "M"))
    with pytest.raises(VerificationError, match="not signed"):
        adapter().verify(req)
    env = {k: v for k, v in CASE.env.items() if k != "VONAGE_SIGNATURE_SECRET"}
    VonageAdapter.from_config({"verify_signatures": False}, env).verify(req)


def test_signature_secret_required_while_signatures_are_on() -> None:
    env = {k: v for k, v in CASE.env.items() if k != "VONAGE_SIGNATURE_SECRET"}
    with pytest.raises(MissingSecretError, match="VONAGE_SIGNATURE_SECRET"):
        VonageAdapter.from_config({}, env)


def test_credential_variable_names_come_from_settings() -> None:
    env = {"MY_KEY": "k", "MY_SECRET": "s", "MY_SIG": "x"}
    settings = {"api_key_env": "MY_KEY", "api_secret_env": "MY_SECRET", "signature_secret_env": "MY_SIG"}
    built = VonageAdapter.from_config(settings, env)
    assert (built.api_key, built.api_secret, built.signature_secret) == ("k", "s", "x")
    with pytest.raises(MissingSecretError, match="MY_SECRET"):
        VonageAdapter.from_config(settings, {"MY_KEY": "k", "MY_SIG": "x"})


# ---- inbound --------------------------------------------------------------------------------------


@pytest.mark.parametrize("build", [get_request, form_request, json_request])
def test_get_form_and_json_deliveries_parse_alike(build: Any) -> None:
    req = build(sign(inbound_params("Stop please", "+447700900001", "+447700900000", "0A0000000123ABCD")))
    built = adapter()
    built.verify(req)
    [msg] = built.parse_inbound(req)
    assert (msg.sender, msg.recipient, msg.text) == ("447700900001", "447700900000", "Stop please")
    assert msg.provider_message_id == "0A0000000123ABCD"
    assert msg.received_at == datetime(2016, 8, 14, 10, 13, 54, tzinfo=UTC)
    assert msg.concat_ref is None and msg.concat_part is None and msg.concat_total is None
    assert msg.raw["keyword"] == "STOP"


def test_concatenated_parts_report_their_position() -> None:
    base = {
        "msisdn": "33612345678",
        "to": "33700000000",
        "type": "text",
        "concat": "true",
        "concat-ref": "171",
        "concat-total": "2",
        "message-timestamp": "2016-03-09 16:00:30",
    }
    first = {**base, "messageId": "02000000AAAAAAAA", "concat-part": "1", "text": "Please remove me from"}
    second = {**base, "messageId": "02000000BBBBBBBB", "concat-part": "2", "text": " this list. STOP"}
    built = adapter()
    parsed = []
    for params in (second, first):  # parts may arrive out of order
        req = form_request(sign(params))
        built.verify(req)
        parsed.extend(built.parse_inbound(req))
    assert [(m.concat_ref, m.concat_part, m.concat_total) for m in parsed] == [("171", 2, 2), ("171", 1, 2)]
    assert [m.text for m in parsed] == [" this list. STOP", "Please remove me from"]


def test_concat_without_the_concat_flag_is_still_a_part() -> None:
    # Some carriers omit ``concat=true``; the reference alone marks a part.
    params = {
        **inbound_params("part", "+1", "+2", "M"),
        "concat-ref": "9",
        "concat-part": "1",
        "concat-total": "3",
    }
    [msg] = adapter().parse_inbound(form_request(params))
    assert (msg.concat_ref, msg.concat_part, msg.concat_total) == ("9", 1, 3)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"concat-part": None}, "concat-part"),
        ({"concat-total": "two"}, "concat-total"),
        ({"concat-part": "0"}, "concat-part"),
        ({"concat-part": "3", "concat-total": "2"}, "concat-part"),
        ({"concat-part": "²"}, "concat-part"),
    ],
)
def test_bad_concat_metadata_is_a_payload_error(changes: dict[str, str | None], field: str) -> None:
    params = {
        **inbound_params("x", "+1", "+2", "M"),
        "concat-ref": "5",
        "concat-part": "1",
        "concat-total": "2",
    }
    params = {k: v for k, v in {**params, **changes}.items() if v is not None}
    with pytest.raises(PayloadError) as err:
        adapter().parse_inbound(form_request(params))
    assert err.value.field == field


@pytest.mark.parametrize("missing", ["msisdn", "to", "messageId", "text"])
def test_missing_inbound_field_is_named(missing: str) -> None:
    params = {k: v for k, v in inbound_params("STOP", "+1", "+2", "M").items() if k != missing}
    with pytest.raises(PayloadError) as err:
        adapter().parse_inbound(form_request(params))
    assert err.value.field == missing


def test_binary_message_has_empty_text_and_bad_timestamp_is_dropped() -> None:
    params = {**inbound_params("x", "+1", "+2", "M"), "type": "binary", "message-timestamp": "yesterday"}
    del params["text"]
    [msg] = adapter().parse_inbound(form_request({**params, "data": "0102", "udh": "050003"}))
    assert msg.text == ""
    assert msg.received_at is None


def test_ack_is_an_empty_2xx() -> None:
    response = adapter().ack([])
    assert response.status == 204 and response.body == b""


# ---- delivery receipts ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("delivered", DeliveryStatus.DELIVERED),
        ("accepted", DeliveryStatus.SENT),
        ("buffered", DeliveryStatus.SENT),
        ("expired", DeliveryStatus.UNDELIVERED),
        ("failed", DeliveryStatus.FAILED),
        ("rejected", DeliveryStatus.FAILED),
        ("unknown", DeliveryStatus.UNKNOWN),
        ("something-new", DeliveryStatus.UNKNOWN),
    ],
)
def test_dlr_statuses_map_onto_the_closed_set(raw: str, expected: DeliveryStatus) -> None:
    req = get_request({"messageId": "M1", "status": raw, "err-code": "0", "msisdn": "14155550100"})
    [update] = adapter().parse_status(req)
    assert update.status is expected and update.raw_status == raw
    assert update.error_code is None and not update.opted_out
    assert update.recipient == "14155550100"


def test_err_code_9_means_opted_out() -> None:
    req = json_request(
        {"messageId": "M1", "status": "rejected", "err-code": "9", "message-timestamp": "2020-01-01 12:00:00"}
    )
    [update] = adapter().parse_status(req)
    assert update.opted_out and update.error_code == "9"
    assert update.occurred_at == datetime(2020, 1, 1, 12, tzinfo=UTC)


def test_other_err_codes_are_kept_but_not_opt_outs() -> None:
    [update] = adapter().parse_status(get_request({"messageId": "M1", "status": "failed", "err-code": "6"}))
    assert update.error_code == "6" and not update.opted_out


# ---- sending --------------------------------------------------------------------------------------


def submit(rsps: responses.RequestsMock, *parts: dict[str, str], status: int = 200) -> None:
    rsps.add(
        "POST", SEND_URL, status=status, json={"message-count": str(len(parts)), "messages": list(parts)}
    )


def test_send_form_fields() -> None:
    message = OutboundMessage(
        channel="sms",  # type: ignore[arg-type]
        to="+447700900000",
        body="Caf\u00e9 closes at 9",
        idempotency_key="outbox-42",
        status_callback="https://gateway.example.com/status/vonage",
    )
    with responses.RequestsMock() as rsps:
        submit(rsps, {"status": "0", "message-id": "ID-1"})
        result = adapter().send(message)
        sent = dict(x.split("=", 1) for x in str(rsps.calls[0].request.body).split("&"))
    assert result.outcome is SendOutcome.ACCEPTED and result.status is DeliveryStatus.QUEUED
    assert sent["to"] == "447700900000"
    assert sent["from"] == "AcmeInc"  # the configured default sender
    assert sent["client-ref"] == "outbox-42"
    assert sent["type"] == "unicode"
    assert sent["api_secret"] == "api-secret"
    assert "callback" in sent


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        ("1", SendOutcome.RETRY),
        ("5", SendOutcome.RETRY),
        ("7", SendOutcome.FAILED),
        ("9", SendOutcome.FAILED),
    ],
)
def test_per_message_status_decides_the_outcome(status: str, outcome: SendOutcome) -> None:
    with responses.RequestsMock() as rsps:
        submit(
            rsps, {"status": status, "error-text": "Throughput Rate Exceeded - please wait [ 30 ] and retry"}
        )
        result = adapter().send(CASE.outbound)
    assert result.outcome is outcome and result.error_code == status


def test_a_failed_second_part_fails_the_message() -> None:
    with responses.RequestsMock() as rsps:
        submit(rsps, {"status": "0", "message-id": "P1"}, {"status": "7", "error-text": "Number barred."})
        result = adapter().send(CASE.outbound)
    assert result.outcome is SendOutcome.FAILED and result.error_code == "7"


def test_unreadable_success_body_is_retried() -> None:
    with responses.RequestsMock() as rsps:
        rsps.add("POST", SEND_URL, status=200, body="<html>oops</html>")
        result = adapter().send(CASE.outbound)
    assert result.outcome is SendOutcome.RETRY and result.raw["text"].startswith("<html>")


def test_retry_after_header_is_passed_on() -> None:
    with responses.RequestsMock() as rsps:
        rsps.add(
            "POST", SEND_URL, status=429, headers={"Retry-After": "12"}, json={"title": "Too Many Requests"}
        )
        result = adapter().send(CASE.outbound)
    assert result.outcome is SendOutcome.RETRY and result.retry_after == 12


def test_client_error_is_permanent() -> None:
    with responses.RequestsMock() as rsps:
        rsps.add("POST", SEND_URL, status=401, json={"title": "Unauthorized"})
        result = adapter().send(CASE.outbound)
    assert result.outcome is SendOutcome.FAILED and result.error_code == "401"


def test_no_sender_anywhere_fails_without_calling_out() -> None:
    built = VonageAdapter.from_config({}, dict(CASE.env))
    message = OutboundMessage(channel="sms", to="+14155550100", body="hi")  # type: ignore[arg-type]
    with responses.RequestsMock():
        result = built.send(message)
    assert result.outcome is SendOutcome.FAILED and result.error_code == "no_sender"


def test_base_url_is_configurable() -> None:
    with responses.RequestsMock() as rsps:
        rsps.add(
            "POST",
            "https://sandbox.example.com/sms/json",
            json={"messages": [{"status": "0", "message-id": "X"}]},
        )
        result = adapter(base_url="https://sandbox.example.com/").send(CASE.outbound)
    assert result.provider_message_id == "X"


# ---- robustness -----------------------------------------------------------------------------------

FIELDS = [
    "msisdn",
    "to",
    "messageId",
    "text",
    "type",
    "concat-ref",
    "concat-part",
    "concat-total",
    "message-timestamp",
    "status",
    "err-code",
    "sig",
    "timestamp",
]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6,
)
fields = st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=6), st.text(max_size=12), max_size=10)


@st.composite
def arbitrary_requests(draw: st.DrawFn) -> WebhookRequest:
    """Query, form, JSON or raw bodies, mostly with Vonage's field names and any values."""
    kind = draw(st.sampled_from(["query", "form", "json", "raw"]))
    if kind == "query":
        return WebhookRequest.build("GET", f"{URL}?{urlencode(draw(fields))}")
    if kind == "form":
        return WebhookRequest.build(
            "POST",
            URL,
            urlencode(draw(fields)).encode(),
            {"Content-Type": "application/x-www-form-urlencoded"},
        )
    if kind == "json":
        body = json.dumps(draw(st.dictionaries(st.sampled_from(FIELDS), json_values) | json_values)).encode()
        return WebhookRequest.build("POST", URL, body, {"Content-Type": "application/json"})
    ctype = draw(st.sampled_from(["application/json", "application/x-www-form-urlencoded", "text/plain"]))
    return WebhookRequest.build("POST", URL, draw(st.binary(max_size=64)), {"Content-Type": ctype})


@settings(max_examples=300, deadline=None)
@given(arbitrary_requests())
def test_parsing_arbitrary_input_raises_only_payload_errors(req: WebhookRequest) -> None:
    built = adapter()
    for parse in (built.parse_inbound, built.parse_status):
        try:
            parsed = parse(req)
        except PayloadError:
            continue
        assert isinstance(parsed, list)
    with pytest.raises(VerificationError):  # none of these is signed with our secret
        built.verify(req)
