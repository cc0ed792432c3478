"""Telnyx Messaging v2: Ed25519-signed JSON events, inbound SMS, sends and delivery events.

Telnyx signs each webhook with its account's Ed25519 key: ``telnyx-signature-ed25519`` is the base64 signature
of ``f"{timestamp}|{raw body}"`` and ``telnyx-timestamp`` the Unix time it was signed. Only the public half
of the key is configured here, so a leaked config cannot forge webhooks. Requests signed outside the
tolerance (300 s by default) are refused, which stops replays of captured webhooks.

One webhook URL receives every event type; `parse_inbound` returns nothing for events that are not
``message.received``, and `parse_status` nothing for events that are not delivery updates.

Telnyx keeps its own opt-out list (numbers that texted STOP to a messaging profile); `sync_optouts` reads
it page by page from ``GET /v2/messaging_optouts`` so ``optout providers sync telnyx`` can import it.
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, ClassVar

import requests
from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

from adapters._common import iso_time, number_setting, object_field, response_body, string_field
from adapters.base import Adapter, WebhookRequest, is_transient_status
from gateway.errors import ConfigError, PayloadError, ProviderError, VerificationError
from gateway.messages import (
    DeliveryStatus,
    InboundMessage,
    OutboundMessage,
    ProviderOptOut,
    SendOutcome,
    SendResult,
    StatusUpdate,
)

# ``payload.to[].status`` -> our closed set.
STATUSES: dict[str, DeliveryStatus] = {
    "scheduled": DeliveryStatus.QUEUED,
    "queued": DeliveryStatus.QUEUED,
    "sending": DeliveryStatus.QUEUED,
    "sent": DeliveryStatus.SENT,
    "delivery_unconfirmed": DeliveryStatus.SENT,  # left Telnyx, carrier never confirmed
    "delivered": DeliveryStatus.DELIVERED,
    "delivery_failed": DeliveryStatus.UNDELIVERED,
    "expired": DeliveryStatus.UNDELIVERED,
    "sending_failed": DeliveryStatus.FAILED,
    "cancelled": DeliveryStatus.FAILED,
}

STATUS_EVENTS = frozenset({"message.sent", "message.finalized"})

# 40300: "Blocked due to STOP message" - the recipient opted out of this sender.
OPT_OUT_CODES = frozenset({"40300"})
# 10011: too many requests (comes with HTTP 429, but trust the code too).
RETRY_CODES = frozenset({"10011"})


class TelnyxAdapter(Adapter):
    """Telnyx's ``/v2/messages`` API and its messaging webhooks."""

    name: ClassVar[str] = "telnyx"
    env_defaults: ClassVar[Mapping[str, str]] = {
        "api_key": "TELNYX_API_KEY",
        "public_key": "TELNYX_PUBLIC_KEY",
    }
    default_base_url: ClassVar[str] = "https://api.telnyx.com"

    def __init__(
        self,
        api_key: str,
        public_key: str,
        *,
        tolerance: float = 300.0,
        base_url: str | None = None,
        sender: str | None = None,
        messaging_profile_id: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        try:
            raw_key = base64.b64decode(public_key, validate=True)
        except (binascii.Error, ValueError):
            raw_key = b""
        if len(raw_key) != 32:
            # Never echo the value: a misplaced API key in this variable must not end up in logs.
            raise ConfigError("the Telnyx public key must be the portal's base64 Ed25519 key (32 bytes)")
        self.api_key = api_key
        self.verify_key = VerifyKey(raw_key)
        self.tolerance = tolerance
        self.base_url = (base_url or self.default_base_url).rstrip("/")
        self.sender = sender
        self.messaging_profile_id = messaging_profile_id
        self.timeout = timeout
        self.session = requests.Session()
        #: Source of "now" for the timestamp check; tests replace it.
        self.clock: Callable[[], float] = time.time

    @classmethod
    def from_config(cls, settings: Mapping[str, Any], env: Mapping[str, str] | None = None) -> TelnyxAdapter:
        """Build from ``providers.telnyx``: API key and webhook public key from the environment."""
        return cls(
            cls.secret(settings, env, "api_key", cls.env_defaults["api_key"]),
            cls.secret(settings, env, "public_key", cls.env_defaults["public_key"]),
            tolerance=number_setting(settings, cls.name, "timestamp_tolerance", 300.0),
            base_url=settings.get("base_url"),
            sender=settings.get("from"),
            messaging_profile_id=settings.get("messaging_profile_id"),
            timeout=number_setting(settings, cls.name, "timeout", 10.0),
        )

    # ---- webhooks ---------------------------------------------------------------------------------

    def verify(self, request: WebhookRequest) -> None:
        """Check the Ed25519 signature over ``timestamp|body`` and that the timestamp is fresh."""
        signature = request.header("telnyx-signature-ed25519")
        timestamp = request.header("telnyx-timestamp")
        if not signature or not timestamp:
            raise VerificationError("telnyx: missing telnyx-signature-ed25519 or telnyx-timestamp")
        try:
            signed_at = int(timestamp)
        except ValueError:
            raise VerificationError("telnyx: telnyx-timestamp is not a Unix time") from None
        # Integer arithmetic: a timestamp too large for a float is refused here, not raised as OverflowError.
        if abs(int(self.clock()) - signed_at) > self.tolerance:
            raise VerificationError("telnyx: timestamp is outside the allowed window (replay?)")
        try:
            raw_signature = base64.b64decode(signature, validate=True)
        except (binascii.Error, ValueError):
            raise VerificationError("telnyx: signature is not base64") from None
        try:
            # The raw bytes as received: re-serialised JSON would not match.
            self.verify_key.verify(timestamp.encode() + b"|" + request.body, raw_signature)
        except (BadSignatureError, ValueError):
            raise VerificationError("telnyx: signature does not match") from None

    def parse_inbound(self, request: WebhookRequest) -> list[InboundMessage]:
        """The message in a ``message.received`` event; other events yield nothing."""
        body, data = _event(request)
        if data["event_type"] != "message.received":
            return []
        payload = object_field(data, "payload", "data.payload")
        text = payload.get("text")
        if text is None:  # MMS without a caption
            text = ""
        elif not isinstance(text, str):
            raise PayloadError("field 'data.payload.text' has the wrong type", field="data.payload.text")
        sender = object_field(payload, "from", "data.payload.from")
        recipient = _first(payload, "to", "data.payload.to")
        return [
            InboundMessage(
                provider=self.name,
                provider_message_id=string_field(payload, "id", "data.payload.id"),
                sender=string_field(sender, "phone_number", "data.payload.from.phone_number"),
                recipient=string_field(recipient, "phone_number", "data.payload.to.phone_number"),
                text=text,
                received_at=iso_time(data.get("occurred_at")),
                raw=body,
            )
        ]

    def parse_status(self, request: WebhookRequest) -> list[StatusUpdate]:
        """One update per recipient in a ``message.sent`` / ``message.finalized`` event."""
        body, data = _event(request)
        if data["event_type"] not in STATUS_EVENTS:
            return []
        payload = object_field(data, "payload", "data.payload")
        message_id = string_field(payload, "id", "data.payload.id")
        errors = payload.get("errors") or []
        if not isinstance(errors, list):
            raise PayloadError("field 'data.payload.errors' has the wrong type", field="data.payload.errors")
        codes = [str(e["code"]) for e in errors if isinstance(e, dict) and e.get("code") is not None]
        origin = payload.get("from")
        sender = origin.get("phone_number") if isinstance(origin, dict) else None
        recipients = payload.get("to")
        if not isinstance(recipients, list) or not recipients:
            raise PayloadError("missing field 'data.payload.to'", field="data.payload.to")
        updates = []
        for recipient in recipients:
            if not isinstance(recipient, dict):
                raise PayloadError("field 'data.payload.to' has the wrong type", field="data.payload.to")
            raw_status = string_field(recipient, "status", "data.payload.to.status")
            number = recipient.get("phone_number")
            updates.append(
                StatusUpdate(
                    provider=self.name,
                    provider_message_id=message_id,
                    status=STATUSES.get(raw_status, DeliveryStatus.UNKNOWN),
                    raw_status=raw_status,
                    error_code=codes[0] if codes else None,
                    opted_out=any(code in OPT_OUT_CODES for code in codes),
                    recipient=number if isinstance(number, str) else None,
                    sender=sender if isinstance(sender, str) else None,
                    occurred_at=iso_time(data.get("occurred_at")),
                    raw=body,
                )
            )
        return updates

    # ---- sending ----------------------------------------------------------------------------------

    def send(self, message: OutboundMessage) -> SendResult:
        """POST JSON to ``/v2/messages``; opted-out recipients are refused there and then (code 40300)."""
        payload: dict[str, Any] = {"to": message.to, "text": message.body}
        sender = message.sender or self.sender
        if sender:
            payload["from"] = sender
        if self.messaging_profile_id:
            payload["messaging_profile_id"] = self.messaging_profile_id
        if not sender and not self.messaging_profile_id:
            return self.send_result(
                SendOutcome.FAILED, error_code="no_sender", error_message="no sender configured"
            )
        if message.status_callback:
            payload["webhook_url"] = message.status_callback
        try:
            response = self.session.post(
                f"{self.base_url}/v2/messages",
                json=payload,
                headers={"Authorization": f"Bearer {self.api_key}"},
                timeout=self.timeout,
            )
        except requests.RequestException as exc:
            return self.network_failure(exc)
        body = response_body(response)
        codes, detail = _errors(body)
        if OPT_OUT_CODES.intersection(codes):
            return self.send_result(SendOutcome.OPTED_OUT, error_code="40300", error_message=detail, raw=body)
        if is_transient_status(response.status_code) or RETRY_CODES.intersection(codes):
            return self.transient_failure(response, body, codes[0] if codes else None, detail)
        if response.status_code >= 400:
            return self.send_result(
                SendOutcome.FAILED,
                error_code=codes[0] if codes else str(response.status_code),
                error_message=detail,
                raw=body,
            )
        data = body.get("data")
        message_id = data.get("id") if isinstance(data, dict) else None
        if not isinstance(message_id, str) or not message_id:
            return self.unreadable_success(body)
        return self.send_result(
            SendOutcome.ACCEPTED, provider_message_id=message_id, status=DeliveryStatus.QUEUED, raw=body
        )

    # ---- the provider's opt-out list ----------------------------------------------------------------

    #: Entries per page of ``/v2/messaging_optouts`` (Telnyx allows 1 to 250).
    optout_page_size: int = 250

    def sync_optouts(self) -> Iterator[ProviderOptOut]:
        """Every opt-out Telnyx holds (for the configured messaging profile when there is one), page by page.

        Raises `ProviderError` on a failed or unreadable page; the import is idempotent, so run it again.
        """
        page = 1
        while True:
            entries, last = self._optout_page(page)
            yield from (_opt_out_entry(entry) for entry in entries if isinstance(entry, dict))
            if last or not entries:
                return
            page += 1

    def _optout_page(self, page: int) -> tuple[list[Any], bool]:
        """The entries of one page of ``/v2/messaging_optouts``, and whether it is the last page."""
        params: dict[str, str | int] = {"page[number]": page, "page[size]": self.optout_page_size}
        if self.messaging_profile_id:
            params["filter[messaging_profile_id]"] = self.messaging_profile_id
        failed = f"telnyx: listing opt-outs failed on page {page}"
        try:
            response = self.session.get(
                f"{self.base_url}/v2/messaging_optouts",
                params=params,
                headers={"Authorization": f"Bearer {self.api_key}"},
                timeout=self.timeout,
            )
        except requests.RequestException as exc:
            raise ProviderError(f"{failed} ({type(exc).__name__})") from None
        body = response_body(response)
        entries = body.get("data")
        if not 200 <= response.status_code < 300 or not isinstance(entries, list):
            detail = _errors(body)[1] or "unexpected answer"
            raise ProviderError(f"{failed}: HTTP {response.status_code} {detail}")
        meta = body.get("meta")
        total_pages = meta.get("total_pages") if isinstance(meta, dict) else None
        if isinstance(total_pages, int):
            return entries, page >= total_pages
        return entries, len(entries) < self.optout_page_size


# ---- payload helpers: every access checks the type, so a changed shape is a PayloadError -----------


def _event(request: WebhookRequest) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(body, body["data"])`` of a webhook, with ``data.event_type`` checked to be a string."""
    body = request.json()
    if not isinstance(body, dict):
        raise PayloadError("body must be a JSON object", field="data")
    data = object_field(body, "data", "data")
    string_field(data, "event_type", "data.event_type")
    return body, data


def _first(data: Mapping[str, Any], key: str, path: str) -> dict[str, Any]:
    """The first object of a list field (``to`` is a list even for one recipient)."""
    value = data.get(key)
    if not isinstance(value, list) or not value:
        raise PayloadError(f"missing field {path!r}", field=path)
    if not isinstance(value[0], dict):
        raise PayloadError(f"field {path!r} has the wrong type", field=path)
    return value[0]


def _opt_out_entry(entry: Mapping[str, Any]) -> ProviderOptOut:
    """One ``/v2/messaging_optouts`` entry: ``to`` opted out of ``from`` (``created_at`` is UTC)."""
    to, origin, keyword = entry.get("to"), entry.get("from"), entry.get("keyword")
    return ProviderOptOut(
        provider=TelnyxAdapter.name,
        address=to if isinstance(to, str) else "",
        sender=origin if isinstance(origin, str) and origin else None,
        keyword=keyword if isinstance(keyword, str) else None,
        created_at=iso_time(entry.get("created_at")),
        raw=entry,
    )


def _errors(body: Mapping[str, Any]) -> tuple[list[str], str]:
    """The ``errors[].code`` values of an API answer (as strings) and the first error's detail."""
    errors = body.get("errors")
    if not isinstance(errors, list):
        return [], ""
    items = [e for e in errors if isinstance(e, dict)]
    codes = [str(e["code"]) for e in items if e.get("code") is not None]
    detail = str(items[0].get("detail") or items[0].get("title") or "")[:200] if items else ""
    return codes, detail

