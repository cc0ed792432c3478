"""Storage operations on the consent state, the ledger, inbound records and the outbox.

Every function takes an open `Session` inside the caller's transaction: the webhook path performs all of
a message's effects and commits once. Inserts that must be idempotent use ``INSERT ... ON CONFLICT DO
NOTHING RETURNING``, which both SQLite (3.35+) and PostgreSQL execute atomically, so two deliveries of one
webhook racing each other cannot both win.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Table, bindparam, update
from sqlalchemy.orm import Session
from sqlmodel import select

from gateway.fastpath import Prepared, insert_ignore_statement, insert_statement, with_defaults
from gateway.models import ALL_SCOPES, ConsentEvent, OptOut, OutboxMessage, table, utcnow

_OPT_OUTS = table(OptOut)
_CONSENT_EVENTS = table(ConsentEvent)

# The webhook path runs these on every message and the guard on every send, so they are built once and
# executed on the driver (`gateway.fastpath`): SQLAlchemy's per-execution work cost more than SQLite
# takes to run them.
_C = _OPT_OUTS.c
_STATE = Prepared(
    select(_C.id, _C.opted_out, _C.event_at)
    .where(
        _C.channel == bindparam("channel"), _C.address == bindparam("address"), _C.scope == bindparam("scope")
    )
    .with_for_update()  # PostgreSQL locks the row; SQLite renders nothing (its write lock is already held)
)
_TOUCH_STATE = Prepared(
    update(_OPT_OUTS).where(_C.id == bindparam("state_id")).values(event_at=bindparam("event_at"))
)
_CHANGE_STATE = Prepared(
    update(_OPT_OUTS)
    .where(_C.id == bindparam("state_id"))
    .values(
        {
            name: bindparam(name, type_=_C[name].type)
            for name in ("opted_out", "source", "rule", "since", "event_at")
        }
    )
)
_ACTIVE_SCOPES = Prepared(
    select(_C.scope).where(
        _C.channel == bindparam("channel"), _C.address == bindparam("address"), _C.opted_out
    )
)
# The guard's question, asked for every outbound message: which opt-out blocks this address in this
# scope? Columns only, and the covering scopes as three fixed parameters.
_ACTIVE_ANY = (
    select(_C.scope, _C.since, _C.source)
    .where(_C.channel == bindparam("channel"), _C.address == bindparam("address"), _C.opted_out)
    .order_by(_C.since)
    .limit(1)
)
_ACTIVE = Prepared(_ACTIVE_ANY)
_ACTIVE_IN_SCOPES = Prepared(
    _ACTIVE_ANY.where(_C.scope.in_([bindparam("scope"), bindparam("all"), bindparam("parent")]))
)


def insert_ignore(session: Session, table: Table, values: Mapping[str, Any], conflict: Sequence[str]) -> Any:
    """Insert a row unless one with the same ``conflict`` columns exists; the new id, or None.

    Atomic on both databases: concurrent callers with the same key get exactly one id between them.
    """
    row = with_defaults(table, values)
    dialect = session.get_bind().dialect.name
    return insert_ignore_statement(dialect, table, tuple(row), tuple(conflict)).scalar(session, row)


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
    return _STATE.first(session, {"channel": channel, "address": address, "scope": scope})


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
        state_id, state_opted_out, state_event_at = state
        stale = event_at < state_event_at
        changed = not stale and bool(state_opted_out) != opted_out
        if changed:
            values = {"opted_out": opted_out, "source": ev.source, "rule": ev.rule, "since": now}
            _CHANGE_STATE.rows(session, {"state_id": state_id, "event_at": event_at, **values})
        elif not stale:
            _TOUCH_STATE.rows(session, {"state_id": state_id, "event_at": event_at})
    event = {
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
    }
    event_id = insert_statement(_CONSENT_EVENTS, tuple(event)).scalar(session, event)
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
        active = {r[0] for r in _ACTIVE_SCOPES.rows(session, {"channel": channel, "address": address})}
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
        row = _ACTIVE.first(session, {"channel": channel, "address": address})
    else:
        covering = covering_scopes(scope)
        parent = covering[2] if len(covering) > 2 else scope
        params = {"channel": channel, "address": address, "scope": scope, "all": ALL_SCOPES, "parent": parent}
        row = _ACTIVE_IN_SCOPES.first(session, params)
    return ActiveOptOut(*row) if row is not None else None


def enqueue(session: Session, values: Mapping[str, Any]) -> int | None:
    """Queue an outbox row; its id, or None when a row with the same idempotency key already exists."""
    now = utcnow()
    row = {"created_at": now, "next_attempt_at": now, "headers": {}, **values}
    result: int | None = insert_ignore(session, table(OutboxMessage), row, ("idempotency_key",))
    return result
