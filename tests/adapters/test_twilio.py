"""Twilio specifics beyond the contract: signature vectors, OptOutType, idempotent sends, 21610 both ways."""

from __future__ import annotations

import base64
import contextlib
import logging
from urllib.parse import urlencode

import pytest
import requests
import responses
from hypothesis import given, settings
from hypothesis import strategies as st
from responses import matchers

from adapters.base import WebhookRequest
from adapters.twilio import EMPTY_TWIML, IDEMPOTENCY_HEADER, STATUS_MAP, TwilioAdapter
from gateway.errors import MissingSecretError, PayloadError, VerificationError
from gateway.messages import Channel, DeliveryStatus, OutboundMessage, SendOutcome
from tests.adapters.cases.twilio import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    INBOUND_URL,
    SEND_URL,
    SERVICE_SID,
    STATUS_URL,
    inbound_fields,
    message_resource,
    signed,
    status_fields,
)

ENV = {"TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
MESSAGE = OutboundMessage(
    channel=Channel.SMS, to="+14155550100", body="hello", sender="+14155550199", idempotency_key="out-42"
)


def make(**settings: object) -> TwilioAdapter:
    return TwilioAdapter.from_config(settings, ENV)


# ---- signature: the SDK's published test vectors ------------------------------------------------------

VECTOR_TOKEN = "12345"
VECTOR_URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
VECTOR_PARAMS = {
    "CallSid": "CA1234567890ABCDE",
    "Digits": "1234",
    "From": "+14158675309",
    "To": "+18005551212",
    "Caller": "+14158675309",
}


def vector_adapter() -> TwilioAdapter:
    return TwilioAdapter(account_sid="ACtest", auth_token=VECTOR_TOKEN)


def form_request(url: str, body: str, signature: str) -> WebhookRequest:
    return WebhookRequest.build("POST", url, body.encode(), {**FORM, "X-Twilio-Signature": signature})


@pytest.mark.parametrize(
    ("url", "signature"),
    [
        pytest.param(VECTOR_URL, "RSOYDt4T1cUTdK1PDd93/VVr8B8=", id="direct"),
        pytest.param(
            "https://mycompany.com:1234/myapp.php?foo=1&bar=2",
            "RSOYDt4T1cUTdK1PDd93/VVr8B8=",
            id="port-stripped",
        ),
        pytest.param(
            "http://mycompany.com:1234/myapp.php?foo=1&bar=2", "Zmvh+3yNM1Phv2jhDCwEM3q5ebU=", id="port-kept"
        ),
        pytest.param(VECTOR_URL, "kvajT1Ptam85bY51eRf/AJRuM3w=", id="https-443-added"),
        pytest.param(
            "http://mycompany.com/myapp.php?foo=1&bar=2", "0ZXoZLH/DfblKGATFgpif+LLRf4=", id="http-80-added"
        ),
    ],
)
def test_signature_vectors_pass(url: str, signature: str) -> None:
    vector_adapter().verify(form_request(url, urlencode(VECTOR_PARAMS), signature))


@pytest.mark.parametrize("order", ["Digits=5678&Digits=1234", "Digits=1234&Digits=5678"])
def test_repeated_keys_are_signed_with_sorted_values(order: str) -> None:
    body = f"Sid=CA123&SidAccount=AC123&{order}"
    vector_adapter().verify(form_request(VECTOR_URL, body, "IK+Dwps556ElfBT0I3Rgjkr1wJU="))


def test_repeated_keys_cannot_be_dropped() -> None:
    with pytest.raises(VerificationError):
        vector_adapter().verify(
            form_request(VECTOR_URL, "Sid=CA123&SidAccount=AC123&Digits=1234", "IK+Dwps556ElfBT0I3Rgjkr1wJU=")
        )


JSON_BODY = b'{"property": "value", "boolean": true}'
JSON_URL = VECTOR_URL + "&bodySHA256=0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620"
JSON_SIGNATURE = "a9nBmqA0ju/hNViExpshrM61xv4="


def json_request(body: bytes, url: str = JSON_URL) -> WebhookRequest:
    headers = {"Content-Type": "application/json", "X-Twilio-Signature": JSON_SIGNATURE}
    return WebhookRequest.build("POST", url, body, headers)


def test_json_body_hash_vector_passes() -> None:
    vector_adapter().verify(json_request(JSON_BODY))


def test_json_body_not_matching_its_hash_is_rejected() -> None:
    with pytest.raises(VerificationError):
        vector_adapter().verify(json_request(JSON_BODY.replace(b"true", b"false")))


def test_json_body_without_hash_is_rejected() -> None:
    # The URL-only signature would pass; the body itself would be covered by nothing.
    url = "https://gateway.example.com/webhooks/twilio/inbound"
    signature = vector_adapter()._validator.compute_signature(url, {})
    request = WebhookRequest.build(
        "POST", url, JSON_BODY, {"Content-Type": "application/json", "X-Twilio-Signature": signature}
    )
    with pytest.raises(VerificationError):
        vector_adapter().verify(request)


def test_non_utf8_body_with_hash_is_rejected() -> None:
    with pytest.raises(VerificationError):
        vector_adapter().verify(json_request(b"\xff\xfe"))


def test_signature_over_a_different_url_is_rejected() -> None:
    # Behind a TLS-terminating proxy the server sees http://internal-host/...: the gateway must pass the
    # public URL, and a mismatch must fail rather than pass.
    good = signed(INBOUND_URL, inbound_fields("STOP", "+14155550100", "+14155550199", "SM1"))
    moved = WebhookRequest.build(
        "POST", "http://10.0.0.5:8000/webhooks/twilio/inbound", good.body, good.headers
    )
    with pytest.raises(VerificationError):
        make().verify(moved)


def test_unparsable_url_is_a_verification_error() -> None:
    request = form_request("https://gateway.example.com:notaport/hook", "Body=hi", "x")
    with pytest.raises(VerificationError):
        vector_adapter().verify(request)


def test_signed_get_webhook_passes_and_parses() -> None:
    fields = inbound_fields("HELP", "+14155550100", "+14155550199", "SMget")
    url = f"{INBOUND_URL}?{urlencode(fields)}"
    signature = vector_adapter()._validator.compute_signature(url, {})
    request = WebhookRequest.build("GET", url, headers={"X-Twilio-Signature": signature})
    vector_adapter().verify(request)
    [msg] = vector_adapter().parse_inbound(request)
    assert (msg.provider_message_id, msg.text, msg.provider_action) == ("SMget", "HELP", "help")


# ---- inbound parsing ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "action"),
    [
        ("STOP", "opt_out"),
        ("stop", "opt_out"),
        ("UNSUBSCRIBE", "opt_out"),
        ("START", "opt_in"),
        ("HELP", "help"),
    ],
)
def test_opt_out_type_becomes_provider_action(text: str, action: str) -> None:
    adapter = make()
    request = signed(INBOUND_URL, inbound_fields(text, "+14155550100", "+14155550199", "SM1"))
    adapter.verify(request)
    [msg] = adapter.parse_inbound(request)
    assert msg.provider_action == action
    assert msg.raw["OptOutType"] in {"STOP", "START", "HELP"}


@pytest.mark.parametrize("value", [None, "", "SOMETHING_NEW"])
def test_no_or_unknown_opt_out_type_is_no_action(value: str | None) -> None:
    fields = inbound_fields("stop please", "+14155550100", "+14155550199", "SM1")
    if value is not None:
        fields["OptOutType"] = value
    [msg] = make().parse_inbound(signed(INBOUND_URL, fields))
    assert msg.provider_action is None


def test_inbound_fields_and_raw() -> None:
    fields = inbound_fields("hi there, 2+3=4", "+14155550100", "+14155550199", "SMabc")
    [msg] = make().parse_inbound(signed(INBOUND_URL, fields))
    assert msg.provider == "twilio"
    assert (msg.sender, msg.recipient, msg.text) == ("+14155550100", "+14155550199", "hi there, 2+3=4")
    assert msg.received_at is None  # Twilio sends no timestamp
    assert msg.raw == fields


def test_empty_body_is_an_empty_text() -> None:
    fields = {**inbound_fields("", "+14155550100", "+14155550199", "MM1"), "NumMedia": "1"}
    [msg] = make().parse_inbound(signed(INBOUND_URL, fields))
    assert msg.text == ""


@pytest.mark.parametrize("legacy", ["SmsMessageSid", "SmsSid"])
def test_legacy_sid_names_are_a_fallback(legacy: str) -> None:
    fields = inbound_fields("hi", "+14155550100", "+14155550199", "SMold")
    for name in ("MessageSid", "SmsMessageSid", "SmsSid"):
        if name != legacy:
            del fields[name]
    [msg] = make().parse_inbound(signed(INBOUND_URL, fields))
    assert msg.provider_message_id == "SMold"


@pytest.mark.parametrize(
    ("removed", "named"), [(("From",), "From"), (("MessageSid", "SmsMessageSid", "SmsSid"), "MessageSid")]
)
def test_missing_field_is_named(removed: tuple[str, ...], named: str) -> None:
    fields = inbound_fields("hi", "+14155550100", "+14155550199", "SM1")
    for name in removed:
        del fields[name]
    with pytest.raises(PayloadError) as exc:
        make().parse_inbound(signed(INBOUND_URL, fields))
    assert exc.value.field == named


def test_repeated_from_is_refused_not_guessed() -> None:
    body = urlencode(inbound_fields("hi", "+14155550100", "+14155550199", "SM1")) + "&From=%2B19995550000"
    request = WebhookRequest.build("POST", INBOUND_URL, body.encode(), FORM)
    with pytest.raises(PayloadError):
        make().parse_inbound(request)


# ---- status callbacks -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("raw", "expected"), sorted(STATUS_MAP.items()))
def test_every_twilio_status_maps(raw: str, expected: DeliveryStatus) -> None:
    [update] = make().parse_status(signed(STATUS_URL, status_fields("SM1", raw)))
    assert update.status is expected
    assert update.raw_status == raw


@pytest.mark.parametrize("raw", ["receiving", "received", "partially_delivered", "brand-new-status"])
def test_other_statuses_are_unknown(raw: str) -> None:
    [update] = make().parse_status(signed(STATUS_URL, status_fields("SM1", raw)))
    assert update.status is DeliveryStatus.UNKNOWN


def test_21610_in_status_callback_is_an_opt_out() -> None:
    adapter = make()
    request = signed(STATUS_URL, status_fields("SM9", "failed", "21610"))
    adapter.verify(request)
    [update] = adapter.parse_status(request)
    assert update.opted_out is True
    assert (update.status, update.error_code, update.recipient) == (
        DeliveryStatus.FAILED,
        "21610",
        "+14155550100",
    )


def test_other_error_code_is_not_an_opt_out() -> None:
    [update] = make().parse_status(signed(STATUS_URL, status_fields("SM9", "undelivered", "30003")))
    assert update.opted_out is False
    assert update.error_code == "30003"


def test_status_without_status_is_payload_error() -> None:
    fields = status_fields("SM9", "sent")
    del fields["MessageStatus"], fields["SmsStatus"]
    with pytest.raises(PayloadError):
        make().parse_status(signed(STATUS_URL, fields))


def test_ack_is_empty_twiml() -> None:
    response = make().ack([])
    assert response.status == 200
    assert response.content_type == "text/xml"
    assert response.body == EMPTY_TWIML == b'<?xml version="1.0" encoding="UTF-8"?><Response/>'


# ---- sending --------------------------------------------------------------------------------------------


def test_send_posts_form_with_basic_auth_and_idempotency_token() -> None:
    auth = "Basic " + base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()
    message = OutboundMessage(
        channel=Channel.SMS,
        to="+14155550100",
        body="hello",
        sender="+14155550199",
        idempotency_key="out-42",
        status_callback="https://gateway.example.com/webhooks/twilio/status",
    )
    with responses.RequestsMock() as rsps:
        rsps.add(
            "POST",
            SEND_URL,
            status=201,
            json=message_resource("SM1"),
            match=[
                matchers.urlencoded_params_matcher(
                    {
                        "To": "+14155550100",
                        "From": "+14155550199",
                        "Body": "hello",
                        "StatusCallback": "https://gateway.example.com/webhooks/twilio/status",
                    }
                ),
                matchers.header_matcher({IDEMPOTENCY_HEADER: "out-42", "Authorization": auth}),
            ],
        )
        result = make().send(message)
    assert result.outcome is SendOutcome.ACCEPTED
    assert (result.provider_message_id, result.status) == ("SM1", DeliveryStatus.QUEUED)


def test_send_without_key_sends_no_idempotency_header() -> None:
    with responses.RequestsMock() as rsps:
        rsps.add("POST", SEND_URL, status=201, json=message_resource("SM1"))
        make().send(OutboundMessage(channel=Channel.SMS, to="+14155550100", body="hi", sender="+1415555019"))
        assert IDEMPOTENCY_HEADER not in rsps.calls[0].request.headers


def test_send_without_sender_uses_messaging_service() -> None:
    with responses.RequestsMock() as rsps:
        rsps.add(
            "POST",
            SEND_URL,
            status=201,
            json=message_resource("SM2", status="accepted"),
            match=[
                matchers.urlencoded_params_matcher(
                    {"To": "+14155550100", "Body": "hi", "MessagingServiceSid": SERVICE_SID}
                )
            ],
        )
        result = make(messaging_service_sid=SERVICE_SID).send(
            OutboundMessage(channel=Channel.SMS, to="+14155550100", body="hi")
        )
    assert (result.outcome, result.status) == (SendOutcome.ACCEPTED, DeliveryStatus.QUEUED)


def test_send_without_any_sender_fails_without_calling_twilio() -> None:
    with responses.RequestsMock():  # any request would raise ConnectionError -> RETRY, not FAILED
        result = make().send(OutboundMessage(channel=Channel.SMS, to="+14155550100", body="hi"))
    assert (result.outcome, result.error_code) == (SendOutcome.FAILED, "no_sender")


def test_one_session_is_reused_across_sends() -> None:
    adapter = make()
    with responses.RequestsMock() as rsps:
        rsps.add("POST", SEND_URL, status=201, json=message_resource("SM1"))
        rsps.add("POST", SEND_URL, status=201, json=message_resource("SM2"))
        session = adapter._session
        adapter.send(MESSAGE)
        adapter.send(MESSAGE)
        assert adapter._session is session
        assert len(rsps.calls) == 2


def test_21610_on_send_is_opted_out() -> None:
    with responses.RequestsMock() as rsps:
        rsps.add(
            "POST",
            SEND_URL,
            status=400,
            json={"code": 21610, "message": "Attempt to send to unsubscribed recipient"},
        )
        result = make().send(MESSAGE)
    assert result.outcome is SendOutcome.OPTED_OUT
    assert result.error_code == "21610"
    assert result.error_message == "Attempt to send to unsubscribed recipient"


def test_throttled_send_carries_retry_after() -> None:
    with responses.RequestsMock() as rsps:
        rsps.add(
            "POST",
            SEND_URL,
            status=429,
            json={"code": 20429, "message": "Too Many Requests"},
            headers={"Retry-After": "7"},
        )
        result = make().send(MESSAGE)
    assert (result.outcome, result.error_code, result.retry_after) == (SendOutcome.RETRY, "20429", 7.0)


@pytest.mark.parametrize(
    ("status", "payload", "code"),
    [
        (400, {"code": 21211, "message": "The 'To' number is not a valid phone number."}, "21211"),
        (400, {"code": 21614, "message": "'To' number is not a valid mobile number"}, "21614"),
        (401, {"code": 20003, "message": "Authenticate"}, "20003"),
        (404, None, "http_404"),
    ],
)
def test_permanent_errors_fail(status: int, payload: dict[str, object] | None, code: str) -> None:
    with responses.RequestsMock() as rsps:
        if payload is None:
            rsps.add("POST", SEND_URL, status=status, body="<html>Not Found</html>")
        else:
            rsps.add("POST", SEND_URL, status=status, json=payload)
        result = make().send(MESSAGE)
    assert (result.outcome, result.error_code) == (SendOutcome.FAILED, code)
    assert result.retry_after is None


def test_problem_json_error_is_read() -> None:
    problem = {
        "type": "https://www.twilio.com/docs/errors/21211",
        "title": "Invalid 'To' Phone Number",
        "status": 400,
        "code": 21211,
    }
    with responses.RequestsMock() as rsps:
        rsps.add("POST", SEND_URL, status=400, json=problem)
        result = make().send(MESSAGE)
    assert (result.outcome, result.error_code, result.error_message) == (
        SendOutcome.FAILED,
        "21211",
        "Invalid 'To' Phone Number",
    )


def test_success_without_sid_is_retried_with_the_same_token() -> None:
    with responses.RequestsMock() as rsps:
        rsps.add("POST", SEND_URL, status=201, body="<Response/>")
        rsps.add("POST", SEND_URL, status=201, json=message_resource("SM2"))
        first = make().send(MESSAGE)
        second = make().send(MESSAGE)
        tokens = [call.request.headers.get(IDEMPOTENCY_HEADER) for call in rsps.calls]
    assert (first.outcome, first.error_code) == (SendOutcome.RETRY, "bad_response")
    assert second.outcome is SendOutcome.ACCEPTED
    assert tokens[0] is not None and tokens == [tokens[0], tokens[0]]  # Twilio drops the repeat


def test_base_url_setting_is_honoured() -> None:
    url = f"http://twilio.test:8080/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
    with responses.RequestsMock() as rsps:
        rsps.add("POST", url, status=201, json=message_resource("SM1"))
        result = make(base_url="http://twilio.test:8080/").send(MESSAGE)
    assert result.outcome is SendOutcome.ACCEPTED


def test_network_trouble_never_leaks_the_token(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    adapter = make()
    with responses.RequestsMock() as rsps:
        rsps.add("POST", SEND_URL, body=requests.ConnectionError("connection reset"))
        result = adapter.send(MESSAGE)
    assert result.outcome is SendOutcome.RETRY
    assert AUTH_TOKEN not in caplog.text
    assert AUTH_TOKEN not in repr(result) + str(result.error_message)
    assert AUTH_TOKEN not in repr(vars(adapter))


# ---- configuration ----------------------------------------------------------------------------------------


def test_missing_credentials_name_the_variable() -> None:
    with pytest.raises(MissingSecretError, match="TWILIO_AUTH_TOKEN"):
        TwilioAdapter.from_config({}, {"TWILIO_ACCOUNT_SID": ACCOUNT_SID})


def test_custom_variable_names_are_read() -> None:
    env = {"SID_A": ACCOUNT_SID, "TOKEN_A": AUTH_TOKEN}
    adapter = TwilioAdapter.from_config({"account_sid_env": "SID_A", "auth_token_env": "TOKEN_A"}, env)
    assert adapter.messages_url == SEND_URL


# ---- robustness: malformed input is a PayloadError or VerificationError, never anything else --------------

_text = st.text(max_size=40)
_forms = st.dictionaries(_text, st.lists(_text, max_size=3), max_size=8)


@settings(max_examples=300, deadline=None)
@given(form=_forms, method=st.sampled_from(["POST", "GET"]))
def test_parse_inbound_on_any_form_raises_only_payload_error(form: dict[str, list[str]], method: str) -> None:
    request = WebhookRequest(
        method, INBOUND_URL, "/webhooks/twilio/inbound", FORM, b"", query=form, form=form
    )
    for parse in (make().parse_inbound, make().parse_status):
        with contextlib.suppress(PayloadError):
            parse(request)


@settings(max_examples=300, deadline=None)
@given(
    body=st.binary(max_size=300),
    content_type=st.sampled_from(["application/x-www-form-urlencoded", "application/json", ""]),
)
def test_parse_inbound_on_any_bytes_raises_only_payload_error(body: bytes, content_type: str) -> None:
    request = WebhookRequest.build("POST", INBOUND_URL, body, {"Content-Type": content_type})
    with contextlib.suppress(PayloadError):
        make().parse_inbound(request)


@settings(max_examples=200, deadline=None)
@given(url=st.text(max_size=60), body=st.binary(max_size=100), signature=st.text(max_size=40))
def test_verify_on_anything_raises_only_verification_error(url: str, body: bytes, signature: str) -> None:
    request = WebhookRequest.build("POST", url, body, {**FORM, "X-Twilio-Signature": signature})
    with pytest.raises(VerificationError):
        vector_adapter().verify(request)
