"""Plivo specifics: the V3 signing string, several signatures, MessageIntent, sends and status codes."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

import pytest
import responses
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.base import WebhookRequest
from adapters.plivo import PlivoAdapter
from gateway.errors import MissingSecretError, PayloadError, VerificationError
from gateway.messages import DeliveryStatus, OutboundMessage, SendOutcome
from tests.adapters.cases.plivo import CASE, FORM, URL, inbound_params, signed_post, v3

SEND_URL = CASE.send_url


def adapter(**settings: Any) -> PlivoAdapter:
    return PlivoAdapter.from_config({**CASE.settings, **settings}, dict(CASE.env))


# ---- signatures -----------------------------------------------------------------------------------


def test_signing_string_for_a_post_without_query() -> None:
    form = {"From": ["14155550100"], "To": ["14155550199"], "Text": ["hi"], "MessageUUID": ["abc"]}
    assert (
        PlivoAdapter.signing_string("POST", "https://example.com/sms/inbound", form)
        == "https://example.com/sms/inbound?From14155550100MessageUUIDabcTexthiTo14155550199"
    )


def test_signing_string_for_a_post_with_query() -> None:
    form = {"From": ["1"], "Text": ["hi"]}
    assert (
        PlivoAdapter.signing_string("POST", "https://example.com/sms/inbound?tenant=1", form)
        == "https://example.com/sms/inbound?tenant=1.From1Texthi"
    )


def test_signing_string_for_get_sorts_the_query_and_drops_an_empty_one() -> None:
    assert PlivoAdapter.signing_string("GET", "https://example.com/cb?b=2&a=1&a=0", {}) == (
        "https://example.com/cb?a=0&a=1&b=2"
    )
    assert PlivoAdapter.signing_string("GET", "https://example.com/cb", {}) == "https://example.com/cb"
    assert PlivoAdapter.signing_string("POST", "https://example.com/cb", {}) == "https://example.com/cb"


def test_signing_string_sorts_repeated_values() -> None:
    form = {"Media": ["b", "a"], "A": [""]}
    assert PlivoAdapter.signing_string("POST", "https://x.test/p", form) == "https://x.test/p?AMediaaMediab"


def test_signature_matches_an_independent_computation() -> None:
    params = inbound_params("STOP", "+14155550100", "+14155550199", "abc")
    url = f"{URL}?tenant=acme"
    assert adapter().signature("POST", url, {k: [v] for k, v in params.items()}, "n1") == v3(
        url, params, "n1"
    )


def test_any_of_several_signatures_may_match() -> None:
    req = CASE.inbound("STOP", "+14155550100", "+14155550199", "M")
    good = req.header("X-Plivo-Signature-V3")
    for header in (f"bm90LXRoaXM=,{good}", f"{good},bm90LXRoaXM=", f"bm90LXRoaXM=, {good}"):
        adapter().verify(_with_signature(req, header))
    with pytest.raises(VerificationError):
        adapter().verify(_with_signature(req, "bm90LXRoaXM=,YWxzby1ub3Q="))


def _with_signature(req: WebhookRequest, value: str) -> WebhookRequest:
    return WebhookRequest.build(req.method, req.url, req.body, {**req.headers, "X-Plivo-Signature-V3": value})


def test_the_nonce_is_signed() -> None:
    req = CASE.inbound("STOP", "+14155550100", "+14155550199", "M")
    other = WebhookRequest.build(
        req.method, req.url, req.body, {**req.headers, "X-Plivo-Signature-V3-Nonce": "another-nonce"}
    )
    with pytest.raises(VerificationError):
        adapter().verify(other)


def test_the_query_is_signed() -> None:
    params = inbound_params("STOP", "+14155550100", "+14155550199", "M")
    req = signed_post(params, url=f"{URL}?tenant=acme")
    adapter().verify(req)
    moved = WebhookRequest.build("POST", f"{URL}?tenant=evil", req.body, dict(req.headers))
    with pytest.raises(VerificationError):
        adapter().verify(moved)


def test_a_json_body_is_never_trusted() -> None:
    # Plivo signs form parameters only; a JSON body would be parsed but not covered by the signature.
    signed = CASE.inbound("STOP", "+14155550100", "+14155550199", "M")
    body = json.dumps(inbound_params("START", "+14155550100", "+14155550199", "M")).encode()
    req = WebhookRequest.build("POST", URL, body, {**signed.headers, "Content-Type": "application/json"})
    with pytest.raises(VerificationError, match="form"):
        adapter().verify(req)


def test_missing_credentials_name_the_variable() -> None:
    with pytest.raises(MissingSecretError, match="PLIVO_AUTH_TOKEN"):
        PlivoAdapter.from_config({}, {"PLIVO_AUTH_ID": "MAYYYYYYYYYYYYYYYYYY"})
    with pytest.raises(MissingSecretError, match="SUB_TOKEN"):
        PlivoAdapter.from_config({"auth_token_env": "SUB_TOKEN"}, {"PLIVO_AUTH_ID": "MAYYYYYYYYYYYYYYYYYY"})


# ---- inbound --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("intent", "action"),
    [
        ("optout", "opt_out"),
        ("optin", "opt_in"),
        ("help", "help"),
        ("", None),
        ("OPTOUT", "opt_out"),
        ("x", None),
    ],
)
def test_message_intent_becomes_the_provider_action(intent: str, action: str | None) -> None:
    params = {**inbound_params("STOP", "+14155550100", "+14155550199", "M"), "MessageIntent": intent}
    [msg] = adapter().parse_inbound(signed_post(params))
    assert msg.provider_action == action


def test_mms_text_comes_from_body_and_empty_text_is_allowed() -> None:
    params = {k: v for k, v in inbound_params("x", "+1", "+2", "M").items() if k != "Text"}
    [msg] = adapter().parse_inbound(signed_post({**params, "Type": "mms", "Body": "stop", "MediaCount": "1"}))
    assert msg.text == "stop"
    [msg] = adapter().parse_inbound(signed_post({**params, "Text": ""}))
    assert msg.text == ""


@pytest.mark.parametrize("missing", ["From", "To", "MessageUUID", "Text"])
def test_missing_inbound_field_is_named(missing: str) -> None:
    params = {k: v for k, v in inbound_params("STOP", "+1", "+2", "M").items() if k != missing}
    with pytest.raises(PayloadError) as err:
        adapter().parse_inbound(signed_post(params))
    assert err.value.field == missing


def test_get_delivery_parses_from_the_query() -> None:
    params = inbound_params("STOP", "+14155550100", "+14155550199", "M-GET")
    [msg] = adapter().parse_inbound(WebhookRequest.build("GET", f"{URL}?{urlencode(params)}"))
    assert (msg.sender, msg.text, msg.provider_message_id) == ("14155550100", "STOP", "M-GET")


# ---- status callbacks -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("queued", DeliveryStatus.QUEUED),
        ("sent", DeliveryStatus.SENT),
        ("delivered", DeliveryStatus.DELIVERED),
        ("read", DeliveryStatus.DELIVERED),
        ("undelivered", DeliveryStatus.UNDELIVERED),
        ("failed", DeliveryStatus.FAILED),
        ("rejected", DeliveryStatus.FAILED),
        ("mystery", DeliveryStatus.UNKNOWN),
    ],
)
def test_statuses_map_onto_the_closed_set(raw: str, expected: DeliveryStatus) -> None:
    [update] = adapter().parse_status(signed_post({"MessageUUID": "U1", "Status": raw, "To": "14155550100"}))
    assert update.status is expected and update.raw_status == raw and update.recipient == "14155550100"


@pytest.mark.parametrize(("code", "opted_out"), [("200", True), ("20", False), ("50", False)])
def test_only_error_code_200_is_an_opt_out(code: str, opted_out: bool) -> None:
    [update] = adapter().parse_status(
        signed_post({"MessageUUID": "U1", "Status": "failed", "ErrorCode": code})
    )
    assert update.opted_out is opted_out and update.error_code == code


# ---- sending --------------------------------------------------------------------------------------


def test_send_payload_with_status_callback() -> None:
    message = OutboundMessage(
        channel="sms",  # type: ignore[arg-type]
        to="+14155550100",
        body="Reply STOP to opt out",
        status_callback="https://gateway.example.com/status/plivo",
    )
    with responses.RequestsMock() as rsps:
        rsps.add("POST", SEND_URL, status=202, json={"message_uuid": ["U-1"]})
        result = adapter().send(message)
        sent = json.loads(rsps.calls[0].request.body or b"{}")
    assert result.outcome is SendOutcome.ACCEPTED and result.provider_message_id == "U-1"
    assert sent == {
        "src": "+14155550199",
        "dst": "+14155550100",
        "text": "Reply STOP to opt out",
        "url": "https://gateway.example.com/status/plivo",
        "method": "POST",
    }


def test_powerpack_is_used_without_a_sender() -> None:
    built = PlivoAdapter.from_config({"powerpack_uuid": "pp-1"}, dict(CASE.env))
    message = OutboundMessage(channel="sms", to="+14155550100", body="hi")  # type: ignore[arg-type]
    with responses.RequestsMock() as rsps:
        rsps.add("POST", SEND_URL, status=202, json={"message_uuid": ["U-2"]})
        built.send(message)
        sent = json.loads(rsps.calls[0].request.body or b"{}")
    assert sent["powerpack_uuid"] == "pp-1" and "src" not in sent


def test_no_sender_and_no_powerpack_fails() -> None:
    built = PlivoAdapter.from_config({}, dict(CASE.env))
    message = OutboundMessage(channel="sms", to="+14155550100", body="hi")  # type: ignore[arg-type]
    assert built.send(message).error_code == "no_sender"


def test_validation_error_is_permanent() -> None:
    with responses.RequestsMock() as rsps:
        rsps.add("POST", SEND_URL, status=400, json={"api_id": "x", "error": "invalid dst"})
        result = adapter().send(CASE.outbound)
    assert result.outcome is SendOutcome.FAILED and result.error_message == "invalid dst"


def test_throttling_passes_retry_after_on() -> None:
    with responses.RequestsMock() as rsps:
        rsps.add(
            "POST", SEND_URL, status=429, headers={"Retry-After": "5"}, json={"error": "too many requests"}
        )
        result = adapter().send(CASE.outbound)
    assert result.outcome is SendOutcome.RETRY and result.retry_after == 5


def test_unreadable_success_body_is_retried() -> None:
    with responses.RequestsMock() as rsps:
        rsps.add("POST", SEND_URL, status=202, json={"message": "queued"})
        result = adapter().send(CASE.outbound)
    assert result.outcome is SendOutcome.RETRY and result.error_code == "bad_response"


# ---- robustness -----------------------------------------------------------------------------------

FIELDS = ["From", "To", "Text", "Body", "MessageUUID", "MessageIntent", "Status", "ErrorCode", "Type"]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6,
)
fields = st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=6), st.text(max_size=12), max_size=10)


@st.composite
def arbitrary_requests(draw: st.DrawFn) -> WebhookRequest:
    """Query, form, JSON or raw bodies, mostly with Plivo's field names and any values."""
    kind = draw(st.sampled_from(["query", "form", "json", "raw"]))
    if kind == "query":
        return WebhookRequest.build("GET", f"{URL}?{urlencode(draw(fields))}")
    if kind == "form":
        return WebhookRequest.build("POST", URL, urlencode(draw(fields)).encode(), {"Content-Type": FORM})
    if kind == "json":
        body = json.dumps(draw(st.dictionaries(st.sampled_from(FIELDS), json_values) | json_values)).encode()
        return WebhookRequest.build("POST", URL, body, {"Content-Type": "application/json"})
    ctype = draw(st.sampled_from(["application/json", FORM, "text/plain"]))
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
    with pytest.raises(VerificationError):  # unsigned
        built.verify(req)
