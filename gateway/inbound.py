"""The inbound path after verification: dedupe, reassemble, evaluate rules, perform actions.

`prepare` does the pure part (normalising addresses, evaluating rules) before any transaction opens;
`process` runs inside the caller's transaction; the webhook route commits once for all its messages and
only then answers the provider (and logs), so a 2xx always means the effects are stored.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, or_
from sqlalchemy.orm import Session
from sqlmodel import col, select

from gateway import lists
from gateway.addresses import mask, normalize_address, normalize_sender
from gateway.errors import InvalidAddressError, PayloadError
from gateway.guard import submit
from gateway.messages import Category, InboundMessage
from gateway.models import InboundPart, table, utcnow
from gateway.runtime import Gateway
from gateway.storage import Evidence, apply_consent, enqueue, insert_ignore
from rules import actions as A
from rules import evaluate

log = logging.getLogger(__name__)

# Templates whose replies are compliance messages: they reach opted-out numbers (one confirmation, HELP).
COMPLIANCE_TEMPLATES = frozenset({"opt_out", "opt_in", "help"})
_PROVIDER_ACTIONS = {"opt_out": True, "opt_in": False}
# Parts of one concatenated SMS are sent together; a buffered part this far (in provider time) from a new one
# is left over from an earlier message that reused the same concat ref (see `_reassemble`).
_STALE_PART = timedelta(hours=24)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened to one inbound message (for logs, tests and the simulator)."""

    inbound_id: int | None
    duplicate: bool = False
    waiting_for_parts: bool = False
    rule: str | None = None
    consent_changed: bool = False
    replies: int = 0
    # For the log line written after commit (`log_outcome`); the sender already masked.
    provider: str | None = None
    message_id: str | None = None
    sender: str | None = None


@dataclass(frozen=True, slots=True)
class Incoming:
    """An inbound message made ready outside the transaction: addresses normalised, rules evaluated.

    Everything here is pure computation; doing it before the write transaction opens keeps the time a
    transaction holds its locks (on SQLite, the one database-wide write lock) to the statements themselves.
    """

    msg: InboundMessage
    actions: list[A.Action] | None  # None for a part of a concatenated SMS: evaluated once reassembled
    received_at: datetime
    raw: dict[str, Any]


def prepare(gw: Gateway, msg: InboundMessage) -> Incoming:
    """Normalise a verified, cleaned message's addresses and evaluate the rules on it (no database)."""
    region = gw.settings.default_region
    try:
        sender = normalize_address(msg.channel, msg.sender, region)
    except InvalidAddressError:
        raise PayloadError("sender is not a valid address", field="from") from None
    recipient = normalize_sender(msg.recipient, region) if msg.channel == "sms" else msg.recipient.lower()
    msg = replace(msg, sender=sender, recipient=recipient)
    partial = bool(msg.concat_total and msg.concat_total > 1)
    actions = None if partial else evaluate(gw.rules, msg)
    return Incoming(msg, actions, msg.received_at or utcnow(), _jsonable(msg.raw))


def process(session: Session, gw: Gateway, incoming: Incoming) -> Outcome:
    """Store one prepared inbound message and perform what the rules ask, in the caller's transaction."""
    msg, actions, received_at = incoming.msg, incoming.actions, incoming.received_at
    if actions is None:
        whole = _reassemble(session, msg)
        if whole is None:
            return Outcome(None, waiting_for_parts=True)
        msg, actions = whole, evaluate(gw.rules, whole)
    # The rule is stored with the row, instead of a second statement updating it.
    rule = actions[0].rule if actions else None
    inbound_id = lists.record_reply(
        session,
        msg,
        {
            "provider": msg.provider,
            "provider_message_id": msg.provider_message_id,
            "channel": str(msg.channel),
            "sender": msg.sender,
            "recipient": msg.recipient,
            "text": msg.text,
            "raw": incoming.raw,
            "received_at": received_at,
            "rule": rule,
        },
    )
    if inbound_id is None:
        return Outcome(None, duplicate=True, provider=msg.provider, message_id=msg.provider_message_id)
    return _perform(session, gw, msg, inbound_id, actions, received_at)


def log_outcome(outcome: Outcome) -> None:
    """One log line per inbound message, written after its transaction committed."""
    if outcome.duplicate:
        log.info("duplicate %s message %s ignored", outcome.provider, outcome.message_id)
    elif outcome.inbound_id is not None:
        log.info(
            "inbound %s from %s: rule=%s changed=%s",
            outcome.provider,
            outcome.sender,
            outcome.rule,
            outcome.consent_changed,
        )


def _perform(
    session: Session, gw: Gateway, msg: InboundMessage, inbound_id: int, actions: list[A.Action], at: Any
) -> Outcome:
    scope = gw.settings.scope_for(msg.recipient)
    provider_handled = msg.provider_action in ("opt_out", "opt_in", "help")
    changed_by_rule: dict[str, bool] = {}
    consent_changed = False
    replies = 0

    def evidence(source: str, rule: str | None) -> Evidence:
        return Evidence(
            source=source,
            occurred_at=at,
            rule=rule,
            raw_text=msg.text,
            provider=msg.provider,
            provider_message_id=msg.provider_message_id,
            details=(
                {"provider_action": msg.provider_action, "provider_code": msg.provider_code}
                if msg.provider_action
                else None
            ),
        )

    # The provider already acted on a keyword (Twilio Advanced Opt-Out): its decision is recorded even
    # when our rules would not have matched, so both sides agree.
    consent_actions = [a for a in actions if isinstance(a, A.OptOut | A.OptIn)]
    if msg.provider_action in _PROVIDER_ACTIONS and not consent_actions:
        opted_out = _PROVIDER_ACTIONS[msg.provider_action]
        changes = apply_consent(
            session,
            channel=msg.channel,
            address=msg.sender,
            scope=scope,
            opted_out=opted_out,
            evidence=evidence("provider", None),
        )
        consent_changed = any(c.changed for c in changes)

    for index, action in enumerate(actions):
        if isinstance(action, A.OptOut | A.OptIn):
            source = "provider" if provider_handled else "sms_keyword"
            changes = apply_consent(
                session,
                channel=msg.channel,
                address=msg.sender,
                scope=scope,
                opted_out=isinstance(action, A.OptOut),
                evidence=evidence(source, action.rule),
                all_scopes=action.all_scopes,
                known_scopes=gw.settings.all_scopes(),
            )
            changed = any(c.changed for c in changes)
            changed_by_rule[action.rule] = changed_by_rule.get(action.rule, False) or changed
            consent_changed = consent_changed or changed
        elif isinstance(action, A.Reply):
            is_confirmation = action.rule in changed_by_rule
            # Exactly one confirmation per transition: a repeated STOP is ledgered but not answered.
            if is_confirmation and not changed_by_rule[action.rule]:
                continue
            if provider_handled and gw.settings.skip_reply_when_provider_handled:
                continue
            text = _render(gw, action)
            if is_confirmation or action.template in COMPLIANCE_TEMPLATES:
                # Compliance replies go from the number that was texted, through the provider it came in on.
                submit(
                    session,
                    gw,
                    channel=msg.channel,
                    to=msg.sender,
                    body=text,
                    sender=msg.recipient,
                    category=Category.COMPLIANCE,
                    idempotency_key=f"reply:{inbound_id}:{index}",
                    inbound_id=inbound_id,
                    normalized=True,
                    provider=msg.provider if msg.provider in gw.adapters else None,
                )
            else:
                _guarded_reply(session, gw, msg, text, inbound_id, index)
            replies += 1
        elif isinstance(action, A.Forward):
            enqueue(
                session,
                {
                    "kind": "forward",
                    "channel": str(msg.channel),
                    "provider": "forward",
                    "recipient": action.url,
                    "scope": scope,
                    "category": Category.INFORMATIONAL.value,
                    "body": json.dumps(_as_json(msg)),
                    "idempotency_key": f"fwd:{inbound_id}:{index}",
                    "inbound_id": inbound_id,
                    "max_attempts": gw.settings.outbox.max_attempts,
                },
            )
        elif isinstance(action, A.MoveContact | A.AddToList | A.RemoveFromList):
            lists.apply_list_action(session, gw, msg, action, inbound_id)
    return Outcome(
        inbound_id,
        rule=actions[0].rule if actions else None,
        consent_changed=consent_changed,
        replies=replies,
        provider=msg.provider,
        message_id=msg.provider_message_id,
        sender=mask(msg.sender),
    )


def _guarded_reply(
    session: Session, gw: Gateway, msg: InboundMessage, text: str, inbound_id: int, index: int
) -> None:
    # A non-compliance auto-reply to an opted-out person is simply not sent (and not an error).
    from gateway.errors import OptedOutError

    try:
        submit(
            session,
            gw,
            channel=msg.channel,
            to=msg.sender,
            body=text,
            sender=msg.recipient,
            category=Category.INFORMATIONAL,
            idempotency_key=f"reply:{inbound_id}:{index}",
            inbound_id=inbound_id,
            normalized=True,
        )
    except OptedOutError:
        log.info("auto-reply to opted-out %s suppressed", mask(msg.sender))


def _render(gw: Gateway, action: A.Reply) -> str:
    template = (
        action.text if action.text is not None else gw.settings.templates.get(action.template or "", "")
    )
    values = {"brand": gw.settings.brand, "support": gw.settings.support}
    try:
        return template.format_map(values)
    except (KeyError, ValueError, IndexError):
        return template


def _reassemble(session: Session, msg: InboundMessage) -> InboundMessage | None:
    """Buffer one part of a concatenated SMS; the whole message once every part is in, else None."""
    assert msg.concat_ref is not None and msg.concat_part is not None and msg.concat_total is not None
    at = msg.received_at or utcnow()
    where = (
        col(InboundPart.provider) == msg.provider,
        col(InboundPart.sender) == msg.sender,
        col(InboundPart.concat_ref) == msg.concat_ref,
    )
    # A part redelivered after its message was assembled stays buffered. Phones reuse concat refs (often
    # only 256 of them), so without this a later message with the same ref would be assembled from that
    # leftover, or dropped as a duplicate of the earlier one.
    received = col(InboundPart.received_at)
    stale = or_(received < at - _STALE_PART, received > at + _STALE_PART)
    session.execute(delete(InboundPart).where(*where, stale))
    insert_ignore(
        session,
        table(InboundPart),
        {
            "provider": msg.provider,
            "sender": msg.sender,
            "concat_ref": msg.concat_ref,
            "part": msg.concat_part,
            "total": msg.concat_total,
            "provider_message_id": msg.provider_message_id,
            "text": msg.text,
            "received_at": at,
        },
        ("provider", "sender", "concat_ref", "part"),
    )
    stmt = select(InboundPart).where(*where).order_by(col(InboundPart.part))
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update()  # two last parts arriving together: one assembles, one waits
    parts = list(session.execute(stmt).scalars())
    if len({p.part for p in parts}) < msg.concat_total:
        return None
    session.execute(delete(InboundPart).where(*where))
    text = "".join(p.text for p in parts)
    return replace(
        msg,
        text=text,
        provider_message_id=f"concat:{msg.concat_ref}:{parts[0].provider_message_id}",
        concat_ref=None,
        concat_part=None,
        concat_total=None,
    )


def _as_json(msg: InboundMessage) -> dict[str, Any]:
    return {
        "provider": msg.provider,
        "id": msg.provider_message_id,
        "channel": str(msg.channel),
        "from": msg.sender,
        "to": msg.recipient,
        "text": msg.text,
        "received_at": (msg.received_at or utcnow()).isoformat(),
    }


def _jsonable(raw: Any) -> dict[str, Any]:
    if type(raw) is dict and all(type(k) is str and type(v) is str for k, v in raw.items()):
        return dict(raw)  # a form's fields: JSON already (the round trip below costs more than the insert)
    try:
        return json.loads(json.dumps(dict(raw), default=str))
    except (TypeError, ValueError):
        return {"unserialisable": True}
