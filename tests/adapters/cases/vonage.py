"""Vonage SMS API wire format for the contract suite: signed form webhooks, /sms/json sends, DLRs."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from urllib.parse import urlencode

import responses
from responses import matchers

from adapters.base import WebhookRequest
from gateway.messages import DeliveryStatus
from tests.adapters.contract import ProviderCase, StatusCase

URL = "https://gateway.example.com/webhooks/vonage/inbound"
STATUS_URL = "https://gateway.example.com/webhooks/vonage/status"
SECRET = "vonage-signature-secret"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def sign(params: dict[str, str], secret: str = SECRET) -> dict[str, str]:
    """``params`` plus ``timestamp`` (if absent) and an HMAC-SHA256 ``sig``; independent of the adapter."""
    params = {"timestamp": str(int(time.time())), **params}
    joined = "".join(f"&{k}={params[k].replace('&', '_').replace('=', '_')}" for k in sorted(params))
    return {**params, "sig": hmac.new(secret.encode(), joined.encode(), hashlib.sha256).hexdigest()}


def form_request(params: dict[str, str], url: str = URL) -> WebhookRequest:
    """A POST form webhook carrying ``params``."""
    return WebhookRequest.build("POST", url, urlencode(params).encode(), FORM)


def json_request(params: dict[str, str], url: str = URL) -> WebhookRequest:
    """A POST JSON webhook carrying ``params``."""
    return WebhookRequest.build(
        "POST", url, json.dumps(params).encode(), {"Content-Type": "application/json"}
    )


def get_request(params: dict[str, str], url: str = URL) -> WebhookRequest:
    """A GET webhook carrying ``params`` in the query string."""
    return WebhookRequest.build("GET", f"{url}?{urlencode(params)}")


def inbound_params(text: str, sender: str, recipient: str, message_id: str) -> dict[str, str]:
    """Inbound fields as Vonage sends them (numbers without "+")."""
    return {
        "msisdn": sender.lstrip("+"),
        "to": recipient.lstrip("+"),
        "messageId": message_id,
        "text": text,
        "type": "text",
        "keyword": (text.split() or [""])[0].upper(),
        "message-timestamp": "2016-08-14 10:13:54",
        "nonce": "aaaaaaaa-bbbb-cccc-dddd-0123456789ab",
    }


class VonageCase(ProviderCase):
    name = "vonage"
    settings = {"signature_method": "sha256", "from": "AcmeInc"}
    env = {
        "VONAGE_API_KEY": "abcd1234",
        "VONAGE_API_SECRET": "api-secret",
        "VONAGE_SIGNATURE_SECRET": SECRET,
    }
    wrong_env = {**env, "VONAGE_SIGNATURE_SECRET": "another-secret"}
    has_timestamp = True
    send_url = "https://rest.nexmo.com/sms/json"

    def inbound(self, text: str, sender: str, recipient: str, message_id: str) -> WebhookRequest:
        return form_request(sign(inbound_params(text, sender, recipient, message_id)))

    def unsigned(self, request: WebhookRequest) -> WebhookRequest:
        params = {k: v[0] for k, v in request.form.items() if k != "sig"}
        return form_request(params)

    def stale(self, text: str) -> WebhookRequest | None:
        params = inbound_params(text, "+14155550100", "+14155550199", "MSG-OLD")
        return form_request(sign({**params, "timestamp": str(int(time.time()) - 3600)}))

    def mock_send_success(self, rsps: responses.RequestsMock) -> str:
        rsps.add(
            "POST",
            self.send_url,
            json={
                "message-count": "1",
                "messages": [
                    {
                        "to": "14155550100",
                        "message-id": "3295d748-4e14-4681-af78-166dca3c5aab",
                        "status": "0",
                        "remaining-balance": "3.14159265",
                        "message-price": "0.04120000",
                        "network": "23420",
                    }
                ],
            },
            match=[
                matchers.urlencoded_params_matcher(
                    {"api_key": "abcd1234", "to": "14155550100", "from": "14155550199", "text": "hello"},
                    allow_blank=False,
                    strict_match=False,
                )
            ],
        )
        return "3295d748-4e14-4681-af78-166dca3c5aab"

    def status_cases(self) -> list[StatusCase]:
        delivered = {
            "msisdn": "14155550100",
            "to": "AcmeInc",
            "network-code": "310260",
            "messageId": "0A0000001234567B",
            "price": "0.03330000",
            "status": "delivered",
            "scts": "2001011400",
            "err-code": "0",
            "api-key": "abcd1234",
            "message-timestamp": "2020-01-01 12:00:00",
        }
        # Opt-out receipt as on Vonage's opt-out guide: submit succeeded, the DLR says failed + err-code 9.
        opted_out = {
            **delivered,
            "messageId": "aaaaaaaa-bbbb-cccc-dddd-0123456789ab",
            "status": "failed",
            "err-code": "9",
        }
        return [
            StatusCase(form_request(sign(delivered), STATUS_URL), "0A0000001234567B", DeliveryStatus.DELIVERED),
            StatusCase(get_request(sign(delivered), STATUS_URL), "0A0000001234567B", DeliveryStatus.DELIVERED),
            StatusCase(
                json_request(sign(opted_out), STATUS_URL),
                "aaaaaaaa-bbbb-cccc-dddd-0123456789ab",
                DeliveryStatus.FAILED,
                opted_out=True,
            ),
        ]


CASE = VonageCase()
