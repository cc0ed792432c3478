"""Storage operations on the consent state, the ledger, inbound records and the outbox.

Every function takes an open `Session` inside the caller's transaction: the webhook path performs all of
a message's effects and commits once. Inserts that must be idempotent use ``INSERT ... ON CONFLICT DO
NOTHING RETURNING``, which both SQLite (3.35+) and PostgreSQL execute atomically, so two deliveries of one
webhook racing each other cannot both win.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Table, bindparam, insert, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from sqlmodel import select

from gateway.models import ALL_SCOPES, ConsentEvent, InboundRecord, OptOut, OutboxMessage, table, utcnow

_OPT_OUTS = table(OptOut)
_CONSENT_EVENTS = table(ConsentEvent)

# The webhook path runs these on every message, so they are built once with bound parameters: building
# a statement costs more Python time than SQLite takes to run it, and a prebuilt statement also hits
# SQLAlchemy's compiled-statement cache directly.
_C = _OPT_OUTS.c
_STATE = (
    select(_C.id, _C.opted_out, _C.event_at)
    .where(
        _C.channel == bindparam("channel"), _C.address == bindparam("address"), _C.scope == bindparam("scope")
    )
    .with_for_update()  # PostgreSQL locks the row; SQLite renders nothing (its write lock is already held)
)
_UPDATE_STATE = update(_OPT_OUTS).where(_C.id == bindparam("state_id"))
_ACTIVE_SCOPES = select(_C.scope).where(
    _C.channel == bindparam("channel"), _C.address == bindparam("address"), _C.opted_out
)
_INSERT_EVENT = insert(_CONSENT_EVENTS).returning(_CONSENT_EVENTS.c.id)
# The guard's question, asked for every outbound message: which opt-out blocks this address in this
# scope? Columns only (no ORM object to build), and the covering scopes as three fixed parameters (an
# expanding IN list is re-rendered on every execution).
_ACTIVE = (
    select(_C.scope, _C.since, _C.source)
    .where(_C.channel == bindparam("channel"), _C.address == bindparam("address"), _C.opted_out)
    .order_by(_C.since)
    .limit(1)
)
_ACTIVE_IN_SCOPES = _ACTIVE.where(_C.scope.in_([bindparam("scope"), bindparam("all"), bindparam("parent")]))


@functools.lru_cache(maxsize=64)
def _insert_ignore_statement(dialect: str, target: Table, conflict: tuple[str, ...]) -> Any:
    insert_for = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return insert_for(target).on_conflict_do_nothing(index_elements=list(conflict)).returning(target.c.id)


def insert_ignore(session: Session, table: Table, values: Mapping[str, Any], conflict: Sequence[str]) -> Any:
    """Insert a row unless one with the same ``conflict`` columns exists; the new id, or None.

    Atomic on both databases: concurrent callers with the same key get exactly one id between them.
    """
    stmt = _insert_ignore_statement(session.get_bind().dialect.name, table, tuple(conflict))
    return session.execute(stmt, dict(values)).scalar_one_or_none()


def record_inbound(session: Session, values: Mapping[str, Any]) -> int | None:
    """Store an inbound message; its id, or None when (provider, provider_message_id) was seen before."""
    now = utcnow()
    row = {"received_at": now, "recorded_at": now, "raw": {}, **values}
    conflict = ("provider", "provider_message_id")
    result: int | None = insert_ignore(session, table(InboundRecord), row, conflict)
    return result


@dataclass(frozen=True, slots=True)
class ConsentChange:
    """The result of applying one consent event to one scope."""

    scope: str
    changed: bool
    event_id: int


@dataclass(frozen=True, slots=True)
class Evidence:
    """Who and what caused a consent event; stored with every ledger row."""

    source: str
    occurred_at: datetime | None = None
    rule: str | None = None
    raw_text: str | None = None
    provider: str | None = None
    provider_message_id: str | None = None
    reason: str | None = None
    actor: str | None = None
    details: Mapping[str, Any] | None = None


def _locked_state(session: Session, channel: str, address: str, scope: str) -> Any:
    """(id, opted_out, event_at) of the state row, locked for this transaction, or None."""
    return session.execute(_STATE, {"channel": channel, "address": address, "scope": scope}).one_or_none()


def _apply_one(
    session: Session, channel: str, address: str, scope: str, opted_out: bool, ev: Evidence
) -> ConsentChange:
    now = utcnow()
    event_at = ev.occurred_at or now
    # New address/scope: the insert itself is the transition (an opt-in for someone never opted out is not).
    new_id = insert_ignore(
        session,
        _OPT_OUTS,
        {
            "channel": channel,
            "address": address,
            "scope": scope,
            "opted_out": opted_out,
            "source": ev.source,
            "rule": ev.rule,
            "since": now,
            "event_at": event_at,
        },
        ("channel", "address", "scope"),
    )
    if new_id is not None:
        changed = opted_out
    else:
        state = _locked_state(session, channel, address, scope)
        assert state is not None  # the insert conflicted, so the row exists (and we now hold its lock)
        # An event older than the one that set the current state is ledgered but does not change it:
        # STOP and START racing each other settle by the provider's order, not by arrival order.
        stale = event_at < state.event_at
        changed = not stale and bool(state.opted_out) != opted_out
        if changed:
            values = {"opted_out": opted_out, "source": ev.source, "rule": ev.rule, "since": now}
            session.execute(_UPDATE_STATE, {"state_id": state.id, "event_at": event_at, **values})
        elif not stale:
            session.execute(_UPDATE_STATE, {"state_id": state.id, "event_at": event_at})
    event_id = session.execute(
        _INSERT_EVENT,
        {
            "channel": channel,
            "address": address,
            "scope": scope,
            "action": "opt_out" if opted_out else "opt_in",
            "changed": changed,
            "source": ev.source,
            "rule": ev.rule,
            "raw_text": ev.raw_text,
            "provider": ev.provider,
            "provider_message_id": ev.provider_message_id,
            "reason": ev.reason,
            "actor": ev.actor,
            "evidence": dict(ev.details or {}),
            "occurred_at": event_at,
            "recorded_at": now,
        },
    ).scalar_one()
    return ConsentChange(scope, changed, event_id)


def apply_consent(
    session: Session,
    *,
    channel: str,
    address: str,
    scope: str,
    opted_out: bool,
    evidence: Evidence,
    all_scopes: bool = False,
    known_scopes: Iterable[str] = (),
) -> list[ConsentChange]:
    """Record an opt-out (``opted_out=True``) or opt-in and update the state; one ledger row per scope.

    ``all_scopes`` opts out of every scope: scope ``*`` (which also covers scopes configured later) and
    each of ``known_scopes`` explicitly, so a later START in one scope leaves the others opted out. An
    opt-in in a scope also lifts ``*``; with ``all_scopes`` it lifts every scope the address is out of.
    """
    if opted_out:
        scopes = [ALL_SCOPES, *sorted(set(known_scopes) | {scope})] if all_scopes else [scope]
    else:
        scopes = [scope]
        active = set(session.execute(_ACTIVE_SCOPES, {"channel": channel, "address": address}).scalars())
        if all_scopes:
            scopes = sorted(active | {scope})
        elif ALL_SCOPES in active:
            scopes.append(ALL_SCOPES)
    return [_apply_one(session, channel, address, s, opted_out, evidence) for s in scopes]


#: A topic scope is ``<scope>/<topic>`` (``acme/newsletters``): an email topic a person can leave alone.
TOPIC_SEPARATOR = "/"


def covering_scopes(scope: str) -> list[str]:
    """The scopes whose opt-out blocks ``scope``: itself and ``*``, and for a topic scope its parent too
    (leaving everything from ``acme`` also leaves ``acme/newsletters``; leaving the topic leaves only it)."""
    parent, sep, _ = scope.partition(TOPIC_SEPARATOR)
    return [scope, ALL_SCOPES, *([parent] if sep else [])]


@dataclass(frozen=True, slots=True)
class ActiveOptOut:
    """The opt-out that blocks an address: in which scope, since when, and what recorded it."""

    scope: str
    since: datetime
    source: str


def active_opt_out(
    session: Session, channel: str, address: str, scope: str | None = None
) -> ActiveOptOut | None:
    """The opt-out that blocks ``address`` on ``channel`` in ``scope`` (any scope when None), or None."""
    if scope is None:
        row = session.execute(_ACTIVE, {"channel": channel, "address": address}).first()
    else:
        covering = covering_scopes(scope)
        parent = covering[2] if len(covering) > 2 else scope
        params = {"channel": channel, "address": address, "scope": scope, "all": ALL_SCOPES, "parent": parent}
        row = session.execute(_ACTIVE_IN_SCOPES, params).first()
    return ActiveOptOut(row.scope, row.since, row.source) if row is not None else None


def enqueue(session: Session, values: Mapping[str, Any]) -> int | None:
    """Queue an outbox row; its id, or None when a row with the same idempotency key already exists."""
    now = utcnow()
    row = {"created_at": now, "next_attempt_at": now, "headers": {}, **values}
    result: int | None = insert_ignore(session, table(OutboxMessage), row, ("idempotency_key",))
    return result
