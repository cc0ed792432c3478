"""The send guard: the one path every outbound message takes into the outbox.

`submit` refuses opted-out recipients with `OptedOutError` (per channel and scope), lets compliance
messages (the one confirmation, HELP answers) through, and lets a transactional message pass only with a
stated `bypass_reason`, which is written to the consent ledger. The worker calls `check` again at
dispatch, so someone who opts out after a message was queued gets nothing more.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import JSON, String, any_, bindparam, func
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session
from sqlmodel import col, select

from gateway.addresses import normalize_address, normalize_sender
from gateway.email import check_topic, prepare, topic_scope
from gateway.errors import OptedOutError, PayloadError
from gateway.messages import Category
from gateway.models import ConsentEvent, OptOut, table, utcnow
from gateway.runtime import Gateway
from gateway.storage import ActiveOptOut, active_opt_out, covering_scopes, enqueue


def check(session: Session, gw: Gateway, channel: str, address: str, scope: str) -> None:
    """Raise `OptedOutError` when ``address`` may not receive consent-requiring messages in ``scope``."""
    state = active_opt_out(session, channel, address, scope)
    if state is None and gw.settings.compliance.cross_channel:
        state = _other_channel_opt_out(session, channel, address, scope)
    if state is not None:
        raise OptedOutError(channel, address, state.scope, state.since.isoformat(), state.source)


def _other_channel_opt_out(session: Session, channel: str, address: str, scope: str) -> ActiveOptOut | None:
    # cross_channel: an opt-out of the same contact on any channel blocks this one too.
    from gateway.models import Contact

    column = Contact.phone if channel == "sms" else Contact.email
    contact = session.execute(select(Contact).where(col(column) == address)).scalar_one_or_none()
    if contact is None:
        return None
    for other_channel, other in (("sms", contact.phone), ("email", contact.email)):
        if other_channel != channel and other:
            state = active_opt_out(session, other_channel, other, scope)
            if state is not None:
                return state
    return None


# Bulk checks run one set-based query with the addresses in a single parameter: an array on PostgreSQL
# (``= ANY(:addresses)``), a JSON array unpacked by ``json_each`` on SQLite. Both plan as one index probe
# per address. A long ``IN`` list of bound parameters, as before, was five times slower on PostgreSQL
# and on SQLite spent most of its time rendering thousands of placeholders. bench/bench_guard.py
# measures these against raw SQL.
_OO = table(OptOut).c


def _among_statement(postgres: bool, any_scope: bool) -> Any:
    stmt = select(_OO.address).where(_OO.channel == bindparam("channel"), _OO.opted_out)
    if not any_scope:
        stmt = stmt.where(_OO.scope.in_(bindparam("scopes", expanding=True)))
    if postgres:
        return stmt.where(_OO.address == any_(bindparam("addresses", type_=postgresql.ARRAY(String))))
    unpacked = func.json_each(bindparam("addresses", type_=JSON)).table_valued("value")
    return stmt.where(_OO.address.in_(select(unpacked.c.value)))


_AMONG = {(pg, wide): _among_statement(pg, wide) for pg in (True, False) for wide in (True, False)}


def opted_out_among(
    session: Session, channel: str, addresses: Iterable[str], scope: str | None
) -> set[str]:
    """The subset of ``addresses`` (normalised) opted out on ``channel`` in ``scope``, or in any scope
    when ``scope`` is None, in one query."""
    items = list(dict.fromkeys(addresses))
    if not items:
        return set()
    postgres = session.get_bind().dialect.name == "postgresql"
    params: dict[str, Any] = {"channel": channel, "addresses": items}
    if scope is not None:
        params["scopes"] = covering_scopes(scope)
    stmt = _AMONG[(postgres, scope is None)]
    return set(session.connection().execute(stmt, params).scalars().all())


@dataclass(frozen=True, slots=True)
class Submitted:
    """What `submit` queued: the outbox id (None when the idempotency key was already queued)."""

    id: int | None
    idempotency_key: str
    status: str


def submit(
    session: Session,
    gw: Gateway,
    *,
    channel: str,
    to: str,
    body: str,
    sender: str | None = None,
    category: str = Category.MARKETING,
    bypass_reason: str | None = None,
    idempotency_key: str | None = None,
    subject: str | None = None,
    html_body: str | None = None,
    headers: dict[str, Any] | None = None,
    campaign_id: int | None = None,
    inbound_id: int | None = None,
    provider: str | None = None,
    normalized: bool = False,
    topic: str | None = None,
) -> Submitted:
    """Check consent and queue one message; the only way a message reaches the outbox.

    Raises `OptedOutError` for an opted-out recipient unless ``category`` is compliance, or transactional
    with a ``bypass_reason`` (then the bypass is ledgered). ``normalized`` skips re-parsing addresses that
    the caller already normalised (campaign fan-out, the webhook path). A ``topic`` (one of
    ``email.topics``) narrows the scope to ``<scope>/<topic>``: blocked when the person left that topic or
    everything. Emails get their unsubscribe link and headers here (`gateway.email.prepare`), so the row
    in the outbox is exactly what is sent.
    """
    region = gw.settings.default_region
    if category not in Category.__members__.values():
        raise PayloadError(f"unknown category {category!r}", field="category")
    if not body:
        raise PayloadError("body is empty", field="body")
    address = to if normalized else normalize_address(channel, to, region)
    sender = sender or gw.default_sender(channel)
    if sender and not normalized and channel == "sms":
        sender = normalize_sender(sender, region)
    base_scope = gw.settings.scope_for(sender)
    check_topic(gw.settings, topic)
    scope = topic_scope(base_scope, topic)
    if category != Category.COMPLIANCE:
        try:
            check(session, gw, channel, address, scope)
        except OptedOutError:
            if category != Category.TRANSACTIONAL or not bypass_reason:
                raise
            session.add(
                ConsentEvent(
                    channel=channel,
                    address=address,
                    scope=scope,
                    action="bypass",
                    changed=False,
                    source="api",
                    reason=bypass_reason,
                    occurred_at=utcnow(),
                    recorded_at=utcnow(),
                )
            )
    if channel == "email":
        prepared = prepare(gw, category=str(category), address=address, scope=base_scope, topic=topic,
                           body=body, html_body=html_body, headers=headers)
        body, html_body, headers = prepared.body, prepared.html_body, prepared.headers
    key = idempotency_key or f"msg:{uuid.uuid4()}"
    new_id = enqueue(
        session,
        {
            "kind": "message",
            "channel": channel,
            "provider": provider or gw.provider_for_sender(sender),
            "sender": sender,
            "recipient": address,
            "scope": scope,
            "category": str(category),
            "body": body,
            "subject": subject,
            "html_body": html_body,
            "headers": headers or {},
            "idempotency_key": key,
            "bypass_reason": bypass_reason,
            "campaign_id": campaign_id,
            "inbound_id": inbound_id,
            "max_attempts": gw.settings.outbox.max_attempts,
        },
    )
    return Submitted(new_id, key, "queued")


__all__ = ["Submitted", "check", "opted_out_among", "submit"]
