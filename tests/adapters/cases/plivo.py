"""Plivo wire format for the contract suite: V3-signed form webhooks, JSON sends, status callbacks."""

from __future__ import annotations

import base64
import hashlib
import hmac
from urllib.parse import parse_qsl, urlencode, urlsplit

import responses
from responses import matchers

from adapters.base import WebhookRequest
from gateway.messages import DeliveryStatus
from tests.adapters.contract import ProviderCase, StatusCase

URL = "https://gateway.example.com/webhooks/plivo/inbound"
STATUS_URL = "https://gateway.example.com/webhooks/plivo/status"
AUTH_ID = "MAXXXXXXXXXXXXXXXXXX"
TOKEN = "plivo-auth-token"
FORM = "application/x-www-form-urlencoded"


def v3(url: str, params: dict[str, str], nonce: str, token: str = TOKEN) -> str:
    """Plivo's V3 signature of a POST, written independently of the adapter (single-valued params)."""
    parts = urlsplit(url)
    signed = f"{parts.scheme}://{parts.netloc}{parts.path}"
    query = "&".join(f"{k}={v}" for k, v in sorted(parse_qsl(parts.query, keep_blank_values=True)))
    posted = "".join(k + params[k] for k in sorted(params))
    if query or posted:
        signed += "?" + query + ("." if query and posted else "") + posted
    digest = hmac.new(token.encode(), f"{signed}.{nonce}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def signed_post(
    params: dict[str, str], url: str = URL, nonce: str = "12345678901234567890"
) -> WebhookRequest:
    """A form POST signed the way Plivo signs it."""
    headers = {
        "Content-Type": FORM,
        "X-Plivo-Signature-V3": v3(url, params, nonce),
        "X-Plivo-Signature-V3-Nonce": nonce,
    }
    return WebhookRequest.build("POST", url, urlencode(params).encode(), headers)


def inbound_params(text: str, sender: str, recipient: str, message_id: str) -> dict[str, str]:
    """Inbound fields as in a captured Plivo webhook."""
    return {
        "To": recipient.lstrip("+"),
        "From": sender.lstrip("+"),
        "TotalRate": "0",
        "Units": "1",
        "Text": text,
        "TotalAmount": "0",
        "Type": "sms",
        "MessageUUID": message_id,
        "MessageIntent": "",
    }


class PlivoCase(ProviderCase):
    name = "plivo"
    settings = {"from": "+14155550199"}
    env = {"PLIVO_AUTH_ID": AUTH_ID, "PLIVO_AUTH_TOKEN": TOKEN}
    wrong_env = {**env, "PLIVO_AUTH_TOKEN": "another-token"}
    send_url = f"https://api.plivo.com/v1/Account/{AUTH_ID}/Message/"

    def inbound(self, text: str, sender: str, recipient: str, message_id: str) -> WebhookRequest:
        return signed_post(inbound_params(text, sender, recipient, message_id))

    def unsigned(self, request: WebhookRequest) -> WebhookRequest:
        headers = {k: v for k, v in request.headers.items() if not k.lower().startswith("x-plivo-signature")}
        return WebhookRequest.build(request.method, request.url, request.body, headers)

    def mock_send_success(self, rsps: responses.RequestsMock) -> str:
        rsps.add(
            "POST",
            self.send_url,
            status=202,
            json={
                "api_id": "948b53a2-3f08-11e7-b6f4-061564b78b75",
                "message": "message(s) queued",
                "message_uuid": ["5b40a428-bfc7-4daf-9d06-726c558bf3b8"],
            },
            match=[
                matchers.json_params_matcher(
                    {"src": "+14155550199", "dst": "+14155550100", "text": "hello"}, strict_match=False
                ),
                matchers.header_matcher(
                    {"Authorization": "Basic " + base64.b64encode(f"{AUTH_ID}:{TOKEN}".encode()).decode()}
                ),
            ],
        )
        return "5b40a428-bfc7-4daf-9d06-726c558bf3b8"

    def status_cases(self) -> list[StatusCase]:
        delivered = {
            "From": "14155550199",
            "To": "14155550100",
            "MessageUUID": "5b40a428-bfc7-4daf-9d06-726c558bf3b8",
            "ParentMessageUUID": "5b40a428-bfc7-4daf-9d06-726c558bf3b8",
            "PartInfo": "1 of 1",
            "Status": "delivered",
            "TotalAmount": "0.00500",
            "TotalRate": "0.00500",
            "Units": "1",
            "MCC": "310",
            "MNC": "260",
        }
        # Error code 200: the destination number has opted out (reported only through this callback).
        opted_out = {
            **delivered,
            "MessageUUID": "0936ec98-7c4c-11e9-a8a6-0242ac110004",
            "Status": "failed",
            "ErrorCode": "200",
        }
        return [
            StatusCase(signed_post(delivered, STATUS_URL), delivered["MessageUUID"], DeliveryStatus.DELIVERED),
            StatusCase(
                signed_post(opted_out, STATUS_URL), opted_out["MessageUUID"], DeliveryStatus.FAILED, opted_out=True
            ),
        ]


CASE = PlivoCase()
