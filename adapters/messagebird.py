"""MessageBird (legacy REST API): JWT-signed webhooks, form inbound SMS, sends and GET status reports.

Each webhook carries ``MessageBird-Signature-JWT``: a JWT (HS256, keyed by the account's signing key, issuer
``MessageBird``) whose ``url_hash`` claim is the SHA-256 of the URL MessageBird called and whose
``payload_hash`` is the SHA-256 of the body (present exactly when there is a body). Its ``nbf``/``exp``
bound how long a captured request stays usable.

Opt-outs show up only in status reports: ``statusErrorCode`` 103 means the contact sent STOP.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import jwt
import requests

from adapters._common import number_setting, parse_time, response_body
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

STATUSES: dict[str, DeliveryStatus] = {
    "scheduled": DeliveryStatus.QUEUED,
    "buffered": DeliveryStatus.QUEUED,
    "sent": DeliveryStatus.SENT,
    "delivered": DeliveryStatus.DELIVERED,
    "expired": DeliveryStatus.UNDELIVERED,
    "delivery_failed": DeliveryStatus.FAILED,
}

# statusErrorCode 103: the recipient sent STOP to this sender.
OPT_OUT_ERROR_CODES = frozenset({"103"})

# The HMAC family only: accepting "none" or an asymmetric algorithm here would let anyone mint tokens.
JWT_ALGORITHMS = ["HS256", "HS384", "HS512"]
ISSUER = "MessageBird"
# Seconds of clock skew allowed on nbf/exp, as MessageBird's own SDK allows.
LEEWAY = 1.0

CREATED_FORMAT = "%Y-%m-%dT%H:%M:%S%z"
SHORTCODE_FORMAT = "%Y%m%d%H%M%S"


class MessageBirdAdapter(Adapter):
    """MessageBird's ``rest.messagebird.com/messages`` API and its webhooks."""

    name: ClassVar[str] = "messagebird"
    env_defaults: ClassVar[Mapping[str, str]] = {
        "access_key": "MESSAGEBIRD_ACCESS_KEY",
        "signing_key": "MESSAGEBIRD_SIGNING_KEY",
    }
    default_base_url: ClassVar[str] = "https://rest.messagebird.com"

    def __init__(
        self,
        access_key: str,
        signing_key: str,
        *,
        base_url: str | None = None,
        sender: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.access_key = access_key
        self.signing_key = signing_key
        self.base_url = (base_url or self.default_base_url).rstrip("/")
        self.sender = sender
        self.timeout = timeout
        self.session = requests.Session()
        #: Source of "now" for the nbf/exp check; tests replace it.
        self.clock: Callable[[], float] = time.time

    @classmethod
    def from_config(
        cls, settings: Mapping[str, Any], env: Mapping[str, str] | None = None
    ) -> MessageBirdAdapter:
        """Build from ``providers.messagebird``: access key and signing key from the environment."""
        return cls(
            cls.secret(settings, env, "access_key", cls.env_defaults["access_key"]),
            cls.secret(settings, env, "signing_key", cls.env_defaults["signing_key"]),
            base_url=settings.get("base_url"),
            sender=settings.get("from"),
            timeout=number_setting(settings, cls.name, "timeout", 10.0),
        )

    # ---- webhooks ---------------------------------------------------------------------------------

    def verify(self, request: WebhookRequest) -> None:
        """Check the JWT's signature, issuer and validity window, then the URL and body hashes it carries."""
        token = request.header("MessageBird-Signature-JWT")
        if not token:
            raise VerificationError("messagebird: missing MessageBird-Signature-JWT")
        try:
            # pyjwt checks the signature, issuer and required claims; the time window is checked below
            # against our own clock so it can be tested without waiting.
            claims = jwt.decode(
                token,
                self.signing_key,
                algorithms=JWT_ALGORITHMS,
                issuer=ISSUER,
                options={
                    "require": ["iss", "nbf", "exp", "url_hash"],
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                },
            )
        except jwt.InvalidTokenError as exc:
            raise VerificationError(f"messagebird: invalid signature token ({type(exc).__name__})") from None
        not_before, expires = claims["nbf"], claims["exp"]
        if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (not_before, expires)):
            raise VerificationError("messagebird: nbf/exp claims are not numbers")
        now = self.clock()
        if now + LEEWAY < not_before or now - LEEWAY >= expires:
            raise VerificationError("messagebird: signature token is not valid at this time")
        if not self.same(str(claims["url_hash"]), _sha256(request.url.encode("utf-8"))):
            raise VerificationError("messagebird: url_hash does not match the URL called")
        payload_hash = claims.get("payload_hash")
        if request.body:
            if not payload_hash or not self.same(str(payload_hash), _sha256(request.body)):
                raise VerificationError("messagebird: payload_hash does not match the body")
        elif payload_hash:
            raise VerificationError("messagebird: payload_hash is set but the body is empty")

    def parse_inbound(self, request: WebhookRequest) -> list[InboundMessage]:
        """One message per webhook, from a virtual number (``originator``...) or a short code (``mid``...)."""
        data = request.params()
        text = data.get("body", data.get("message"))
        if text is None:
            raise PayloadError("missing field 'body'", field="body")
        # Virtual numbers send createdDatetime, short codes receive_datetime (in another layout).
        created = self.field(data, "createdDatetime", required=False)
        short_code_time = self.field(data, "receive_datetime", required=False)
        received = parse_time(created, CREATED_FORMAT) or parse_time(short_code_time, SHORTCODE_FORMAT)
        return [
            InboundMessage(
                provider=self.name,
                provider_message_id=self.field(data, "id", "mid"),
                sender=self.field(data, "originator"),
                recipient=self.field(data, "recipient", "shortcode"),
                text=text,
                received_at=received,
                raw=data,
            )
        ]

    def parse_status(self, request: WebhookRequest) -> list[StatusUpdate]:
        """A status report (a GET): ``id``, ``status`` and ``statusErrorCode`` (103 = opted out)."""
        data = request.params()
        raw_status = self.field(data, "status")
        error_code = self.field(data, "statusErrorCode", required=False) or None
        return [
            StatusUpdate(
                provider=self.name,
                provider_message_id=self.field(data, "id"),
                status=STATUSES.get(raw_status.lower(), DeliveryStatus.UNKNOWN),
                raw_status=raw_status,
                error_code=error_code,
                opted_out=error_code in OPT_OUT_ERROR_CODES,
                recipient=self.field(data, "recipient", required=False) or None,
                occurred_at=parse_time(self.field(data, "statusDatetime", required=False), CREATED_FORMAT),
                raw=data,
            )
        ]

    # ---- sending ----------------------------------------------------------------------------------

    def send(self, message: OutboundMessage) -> SendResult:
        """POST JSON to ``/messages``; MessageBird answers 201 with the message and its recipients."""
        sender = message.sender or self.sender
        if not sender:
            return self.send_result(
                SendOutcome.FAILED, error_code="no_sender", error_message="no sender configured"
            )
        # Numbers are MSISDNs: digits with the country code, no "+" (alphanumeric senders pass through).
        payload: dict[str, Any] = {
            "recipients": [message.to.lstrip("+")],
            "originator": sender.lstrip("+"),
            "body": message.body,
        }
        if message.idempotency_key:
            # Echoed as ``reference`` in status reports.
            payload["reference"] = message.idempotency_key
        if message.status_callback:
            payload["reportUrl"] = message.status_callback
        try:
            response = self.session.post(
                f"{self.base_url}/messages",
                json=payload,
                headers={"Authorization": f"AccessKey {self.access_key}"},
                timeout=self.timeout,
            )
        except requests.RequestException as exc:
            return self.network_failure(exc)
        body = response_body(response)
        if is_transient_status(response.status_code):
            return self.transient_failure(response, body)
        if response.status_code >= 400:
            code, detail = _first_error(body)
            return self.send_result(
                SendOutcome.FAILED,
                error_code=code or str(response.status_code),
                error_message=detail,
                raw=body,
            )
        message_id = body.get("id")
        if not isinstance(message_id, str) or not message_id:
            return self.unreadable_success(body)
        return self.send_result(
            SendOutcome.ACCEPTED, provider_message_id=message_id, status=DeliveryStatus.QUEUED, raw=body
        )


def _sha256(data: bytes) -> str:
    """Lower-case hex SHA-256, as the token claims carry it."""
    return hashlib.sha256(data).hexdigest()


def _first_error(body: Mapping[str, Any]) -> tuple[str, str]:
    """The first ``errors[]`` entry's code and description (``("", "")`` when there is none)."""
    errors = body.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        code = errors[0].get("code")
        return ("" if code is None else str(code)), str(errors[0].get("description", ""))[:200]
    return "", ""
