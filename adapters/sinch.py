"""Sinch SMS REST API (XMS): HMAC-signed JSON callbacks, ``mo_text`` inbound, batch sends, delivery reports.

When a webhook secret is set up for the account (through Sinch's account manager), callbacks carry
``x-sinch-webhook-signature``: base64 HMAC-SHA256, keyed by the secret, of ``body.nonce.timestamp`` with the
nonce and timestamp from their own headers. Sinch's SDK checks only the HMAC; we also refuse timestamps
outside the tolerance so a captured callback cannot be replayed later.

Sends create a one-message "batch"; the batch id is the provider message id delivery reports refer to.
Sinch documents no error code meaning "recipient opted out", so no report here is flagged as one.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import requests

from adapters._common import iso_time, number_setting, response_body, string_field
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

# Delivery report ``status`` (Sinch writes "Delivered"; compared lower-cased) -> our closed set.
STATUSES: dict[str, DeliveryStatus] = {
    "queued": DeliveryStatus.QUEUED,
    "dispatched": DeliveryStatus.SENT,
    "delivered": DeliveryStatus.DELIVERED,
    "expired": DeliveryStatus.UNDELIVERED,
    # "Deleted" by a remote SMSC: an invalid or (per Sinch) opted-out number; no code says which.
    "deleted": DeliveryStatus.UNDELIVERED,
    "aborted": DeliveryStatus.FAILED,
    "cancelled": DeliveryStatus.FAILED,
    "rejected": DeliveryStatus.FAILED,
    "failed": DeliveryStatus.FAILED,
    "unknown": DeliveryStatus.UNKNOWN,
}

RECIPIENT_REPORTS = frozenset({"recipient_delivery_report_sms", "recipient_delivery_report_mms"})
BATCH_REPORTS = frozenset({"delivery_report_sms", "delivery_report_mms"})

SIGNATURE_ALGORITHM = "hmacsha256"


class SinchAdapter(Adapter):
    """Sinch's ``/xms/v1/{service_plan_id}/batches`` API and its callbacks."""

    name: ClassVar[str] = "sinch"
    env_defaults: ClassVar[Mapping[str, str]] = {
        "service_plan_id": "SINCH_SERVICE_PLAN_ID",
        "api_token": "SINCH_API_TOKEN",
        "webhook_secret": "SINCH_WEBHOOK_SECRET",
    }
    default_base_url: ClassVar[str] = "https://us.sms.api.sinch.com"

    def __init__(
        self,
        service_plan_id: str,
        api_token: str,
        webhook_secret: str,
        *,
        tolerance: float = 300.0,
        base_url: str | None = None,
        sender: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.service_plan_id = service_plan_id
        self.api_token = api_token
        self.webhook_secret = webhook_secret
        self.tolerance = tolerance
        self.base_url = (base_url or self.default_base_url).rstrip("/")
        self.sender = sender
        self.timeout = timeout
        self.session = requests.Session()
        #: Source of "now" for the timestamp check; tests replace it.
        self.clock: Callable[[], float] = time.time

    @classmethod
    def from_config(cls, settings: Mapping[str, Any], env: Mapping[str, str] | None = None) -> SinchAdapter:
        """Build from ``providers.sinch``; ``region`` (us, eu, au, br, ca) picks the API host."""
        region = settings.get("region")
        base_url = settings.get("base_url") or (f"https://{region}.sms.api.sinch.com" if region else None)
        return cls(
            cls.secret(settings, env, "service_plan_id", cls.env_defaults["service_plan_id"]),
            cls.secret(settings, env, "api_token", cls.env_defaults["api_token"]),
            cls.secret(settings, env, "webhook_secret", cls.env_defaults["webhook_secret"]),
            tolerance=number_setting(settings, cls.name, "timestamp_tolerance", 300.0),
            base_url=base_url,
            sender=settings.get("from"),
            timeout=number_setting(settings, cls.name, "timeout", 10.0),
        )

    # ---- webhooks ---------------------------------------------------------------------------------

    def signature(self, body: bytes, nonce: str, timestamp: str) -> str:
        """The base64 HMAC-SHA256 of ``body.nonce.timestamp`` under the webhook secret."""
        message = body + b"." + nonce.encode() + b"." + timestamp.encode()
        return base64.b64encode(
            hmac.new(self.webhook_secret.encode(), message, hashlib.sha256).digest()
        ).decode()

    def verify(self, request: WebhookRequest) -> None:
        """Check the HMAC headers and that the signing timestamp is within the tolerance."""
        given = request.header("x-sinch-webhook-signature")
        nonce = request.header("x-sinch-webhook-signature-nonce")
        timestamp = request.header("x-sinch-webhook-signature-timestamp")
        if not given or not nonce or not timestamp:
            raise VerificationError("sinch: missing x-sinch-webhook-signature, -nonce or -timestamp")
        algorithm = request.header("x-sinch-webhook-signature-algorithm")
        if algorithm and algorithm.lower() != SIGNATURE_ALGORITHM:
            raise VerificationError("sinch: unsupported signature algorithm")
        signed_at = _unix_time(timestamp)
        if signed_at is None:
            raise VerificationError("sinch: unreadable signature timestamp")
        if abs(self.clock() - signed_at) > self.tolerance:
            raise VerificationError("sinch: signature timestamp is outside the allowed window")
        if not self.same(self.signature(request.body, nonce, timestamp), given.strip()):
            raise VerificationError("sinch: signature does not match")

    def parse_inbound(self, request: WebhookRequest) -> list[InboundMessage]:
        """The message in a ``mo_text`` callback; other callback types yield nothing."""
        event = _object(request)
        # mo_binary and mo_media carry nothing a keyword rule could match; reports are not messages.
        if string_field(event, "type") != "mo_text":
            return []
        body = event.get("body", "")
        if not isinstance(body, str):
            raise PayloadError("field 'body' has the wrong type", field="body")
        reference = event.get("client_reference")
        return [
            InboundMessage(
                provider=self.name,
                provider_message_id=string_field(event, "id"),
                sender=string_field(event, "from"),
                recipient=string_field(event, "to"),
                text=body,
                received_at=iso_time(event.get("received_at")),
                custom_string=reference
                if isinstance(reference := event.get("client_reference"), str)
                else None,
                raw=event,
            )
        ]

    def parse_status(self, request: WebhookRequest) -> list[StatusUpdate]:
        """Updates from a per-recipient report, or from each recipient listed in a batch report."""
        event = _object(request)
        kind = string_field(event, "type")
        if kind in RECIPIENT_REPORTS:
            return [self._update(event, event, string_field(event, "recipient"), event.get("at"))]
        if kind in BATCH_REPORTS:
            statuses = event.get("statuses")
            if not isinstance(statuses, list):
                raise PayloadError("missing field 'statuses'", field="statuses")
            updates: list[StatusUpdate] = []
            for entry in statuses:
                if not isinstance(entry, dict):
                    raise PayloadError("field 'statuses' has the wrong type", field="statuses")
                recipients = entry.get("recipients") or [None]  # only "full" reports list recipients
                if not isinstance(recipients, list) or not all(
                    r is None or isinstance(r, str) for r in recipients
                ):
                    raise PayloadError(
                        "field 'statuses.recipients' has the wrong type", field="statuses.recipients"
                    )
                updates.extend(self._update(event, entry, recipient, None) for recipient in recipients)
            return updates
        return []  # inbound messages posted to the status URL are not receipts

    def _update(
        self, event: Mapping[str, Any], entry: Mapping[str, Any], recipient: str | None, at: Any
    ) -> StatusUpdate:
        """One `StatusUpdate`: the batch id from ``event``, status and code from ``entry``."""
        raw_status = string_field(entry, "status")
        code = entry.get("code")
        readable = isinstance(code, int | str) and not isinstance(code, bool)
        return StatusUpdate(
            provider=self.name,
            provider_message_id=string_field(event, "batch_id"),
            status=STATUSES.get(raw_status.lower(), DeliveryStatus.UNKNOWN),
            raw_status=raw_status,
            error_code=str(code) if readable and str(code) not in ("", "0") else None,
            recipient=recipient,
            occurred_at=iso_time(at),
            raw=event,
        )

    # ---- sending ----------------------------------------------------------------------------------

    def send(self, message: OutboundMessage) -> SendResult:
        """Create a one-recipient batch; Sinch answers 201 with the batch."""
        payload: dict[str, Any] = {"to": [message.to], "body": message.body}
        sender = message.sender or self.sender
        if sender:  # otherwise Sinch uses the service plan's default originator
            payload["from"] = sender
        if message.status_callback:
            payload["delivery_report"] = "per_recipient"
            payload["callback_url"] = message.status_callback
        if message.idempotency_key:
            # Echoed in delivery reports; ties a report to our outbox row even before we stored the id.
            payload["client_reference"] = message.idempotency_key
        try:
            response = self.session.post(
                f"{self.base_url}/xms/v1/{self.service_plan_id}/batches",
                json=payload,
                headers={"Authorization": f"Bearer {self.api_token}"},
                timeout=self.timeout,
            )
        except requests.RequestException as exc:
            return self.network_failure(exc)
        body = response_body(response)
        if is_transient_status(response.status_code):
            return self.transient_failure(response, body)
        if response.status_code >= 400:
            # Errors come as {"code": "syntax_invalid_parameter_format", "text": "..."}.
            return self.send_result(
                SendOutcome.FAILED,
                error_code=str(body.get("code") or response.status_code),
                error_message=str(body.get("text", ""))[:200],
                raw=body,
            )
        batch_id = body.get("id")
        if not isinstance(batch_id, str) or not batch_id:
            return self.unreadable_success(body)
        return self.send_result(
            SendOutcome.ACCEPTED, provider_message_id=batch_id, status=DeliveryStatus.QUEUED, raw=body
        )


# ---- payload helpers: every access checks the type, so a changed shape is a PayloadError -----------


def _object(request: WebhookRequest) -> dict[str, Any]:
    """The callback's JSON object."""
    body = request.json()
    if not isinstance(body, dict):
        raise PayloadError("body must be a JSON object", field="type")
    return body


def _unix_time(value: str) -> float | None:
    """The signing timestamp: Unix seconds as sent, or an ISO-8601 time should Sinch send one."""
    if value.isascii() and value.isdigit():
        return float(value)
    parsed = iso_time(value)
    return parsed.timestamp() if parsed else None
