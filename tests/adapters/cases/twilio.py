"""Twilio's wire format for the contract suite: signed form webhooks, the Messages REST resource."""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlencode

import responses
from twilio.request_validator import RequestValidator

from adapters.base import WebhookRequest
from gateway.messages import DeliveryStatus
from tests.adapters.contract import ProviderCase, StatusCase

ACCOUNT_SID = "ACtest0000000000000000000000000001"
AUTH_TOKEN = "test-auth-token-not-a-real-one"
SERVICE_SID = "MGtest0000000000000000000000000001"
INBOUND_URL = "https://gateway.example.com/webhooks/twilio/inbound"
STATUS_URL = "https://gateway.example.com/webhooks/twilio/status"
SEND_URL = f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}

# Advanced Opt-Out sets OptOutType only when the whole body is one of its keywords.
_OPT_OUT_TYPES = {"STOP": "STOP", "UNSUBSCRIBE": "STOP", "START": "START", "UNSTOP": "START", "HELP": "HELP"}


def signed(
    url: str, fields: Mapping[str, str], token: str = AUTH_TOKEN, method: str = "POST"
) -> WebhookRequest:
    """A form webhook signed the way Twilio signs it (via the SDK, so the test does not grade itself)."""
    signature = RequestValidator(token).compute_signature(url, dict(fields))
    headers = {**FORM, "X-Twilio-Signature": signature, "User-Agent": "TwilioProxy/1.1"}
    return WebhookRequest.build(method, url, urlencode(fields).encode("ascii"), headers)


def inbound_fields(text: str, sender: str, recipient: str, message_id: str) -> dict[str, str]:
    """The full field set of a captured inbound SMS webhook (US numbers, Messaging Service)."""
    fields = {
        "ToCountry": "US",
        "ToState": "CA",
        "SmsMessageSid": message_id,
        "NumMedia": "0",
        "ToCity": "",
        "FromZip": "01022",
        "SmsSid": message_id,
        "FromState": "MA",
        "SmsStatus": "received",
        "FromCity": "CHICOPEE",
        "Body": text,
        "FromCountry": "US",
        "To": recipient,
        "MessagingServiceSid": SERVICE_SID,
        "ToZip": "",
        "NumSegments": "1",
        "ReferralNumMedia": "0",
        "MessageSid": message_id,
        "AccountSid": ACCOUNT_SID,
        "From": sender,
        "ApiVersion": "2010-04-01",
    }
    opt_out_type = _OPT_OUT_TYPES.get(text.strip().upper())
    if opt_out_type:
        fields["OptOutType"] = opt_out_type
    return fields


def status_fields(message_id: str, status: str, error_code: str | None = None) -> dict[str, str]:
    """A status callback as Twilio posts it to a message's StatusCallback."""
    fields = {
        "SmsSid": message_id,
        "SmsStatus": status,
        "MessageStatus": status,
        "To": "+14155550100",
        "MessagingServiceSid": SERVICE_SID,
        "MessageSid": message_id,
        "AccountSid": ACCOUNT_SID,
        "From": "+14155550199",
        "ApiVersion": "2010-04-01",
    }
    if error_code:
        fields["ErrorCode"] = error_code
    return fields


def message_resource(sid: str, status: str = "queued") -> dict[str, object]:
    """The Message resource Twilio answers a create with (trimmed to the fields we read and log)."""
    return {
        "account_sid": ACCOUNT_SID,
        "api_version": "2010-04-01",
        "body": "hello",
        "date_created": "Thu, 30 Jul 2015 20:12:31 +0000",
        "date_sent": None,
        "date_updated": "Thu, 30 Jul 2015 20:12:31 +0000",
        "direction": "outbound-api",
        "error_code": None,
        "error_message": None,
        "from": "+14155550199",
        "messaging_service_sid": None,
        "num_media": "0",
        "num_segments": "1",
        "price": None,
        "price_unit": "USD",
        "sid": sid,
        "status": status,
        "to": "+14155550100",
        "uri": f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{sid}.json",
    }


class TwilioCase(ProviderCase):
    """Twilio: HMAC-SHA1 over URL and sorted form params, no timestamp."""

    name = "twilio"
    settings: Mapping[str, object] = {}
    env = {"TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN}
    wrong_env = {"TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": "a-different-auth-token"}
    send_url = SEND_URL

    def inbound(self, text: str, sender: str, recipient: str, message_id: str) -> WebhookRequest:
        return signed(INBOUND_URL, inbound_fields(text, sender, recipient, message_id))

    def unsigned(self, request: WebhookRequest) -> WebhookRequest:
        headers = {k: v for k, v in request.headers.items() if k.lower() != "x-twilio-signature"}
        return WebhookRequest.build(request.method, request.url, request.body, headers)

    def mock_send_success(self, rsps: responses.RequestsMock) -> str:
        sid = "SMtest0000000000000000000000000001"
        rsps.add("POST", SEND_URL, status=201, json=message_resource(sid))
        return sid

    def mock_send_throttled(self, rsps: responses.RequestsMock) -> None:
        rsps.add(
            "POST",
            SEND_URL,
            status=429,
            json={"code": 20429, "message": "Too Many Requests", "more_info": "", "status": 429},
            headers={"Retry-After": "2"},
        )

    def mock_send_opted_out(self, rsps: responses.RequestsMock) -> str | None:
        rsps.add(
            "POST",
            SEND_URL,
            status=400,
            json={
                "code": 21610,
                "message": "Attempt to send to unsubscribed recipient",
                "more_info": "https://www.twilio.com/docs/errors/21610",
                "status": 400,
            },
        )
        return "21610"

    def status_cases(self) -> list[StatusCase]:
        sid = "SMtest0000000000000000000000000002"
        cases = [
            ("sent", None, DeliveryStatus.SENT, False),
            ("delivered", None, DeliveryStatus.DELIVERED, False),
            ("undelivered", "30003", DeliveryStatus.UNDELIVERED, False),
            ("failed", "63018", DeliveryStatus.FAILED, False),
            ("failed", "21610", DeliveryStatus.FAILED, True),
        ]
        return [
            StatusCase(signed(STATUS_URL, status_fields(sid, raw, code)), sid, status, opted_out)
            for raw, code, status, opted_out in cases
        ]


CASE = TwilioCase()
