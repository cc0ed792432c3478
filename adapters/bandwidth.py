"""Bandwidth Messaging API v2: basic-auth JSON callbacks (always an array), sends and delivery callbacks.

Bandwidth does not sign callbacks; the Application is configured with a user name and password that Bandwidth
sends as HTTP Basic credentials, and that is what `verify` checks. One callback can batch several events,
so the body is a JSON array even for a single message. Bandwidth reports no "opted out" error at send time;
carrier-side opt-outs come back as error 4775 in a ``message-failed`` callback.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any, ClassVar

import requests

from adapters._common import iso_time, number_setting, response_body, string_field
from adapters.base import Adapter, WebhookRequest, is_transient_status
from gateway.errors import ConfigError, PayloadError, VerificationError
from gateway.messages import (
    DeliveryStatus,
    InboundMessage,
    OutboundMessage,
    SendOutcome,
    SendResult,
    StatusUpdate,
)

# Callback ``type`` -> our closed set.
STATUSES: dict[str, DeliveryStatus] = {
    "message-sending": DeliveryStatus.SENT,
    "message-delivered": DeliveryStatus.DELIVERED,
    "message-failed": DeliveryStatus.FAILED,
}

# 4775 destination-rejected-due-to-user-opt-out: the carrier says the recipient opted out of this sender.
OPT_OUT_ERROR_CODES = frozenset({"4775"})


class BandwidthAdapter(Adapter):
    """Bandwidth's ``/api/v2/users/{accountId}/messages`` API and its Application callbacks."""

    name: ClassVar[str] = "bandwidth"
    env_defaults: ClassVar[Mapping[str, str]] = {
        "username": "BANDWIDTH_USERNAME",
        "password": "BANDWIDTH_PASSWORD",
        "account_id": "BANDWIDTH_ACCOUNT_ID",
        "callback_user": "BANDWIDTH_CALLBACK_USER",
        "callback_password": "BANDWIDTH_CALLBACK_PASSWORD",
    }
    default_base_url: ClassVar[str] = "https://messaging.bandwidth.com"

    def __init__(
        self,
        *,
        username: str,
        password: str,
        account_id: str,
        application_id: str,
        callback_user: str,
        callback_password: str,
        base_url: str | None = None,
        sender: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.username = username
        self.password = password
        self.account_id = account_id
        self.application_id = application_id
        self.callback_user = callback_user
        self.callback_password = callback_password
        self.base_url = (base_url or self.default_base_url).rstrip("/")
        self.sender = sender
        self.timeout = timeout
        self.session = requests.Session()

    @classmethod
    def from_config(
        cls, settings: Mapping[str, Any], env: Mapping[str, str] | None = None
    ) -> BandwidthAdapter:
        """Build from ``providers.bandwidth``: credentials from the environment and an ``application_id``."""
        application_id = str(settings.get("application_id") or "")
        if not application_id:
            raise ConfigError("providers.bandwidth.application_id is required (the messaging Application)")
        return cls(
            **{key: cls.secret(settings, env, key, var) for key, var in cls.env_defaults.items()},
            application_id=application_id,
            base_url=settings.get("base_url"),
            sender=settings.get("from"),
            timeout=number_setting(settings, cls.name, "timeout", 10.0),
        )

    # ---- webhooks ---------------------------------------------------------------------------------

    def verify(self, request: WebhookRequest) -> None:
        """Check the HTTP Basic credentials configured on the Bandwidth Application."""
        scheme, _, encoded = (request.header("Authorization") or "").partition(" ")
        if scheme.lower() != "basic" or not encoded:
            raise VerificationError("bandwidth: callback without basic auth credentials")
        try:
            user, _, password = (
                base64.b64decode(encoded.strip(), validate=True).decode("utf-8").partition(":")
            )
        except (binascii.Error, UnicodeDecodeError):
            raise VerificationError("bandwidth: malformed basic auth header") from None
        # Compare both parts in full, whatever the first result, so timing says nothing about which was wrong.
        user_ok = self.same(user, self.callback_user)
        password_ok = self.same(password, self.callback_password)
        if not (user_ok and password_ok):
            raise VerificationError("bandwidth: wrong callback credentials")

    def parse_inbound(self, request: WebhookRequest) -> list[InboundMessage]:
        """Every ``message-received`` event in the callback array; other event types are skipped."""
        messages = []
        for index, event, message in _events(request):
            if event.get("type") != "message-received":
                continue
            path = f"[{index}].message"
            text = message.get("text", "")  # absent on MMS without a caption
            if not isinstance(text, str):
                raise PayloadError(f"field '{path}.text' has the wrong type", field=f"{path}.text")
            messages.append(
                InboundMessage(
                    provider=self.name,
                    provider_message_id=string_field(message, "id", f"{path}.id"),
                    sender=string_field(message, "from", f"{path}.from"),
                    recipient=_our_number(event, message, path),
                    text=text,
                    received_at=iso_time(message.get("time") or event.get("time")),
                    raw=event,
                )
            )
        return messages

    def parse_status(self, request: WebhookRequest) -> list[StatusUpdate]:
        """Every delivery event (``message-delivered``, ``message-failed``, ...) in the callback array."""
        updates = []
        for index, event, message in _events(request):
            raw_status = string_field(event, "type", f"[{index}].type")
            if raw_status == "message-received":
                continue
            code = event.get("errorCode")
            readable = isinstance(code, int | str) and not isinstance(code, bool)
            error_code = str(code) if readable and str(code) not in ("", "0") else None
            recipient = event.get("to")
            sender = message.get("from")
            updates.append(
                StatusUpdate(
                    provider=self.name,
                    provider_message_id=string_field(message, "id", f"[{index}].message.id"),
                    status=STATUSES.get(raw_status, DeliveryStatus.UNKNOWN),
                    raw_status=raw_status,
                    error_code=error_code,
                    opted_out=error_code in OPT_OUT_ERROR_CODES,
                    recipient=recipient if isinstance(recipient, str) else None,
                    sender=sender if isinstance(sender, str) else None,
                    occurred_at=iso_time(event.get("time")),
                    raw=event,
                )
            )
        return updates

    # ---- sending ----------------------------------------------------------------------------------

    def send(self, message: OutboundMessage) -> SendResult:
        """POST JSON to the account's messages endpoint; Bandwidth answers 202 with the message id."""
        sender = message.sender or self.sender
        if not sender:
            return self.send_result(
                SendOutcome.FAILED, error_code="no_sender", error_message="no sender configured"
            )
        payload: dict[str, Any] = {
            "applicationId": self.application_id,
            "to": [message.to],
            "from": sender,
            "text": message.body,
        }
        if message.idempotency_key:
            # Echoed back in every callback for this message, which ties receipts to our outbox row.
            payload["tag"] = message.idempotency_key
        url = f"{self.base_url}/api/v2/users/{self.account_id}/messages"
        try:
            response = self.session.post(
                url, json=payload, auth=(self.username, self.password), timeout=self.timeout
            )
        except requests.RequestException as exc:
            return self.network_failure(exc)
        body = response_body(response)
        if is_transient_status(response.status_code):
            return self.transient_failure(response, body)
        if response.status_code >= 400:
            # 4xx answers are neither sent nor billed; "type" is Bandwidth's error name.
            return self.send_result(
                SendOutcome.FAILED,
                error_code=str(body.get("type") or response.status_code),
                error_message=str(body.get("description", ""))[:200],
                raw=body,
            )
        message_id = body.get("id")
        if not isinstance(message_id, str) or not message_id:
            return self.unreadable_success(body)
        return self.send_result(
            SendOutcome.ACCEPTED, provider_message_id=message_id, status=DeliveryStatus.QUEUED, raw=body
        )


# ---- payload helpers: every access checks the type, so a changed shape is a PayloadError -----------


def _events(request: WebhookRequest) -> list[tuple[int, dict[str, Any], dict[str, Any]]]:
    """``(index, event, event["message"])`` for each element of the callback array."""
    body = request.json()
    if not isinstance(body, list):
        raise PayloadError("body must be a JSON array of events", field="[]")
    events = []
    for index, event in enumerate(body):
        if not isinstance(event, dict):
            raise PayloadError(f"field '[{index}]' has the wrong type", field=f"[{index}]")
        message = event.get("message")
        if not isinstance(message, dict):
            raise PayloadError(f"missing field '[{index}].message'", field=f"[{index}].message")
        events.append((index, event, message))
    return events


def _our_number(event: Mapping[str, Any], message: Mapping[str, Any], path: str) -> str:
    """The number that received the message: ``owner``, else the event's ``to``, else the first of ``to[]``.

    In a group message ``message.to`` lists every participant, so ``owner`` is the reliable one.
    """
    for candidate in (message.get("owner"), event.get("to")):
        if isinstance(candidate, str) and candidate:
            return candidate
    recipients = message.get("to")
    if isinstance(recipients, list) and recipients and isinstance(recipients[0], str) and recipients[0]:
        return recipients[0]
    raise PayloadError(f"missing field '{path}.to'", field=f"{path}.to")
