"""Twilio Programmable Messaging: signed form webhooks in, form-encoded REST sends out, TwiML acks.

Wire format: inbound and status callbacks are ``application/x-www-form-urlencoded`` (GET when the number is
configured that way), signed with ``X-Twilio-Signature`` (HMAC-SHA1 keyed by the auth token over the URL and
the sorted form params). Sends go to ``POST /2010-04-01/Accounts/{sid}/Messages.json``.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

import requests
from twilio.request_validator import RequestValidator

from adapters._common import json_object, number_setting
from adapters.base import Adapter, WebhookRequest, WebhookResponse, is_transient_status, retry_after_seconds
from gateway.errors import VerificationError
from gateway.messages import (
    DeliveryStatus,
    InboundMessage,
    OutboundMessage,
    SendOutcome,
    SendResult,
    StatusUpdate,
)

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Twilio-Signature"
IDEMPOTENCY_HEADER = "I-Twilio-Idempotency-Token"
#: "Attempt to send to unsubscribed recipient": synchronously on send, or later in a status callback.
OPTED_OUT_CODE = "21610"
#: What Twilio expects back from a messaging webhook when we do not reply inline.
EMPTY_TWIML = b'<?xml version="1.0" encoding="UTF-8"?><Response/>'

#: Twilio message statuses onto the closed set; anything else (receiving, received, partially_delivered,
#: or a value Twilio adds later) is UNKNOWN.
STATUS_MAP: Mapping[str, DeliveryStatus] = {
    "accepted": DeliveryStatus.QUEUED,
    "queued": DeliveryStatus.QUEUED,
    "scheduled": DeliveryStatus.QUEUED,
    "sending": DeliveryStatus.SENT,
    "sent": DeliveryStatus.SENT,
    "delivered": DeliveryStatus.DELIVERED,
    "read": DeliveryStatus.DELIVERED,
    "undelivered": DeliveryStatus.UNDELIVERED,
    "failed": DeliveryStatus.FAILED,
    "canceled": DeliveryStatus.FAILED,
}

#: ``OptOutType`` (set by Advanced Opt-Out on a Messaging Service) onto our provider actions.
OPT_OUT_TYPES: Mapping[str, str] = {"STOP": "opt_out", "START": "opt_in", "HELP": "help"}

_FORM = "application/x-www-form-urlencoded"


class _FormParams(dict[str, list[str]]):
    """Form fields keeping every value of a repeated key.

    The SDK's validator reads repeated keys through a ``getlist`` method (as on framework multi-dicts); a
    plain dict would hand it the list itself, which it cannot sort into the signed string.
    """

    def getlist(self, key: str) -> list[str]:
        """Every value sent under ``key``."""
        return self[key]


def _flatten(multi: Mapping[str, Sequence[str]]) -> dict[str, Any]:
    """One value per key, except a key Twilio repeated keeps the list (so `field` refuses it as ambiguous)."""
    return {key: values[0] if len(values) == 1 else list(values) for key, values in multi.items() if values}


def _status(value: str) -> DeliveryStatus:
    return STATUS_MAP.get(value.strip().lower(), DeliveryStatus.UNKNOWN)


class TwilioAdapter(Adapter):
    """Twilio SMS: ``X-Twilio-Signature`` webhooks, REST sends with an idempotency token, TwiML acks."""

    name: ClassVar[str] = "twilio"
    env_defaults: ClassVar[Mapping[str, str]] = {
        "account_sid": "TWILIO_ACCOUNT_SID",
        "auth_token": "TWILIO_AUTH_TOKEN",
    }
    default_base_url: ClassVar[str] = "https://api.twilio.com"

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        base_url: str = "https://api.twilio.com",
        messaging_service_sid: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.account_sid = account_sid
        self.timeout = timeout
        self.base_url = base_url.rstrip("/")
        self.messaging_service_sid = messaging_service_sid or None
        self.messages_url = f"{self.base_url}/2010-04-01/Accounts/{account_sid}/Messages.json"
        # The token lives only inside the validator and the session's auth, never on a plain attribute that
        # a repr or a debug dump would show.
        self._validator = RequestValidator(auth_token)
        # One session per adapter so the outbox reuses TLS connections instead of a handshake per message.
        self._session = requests.Session()
        self._session.auth = (account_sid, auth_token)
        self._session.headers["Accept"] = "application/json"

    @classmethod
    def from_config(cls, settings: Mapping[str, Any], env: Mapping[str, str] | None = None) -> TwilioAdapter:
        """Build from ``providers.twilio``: ``account_sid_env``, ``auth_token_env``, ``base_url``,
        ``messaging_service_sid`` (used when a message has no sender), ``timeout`` (seconds per send)."""
        return cls(
            account_sid=cls.secret(settings, env, "account_sid", cls.env_defaults["account_sid"]),
            auth_token=cls.secret(settings, env, "auth_token", cls.env_defaults["auth_token"]),
            base_url=str(settings.get("base_url") or cls.default_base_url),
            messaging_service_sid=str(settings.get("messaging_service_sid") or "") or None,
            timeout=number_setting(settings, cls.name, "timeout", 10.0),
        )

    # ---- webhooks ---------------------------------------------------------------------------------

    def verify(self, request: WebhookRequest) -> None:
        """Check ``X-Twilio-Signature`` over the URL and form params (or the body hash for JSON bodies).

        The SDK accepts the URL both with any explicit port removed and with the default port added, because
        Twilio's own signing is inconsistent about ports. ``request.url`` must be the public URL Twilio
        called.
        """
        signature = request.header(SIGNATURE_HEADER)
        if not signature:
            raise VerificationError(f"missing {SIGNATURE_HEADER} header")
        params: str | _FormParams
        if "bodySHA256" in parse_qs(urlsplit(request.url).query):
            # A non-form body: Twilio signs the URL (which carries the body's SHA-256) and no params; the SDK
            # checks the hash when handed the body as text.
            try:
                params = request.body.decode("utf-8")
            except UnicodeDecodeError:
                raise VerificationError("body is not UTF-8, so it cannot match bodySHA256") from None
        elif request.body and request.content_type != _FORM:
            # Neither signed params nor a signed hash would cover this body.
            raise VerificationError("a non-form body must come with bodySHA256 in the URL")
        else:
            params = _FormParams({k: list(v) for k, v in request.form.items() if v})
        try:
            valid = self._signed_as_called(request.url, params, signature) or self._validator.validate(
                request.url, params, signature
            )
        except ValueError:
            # urllib refuses some URLs (a non-numeric port, a broken IPv6 host): not provably Twilio's.
            valid = False
        if not valid:
            raise VerificationError(f"{SIGNATURE_HEADER} does not match this request")

    def _signed_as_called(self, url: str, params: str | _FormParams, signature: str) -> bool:
        # The common case, one HMAC: Twilio signed exactly the URL we were called at, form params and all.
        # Only when that fails does the SDK's full check try the port variants (two more HMACs).
        if isinstance(params, str):
            return False
        expected = self._validator.compute_signature(url, params)
        return hmac.compare_digest(expected.encode(), signature.encode())

    def parse_inbound(self, request: WebhookRequest) -> list[InboundMessage]:
        """The one message in an inbound webhook; ``OptOutType`` becomes ``provider_action``.

        Twilio sends no timestamp, so ``received_at`` stays None and the gateway uses its own receive time.
        """
        params = self._params(request)
        sender = self.field(params, "From")
        recipient = self.field(params, "To")
        # MessageSid is current; SmsMessageSid and SmsSid are the legacy names for the same value.
        message_id = self.field(params, "MessageSid", "SmsMessageSid", "SmsSid")
        opt_out_type = self.field(params, "OptOutType", required=False)
        return [
            InboundMessage(
                provider=self.name,
                provider_message_id=message_id,
                sender=sender,
                recipient=recipient,
                # An MMS may arrive with no text at all.
                text=self.field(params, "Body", required=False),
                provider_action=OPT_OUT_TYPES.get(opt_out_type.strip().upper()),
                provider_code=opt_out_type or None,
                raw=params,
            )
        ]

    def parse_status(self, request: WebhookRequest) -> list[StatusUpdate]:
        """The status callback's ``MessageStatus``, mapped; ``ErrorCode`` 21610 marks an opt-out."""
        params = self._params(request)
        message_id = self.field(params, "MessageSid", "SmsSid")
        raw_status = self.field(params, "MessageStatus", "SmsStatus")
        error_code = self.field(params, "ErrorCode", required=False) or None
        return [
            StatusUpdate(
                provider=self.name,
                provider_message_id=message_id,
                status=_status(raw_status),
                raw_status=raw_status,
                error_code=error_code,
                opted_out=error_code == OPTED_OUT_CODE,
                recipient=self.field(params, "To", required=False) or None,
                sender=self.field(params, "From", required=False) or None,
                raw=params,
            )
        ]

    def ack(self, messages: Sequence[InboundMessage]) -> WebhookResponse:
        """An empty TwiML document: we reply, if at all, with a separate send through the outbox."""
        return WebhookResponse(EMPTY_TWIML, 200, "text/xml")

    @staticmethod
    def _params(request: WebhookRequest) -> dict[str, Any]:
        # GET webhooks carry the fields in the (signed) query; POST ones in the (signed) form body. Query
        # params of a POST are our own URL's, not Twilio's fields.
        return _flatten(request.query if request.method == "GET" else request.form)

    # ---- sending ----------------------------------------------------------------------------------

    def send(self, message: OutboundMessage) -> SendResult:
        """POST one message; map Twilio's answer (or the network's silence) onto a `SendOutcome`."""
        data: dict[str, str] = {"To": message.to, "Body": message.body}
        if message.sender:
            data["From"] = message.sender
        elif self.messaging_service_sid:
            data["MessagingServiceSid"] = self.messaging_service_sid
        else:
            return SendResult(
                SendOutcome.FAILED,
                self.name,
                error_code="no_sender",
                error_message="message has no sender and providers.twilio.messaging_service_sid is not set",
            )
        if message.status_callback:
            data["StatusCallback"] = message.status_callback
        headers: dict[str, str] = {}
        if message.idempotency_key:
            # Twilio drops a repeat of a request carrying the same token, so a send retried after a timeout
            # (when the first attempt may have gone through) is not delivered twice.
            headers[IDEMPOTENCY_HEADER] = message.idempotency_key
        try:
            response = self._session.post(self.messages_url, data=data, headers=headers, timeout=self.timeout)
        except (requests.Timeout, requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
            logger.warning("twilio send to %s: %s", self.base_url, type(exc).__name__)
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
        if 200 <= response.status_code < 300:
            sid = body.get("sid")
            if not isinstance(sid, str) or not sid:
                # As ambiguous as a timeout: the message may exist, but without its sid no receipt can be
                # matched. Retried like a timeout; the idempotency token stops Twilio sending it twice.
                raw = body or {"status": response.status_code, "text": response.text[:1000]}
                return self.unreadable_success(raw)
            return SendResult(
                SendOutcome.ACCEPTED,
                self.name,
                provider_message_id=sid,
                status=_status(str(body.get("status") or "")),
                raw=body,
            )
        code = str(body["code"]) if body.get("code") is not None else None
        detail = str(body.get("message") or body.get("detail") or body.get("title") or response.reason or "")
        raw = body or {"status": response.status_code, "text": response.text[:1000]}
        if code == OPTED_OUT_CODE:
            return SendResult(
                SendOutcome.OPTED_OUT,
                self.name,
                status=DeliveryStatus.FAILED,
                error_code=OPTED_OUT_CODE,
                error_message=detail,
                raw=raw,
            )
        outcome = SendOutcome.RETRY if is_transient_status(response.status_code) else SendOutcome.FAILED
        return SendResult(
            outcome,
            self.name,
            status=DeliveryStatus.FAILED if outcome is SendOutcome.FAILED else DeliveryStatus.UNKNOWN,
            error_code=code or f"http_{response.status_code}",
            error_message=detail,
            retry_after=retry_after_seconds(response) if outcome is SendOutcome.RETRY else None,
            raw=raw,
        )
