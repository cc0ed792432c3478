"""Sinch SMS wire format for the contract suite: HMAC-signed JSON callbacks, batch sends, delivery reports."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import responses
from responses import matchers

from adapters.base import WebhookRequest
from gateway.messages import DeliveryStatus
from tests.adapters.contract import ProviderCase, StatusCase

URL = "https://gateway.example.com/webhooks/sinch/inbound"
STATUS_URL = "https://gateway.example.com/webhooks/sinch/status"
SERVICE_PLAN_ID = "jd63jf88477ll123ab4567cd89"
SECRET = "sinch-webhook-secret"


def signed(
    event: dict[str, Any],
    timestamp: int | None = None,
    nonce: str = "01FJA8B4A7BM43YGWSG9GBV067",
    url: str = URL,
) -> WebhookRequest:
    """``event`` as Sinch posts it, signed over ``body.nonce.timestamp`` (independently of the adapter)."""
    body = json.dumps(event).encode()
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(SECRET.encode(), body + f".{nonce}.{stamp}".encode(), hashlib.sha256).digest()
    headers = {
        "Content-Type": "application/json",
        "x-sinch-webhook-signature": base64.b64encode(digest).decode(),
        "x-sinch-webhook-signature-nonce": nonce,
        "x-sinch-webhook-signature-timestamp": stamp,
        "x-sinch-webhook-signature-algorithm": "HmacSHA256",
    }
    return WebhookRequest.build("POST", url, body, headers)


def mo_text(text: str, sender: str, recipient: str, message_id: str) -> dict[str, Any]:
    """An inbound ``mo_text`` callback with the documented MOText fields."""
    return {
        "type": "mo_text",
        "id": message_id,
        "from": sender,
        "to": recipient,
        "body": text,
        "operator_id": "310260",
        "received_at": "2024-03-01T10:00:00.123Z",
        "sent_at": "2024-03-01T09:59:59.000Z",
    }


def recipient_report(batch_id: str, status: str, code: int) -> dict[str, Any]:
    """A per-recipient delivery report (``delivery_report: per_recipient`` on the batch)."""
    return {
        "type": "recipient_delivery_report_sms",
        "batch_id": batch_id,
        "recipient": "+14155550100",
        "code": code,
        "status": status,
        "at": "2024-03-01T10:00:05.462Z",
        "operator_status_at": "2024-03-01T10:00:05Z",
        "client_reference": "outbox-42",
    }


class SinchCase(ProviderCase):
    name = "sinch"
    settings = {"region": "eu"}
    env = {
        "SINCH_SERVICE_PLAN_ID": SERVICE_PLAN_ID,
        "SINCH_API_TOKEN": "sinch-api-token",
        "SINCH_WEBHOOK_SECRET": SECRET,
    }
    wrong_env = {**env, "SINCH_WEBHOOK_SECRET": "another-secret"}
    has_timestamp = True
    send_url = f"https://eu.sms.api.sinch.com/xms/v1/{SERVICE_PLAN_ID}/batches"

    def inbound(self, text: str, sender: str, recipient: str, message_id: str) -> WebhookRequest:
        return signed(mo_text(text, sender, recipient, message_id))

    def unsigned(self, request: WebhookRequest) -> WebhookRequest:
        headers = {k: v for k, v in request.headers.items() if not k.lower().startswith("x-sinch-webhook")}
        return WebhookRequest.build(request.method, request.url, request.body, headers)

    def stale(self, text: str) -> WebhookRequest | None:
        return signed(mo_text(text, "+14155550100", "+14155550199", "OLD"), timestamp=int(time.time()) - 3600)

    def mock_send_success(self, rsps: responses.RequestsMock) -> str:
        rsps.add(
            "POST",
            self.send_url,
            status=201,
            json={
                "id": "01FC66621XXXXX119Z8PMV1QPQ",
                "to": ["+14155550100"],
                "from": "+14155550199",
                "canceled": False,
                "body": "hello",
                "type": "mt_text",
                "created_at": "2024-03-01T10:00:00.000Z",
                "modified_at": "2024-03-01T10:00:00.000Z",
                "delivery_report": "none",
                "expire_at": "2024-03-04T10:00:00.000Z",
                "flash_message": False,
            },
            match=[
                matchers.json_params_matcher(
                    {"to": ["+14155550100"], "from": "+14155550199", "body": "hello"}, strict_match=False
                ),
                matchers.header_matcher({"Authorization": "Bearer sinch-api-token"}),
            ],
        )
        return "01FC66621XXXXX119Z8PMV1QPQ"

    def status_cases(self) -> list[StatusCase]:
        # Sinch documents no "recipient opted out" code, so no case here can expect opted_out.
        batch = "01FC66621XXXXX119Z8PMV1QPQ"
        return [
            StatusCase(signed(recipient_report(batch, "Delivered", 0), url=STATUS_URL), batch, DeliveryStatus.DELIVERED),
            StatusCase(signed(recipient_report(batch, "Failed", 410), url=STATUS_URL), batch, DeliveryStatus.FAILED),
        ]


CASE = SinchCase()
