"""MessageBird wire format for the contract suite: JWT-signed form webhooks, GET status reports, sends."""

from __future__ import annotations

import hashlib
import time
import uuid
from urllib.parse import urlencode

import jwt
import responses
from responses import matchers

from adapters.base import WebhookRequest
from gateway.messages import DeliveryStatus
from tests.adapters.contract import ProviderCase, StatusCase

URL = "https://gateway.example.com/webhooks/messagebird/inbound"
STATUS_URL = "https://gateway.example.com/webhooks/messagebird/status"
# Signing keys are 32 characters; pyjwt warns about shorter HMAC keys.
SIGNING_KEY = "PlLrKaqvZNRR5zAjm42ZT6q1SQxgbbGd"
FORM = "application/x-www-form-urlencoded"


def token(
    url: str, body: bytes, key: str = SIGNING_KEY, not_before: float | None = None, ttl: int = 60
) -> str:
    """A ``MessageBird-Signature-JWT`` for a request to ``url`` carrying ``body``."""
    nbf = int(time.time() if not_before is None else not_before)
    claims = {
        "iss": "MessageBird",
        "nbf": nbf,
        "exp": nbf + ttl,
        "jti": str(uuid.uuid4()),
        "url_hash": hashlib.sha256(url.encode()).hexdigest(),
    }
    if body:
        claims["payload_hash"] = hashlib.sha256(body).hexdigest()
    return jwt.encode(claims, key, algorithm="HS256")


def signed(method: str, url: str, body: bytes = b"", not_before: float | None = None) -> WebhookRequest:
    """A request signed the way MessageBird signs webhooks."""
    headers = {"MessageBird-Signature-JWT": token(url, body, not_before=not_before)}
    if body:
        headers["Content-Type"] = FORM
    return WebhookRequest.build(method, url, body, headers)


def inbound_fields(text: str, sender: str, recipient: str, message_id: str) -> dict[str, str]:
    """A virtual-number inbound SMS (MessageBird posts numbers without "+")."""
    return {
        "id": message_id,
        "recipient": recipient.lstrip("+"),
        "originator": sender.lstrip("+"),
        "body": text,
        "createdDatetime": "2016-05-03T14:26:57+00:00",
    }


def status_report(message_id: str, status: str, error_code: str = "") -> WebhookRequest:
    """A status report: MessageBird sends it as a signed GET with the fields in the query."""
    query = {
        "id": message_id,
        "reference": "outbox-42",
        "recipient": "14155550100",
        "status": status,
        "statusReason": "successfully delivered" if status == "delivered" else "unknown",
        "statusDatetime": "2024-03-01T10:00:05+00:00",
        "mccmnc": "310260",
        "ported": "0",
    }
    if error_code:
        query["statusErrorCode"] = error_code
    return signed("GET", f"{STATUS_URL}?{urlencode(query)}")


class MessageBirdCase(ProviderCase):
    name = "messagebird"
    settings = {"from": "AcmeInc"}
    env = {"MESSAGEBIRD_ACCESS_KEY": "test_gshuPaZoeEG6ovbc8M79w0QyM", "MESSAGEBIRD_SIGNING_KEY": SIGNING_KEY}
    wrong_env = {**env, "MESSAGEBIRD_SIGNING_KEY": "ZZZZKaqvZNRR5zAjm42ZT6q1SQxgbbGd"}
    has_timestamp = True
    send_url = "https://rest.messagebird.com/messages"

    def inbound(self, text: str, sender: str, recipient: str, message_id: str) -> WebhookRequest:
        return signed("POST", URL, urlencode(inbound_fields(text, sender, recipient, message_id)).encode())

    def unsigned(self, request: WebhookRequest) -> WebhookRequest:
        headers = {k: v for k, v in request.headers.items() if k.lower() != "messagebird-signature-jwt"}
        return WebhookRequest.build(request.method, request.url, request.body, headers)

    def stale(self, text: str) -> WebhookRequest | None:
        body = urlencode(inbound_fields(text, "+14155550100", "+14155550199", "OLD")).encode()
        return signed("POST", URL, body, not_before=time.time() - 3600)

    def mock_send_success(self, rsps: responses.RequestsMock) -> str:
        rsps.add(
            "POST",
            self.send_url,
            status=201,
            json={
                "id": "e8077d803532c0b5937c639b60216938",
                "href": "https://rest.messagebird.com/messages/e8077d803532c0b5937c639b60216938",
                "direction": "mt",
                "type": "sms",
                "originator": "14155550199",
                "body": "hello",
                "reference": None,
                "validity": None,
                "gateway": 10,
                "typeDetails": {},
                "datacoding": "plain",
                "mclass": 1,
                "scheduledDatetime": None,
                "createdDatetime": "2024-03-01T10:00:00+00:00",
                "recipients": {
                    "totalCount": 1,
                    "totalSentCount": 1,
                    "totalDeliveredCount": 0,
                    "totalDeliveryFailedCount": 0,
                    "items": [
                        {
                            "recipient": 14155550100,
                            "status": "sent",
                            "statusDatetime": "2024-03-01T10:00:00+00:00",
                        }
                    ],
                },
            },
            match=[
                matchers.json_params_matcher(
                    {"recipients": ["14155550100"], "originator": "14155550199", "body": "hello"}
                ),
                matchers.header_matcher({"Authorization": "AccessKey test_gshuPaZoeEG6ovbc8M79w0QyM"}),
            ],
        )
        return "e8077d803532c0b5937c639b60216938"

    def status_cases(self) -> list[StatusCase]:
        return [
            StatusCase(status_report("MB-D", "delivered"), "MB-D", DeliveryStatus.DELIVERED),
            # statusErrorCode 103: the contact sent STOP, so the message was not delivered.
            StatusCase(
                status_report("MB-X", "delivery_failed", "103"), "MB-X", DeliveryStatus.FAILED, opted_out=True
            ),
        ]


CASE = MessageBirdCase()
