"""ClickSend REST v3: token-guarded pushes in (form, JSON or GET), JSON sends out, empty 200 acks.

ClickSend signs nothing it pushes, so the inbound-rule and receipt-rule URLs carry a secret ``token`` query
parameter that `verify` checks; keep those URLs on HTTPS and out of access logs. Sends answer HTTP 200 even
when a message is refused, so each message's own ``status`` decides the outcome.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar

import requests

from adapters._common import json_object
from adapters.base import Adapter, WebhookRequest, is_transient_status, retry_after_seconds
from gateway.errors import PayloadError, VerificationError
from gateway.messages import (
    DeliveryStatus,
    InboundMessage,
    OutboundMessage,
    SendOutcome,
    SendResult,
    StatusUpdate,
)

logger = logging.getLogger(__name__)

TOKEN_PARAM = "token"
#: Our ``source`` tag on every send, so ClickSend's dashboard shows where a message came from.
SOURCE = "optout-gateway"

#: Per-message send statuses meaning ClickSend took the message.
ACCEPTED_STATUSES = frozenset({"SUCCESS", "QUEUED"})
#: Per-message statuses worth retrying. ClickSend documents no per-message throttling status; these are its
#: documented envelope codes for HTTP 429 and 500, honoured in case one appears on a single message.
RETRY_STATUSES = frozenset({"TOO_MANY_REQUESTS", "INTERNAL_SERVER_ERROR"})

#: Receipt ``status_code`` classes from ClickSend's gateway code list: 201 delivered, 300 a temporary error
#: ClickSend retries itself, 301 a final failure or cancellation. 200 ("in progress") is refined by text.
RECEIPT_CODE_MAP: Mapping[str, DeliveryStatus] = {
    "201": DeliveryStatus.DELIVERED,
    "300": DeliveryStatus.QUEUED,
    "301": DeliveryStatus.FAILED,
}
#: Receipt ``status_text`` (lower-cased, spaces removed) for codes the class alone does not settle.
RECEIPT_TEXT_MAP: Mapping[str, DeliveryStatus] = {
    "queued": DeliveryStatus.QUEUED,
    "scheduled": DeliveryStatus.QUEUED,
    "waitapproval": DeliveryStatus.QUEUED,
    "sent": DeliveryStatus.SENT,
    "delivered": DeliveryStatus.DELIVERED,
    "undelivered": DeliveryStatus.UNDELIVERED,
    "expired": DeliveryStatus.UNDELIVERED,
    "failed": DeliveryStatus.FAILED,
    "cancelled": DeliveryStatus.FAILED,
    "cancelledafterreview": DeliveryStatus.FAILED,
}

_FORM = "application/x-www-form-urlencoded"
_JSON = "application/json"


def receipt_status(status_code: str, status_text: str) -> DeliveryStatus:
    """A receipt's closed status: the numeric class when it is decisive, else the text, else UNKNOWN.

    The code wins because ClickSend pairs 201 (delivered to the handset) with the text "Sent".
    """
    status = RECEIPT_CODE_MAP.get(status_code.strip())
    if status is not None:
        return status
    status = RECEIPT_TEXT_MAP.get(status_text.strip().lower().replace(" ", ""))
    if status is not None:
        return status
    return DeliveryStatus.SENT if status_code.strip() == "200" else DeliveryStatus.UNKNOWN


def unix_time(value: str) -> datetime | None:
    """A unix timestamp in seconds as an aware UTC datetime; None when absent or unusable.

    A bad timestamp must not cost us the message (it may be a STOP), so it is dropped, not refused.
    """
    try:
        seconds = float(value)
        return datetime.fromtimestamp(seconds, tz=UTC) if seconds > 0 else None
    except (ValueError, OverflowError, OSError):
        return None


class ClickSendAdapter(Adapter):
    """ClickSend SMS: secret-token pushes, ``/v3/sms/send`` with per-message statuses, numeric receipts."""

    name: ClassVar[str] = "clicksend"
    env_defaults: ClassVar[Mapping[str, str]] = {
        "username": "CLICKSEND_USERNAME",
        "api_key": "CLICKSEND_API_KEY",
        "webhook_token": "CLICKSEND_WEBHOOK_TOKEN",
    }
    default_base_url: ClassVar[str] = "https://rest.clicksend.com"

    def __init__(
        self, username: str, api_key: str, webhook_token: str, base_url: str = "https://rest.clicksend.com"
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.send_url = f"{self.base_url}/v3/sms/send"
        self._webhook_token = webhook_token
        # One session per adapter so the outbox reuses TLS connections instead of a handshake per message.
        self._session = requests.Session()
        self._session.auth = (username, api_key)
        self._session.headers["Accept"] = _JSON

    @classmethod
    def from_config(
        cls, settings: Mapping[str, Any], env: Mapping[str, str] | None = None
    ) -> ClickSendAdapter:
        """Build from ``providers.clicksend``: ``username_env``, ``api_key_env``, ``webhook_token_env``,
        ``base_url``. The webhook token is required: without it every push would be unauthenticated."""
        return cls(
            username=cls.secret(settings, env, "username", cls.env_defaults["username"]),
            api_key=cls.secret(settings, env, "api_key", cls.env_defaults["api_key"]),
            webhook_token=cls.secret(settings, env, "webhook_token", cls.env_defaults["webhook_token"]),
            base_url=str(settings.get("base_url") or cls.default_base_url),
        )

    # ---- webhooks ---------------------------------------------------------------------------------

    def verify(self, request: WebhookRequest) -> None:
        """Require exactly one ``token`` query parameter equal (in constant time) to the webhook token."""
        values = request.query.get(TOKEN_PARAM) or []
        if len(values) != 1 or not values[0]:
            raise VerificationError(f"missing or repeated {TOKEN_PARAM!r} query parameter")
        if not self.same(values[0], self._webhook_token):
            raise VerificationError(f"{TOKEN_PARAM!r} query parameter does not match")

    def parse_inbound(self, request: WebhookRequest) -> list[InboundMessage]:
        """The one message in an inbound push, from a form, JSON or GET request.

        ``received_at`` is ClickSend's ``timestamp`` (unix seconds, UTC) when usable, else None.
        """
        params = self._params(request)
        return [
            InboundMessage(
                provider=self.name,
                provider_message_id=self.field(params, "message_id"),
                # Form pushes also carry the older names: sms = from, message = body, and so on.
                sender=self.field(params, "from", "sms"),
                recipient=self.field(params, "to"),
                text=self.field(params, "body", "message", required=False),
                received_at=unix_time(self.field(params, "timestamp", required=False)),
                in_reply_to=self.field(params, "original_message_id", "originalmessageid", required=False)
                or None,
                custom_string=self.field(params, "custom_string", "customstring", required=False) or None,
                raw=params,
            )
        ]

    def parse_status(self, request: WebhookRequest) -> list[StatusUpdate]:
        """The delivery receipt in a receipt push; ClickSend has no opted-out code, so never ``opted_out``."""
        params = self._params(request)
        message_id = self.field(params, "message_id")
        status_code = self.field(params, "status_code", required=False)
        status_text = self.field(params, "status_text", required=False)
        if not status_code and not status_text:
            raise PayloadError("missing field 'status_code'", field="status_code")
        return [
            StatusUpdate(
                provider=self.name,
                provider_message_id=message_id,
                status=receipt_status(status_code, status_text),
                raw_status=status_text or status_code,
                error_code=self.field(params, "error_code", required=False) or None,
                recipient=self.field(params, "to", required=False) or None,
                occurred_at=unix_time(self.field(params, "timestamp", required=False)),
                raw=params,
            )
        ]

    @staticmethod
    def _params(request: WebhookRequest) -> dict[str, str]:
        """Query plus form or JSON body as one flat dict, without our secret token."""
        if request.content_type not in (_FORM, _JSON) and request.body.lstrip()[:1] == b"{":
            # The JSON webhook type's Content-Type is not documented: read an object body as JSON anyway
            # rather than lose the message.
            headers = {k: v for k, v in request.headers.items() if k.lower() != "content-type"}
            request = dataclasses.replace(request, headers={**headers, "Content-Type": _JSON})
        params = request.params()
        if TOKEN_PARAM in request.query:
            # The token came with the URL, not from ClickSend's payload: it must not reach the ledger.
            params.pop(TOKEN_PARAM, None)
        return params

    # ---- sending ----------------------------------------------------------------------------------

    def send(self, message: OutboundMessage) -> SendResult:
        """POST one message; the per-message ``status`` in a 200 decides between accepted and failed."""
        entry: dict[str, str] = {"to": message.to, "body": message.body, "source": SOURCE}
        if message.sender:
            entry["from"] = message.sender
        if message.custom_string:
            entry["custom_string"] = message.custom_string
        try:
            response = self._session.post(self.send_url, json={"messages": [entry]}, timeout=self.timeout)
        except (requests.Timeout, requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
            # ClickSend takes no idempotency key, so a retry after a read timeout can deliver twice; losing
            # the message on every timeout would be worse, and the outbox bounds the attempts.
            logger.warning("clicksend send to %s: %s", self.base_url, type(exc).__name__)
            return SendResult(
                SendOutcome.RETRY, self.name, error_code="network_error", error_message=type(exc).__name__
            )
        except requests.RequestException as exc:
            # Not transient (a malformed base_url, too many redirects): retrying cannot help.
            return SendResult(
                SendOutcome.FAILED, self.name, error_code="request_error", error_message=type(exc).__name__
            )
        return self._result(response)

    def _result(self, response: requests.Response) -> SendResult:
        body = json_object(response)
        raw = body or {"status": response.status_code, "text": response.text[:1000]}
        if not 200 <= response.status_code < 300:
            outcome = SendOutcome.RETRY if is_transient_status(response.status_code) else SendOutcome.FAILED
            return SendResult(
                outcome,
                self.name,
                status=DeliveryStatus.FAILED if outcome is SendOutcome.FAILED else DeliveryStatus.UNKNOWN,
                error_code=str(body.get("response_code") or f"http_{response.status_code}"),
                error_message=str(body.get("response_msg") or response.reason or ""),
                retry_after=retry_after_seconds(response) if outcome is SendOutcome.RETRY else None,
                raw=raw,
            )
        item = _first_message(body)
        status = str(item.get("status") or "").strip().upper()
        message_id = item.get("message_id")
        if status in ACCEPTED_STATUSES and isinstance(message_id, str) and message_id:
            return SendResult(
                SendOutcome.ACCEPTED,
                self.name,
                provider_message_id=message_id,
                status=DeliveryStatus.QUEUED,
                raw=body,
            )
        if status in RETRY_STATUSES:
            return SendResult(
                SendOutcome.RETRY,
                self.name,
                error_code=status,
                error_message=f"message status {status}",
                raw=raw,
            )
        if not status or status in ACCEPTED_STATUSES:
            # A 200 we cannot read (no message entry, or success without an id) is as ambiguous as a read
            # timeout and handled the same way: retried, as every adapter does (a possible second delivery,
            # bounded by the outbox's attempts, is better than a message silently lost).
            return self.unreadable_success(raw)
        return SendResult(
            SendOutcome.FAILED,
            self.name,
            status=DeliveryStatus.FAILED,
            error_code=status,
            error_message=f"ClickSend refused the message: {status}",
            raw=raw,
        )


def _first_message(body: Mapping[str, Any]) -> Mapping[str, Any]:
    """``data.messages[0]`` of a send answer, or {} when the shape is not that."""
    data = body.get("data")
    messages = data.get("messages") if isinstance(data, dict) else None
    first = messages[0] if isinstance(messages, list) and messages else None
    return first if isinstance(first, dict) else {}
