"""Vonage (formerly Nexmo) SMS API: signed webhooks, inbound SMS, sends and delivery receipts.

Vonage calls us with a GET query string, a form post or a JSON body, depending on the account settings,
so this adapter reads every webhook through `WebhookRequest.params`. When signing is enabled on the account,
every webhook carries a ``sig`` parameter: a hex digest over all other parameters (see `signature`), with a
``timestamp`` parameter that we also check for freshness.

Long messages arrive as separate parts (``concat-ref``, ``concat-part``, ``concat-total``); this adapter
reports each part and the gateway reassembles them.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import requests

from adapters._common import number_setting, parse_time, response_body
from adapters.base import Adapter, WebhookRequest, WebhookResponse, is_transient_status
from gateway.errors import ConfigError, PayloadError, VerificationError
from gateway.messages import (
    DeliveryStatus,
    InboundMessage,
    OutboundMessage,
    SendOutcome,
    SendResult,
    StatusUpdate,
)

# Signing methods as the dashboard names them -> hashlib digest. None is the legacy "MD5 hash" method, which
# hashes the parameter string with the secret appended instead of using an HMAC.
SIGNATURE_METHODS: dict[str, str | None] = {
    "md5hash": None,
    "md5": "md5",
    "sha1": "sha1",
    "sha256": "sha256",
    "sha512": "sha512",
}

# Delivery receipt ``status`` -> our closed set.
DLR_STATUSES: dict[str, DeliveryStatus] = {
    "accepted": DeliveryStatus.SENT,  # accepted by the carrier
    "buffered": DeliveryStatus.SENT,  # held by the carrier, still being retried
    "delivered": DeliveryStatus.DELIVERED,
    "expired": DeliveryStatus.UNDELIVERED,
    "failed": DeliveryStatus.FAILED,
    "rejected": DeliveryStatus.FAILED,
    "unknown": DeliveryStatus.UNKNOWN,
}

# DLR ``err-code`` 9 ("illegal number") is what Vonage uses when the recipient opted out. Not to be confused
# with submit status 9, which is a quota problem.
OPT_OUT_ERR_CODES = frozenset({"9"})

# Submit ``status`` values worth another attempt: 1 throttled, 5 internal error. Every other non-zero status
# (bad credentials, barred number, invalid sender, ...) will fail again the same way.
RETRY_SUBMIT_STATUSES = frozenset({"1", "5"})

MESSAGE_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


class VonageAdapter(Adapter):
    """The Vonage SMS API (``rest.nexmo.com``), not the newer Messages API."""

    name: ClassVar[str] = "vonage"
    env_defaults: ClassVar[Mapping[str, str]] = {
        "api_key": "VONAGE_API_KEY",
        "api_secret": "VONAGE_API_SECRET",
        "signature_secret": "VONAGE_SIGNATURE_SECRET",
    }
    default_base_url: ClassVar[str] = "https://rest.nexmo.com"

    def __init__(
        self,
        api_key: str,
        api_secret: str,
        signature_secret: str,
        *,
        signature_method: str = "md5hash",
        verify_signatures: bool = True,
        tolerance: float = 300.0,
        base_url: str | None = None,
        sender: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        method = signature_method.lower().removeprefix("hmac-").removeprefix("hmac_")
        if method not in SIGNATURE_METHODS:
            raise ConfigError(
                f"providers.vonage.signature_method must be one of {sorted(SIGNATURE_METHODS)}, "
                f"not {signature_method!r}"
            )
        self.api_key = api_key
        self.api_secret = api_secret
        self.signature_secret = signature_secret
        self.digest = SIGNATURE_METHODS[method]
        self.verify_signatures = verify_signatures
        self.tolerance = tolerance
        self.base_url = (base_url or self.default_base_url).rstrip("/")
        self.sender = sender
        self.timeout = timeout
        self.session = requests.Session()
        #: Source of "now" for the timestamp check; tests replace it.
        self.clock: Callable[[], float] = time.time

    @classmethod
    def from_config(cls, settings: Mapping[str, Any], env: Mapping[str, str] | None = None) -> VonageAdapter:
        """Build from ``providers.vonage``; the signature secret is needed only when signatures are on."""
        verify_signatures = bool(settings.get("verify_signatures", True))
        return cls(
            cls.secret(settings, env, "api_key", cls.env_defaults["api_key"]),
            cls.secret(settings, env, "api_secret", cls.env_defaults["api_secret"]),
            cls.secret(
                settings,
                env,
                "signature_secret",
                cls.env_defaults["signature_secret"],
                required=verify_signatures,
            ),
            signature_method=str(settings.get("signature_method") or "md5hash"),
            verify_signatures=verify_signatures,
            tolerance=number_setting(settings, cls.name, "timestamp_tolerance", 300.0),
            base_url=settings.get("base_url"),
            sender=settings.get("from"),
            timeout=number_setting(settings, cls.name, "timeout", 10.0),
        )

    # ---- webhooks ---------------------------------------------------------------------------------

    def signature(self, params: Mapping[str, str]) -> str:
        """The lower-case hex signature Vonage computes over ``params`` (which must not contain ``sig``).

        Parameters are sorted by name and joined as ``&name=value``, with ``&`` and ``=`` inside values
        replaced by ``_`` so a value cannot pose as another parameter.
        """
        joined = "".join(
            f"&{key}={params[key].replace('&', '_').replace('=', '_')}" for key in sorted(params)
        ).encode("utf-8")
        secret = self.signature_secret.encode("utf-8")
        if self.digest is None:
            # Weak, but it is the method Vonage signs with unless the account is switched to an HMAC.
            return hashlib.md5(joined + secret).hexdigest()  # noqa: S324
        return hmac.new(secret, joined, self.digest).hexdigest()

    def verify(self, request: WebhookRequest) -> None:
        """Check ``sig`` over every other parameter and that ``timestamp`` is within the tolerance."""
        if not self.verify_signatures:
            return
        try:
            params = request.params()
        except PayloadError:
            raise VerificationError("vonage: the body cannot be read to check its signature") from None
        given = params.pop("sig", "")
        if not given:
            raise VerificationError("vonage: the webhook is not signed (no sig parameter)")
        try:
            sent_at = int(params.get("timestamp", ""))
        except ValueError:
            raise VerificationError("vonage: signed webhook without a numeric timestamp") from None
        # Integer arithmetic: a timestamp too large for a float is refused here, not raised as OverflowError.
        if abs(int(self.clock()) - sent_at) > self.tolerance:
            raise VerificationError("vonage: signature timestamp is outside the allowed window")
        # MD5-hash signatures come lower-case and HMAC ones upper-case, so compare case-insensitively.
        if not self.same(self.signature(params), given.lower()):
            raise VerificationError("vonage: signature does not match")

    def parse_inbound(self, request: WebhookRequest) -> list[InboundMessage]:
        """One message (or one part of a concatenated message) per webhook."""
        data = request.params()
        text = data.get("text")
        if text is None:
            # Binary messages (``type=binary``) carry ``data``/``udh`` instead of text; nothing to match on.
            if data.get("type") != "binary":
                raise PayloadError("missing field 'text'", field="text")
            text = ""
        concat_ref = self.field(data, "concat-ref", required=False) or None
        part = total = None
        if concat_ref:
            part, total = _int_field(data, "concat-part"), _int_field(data, "concat-total")
            if part > total:
                raise PayloadError("field 'concat-part' is larger than 'concat-total'", field="concat-part")
        return [
            InboundMessage(
                provider=self.name,
                provider_message_id=self.field(data, "messageId"),
                sender=self.field(data, "msisdn"),
                recipient=self.field(data, "to"),
                text=text,
                received_at=parse_time(data.get("message-timestamp"), MESSAGE_TIME_FORMAT),
                concat_ref=concat_ref,
                concat_part=part,
                concat_total=total,
                raw=data,
            )
        ]

    def parse_status(self, request: WebhookRequest) -> list[StatusUpdate]:
        """A delivery receipt: ``messageId``, ``status`` and ``err-code`` (9 = the recipient opted out)."""
        data = request.params()
        raw_status = self.field(data, "status")
        error_code = self.field(data, "err-code", required=False) or None
        return [
            StatusUpdate(
                provider=self.name,
                provider_message_id=self.field(data, "messageId"),
                status=DLR_STATUSES.get(raw_status.lower(), DeliveryStatus.UNKNOWN),
                raw_status=raw_status,
                # "0" means no error; keep the field empty then so it is not mistaken for a failure code.
                error_code=None if error_code == "0" else error_code,
                opted_out=error_code in OPT_OUT_ERR_CODES,
                recipient=self.field(data, "msisdn", required=False) or None,
                # In a receipt "to" is the sender: our number or sender ID.
                sender=self.field(data, "to", required=False) or None,
                occurred_at=parse_time(data.get("message-timestamp"), MESSAGE_TIME_FORMAT),
                raw=data,
            )
        ]

    def ack(self, messages: Sequence[InboundMessage]) -> WebhookResponse:
        """Vonage only needs a 2xx; anything else makes it resend for up to 24 hours."""
        return WebhookResponse(status=204)

    # ---- sending ----------------------------------------------------------------------------------

    def send(self, message: OutboundMessage) -> SendResult:
        """POST the form to ``/sms/json``; an HTTP 200 can still carry a per-part error status."""
        sender = message.sender or self.sender
        if not sender:
            return self.send_result(
                SendOutcome.FAILED, error_code="no_sender", error_message="no sender configured"
            )
        form = {
            "api_key": self.api_key,
            "api_secret": self.api_secret,
            # Vonage wants international numbers without the leading "+"; alphanumeric senders pass through.
            "to": message.to.lstrip("+"),
            "from": sender.lstrip("+"),
            "text": message.body,
            # Non-ASCII sent as "text" arrives garbled; "unicode" may cost more parts but is always right.
            "type": "text" if message.body.isascii() else "unicode",
        }
        if message.idempotency_key:
            form["client-ref"] = message.idempotency_key
        if message.status_callback:
            form["callback"] = message.status_callback
        try:
            response = self.session.post(f"{self.base_url}/sms/json", data=form, timeout=self.timeout)
        except requests.RequestException as exc:
            return self.network_failure(exc)
        body = response_body(response)
        if is_transient_status(response.status_code):
            return self.transient_failure(response, body)
        if response.status_code >= 400:
            detail = body.get("error-text") or body.get("title") or ""
            return self.send_result(
                SendOutcome.FAILED,
                error_code=str(response.status_code),
                error_message=str(detail)[:200],
                raw=body,
            )
        parts = body.get("messages")
        if not isinstance(parts, list) or not parts or not all(isinstance(p, dict) for p in parts):
            return self.unreadable_success(body)
        # A long text is split into parts, one entry each; any failed part fails the message.
        for part in parts:
            status = str(part.get("status", ""))
            if status != "0":
                outcome = SendOutcome.RETRY if status in RETRY_SUBMIT_STATUSES else SendOutcome.FAILED
                return self.send_result(
                    outcome,
                    error_code=status or "no_status",
                    error_message=str(part.get("error-text", ""))[:200],
                    raw=body,
                )
        return self.send_result(
            SendOutcome.ACCEPTED,
            provider_message_id=str(parts[0].get("message-id", "")) or None,
            status=DeliveryStatus.QUEUED,
            raw=body,
        )


def _int_field(data: Mapping[str, str], name: str) -> int:
    """A required positive integer field; the gateway cannot reassemble parts without these."""
    value = Adapter.field(data, name)
    if not (value.isascii() and value.isdigit()) or int(value) < 1:
        raise PayloadError(f"field {name!r} must be a positive integer", field=name)
    return int(value)
