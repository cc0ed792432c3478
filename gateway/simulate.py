"""Build correctly signed (or tokened) provider webhooks, for `optout simulate` and the tests.

It signs with the same credentials the running gateway reads, so a simulated STOP exercises the real
verification path.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Mapping
from urllib.parse import urlencode

from twilio.request_validator import RequestValidator

from gateway.errors import ConfigError, MissingSecretError


def _env(settings: Mapping[str, object], key: str, default: str, env: Mapping[str, str]) -> str:
    var = str(settings.get(f"{key}_env") or default)
    value = env.get(var)
    if not value:
        raise MissingSecretError(f"environment variable {var} is not set (needed to sign the webhook)")
    return value


def build(
    provider: str,
    base_url: str,
    sender: str,
    recipient: str,
    text: str,
    settings: Mapping[str, object] | None = None,
    env: Mapping[str, str] | None = None,
    message_id: str | None = None,
) -> tuple[str, bytes, dict[str, str]]:
    """URL, body and headers of an inbound webhook as ``provider`` would send it to ``base_url``."""
    settings = settings or {}
    env = os.environ if env is None else env
    base = base_url.rstrip("/")
    if provider == "twilio":
        url = f"{base}/webhooks/twilio/inbound"
        params = {
            "MessageSid": message_id or "SM" + uuid.uuid4().hex,
            "AccountSid": "AC" + "0" * 32,
            "From": sender,
            "To": recipient,
            "Body": text,
            "NumMedia": "0",
            "NumSegments": "1",
            "SmsStatus": "received",
            "ApiVersion": "2010-04-01",
        }
        token = _env(settings, "auth_token", "TWILIO_AUTH_TOKEN", env)
        signature = RequestValidator(token).compute_signature(url, params)
        headers = {"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature}
        return url, urlencode(params).encode(), headers
    if provider == "clicksend":
        token = _env(settings, "webhook_token", "CLICKSEND_WEBHOOK_TOKEN", env)
        url = f"{base}/webhooks/clicksend/inbound?{urlencode({'token': token})}"
        form = {
            "timestamp": "1700000000",
            "from": sender,
            "to": recipient,
            "body": text,
            "message_id": message_id or str(uuid.uuid4()).upper(),
            "custom_string": "",
            "original_body": "",
            "original_message_id": "",
        }
        return url, urlencode(form).encode(), {"Content-Type": "application/x-www-form-urlencoded"}
    if provider == "console":
        url = f"{base}/webhooks/console/inbound"
        payload = {"from": sender, "to": recipient, "text": text, "id": message_id or str(uuid.uuid4())}
        return url, json.dumps(payload).encode(), {"Content-Type": "application/json"}
    raise ConfigError(f"simulate supports twilio, clicksend and console, not {provider!r}")
