"""Telnyx wire format for the contract suite: Ed25519-signed JSON events, /v2/messages sends."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from typing import Any

import responses
from nacl.signing import SigningKey
from responses import matchers

from adapters.base import WebhookRequest
from gateway.messages import DeliveryStatus
from tests.adapters.contract import ProviderCase, StatusCase

URL = "https://gateway.example.com/webhooks/telnyx/inbound"
STATUS_URL = "https://gateway.example.com/webhooks/telnyx/status"
# Deterministic test keys: ours stands in for Telnyx's, the other for a wrongly configured one.
SIGNING_KEY = SigningKey(hashlib.sha256(b"telnyx test key").digest())
OTHER_KEY = SigningKey(hashlib.sha256(b"some other key").digest())
PUBLIC_KEY = base64.b64encode(bytes(SIGNING_KEY.verify_key)).decode()


def signed(
    event: dict[str, Any], timestamp: int | None = None, key: SigningKey = SIGNING_KEY, url: str = URL
) -> WebhookRequest:
    """``event`` as Telnyx posts it: compact JSON, signed over ``timestamp|body``."""
    body = json.dumps(event, separators=(",", ":")).encode()
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    signature = key.sign(stamp.encode() + b"|" + body).signature
    headers = {
        "Content-Type": "application/json",
        "telnyx-signature-ed25519": base64.b64encode(signature).decode(),
        "telnyx-timestamp": stamp,
    }
    return WebhookRequest.build("POST", url, body, headers)


def received_event(text: str, sender: str, recipient: str, message_id: str) -> dict[str, Any]:
    """A ``message.received`` event shaped like Telnyx's inbound-message callback example."""
    return {
        "data": {
            "event_type": "message.received",
            "id": "bf6307bd-8f1c-4b32-a8d2-6e2b1c7a9e10",
            "occurred_at": "2019-01-23T18:10:02.574Z",
            "payload": {
                "id": message_id,
                "direction": "inbound",
                "type": "SMS",
                "messaging_profile_id": "0f512bda-ae2f-4d0f-8c4d-5c43f7f2f0a1",
                "from": {"phone_number": sender, "carrier": "T-Mobile USA", "line_type": "Wireless"},
                "to": [{"phone_number": recipient, "status": "webhook_delivered"}],
                "text": text,
                "encoding": "GSM-7",
                "parts": 1,
                "media": [],
                "received_at": "2019-01-23T18:10:02.574Z",
            },
            "record_type": "event",
        },
        "meta": {"attempt": 1, "delivered_to": URL},
    }


def finalized_event(message_id: str, status: str, error_codes: tuple[str, ...] = ()) -> dict[str, Any]:
    """A ``message.finalized`` delivery event for one recipient."""
    return {
        "data": {
            "event_type": "message.finalized",
            "id": "4ee8c3a6-4995-4309-a3c6-38e3db9ea4be",
            "occurred_at": "2024-03-01T10:00:05.000+00:00",
            "payload": {
                "id": message_id,
                "direction": "outbound",
                "type": "SMS",
                "from": {"phone_number": "+14155550199"},
                "to": [{"phone_number": "+14155550100", "status": status}],
                "errors": [{"code": code, "title": "Blocked due to STOP message"} for code in error_codes],
                "text": "hello",
                "parts": 1,
            },
            "record_type": "event",
        },
        "meta": {"attempt": 1},
    }


class TelnyxCase(ProviderCase):
    name = "telnyx"
    settings = {"messaging_profile_id": "0f512bda-ae2f-4d0f-8c4d-5c43f7f2f0a1"}
    env = {"TELNYX_API_KEY": "KEY0123456789ABCDEF", "TELNYX_PUBLIC_KEY": PUBLIC_KEY}
    wrong_env = {**env, "TELNYX_PUBLIC_KEY": base64.b64encode(bytes(OTHER_KEY.verify_key)).decode()}
    has_timestamp = True
    send_url = "https://api.telnyx.com/v2/messages"

    def inbound(self, text: str, sender: str, recipient: str, message_id: str) -> WebhookRequest:
        return signed(received_event(text, sender, recipient, message_id))

    def unsigned(self, request: WebhookRequest) -> WebhookRequest:
        headers = {k: v for k, v in request.headers.items() if not k.lower().startswith("telnyx-")}
        return WebhookRequest.build(request.method, request.url, request.body, headers)

    def stale(self, text: str) -> WebhookRequest | None:
        event = received_event(text, "+14155550100", "+14155550199", "MSG-OLD")
        return signed(event, timestamp=int(time.time()) - 600)

    def mock_send_success(self, rsps: responses.RequestsMock) -> str:
        rsps.add(
            "POST",
            self.send_url,
            json={
                "data": {
                    "record_type": "message",
                    "direction": "outbound",
                    "id": "40385f64-5717-4562-b3fc-2c963f66afa6",
                    "type": "SMS",
                    "from": {"phone_number": "+14155550199"},
                    "to": [{"phone_number": "+14155550100", "status": "queued"}],
                    "text": "hello",
                    "parts": 1,
                }
            },
            match=[
                matchers.json_params_matcher(
                    {"to": "+14155550100", "from": "+14155550199", "text": "hello"}, strict_match=False
                ),
                matchers.header_matcher({"Authorization": "Bearer KEY0123456789ABCDEF"}),
            ],
        )
        return "40385f64-5717-4562-b3fc-2c963f66afa6"

    def mock_send_throttled(self, rsps: responses.RequestsMock) -> None:
        rsps.add(
            "POST",
            self.send_url,
            status=429,
            json={"errors": [{"code": "10011", "title": "Too many requests", "detail": "Slow down."}]},
        )

    def mock_send_opted_out(self, rsps: responses.RequestsMock) -> str | None:
        rsps.add(
            "POST",
            self.send_url,
            status=409,
            json={
                "errors": [
                    {
                        "code": "40300",
                        "title": "Blocked due to STOP message",
                        "detail": "Messages cannot be sent from '+14155550199' to '+14155550100' due to an "
                        "existing block rule.",
                    }
                ]
            },
        )
        return "40300"

    def status_cases(self) -> list[StatusCase]:
        return [
            StatusCase(signed(finalized_event("MSG-D", "delivered"), url=STATUS_URL), "MSG-D", DeliveryStatus.DELIVERED),
            StatusCase(
                signed(finalized_event("MSG-X", "sending_failed", ("40300",)), url=STATUS_URL),
                "MSG-X",
                DeliveryStatus.FAILED,
                opted_out=True,
            ),
        ]


CASE = TelnyxCase()
