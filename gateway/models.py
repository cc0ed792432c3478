"""Tables. Alembic migrations in `gateway/migrations` create them; these classes describe them.

Datetimes are stored as UTC and always come back timezone-aware (SQLite keeps no zone, so `UTCDateTime`
adds it back). Addresses are stored normalised: E.164 phone numbers, lower-cased emails.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlmodel import Field, SQLModel

# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL gets BIGINT.
BigId = BigInteger().with_variant(Integer(), "sqlite")

OPT_OUT_LIST = "Opt-Out List"
ALL_SCOPES = "*"


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC that always reads back timezone-aware."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _ts(nullable: bool = False, index: bool = False) -> Any:
    if nullable:
        return Field(default=None, sa_column=Column(UTCDateTime(), nullable=True, index=index))
    return Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False, index=index))


class Contact(SQLModel, table=True):
    """A person we may message. Phone and email are each unique when present."""

    __tablename__ = "contacts"
    id: int | None = Field(default=None, sa_column=Column(BigId, primary_key=True, autoincrement=True))
    phone: str | None = Field(default=None, max_length=32, unique=True)
    email: str | None = Field(default=None, max_length=320, unique=True)
    first_name: str | None = Field(default=None, max_length=200)
    last_name: str | None = Field(default=None, max_length=200)
    fields: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = _ts()
    updated_at: datetime = _ts()


class ContactList(SQLModel, table=True):
    """A named list of contacts. ``system`` lists (the Opt-Out List) cannot be edited or deleted."""

    __tablename__ = "contact_lists"
    id: int | None = Field(default=None, sa_column=Column(BigId, primary_key=True, autoincrement=True))
    name: str = Field(max_length=200, unique=True)
    channel: str = Field(default="sms", max_length=16)
    scope: str = Field(default="default", max_length=100)
    system: bool = False
    created_at: datetime = _ts()


class ListMember(SQLModel, table=True):
    """Membership of a contact in a list."""

    __tablename__ = "list_members"
    list_id: int = Field(
        sa_column=Column(BigId, ForeignKey("contact_lists.id", ondelete="CASCADE"), primary_key=True)
    )
    contact_id: int = Field(
        sa_column=Column(BigId, ForeignKey("contacts.id", ondelete="CASCADE"), primary_key=True, index=True)
    )
    added_at: datetime = _ts()


class OptOut(SQLModel, table=True):
    """Current consent state of one address on one channel in one scope.

    The row stays after an opt-in (``opted_out`` false) so that ordering by ``event_at`` can settle a STOP
    and a START that arrive out of order. Scope ``*`` is an opt-out of every scope.
    """

    __tablename__ = "opt_outs"
    __table_args__ = (
        UniqueConstraint("channel", "address", "scope", name="uq_opt_outs_channel_address_scope"),
        Index("ix_opt_outs_active", "channel", "scope", "address", "opted_out"),
    )
    id: int | None = Field(default=None, sa_column=Column(BigId, primary_key=True, autoincrement=True))
    channel: str = Field(max_length=16)
    address: str = Field(max_length=320)
    scope: str = Field(default="default", max_length=100)
    opted_out: bool = True
    source: str = Field(max_length=32)
    rule: str | None = Field(default=None, max_length=200)
    since: datetime = _ts()
    # Provider time of the event that set this state: a later event wins, an older one is only ledgered.
    event_at: datetime = _ts()


class ConsentEvent(SQLModel, table=True):
    """The append-only consent ledger: every opt-out, opt-in and guard bypass, with its evidence."""

    __tablename__ = "consent_events"
    __table_args__ = (Index("ix_consent_events_address", "channel", "address"),)
    id: int | None = Field(default=None, sa_column=Column(BigId, primary_key=True, autoincrement=True))
    channel: str = Field(max_length=16)
    address: str = Field(max_length=320)
    scope: str = Field(max_length=100)
    action: str = Field(max_length=32)  # opt_out | opt_in | bypass
    # False when the event did not change the state (a second STOP, an out-of-order START).
    changed: bool = True
    source: str = Field(max_length=32, index=True)
    rule: str | None = Field(default=None, max_length=200)
    raw_text: str | None = Field(default=None, sa_column=Column(Text))
    provider: str | None = Field(default=None, max_length=50)
    provider_message_id: str | None = Field(default=None, max_length=200)
    reason: str | None = Field(default=None, sa_column=Column(Text))
    actor: str | None = Field(default=None, max_length=200)
    evidence: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    occurred_at: datetime = _ts()
    recorded_at: datetime = _ts(index=True)


class InboundRecord(SQLModel, table=True):
    """Every inbound message, unique per provider message id: the dedupe key for redelivered webhooks."""

    __tablename__ = "inbound_messages"
    __table_args__ = (UniqueConstraint("provider", "provider_message_id", name="uq_inbound_provider_msg"),)
    id: int | None = Field(default=None, sa_column=Column(BigId, primary_key=True, autoincrement=True))
    provider: str = Field(max_length=50)
    provider_message_id: str = Field(max_length=200)
    channel: str = Field(default="sms", max_length=16)
    sender: str = Field(max_length=320, index=True)
    recipient: str = Field(max_length=320)
    text: str = Field(sa_column=Column(Text, nullable=False))
    rule: str | None = Field(default=None, max_length=200)
    campaign_id: int | None = Field(default=None, sa_column=Column(BigId, nullable=True))
    raw: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    received_at: datetime = _ts()
    recorded_at: datetime = _ts()


class InboundPart(SQLModel, table=True):
    """A part of a concatenated SMS waiting for its siblings (providers that do not reassemble)."""

    __tablename__ = "inbound_parts"
    __table_args__ = (UniqueConstraint("provider", "sender", "concat_ref", "part", name="uq_inbound_parts"),)
    id: int | None = Field(default=None, sa_column=Column(BigId, primary_key=True, autoincrement=True))
    provider: str = Field(max_length=50)
    sender: str = Field(max_length=320)
    concat_ref: str = Field(max_length=100)
    part: int
    total: int
    provider_message_id: str = Field(max_length=200)
    text: str = Field(sa_column=Column(Text, nullable=False))
    received_at: datetime = _ts()


class OutboxMessage(SQLModel, table=True):
    """A durable outbound message (or forward): queued here in the same transaction as its cause."""

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_due", "status", "next_attempt_at"),
        Index("ix_outbox_provider_msg", "provider", "provider_message_id"),
    )
    id: int | None = Field(default=None, sa_column=Column(BigId, primary_key=True, autoincrement=True))
    kind: str = Field(default="message", max_length=16)  # message | forward
    channel: str = Field(default="sms", max_length=16)
    provider: str = Field(max_length=50)
    sender: str | None = Field(default=None, max_length=320)
    recipient: str = Field(max_length=2000)  # an address, or the URL of a forward
    scope: str = Field(default="default", max_length=100)
    category: str = Field(default="marketing", max_length=20)
    subject: str | None = Field(default=None, max_length=998)
    body: str = Field(sa_column=Column(Text, nullable=False))
    html_body: str | None = Field(default=None, sa_column=Column(Text))
    headers: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    # queued -> sending -> sent | failed | blocked | cancelled; retries go back to queued.
    status: str = Field(default="queued", max_length=16)
    attempts: int = 0
    max_attempts: int = 8
    next_attempt_at: datetime = _ts()
    lease_until: datetime | None = _ts(nullable=True)
    claimed_by: str | None = Field(default=None, max_length=100)
    last_error: str | None = Field(default=None, sa_column=Column(Text))
    idempotency_key: str = Field(max_length=200, unique=True)
    provider_message_id: str | None = Field(default=None, max_length=200)
    delivery_status: str | None = Field(default=None, max_length=16)
    bypass_reason: str | None = Field(default=None, sa_column=Column(Text))
    campaign_id: int | None = Field(default=None, sa_column=Column(BigId, nullable=True, index=True))
    inbound_id: int | None = Field(default=None, sa_column=Column(BigId, nullable=True))
    created_at: datetime = _ts()
    sent_at: datetime | None = _ts(nullable=True)


class DeliveryEvent(SQLModel, table=True):
    """A delivery receipt, unique per (provider, message id, raw status) so redeliveries change nothing."""

    __tablename__ = "delivery_events"
    __table_args__ = (
        UniqueConstraint("provider", "provider_message_id", "raw_status", name="uq_delivery_events"),
    )
    id: int | None = Field(default=None, sa_column=Column(BigId, primary_key=True, autoincrement=True))
    provider: str = Field(max_length=50)
    provider_message_id: str = Field(max_length=200)
    status: str = Field(max_length=16)
    raw_status: str = Field(max_length=64)
    error_code: str | None = Field(default=None, max_length=32)
    raw: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    occurred_at: datetime = _ts()
    recorded_at: datetime = _ts()


def tables() -> list[Any]:
    """All gateway tables, in dependency order (used by tests to clean up between cases)."""
    return list(SQLModel.metadata.sorted_tables)


def table(model: type[SQLModel]) -> Table:
    """The Core `Table` behind a model, for set-based statements (typed, unlike ``Model.__table__``)."""
    return model.__table__  # type: ignore[attr-defined]


# ---- Campaigns and send pacing (migration 0002) ---------------------------------------------------------


class Campaign(SQLModel, table=True):
    """A message sent to every eligible member of a list. The row is the source of truth for scheduling.

    Status: ``scheduled`` -> ``sending`` (claimed by a worker, fanning out, then draining) -> ``sent``;
    ``cancelled`` from either of the first two. ``draft`` and ``paused`` are reserved for later use.
    ``fanout_cursor`` is the last contact id written to the outbox, so a fan-out interrupted by a crash
    resumes where it stopped once its lease (``lease_until``) runs out.
    """

    __tablename__ = "campaigns"
    __table_args__ = (Index("ix_campaigns_due", "status", "send_at"),)
    id: int | None = Field(default=None, sa_column=Column(BigId, primary_key=True, autoincrement=True))
    name: str = Field(max_length=200)
    list_id: int | None = Field(
        default=None,
        sa_column=Column(BigId, ForeignKey("contact_lists.id", ondelete="SET NULL"), nullable=True),
    )
    channel: str = Field(default="sms", max_length=16)
    category: str = Field(default="marketing", max_length=20)
    body: str = Field(sa_column=Column(Text, nullable=False))
    subject: str | None = Field(default=None, max_length=998)
    html_body: str | None = Field(default=None, sa_column=Column(Text))
    sender: str | None = Field(default=None, max_length=320)
    provider: str = Field(max_length=50)
    # The sender's opt-out scope; with an email topic, ``<scope>/<topic>`` (see `gateway.email`).
    scope: str = Field(default="default", max_length=100)
    topic: str | None = Field(default=None, max_length=100)
    status: str = Field(default="scheduled", max_length=16)
    segments: int = 1
    encoding: str = Field(default="GSM-7", max_length=16)
    footer_appended: bool = False
    send_at: datetime = _ts()
    # Fan-out facts, written as the fan-out goes.
    members: int = 0
    queued: int = 0
    excluded_opted_out: int = 0
    excluded_no_address: int = 0
    # Final outcome counts, written when the campaign is complete (the outbox has the live ones).
    sent: int = 0
    failed: int = 0
    blocked: int = 0
    fanout_cursor: int | None = Field(default=None, sa_column=Column(BigId, nullable=True))
    fanned_out_at: datetime | None = _ts(nullable=True)
    claimed_by: str | None = Field(default=None, max_length=100)
    lease_until: datetime | None = _ts(nullable=True)
    created_at: datetime = _ts()
    updated_at: datetime = _ts()
    started_at: datetime | None = _ts(nullable=True)
    finished_at: datetime | None = _ts(nullable=True)


class SendPacing(SQLModel, table=True):
    """The next free send slot of one provider/sender pair: campaign fan-outs reserve slots from it."""

    __tablename__ = "send_pacing"
    provider: str = Field(max_length=50, primary_key=True)
    sender: str = Field(max_length=320, primary_key=True)
    next_slot_at: datetime = _ts()


# Campaign counts and the "is it finished" check read the outbox by (campaign, status); linking a reply to
# the last message sent to that number reads it by recipient.
Index("ix_outbox_campaign_status", table(OutboxMessage).c.campaign_id, table(OutboxMessage).c.status)
Index("ix_outbox_recipient", table(OutboxMessage).c.recipient)


# ---- Mass opt-out safeguard (migration 0004) -------------------------------------------------------------


class CampaignHold(SQLModel, table=True):
    """A campaign paused because too many of its sends came back with a provider opt-out code.

    ``status`` is ``open`` until an operator ``confirmed`` the held opt-outs (applied) or ``dismissed``
    them (discarded); either way the campaign goes back to ``campaign_status``, its status before the pause.
    """

    __tablename__ = "campaign_holds"
    id: int | None = Field(default=None, sa_column=Column(BigId, primary_key=True, autoincrement=True))
    campaign_id: int = Field(sa_column=Column(BigId, nullable=False, index=True))
    status: str = Field(default="open", max_length=16)
    campaign_status: str = Field(max_length=16)
    # What tripped it: opt-out codes and sends in the window, and the threshold then in force.
    opt_outs: int
    sends: int
    threshold: float
    opened_at: datetime = _ts()
    resolved_at: datetime | None = _ts(nullable=True)
    resolved_by: str | None = Field(default=None, max_length=200)
    reason: str | None = Field(default=None, sa_column=Column(Text))


class ProviderOptOutSignal(SQLModel, table=True):
    """A provider's opt-out code for one campaign message: applied at once, or held with a `CampaignHold`.

    ``state``: ``applied`` (recorded as an opt-out), ``held`` (waiting for an operator), ``confirmed`` or
    ``dismissed``. One per outbox row: a second receipt with the code for the same message adds nothing.
    """

    __tablename__ = "provider_opt_out_signals"
    __table_args__ = (Index("ix_provider_opt_out_signals_window", "campaign_id", "recorded_at"),)
    id: int | None = Field(default=None, sa_column=Column(BigId, primary_key=True, autoincrement=True))
    campaign_id: int = Field(sa_column=Column(BigId, nullable=False))
    outbox_id: int = Field(sa_column=Column(BigId, nullable=False, unique=True))
    hold_id: int | None = Field(default=None, sa_column=Column(BigId, nullable=True, index=True))
    state: str = Field(default="applied", max_length=16)
    channel: str = Field(max_length=16)
    address: str = Field(max_length=320)
    scope: str = Field(max_length=100)
    provider: str = Field(max_length=50)
    provider_message_id: str | None = Field(default=None, max_length=200)
    error_code: str | None = Field(default=None, max_length=32)
    evidence: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    occurred_at: datetime = _ts()
    recorded_at: datetime = _ts()


# The safeguard counts a campaign's sends in its window by (campaign, sent time).
Index("ix_outbox_campaign_sent", table(OutboxMessage).c.campaign_id, table(OutboxMessage).c.sent_at)
