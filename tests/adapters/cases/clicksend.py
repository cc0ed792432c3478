"""ClickSend's wire format for the contract suite: token-guarded pushes, the v3 send envelope."""

from __future__ import annotations

import json
from collections.abc import Mapping
from urllib.parse import urlencode

import responses

from adapters.base import WebhookRequest
from gateway.messages import DeliveryStatus
from tests.adapters.contract import ProviderCase, StatusCase

USERNAME = "test-user@example.com"
API_KEY = "TEST-API-KEY-00000000-0000"
WEBHOOK_TOKEN = "test-webhook-token-0123456789abcdef"
INBOUND_URL = "https://gateway.example.com/webhooks/clicksend/inbound"
RECEIPT_URL = "https://gateway.example.com/webhooks/clicksend/status"
SEND_URL = "https://rest.clicksend.com/v3/sms/send"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
JSON = {"Content-Type": "application/json"}
ORIGINAL_ID = "BF7AD270-0DE2-418B-B606-71D527D9C1AE"


def with_token(url: str, token: str = WEBHOOK_TOKEN) -> str:
    """The push URL as registered in the inbound or receipt rule."""
    return f"{url}?{urlencode({'token': token})}"


def inbound_fields(text: str, sender: str, recipient: str, message_id: str) -> dict[str, str]:
    """An inbound ``post`` push: the documented fields, then the legacy aliases form pushes also carry."""
    return {
        "timestamp": "1700000000",
        "from": sender,
        "body": text,
        "original_body": "Your order 42 has shipped. Reply STOP to opt out.",
        "original_message_id": ORIGINAL_ID,
        "to": recipient,
        "custom_string": "order-42",
        "user_id": "123456",
        "subaccount_id": "654321",
        "keyword": text.split()[0] if text.split() else "",
        "message_id": message_id,
        "originalsenderid": recipient,
        "originalmessage": "Your order 42 has shipped. Reply STOP to opt out.",
        "originalmessageid": ORIGINAL_ID,
        "customstring": "order-42",
        "message": text,
        "sms": sender,
    }


def form_push(url: str, fields: Mapping[str, str], method: str = "POST") -> WebhookRequest:
    """A ``post`` (form) or ``get`` (query) push to a token URL."""
    if method == "GET":
        return WebhookRequest.build("GET", f"{url}&{urlencode(fields)}")
    return WebhookRequest.build("POST", url, urlencode(fields).encode("utf-8"), FORM)


def json_push(url: str, fields: Mapping[str, object]) -> WebhookRequest:
    """A ``json`` push to a token URL."""
    return WebhookRequest.build("POST", url, json.dumps(fields).encode("utf-8"), JSON)


def receipt_fields(message_id: str, code: str, text: str, error_code: str = "", error_text: str = "") -> dict:
    """A delivery-receipt push with the ``SmsReceipt`` fields."""
    return {
        "timestamp_send": "1700000000",
        "timestamp": "1700000042",
        "message_id": message_id,
        "status_code": code,
        "status_text": text,
        "error_code": error_code,
        "error_text": error_text,
        "custom_string": "order-42",
        "subaccount_id": "654321",
        "message_type": "sms",
    }


def send_answer(message_id: str, status: str = "SUCCESS") -> dict[str, object]:
    """ClickSend's answer to ``/v3/sms/send``: HTTP 200 whatever each message's fate."""
    queued = 1 if status == "SUCCESS" else 0
    return {
        "http_code": 200,
        "response_code": "SUCCESS",
        "response_msg": "Messages queued for delivery.",
        "data": {
            "total_price": 0.077,
            "total_count": 1,
            "queued_count": queued,
            "blocked_count": 0,
            "messages": [
                {
                    "direction": "out",
                    "date": 1700000000,
                    "to": "+14155550100",
                    "body": "hello",
                    "from": "+14155550199",
                    "schedule": 0,
                    "message_id": message_id,
                    "message_parts": 1,
                    "message_price": "0.0770",
                    "custom_string": "",
                    "user_id": 123456,
                    "subaccount_id": 654321,
                    "country": "US",
                    "carrier": "",
                    "status": status,
                }
            ],
            "currency": {"currency_name_short": "USD", "currency_prefix_d": "$"},
        },
    }


class ClickSendCase(ProviderCase):
    """ClickSend: no signature, a secret token in the rule's URL; receipts by push."""

    name = "clicksend"
    settings: Mapping[str, object] = {}
    env = {
        "CLICKSEND_USERNAME": USERNAME,
        "CLICKSEND_API_KEY": API_KEY,
        "CLICKSEND_WEBHOOK_TOKEN": WEBHOOK_TOKEN,
    }
    wrong_env = {**env, "CLICKSEND_WEBHOOK_TOKEN": "a-different-webhook-token"}
    signs_body = False
    send_url = SEND_URL

    def inbound(self, text: str, sender: str, recipient: str, message_id: str) -> WebhookRequest:
        return form_push(with_token(INBOUND_URL), inbound_fields(text, sender, recipient, message_id))

    def unsigned(self, request: WebhookRequest) -> WebhookRequest:
        return WebhookRequest.build(
            request.method, request.url.split("?", 1)[0], request.body, request.headers
        )

    def mock_send_success(self, rsps: responses.RequestsMock) -> str:
        message_id = "4ECFB6CB-0300-45EC-96E1-5AB189432AF5"
        rsps.add("POST", SEND_URL, status=200, json=send_answer(message_id))
        return message_id

    def mock_send_throttled(self, rsps: responses.RequestsMock) -> None:
        rsps.add(
            "POST",
            SEND_URL,
            status=429,
            json={"http_code": 429, "response_code": "TOO_MANY_REQUESTS", "response_msg": "Slow down."},
        )

    def status_cases(self) -> list[StatusCase]:
        mid = "90396A38-146B-46C4-A455-675F620C2E05"
        url = with_token(RECEIPT_URL)
        return [
            StatusCase(
                form_push(url, receipt_fields(mid, "201", "Delivered")), mid, DeliveryStatus.DELIVERED
            ),
            StatusCase(form_push(url, receipt_fields(mid, "200", "Sent")), mid, DeliveryStatus.SENT),
            StatusCase(
                form_push(url, receipt_fields(mid, "301", "Failed", "8", "Unknown subscriber")),
                mid,
                DeliveryStatus.FAILED,
            ),
            StatusCase(
                json_push(url, receipt_fields(mid, "201", "Delivered")), mid, DeliveryStatus.DELIVERED
            ),
        ]


CASE = ClickSendCase()
