"""Bandwidth wire format for the contract suite: basic-auth JSON array callbacks, v2 message sends."""

from __future__ import annotations

import base64
import json
from typing import Any

import responses
from responses import matchers

from adapters.base import WebhookRequest
from gateway.messages import DeliveryStatus
from tests.adapters.contract import ProviderCase, StatusCase

URL = "https://gateway.example.com/webhooks/bandwidth/inbound"
STATUS_URL = "https://gateway.example.com/webhooks/bandwidth/status"
ACCOUNT_ID = "9900000"
APPLICATION_ID = "93de2206-9669-4e07-948d-329f4b722ee2"
CALLBACK_USER = "bw-callbacks"
CALLBACK_PASSWORD = "callback-password-0123"


def basic(user: str, password: str) -> str:
    """An HTTP Basic ``Authorization`` value."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def callback(
    events: list[Any], user: str = CALLBACK_USER, password: str = CALLBACK_PASSWORD, url: str = URL
) -> WebhookRequest:
    """A callback POST carrying ``events`` (always an array), with the Application's credentials."""
    headers = {"Content-Type": "application/json", "Authorization": basic(user, password)}
    return WebhookRequest.build("POST", url, json.dumps(events).encode(), headers)


def received(text: str, sender: str, recipient: str, message_id: str) -> dict[str, Any]:
    """A ``message-received`` event shaped like a captured Bandwidth callback."""
    return {
        "type": "message-received",
        "time": "2016-09-14T18:20:16Z",
        "description": "Incoming message received",
        "to": recipient,
        "message": {
            "id": message_id,
            "time": "2016-09-14T18:20:16Z",
            "to": [recipient],
            "from": sender,
            "text": text,
            "applicationId": APPLICATION_ID,
            "owner": recipient,
            "direction": "in",
            "segmentCount": 1,
        },
    }


def delivery(
    kind: str, message_id: str, error_code: int | None = None, description: str = "ok"
) -> dict[str, Any]:
    """A delivery event (``message-delivered``, ``message-failed``, ...) for one of our messages."""
    event: dict[str, Any] = {
        "type": kind,
        "time": "2024-03-01T10:00:05.000Z",
        "description": description,
        "to": "+14155550100",
        "message": {
            "id": message_id,
            "owner": "+14155550199",
            "applicationId": APPLICATION_ID,
            "time": "2024-03-01T10:00:00.000Z",
            "segmentCount": 1,
            "direction": "out",
            "to": ["+14155550100"],
            "from": "+14155550199",
            "text": "",
            "tag": "outbox-42",
        },
    }
    if error_code is not None:
        event["errorCode"] = error_code
    return event


class BandwidthCase(ProviderCase):
    name = "bandwidth"
    settings = {"application_id": APPLICATION_ID}
    env = {
        "BANDWIDTH_USERNAME": "api-user",
        "BANDWIDTH_PASSWORD": "api-password",
        "BANDWIDTH_ACCOUNT_ID": ACCOUNT_ID,
        "BANDWIDTH_CALLBACK_USER": CALLBACK_USER,
        "BANDWIDTH_CALLBACK_PASSWORD": CALLBACK_PASSWORD,
    }
    wrong_env = {**env, "BANDWIDTH_CALLBACK_PASSWORD": "another-password"}
    # Basic auth proves who calls, but nothing covers the body: tampering cannot be detected.
    signs_body = False
    send_url = f"https://messaging.bandwidth.com/api/v2/users/{ACCOUNT_ID}/messages"

    def inbound(self, text: str, sender: str, recipient: str, message_id: str) -> WebhookRequest:
        return callback([received(text, sender, recipient, message_id)])

    def unsigned(self, request: WebhookRequest) -> WebhookRequest:
        headers = {k: v for k, v in request.headers.items() if k.lower() != "authorization"}
        return WebhookRequest.build(request.method, request.url, request.body, headers)

    def mock_send_success(self, rsps: responses.RequestsMock) -> str:
        rsps.add(
            "POST",
            self.send_url,
            status=202,
            json={
                "id": "1589228074636lm4k2je7j7jklbn2",
                "owner": "+14155550199",
                "applicationId": APPLICATION_ID,
                "time": "2024-03-01T10:00:00.000Z",
                "segmentCount": 1,
                "direction": "out",
                "to": ["+14155550100"],
                "from": "+14155550199",
                "text": "hello",
            },
            match=[
                matchers.json_params_matcher(
                    {
                        "applicationId": APPLICATION_ID,
                        "to": ["+14155550100"],
                        "from": "+14155550199",
                        "text": "hello",
                    }
                ),
                matchers.header_matcher({"Authorization": basic("api-user", "api-password")}),
            ],
        )
        return "1589228074636lm4k2je7j7jklbn2"

    def status_cases(self) -> list[StatusCase]:
        return [
            StatusCase(
                callback([delivery("message-delivered", "MSG-D", 0)], url=STATUS_URL), "MSG-D", DeliveryStatus.DELIVERED
            ),
            StatusCase(
                callback(
                    [delivery("message-failed", "MSG-X", 4775, "destination-rejected-due-to-user-opt-out")],
                    url=STATUS_URL,
                ),
                "MSG-X",
                DeliveryStatus.FAILED,
                opted_out=True,
            ),
        ]


CASE = BandwidthCase()
