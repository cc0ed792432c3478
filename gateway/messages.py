"""The gateway's message types: what adapters produce and consume.

They are frozen dataclasses so a message can be passed between the webhook path, the rule engine and the
outbox without anyone changing it underneath the others. Each keeps the provider's raw payload, because
the consent ledger must be able to show exactly what arrived.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class Channel(StrEnum):
    """A delivery channel. Opt-outs are recorded per channel."""

    SMS = "sms"
    EMAIL = "email"


class DeliveryStatus(StrEnum):
    """The closed set every provider status maps onto; anything unrecognised is ``UNKNOWN``."""

    QUEUED = "queued"
    SENT = "sent"
    DELIVERED = "delivered"
    UNDELIVERED = "undelivered"
    FAILED = "failed"
    UNKNOWN = "unknown"


class SendOutcome(StrEnum):
    """What the outbox should do with a message after one send attempt."""

    ACCEPTED = "accepted"  # the provider took it; done
    RETRY = "retry"  # transient: 429, 5xx, timeout, connection error
    FAILED = "failed"  # permanent: never retry
    OPTED_OUT = "opted_out"  # the provider says the recipient opted out: record it, never retry


class Category(StrEnum):
    """Why a message is sent; decides what the guard lets through."""

    MARKETING = "marketing"
    INFORMATIONAL = "informational"
    TRANSACTIONAL = "transactional"
    # Opt-out/opt-in confirmations and HELP answers: allowed to reach an opted-out number.
    COMPLIANCE = "compliance"


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """One message received from a person, normalised across providers.

    ``sender`` and ``recipient`` are E.164 numbers (or email addresses) as the adapter could best
    determine; the gateway normalises them again with the configured default region.
    """

    provider: str
    provider_message_id: str
    sender: str
    recipient: str
    text: str
    channel: Channel = Channel.SMS
    received_at: datetime | None = None
    # When the provider already acted on a keyword (Twilio ``OptOutType``, Plivo ``MessageIntent``):
    # "opt_out", "opt_in" or "help". The gateway records it and, by default, does not reply again.
    provider_action: str | None = None
    # The provider's own value behind provider_action ("STOP", "optout"), kept in the ledger as evidence.
    provider_code: str | None = None
    # The outbound message this one answers, where the provider says (ClickSend original_message_id).
    in_reply_to: str | None = None
    custom_string: str | None = None
    # Concatenated-SMS parts the provider did not reassemble (Vonage): the gateway buffers parts with the
    # same (sender, concat_ref) until all concat_total have arrived, then runs the rules once on the whole.
    concat_ref: str | None = None
    concat_part: int | None = None
    concat_total: int | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    """One message to send through a provider adapter."""

    channel: Channel
    to: str
    body: str
    sender: str | None = None
    # Our own key: passed to providers that support idempotent sends, so a retried claim never doubles.
    idempotency_key: str | None = None
    subject: str | None = None
    html_body: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    custom_string: str | None = None
    status_callback: str | None = None


@dataclass(frozen=True, slots=True)
class SendResult:
    """The outcome of one send attempt, with the provider's raw answer kept for the record."""

    outcome: SendOutcome
    provider: str
    provider_message_id: str | None = None
    status: DeliveryStatus = DeliveryStatus.UNKNOWN
    error_code: str | None = None
    error_message: str | None = None
    # Seconds the provider asked us to wait (Retry-After), when it said.
    retry_after: float | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class StatusUpdate:
    """A delivery receipt, normalised: which message, which closed status, the provider's own code."""

    provider: str
    provider_message_id: str
    status: DeliveryStatus
    raw_status: str
    error_code: str | None = None
    # True when the provider's code means the recipient opted out (Twilio 21610, Vonage err-code 9, ...).
    opted_out: bool = False
    recipient: str | None = None
    occurred_at: datetime | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)
    # Our number the message went out from, where the receipt says: it decides the scope of an opt-out
    # reported for a message the outbox does not know (sent before the gateway, or around it).
    sender: str | None = None


@dataclass(frozen=True, slots=True)
class ProviderOptOut:
    """One entry of a provider's own opt-out list (read by ``optout providers sync``)."""

    provider: str
    # The person's number as the provider wrote it (it may be redacted or a short code: check it).
    address: str
    # Our number the opt-out applies to; None when it covers the whole account.
    sender: str | None = None
    keyword: str | None = None
    created_at: datetime | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)
