"""Plivo Messaging: V3-signed form webhooks, inbound SMS with ``MessageIntent``, sends and status callbacks.

Plivo signs every callback with ``X-Plivo-Signature-V3`` (HMAC-SHA256 keyed by the auth token) over the URL it
called, the POSTed parameters and a per-request nonce; see `signing_string`. There is no timestamp, so replays
are caught by the gateway's idempotency claim on ``MessageUUID``, not here.

Opt-outs are reported asynchronously: a send to an opted-out number is accepted, then its status callback says
``failed`` with ``ErrorCode`` 200.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlsplit

import requests

from adapters._common import number_setting, response_body
from adapters.base import Adapter, WebhookRequest, is_transient_status
from gateway.errors import PayloadError, VerificationError
from gateway.messages import (
    DeliveryStatus,
    InboundMessage,
    OutboundMessage,
    SendOutcome,
    SendResult,
    StatusUpdate,
)

# ``MessageIntent`` is set when the text was one of Plivo's standard keywords and Plivo acted on it.
INTENTS: dict[str, str] = {"optout": "opt_out", "optin": "opt_in", "help": "help"}

STATUSES: dict[str, DeliveryStatus] = {
    "queued": DeliveryStatus.QUEUED,
    "sent": DeliveryStatus.SENT,
    "delivered": DeliveryStatus.DELIVERED,
    "read": DeliveryStatus.DELIVERED,  # WhatsApp read receipt: delivered, and then some
    "undelivered": DeliveryStatus.UNDELIVERED,
    "failed": DeliveryStatus.FAILED,
    "rejected": DeliveryStatus.FAILED,
}

# Error code 200: the destination opted out of messages from this source.
OPT_OUT_ERROR_CODES = frozenset({"200"})


class PlivoAdapter(Adapter):
    """Plivo's Message API (``api.plivo.com/v1``)."""

    name: ClassVar[str] = "plivo"
    env_defaults: ClassVar[Mapping[str, str]] = {"auth_id": "PLIVO_AUTH_ID", "auth_token": "PLIVO_AUTH_TOKEN"}
    default_base_url: ClassVar[str] = "https://api.plivo.com"

    def __init__(
        self,
        auth_id: str,
        auth_token: str,
        *,
        base_url: str | None = None,
        sender: str | None = None,
        powerpack_uuid: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.auth_id = auth_id
        self.auth_token = auth_token
        self.base_url = (base_url or self.default_base_url).rstrip("/")
        self.sender = sender
        self.powerpack_uuid = powerpack_uuid
        self.timeout = timeout
        self.session = requests.Session()

    @classmethod
    def from_config(cls, settings: Mapping[str, Any], env: Mapping[str, str] | None = None) -> PlivoAdapter:
        """Build from ``providers.plivo``: credentials from the environment, ``from``/``powerpack_uuid``."""
        return cls(
            cls.secret(settings, env, "auth_id", cls.env_defaults["auth_id"]),
            cls.secret(settings, env, "auth_token", cls.env_defaults["auth_token"]),
            base_url=settings.get("base_url"),
            sender=settings.get("from"),
            powerpack_uuid=settings.get("powerpack_uuid"),
            timeout=number_setting(settings, cls.name, "timeout", 10.0),
        )

    # ---- webhooks ---------------------------------------------------------------------------------

    @staticmethod
    def signing_string(method: str, url: str, form: Mapping[str, list[str]]) -> str:
        """The string Plivo's V3 scheme signs (before ``"." + nonce`` is appended).

        The URL without its query, then ``?`` and the query as sorted ``k=v`` pairs joined by ``&``; for a
        POST, a ``.`` when there was a query, then every POSTed ``key + value``, sorted, no separators.
        """
        parts = urlsplit(url)
        base = f"{parts.scheme}://{parts.netloc}{parts.path}"
        query = "&".join(f"{k}={v}" for k, v in sorted(parse_qsl(parts.query, keep_blank_values=True)))
        if method.upper() == "GET":
            return f"{base}?{query}" if query else base
        posted = "".join(f"{key}{value}" for key in sorted(form) for value in sorted(form[key]))
        if not query and not posted:
            return base
        return f"{base}?{query}{'.' if query and posted else ''}{posted}"

    def signature(self, method: str, url: str, form: Mapping[str, list[str]], nonce: str) -> str:
        """The base64 HMAC-SHA256 V3 signature of a request."""
        message = f"{self.signing_string(method, url, form)}.{nonce}".encode()
        return base64.b64encode(hmac.new(self.auth_token.encode(), message, hashlib.sha256).digest()).decode()

    def verify(self, request: WebhookRequest) -> None:
        """Accept when any of the comma-separated ``X-Plivo-Signature-V3`` values matches."""
        given = request.header("X-Plivo-Signature-V3")
        nonce = request.header("X-Plivo-Signature-V3-Nonce")
        if not given or not nonce:
            raise VerificationError("plivo: missing X-Plivo-Signature-V3 or its nonce")
        # Only form parameters are signed; a body of another kind would be parsed but never checked.
        if request.body.strip() and request.content_type != "application/x-www-form-urlencoded":
            raise VerificationError("plivo: only form-encoded bodies can be verified")
        expected = self.signature(request.method, request.url, request.form, nonce)
        # Plivo sends several signatures while an auth token is being rotated; check them all.
        matches = [self.same(expected, candidate.strip()) for candidate in given.split(",")]
        if not any(matches):
            raise VerificationError("plivo: signature does not match")

    def parse_inbound(self, request: WebhookRequest) -> list[InboundMessage]:
        """One message per webhook; Plivo reassembles long SMS itself."""
        data = request.params()
        if "Text" in data:
            text = data["Text"]
        elif "Body" in data:  # MMS and WhatsApp put the text here
            text = data["Body"]
        else:
            raise PayloadError("missing field 'Text'", field="Text")
        return [
            InboundMessage(
                provider=self.name,
                provider_message_id=self.field(data, "MessageUUID"),
                sender=self.field(data, "From"),
                recipient=self.field(data, "To"),
                text=text,
                provider_action=INTENTS.get(data.get("MessageIntent", "").strip().lower()),
                provider_code=data.get("MessageIntent") or None,
                raw=data,
            )
        ]

    def parse_status(self, request: WebhookRequest) -> list[StatusUpdate]:
        """A message status callback: ``MessageUUID``, ``Status`` and, on failure, ``ErrorCode``."""
        data = request.params()
        raw_status = self.field(data, "Status")
        error_code = self.field(data, "ErrorCode", required=False) or None
        return [
            StatusUpdate(
                provider=self.name,
                provider_message_id=self.field(data, "MessageUUID"),
                status=STATUSES.get(raw_status.lower(), DeliveryStatus.UNKNOWN),
                raw_status=raw_status,
                error_code=error_code,
                opted_out=error_code in OPT_OUT_ERROR_CODES,
                recipient=self.field(data, "To", required=False) or None,
                sender=self.field(data, "From", required=False) or None,
                raw=data,
            )
        ]

    # ---- sending ----------------------------------------------------------------------------------

    def send(self, message: OutboundMessage) -> SendResult:
        """POST JSON to ``/v1/Account/{auth_id}/Message/``; Plivo answers 202 with the message UUIDs."""
        payload: dict[str, Any] = {"dst": message.to, "text": message.body}
        if message.sender or self.sender:
            payload["src"] = message.sender or self.sender
        elif self.powerpack_uuid:
            payload["powerpack_uuid"] = self.powerpack_uuid
        else:
            return self.send_result(
                SendOutcome.FAILED, error_code="no_sender", error_message="no sender configured"
            )
        if message.status_callback:
            payload["url"] = message.status_callback
            payload["method"] = "POST"
        url = f"{self.base_url}/v1/Account/{self.auth_id}/Message/"
        try:
            response = self.session.post(
                url, json=payload, auth=(self.auth_id, self.auth_token), timeout=self.timeout
            )
        except requests.RequestException as exc:
            return self.network_failure(exc)
        body = response_body(response)
        if is_transient_status(response.status_code):
            return self.transient_failure(response, body)
        if response.status_code >= 400:
            return self.send_result(
                SendOutcome.FAILED,
                error_code=str(response.status_code),
                error_message=str(body.get("error", ""))[:200],
                raw=body,
            )
        uuids = body.get("message_uuid")
        if not isinstance(uuids, list) or not uuids:
            return self.unreadable_success(body)
        return self.send_result(
            SendOutcome.ACCEPTED, provider_message_id=str(uuids[0]), status=DeliveryStatus.QUEUED, raw=body
        )
