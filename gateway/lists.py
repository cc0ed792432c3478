"""Contacts and lists as the rule engine's list actions need them, reply-to-campaign linking, and the
idempotent bulk-insert helpers the contact, import and campaign modules share.

The REST API and CLI for contacts and lists (`gateway.contacts`) build on these helpers.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Select, Table, bindparam, delete, func
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from sqlmodel import col, select

from gateway.fastpath import Prepared, with_defaults
from gateway.messages import InboundMessage
from gateway.models import (
    ALL_SCOPES,
    Campaign,
    Contact,
    ContactList,
    InboundRecord,
    ListMember,
    OutboxMessage,
    table,
    utcnow,
)
from gateway.runtime import Gateway
from gateway.storage import insert_ignore
from rules import actions as A

# A campaign message's outbox key (``campaign:{id}:{contact}``), as ClickSend echoes it back in a reply's
# custom_string when the message was sent with it.
_CAMPAIGN_TAG = re.compile(r"^campaign:(\d+)(?::|$)")


def dialect_insert(session: Session) -> Any:
    """The ``insert`` construct with ON CONFLICT support for the session's database."""
    return postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert


def insert_many_ignore(
    session: Session, target: Table, rows: Sequence[Mapping[str, Any]], conflict: Sequence[str]
) -> int:
    """Insert many rows, skipping those whose ``conflict`` columns exist already; how many were new.

    One multi-row ``INSERT ... ON CONFLICT DO NOTHING RETURNING`` per page of rows (SQLAlchemy batches).
    """
    if not rows:
        return 0
    stmt = dialect_insert(session)(target).on_conflict_do_nothing(index_elements=list(conflict))
    return len(session.execute(stmt.returning(target.c[conflict[0]]), list(rows)).all())


def insert_select_ignore(
    session: Session, target: Table, columns: Sequence[str], source: Select[Any], conflict: Sequence[str]
) -> int:
    """``INSERT INTO target (columns) SELECT ... ON CONFLICT DO NOTHING``; how many rows were new.

    ``source`` must have a WHERE clause (SQLite needs one to parse ON CONFLICT after a SELECT).
    """
    stmt = dialect_insert(session)(target).from_select(list(columns), source)
    stmt = stmt.on_conflict_do_nothing(index_elements=list(conflict))
    # INSERT row counts are only kept on request (SQLAlchemy guarantees them for UPDATE and DELETE).
    result = session.execute(stmt.execution_options(preserve_rowcount=True))
    return int(getattr(result, "rowcount", 0))


def contact_for(session: Session, channel: str, address: str, create: bool = True) -> int | None:
    """The id of the contact with this phone/email, created when missing and ``create`` is set."""
    column = "phone" if channel == "sms" else "email"
    found = session.execute(select(Contact.id).where(col(getattr(Contact, column)) == address)).scalar()
    if found is not None or not create:
        return found
    now = utcnow()
    insert_ignore(
        session,
        table(Contact),
        {column: address, "fields": {}, "created_at": now, "updated_at": now},
        (column,),
    )
    return session.execute(select(Contact.id).where(col(getattr(Contact, column)) == address)).scalar()


def list_id(session: Session, name: str, channel: str = "sms", create: bool = True) -> int | None:
    """The id of the list called ``name``, created (for ``channel``) when missing and ``create`` is set."""
    found = session.execute(select(ContactList.id).where(col(ContactList.name) == name)).scalar()
    if found is not None or not create:
        return found
    insert_ignore(
        session,
        table(ContactList),
        # Scope * cleans the list of opt-outs in any scope: the safe default for a list any sender may use.
        {"name": name, "channel": channel, "scope": ALL_SCOPES, "system": False, "created_at": utcnow()},
        ("name",),
    )
    return session.execute(select(ContactList.id).where(col(ContactList.name) == name)).scalar()


def add_member(session: Session, list_pk: int, contact_pk: int) -> bool:
    """Add a contact to a list; False when it was already a member."""
    row = {"list_id": list_pk, "contact_id": contact_pk, "added_at": utcnow()}
    return insert_many_ignore(session, table(ListMember), [row], ("list_id", "contact_id")) == 1


def remove_member(session: Session, list_pk: int, contact_pk: int) -> bool:
    """Remove a contact from a list; False when it was not a member."""
    result = session.execute(
        delete(ListMember).where(col(ListMember.list_id) == list_pk, col(ListMember.contact_id) == contact_pk)
    )
    return bool(getattr(result, "rowcount", 0))


# Built once and executed on the driver (`gateway.fastpath`): every inbound message runs these lookups,
# and SQLAlchemy's per-execution work costs more than the indexed query itself.
_OUTBOX = table(OutboxMessage).c
_BY_REPLY_LINK = Prepared(
    select(_OUTBOX.campaign_id)
    .where(_OUTBOX.campaign_id.is_not(None), _OUTBOX.provider_message_id == bindparam("ref"))
    .limit(1)
)
_LAST_SENT = (
    select(_OUTBOX.campaign_id)
    .where(
        _OUTBOX.recipient == bindparam("person"),
        _OUTBOX.sender == bindparam("ours"),
        _OUTBOX.kind == "message",
        _OUTBOX.inbound_id.is_(None),
    )
    .order_by(_OUTBOX.id.desc())
    .limit(1)
)
_INBOUND = table(InboundRecord)
_INBOUND_COLUMNS = (
    "provider",
    "provider_message_id",
    "channel",
    "sender",
    "recipient",
    "text",
    "raw",
    "received_at",
    "recorded_at",
    "rule",
)


@functools.lru_cache(maxsize=4)
def _insert_reply(dialect: str) -> Prepared:
    # One statement stores the message and finds the campaign it answers (the last campaign message sent
    # to the sender from the number it texted) unless a provider reference already named it: the lookup
    # as a subquery of the insert instead of a statement of its own, one round trip less per message.
    values: dict[str, Any] = {name: bindparam(name, type_=_INBOUND.c[name].type) for name in _INBOUND_COLUMNS}
    values["campaign_id"] = func.coalesce(
        bindparam("campaign_id", type_=_INBOUND.c.campaign_id.type), _LAST_SENT.scalar_subquery()
    )
    insert_for = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = (
        insert_for(_INBOUND)
        .values(values)
        .on_conflict_do_nothing(index_elements=["provider", "provider_message_id"])
    )
    return Prepared(stmt.returning(_INBOUND.c.id))


def record_reply(session: Session, msg: InboundMessage, values: Mapping[str, Any]) -> int | None:
    """Store an inbound message linked to the campaign it answers; its id, or None for a duplicate.

    The campaign is found by the provider's reply link (ClickSend ``original_message_id``, then the
    ``custom_string`` our campaign message carried), else it is that of the last message sent to the sender
    from the number it texted. Deduplicated on (provider, provider_message_id), atomically.
    """
    now = utcnow()
    row = with_defaults(_INBOUND, {"recorded_at": now, "received_at": now, "raw": {}, "rule": None, **values})
    row["campaign_id"] = _campaign_by_reference(session, msg)
    row["person"], row["ours"] = msg.sender, msg.recipient
    found: int | None = _insert_reply(session.get_bind().dialect.name).scalar(session, row)
    return found


def _campaign_by_reference(session: Session, msg: InboundMessage) -> int | None:
    if msg.in_reply_to:
        found = _BY_REPLY_LINK.scalar(session, {"ref": msg.in_reply_to})
        if found is not None:
            return found
    tagged = _CAMPAIGN_TAG.match(msg.custom_string or "")
    if tagged:
        campaign = session.get(Campaign, int(tagged.group(1)))
        if campaign is not None:
            return campaign.id
    return None


def campaign_list_id(session: Session, campaign_id: int | None) -> int | None:
    """The list a campaign was sent to (None when the id is None or the list was deleted since)."""
    if campaign_id is None:
        return None
    return session.execute(select(Campaign.list_id).where(col(Campaign.id) == campaign_id)).scalar()


def apply_list_action(
    session: Session, gw: Gateway, msg: InboundMessage, action: A.Action, inbound_id: int
) -> None:
    """Perform a rule's move/add/remove list action for the message's sender."""
    contact = contact_for(session, msg.channel, msg.sender)
    assert contact is not None
    if isinstance(action, A.AddToList):
        target = list_id(session, action.list, msg.channel)
        assert target is not None
        add_member(session, target, contact)
    elif isinstance(action, A.RemoveFromList):
        source = list_id(session, action.list, create=False)
        if source is not None:
            remove_member(session, source, contact)
    elif isinstance(action, A.MoveContact):
        if action.from_list:
            source = list_id(session, action.from_list, create=False)
        else:
            # No list named: the list of the campaign this message answers (ClickSend's MOVE_CONTACT).
            campaign = session.execute(
                select(InboundRecord.campaign_id).where(col(InboundRecord.id) == inbound_id)
            ).scalar()
            source = campaign_list_id(session, campaign)
        if source is not None:
            remove_member(session, source, contact)
        target = list_id(session, action.to_list, msg.channel)
        assert target is not None
        add_member(session, target, contact)
