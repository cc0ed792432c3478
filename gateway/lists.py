"""Contacts and lists as the rule engine's list actions need them, and reply-to-campaign linking.

The REST API and CLI for contacts and lists build on these helpers.
"""

from __future__ import annotations

from sqlalchemy import delete
from sqlalchemy.orm import Session
from sqlmodel import SQLModel, col, select

from gateway.messages import InboundMessage
from gateway.models import Contact, ContactList, InboundRecord, ListMember, OutboxMessage, table, utcnow
from gateway.runtime import Gateway
from gateway.storage import insert_ignore
from rules import actions as A


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
        {"name": name, "channel": channel, "scope": "default", "system": False, "created_at": utcnow()},
        ("name",),
    )
    return session.execute(select(ContactList.id).where(col(ContactList.name) == name)).scalar()


def add_member(session: Session, list_pk: int, contact_pk: int) -> bool:
    """Add a contact to a list; False when it was already a member."""
    dialect = session.get_bind().dialect.name
    from sqlalchemy.dialects import postgresql, sqlite

    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(table(ListMember)).values(list_id=list_pk, contact_id=contact_pk, added_at=utcnow())
    result = session.execute(stmt.on_conflict_do_nothing(index_elements=["list_id", "contact_id"]))
    return bool(getattr(result, "rowcount", 0))


def remove_member(session: Session, list_pk: int, contact_pk: int) -> bool:
    """Remove a contact from a list; False when it was not a member."""
    result = session.execute(
        delete(ListMember).where(col(ListMember.list_id) == list_pk, col(ListMember.contact_id) == contact_pk)
    )
    return bool(getattr(result, "rowcount", 0))


def campaign_for_reply(session: Session, msg: InboundMessage) -> int | None:
    """The campaign an inbound message answers: by the provider's reply link, else the last message sent
    to that number from the number it texted."""
    stmt = select(OutboxMessage.campaign_id).where(col(OutboxMessage.campaign_id).is_not(None))
    if msg.in_reply_to:
        found = session.execute(
            stmt.where(col(OutboxMessage.provider_message_id) == msg.in_reply_to).limit(1)
        ).scalar()
        if found is not None:
            return found
    last = session.execute(
        select(OutboxMessage.campaign_id)
        .where(
            col(OutboxMessage.recipient) == msg.sender,
            col(OutboxMessage.sender) == msg.recipient,
            col(OutboxMessage.kind) == "message",
            col(OutboxMessage.inbound_id).is_(None),
        )
        .order_by(col(OutboxMessage.id).desc())
        .limit(1)
    ).scalar()
    return last


def campaign_list_id(session: Session, campaign_id: int | None) -> int | None:
    """The list a campaign was sent to (None when campaigns are unknown or the id is None)."""
    if campaign_id is None:
        return None
    campaigns = SQLModel.metadata.tables.get("campaigns")
    if campaigns is None:  # campaigns are not part of this schema
        return None
    row = session.execute(select(campaigns.c.list_id).where(campaigns.c.id == campaign_id)).first()
    return int(row[0]) if row else None


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
