"""Contacts and lists: create/read/update/delete, membership moves, list hygiene, the Opt-Out List view.

Every function runs inside the caller's transaction (a `Session`). Operations over many members (copy,
move, remove duplicates, remove opted-out) are single set-based statements, never a Python loop over rows.

Opt-out scope of a list: ``contact_lists.scope`` says which opt-outs clean it. ``*`` (the default for lists
made here) means "opted out in any scope", the safe choice when one list feeds several senders; a named
scope removes only people opted out in that scope or in every scope.

The system list "Opt-Out List" has no member rows: it presents the active rows of ``opt_outs`` (with the
matching contact when there is one), so it can never disagree with what the guard enforces. It cannot be
renamed, deleted, or have members added or removed directly.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    JSON,
    ColumnElement,
    and_,
    cast,
    delete,
    exists,
    func,
    literal,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlmodel import col

from gateway.addresses import normalize_email, normalize_phone
from gateway.errors import GatewayError, InvalidAddressError, NotFoundError, PayloadError, PolicyError
from gateway.lists import insert_many_ignore, insert_select_ignore
from gateway.models import (
    ALL_SCOPES,
    OPT_OUT_LIST,
    BigId,
    Campaign,
    Contact,
    ContactList,
    ListMember,
    OptOut,
    UTCDateTime,
    table,
    utcnow,
)
from gateway.storage import covering_scopes

CONTACTS = table(Contact)
MEMBERS = table(ListMember)
LISTS = table(ContactList)
OPT_OUTS = table(OptOut)

#: Contact columns that `remove_duplicates` can compare (``fields.NAME`` compares a custom field).
DUPLICATE_FIELDS = ("phone", "email", "first_name", "last_name")
CHANNELS = ("sms", "email")


class ConflictError(GatewayError):
    """The change conflicts with existing data (a phone or email already taken, a list in use): HTTP 409."""

    code = "conflict"
    http_status = 409


class SystemListError(PolicyError):
    """The Opt-Out List is maintained by the gateway and cannot be changed directly."""

    code = "system_list"


# ---- addresses and the opt-out predicate ------------------------------------------------------------


def normalized_addresses(phone: str | None, email: str | None, region: str) -> tuple[str | None, str | None]:
    """E.164 phone and lower-cased email (None stays None); errors name the ``phone``/``email`` field."""
    try:
        norm_phone = normalize_phone(phone, region) if phone else None
    except InvalidAddressError as exc:
        raise InvalidAddressError(str(exc), field="phone") from None
    try:
        norm_email = normalize_email(email) if email else None
    except InvalidAddressError as exc:
        raise InvalidAddressError(str(exc), field="email") from None
    return norm_phone, norm_email


def address_column(channel: str) -> Any:
    """The contacts column holding a channel's address."""
    return CONTACTS.c.phone if channel == "sms" else CONTACTS.c.email


def opted_out(channel: str, address: ColumnElement[Any], scope: str) -> ColumnElement[bool]:
    """SQL: ``address`` has an active opt-out on ``channel`` that covers ``scope`` (itself, ``*``, and for a
    topic scope its parent: `gateway.storage.covering_scopes`).

    ``scope`` ``*`` matches an opt-out in any scope. The same predicate as the send guard's `check`, written
    as a correlated EXISTS so that callers can use it as an anti-join over a whole list.
    """
    oo = OPT_OUTS.alias("oo")
    conditions = [oo.c.channel == channel, oo.c.address == address, oo.c.opted_out == true()]
    if scope != ALL_SCOPES:
        conditions.append(oo.c.scope.in_(covering_scopes(scope)))
    return exists().where(*conditions)


def blocked(channel: str, scope: str, cross_channel: bool, contacts: Any = CONTACTS) -> ColumnElement[bool]:
    """SQL: the contact row may not receive consent-requiring messages on ``channel`` in ``scope``.

    With ``cross_channel`` an opt-out of the contact's other address blocks this channel too (the guard's
    rule at dispatch, applied here in bulk).
    """
    own = contacts.c.phone if channel == "sms" else contacts.c.email
    clause = opted_out(channel, own, scope)
    if cross_channel:
        other_channel = "email" if channel == "sms" else "sms"
        other = contacts.c.email if channel == "sms" else contacts.c.phone
        clause = or_(clause, and_(other.is_not(None), opted_out(other_channel, other, scope)))
    return clause


def in_values(session: Session, column: Any, values: Sequence[str]) -> ColumnElement[bool]:
    """``column IN (values)`` with a single bound parameter however many values there are: a JSON array
    the database unpacks itself (``json_array_elements_text``, SQLite's ``json_each``). An IN list of
    thousands of separate parameters costs more to build, send and parse than the indexed lookup."""
    array = json.dumps(list(values))
    if session.get_bind().dialect.name == "postgresql":
        each = func.json_array_elements_text(cast(literal(array), JSON)).table_valued("value")
    else:
        each = func.json_each(literal(array)).table_valued("value")
    return column.in_(select(each.c.value))


# ---- contacts ---------------------------------------------------------------------------------------


def get_contact(session: Session, contact_id: int) -> Contact:
    """The contact, or `NotFoundError`."""
    contact = session.get(Contact, contact_id)
    if contact is None:
        raise NotFoundError(f"contact {contact_id} does not exist")
    return contact


def _check_unique(session: Session, contact: Contact) -> None:
    for name in ("phone", "email"):
        value = getattr(contact, name)
        if value is None:
            continue
        other = session.execute(
            select(CONTACTS.c.id).where(CONTACTS.c[name] == value, CONTACTS.c.id != (contact.id or 0))
        ).scalar()
        if other is not None:
            raise ConflictError(f"{name} already belongs to contact {other}")


def create_contact(
    session: Session,
    region: str,
    *,
    phone: str | None = None,
    email: str | None = None,
    first_name: str | None = None,
    last_name: str | None = None,
    fields: Mapping[str, Any] | None = None,
    list_ids: Iterable[int] = (),
) -> Contact:
    """Create a contact (phone or email required, both normalised) and add it to ``list_ids``."""
    phone, email = normalized_addresses(phone, email, region)
    if phone is None and email is None:
        raise PayloadError("a contact needs a phone or an email", field="phone")
    now = utcnow()
    contact = Contact(
        phone=phone,
        email=email,
        first_name=first_name,
        last_name=last_name,
        fields=dict(fields or {}),
        created_at=now,
        updated_at=now,
    )
    _check_unique(session, contact)
    session.add(contact)
    try:
        session.flush()
    except IntegrityError:  # a concurrent insert of the same address won the race
        raise ConflictError("phone or email already belongs to another contact") from None
    assert contact.id is not None
    for list_pk in list_ids:
        add_members(session, list_pk, [contact.id])
    return contact


def update_contact(session: Session, region: str, contact_id: int, changes: Mapping[str, Any]) -> Contact:
    """Apply a partial update. ``fields`` is merged key by key; a key set to None is removed."""
    contact = get_contact(session, contact_id)
    if "phone" in changes or "email" in changes:
        phone, email = normalized_addresses(
            changes.get("phone", contact.phone), changes.get("email", contact.email), region
        )
        if phone is None and email is None:
            raise PayloadError("a contact needs a phone or an email", field="phone")
        contact.phone, contact.email = phone, email
    for name in ("first_name", "last_name"):
        if name in changes:
            setattr(contact, name, changes[name])
    if changes.get("fields") is not None:
        merged = dict(contact.fields or {})
        for key, value in changes["fields"].items():
            if value is None:
                merged.pop(key, None)
            else:
                merged[key] = value
        contact.fields = merged
    contact.updated_at = utcnow()
    _check_unique(session, contact)
    try:
        session.flush()
    except IntegrityError:
        raise ConflictError("phone or email already belongs to another contact") from None
    return contact


def delete_contact(session: Session, contact_id: int) -> None:
    """Delete a contact and its memberships. Its opt-outs stay: they belong to the address, not the row,
    so deleting and re-importing someone can never make them reachable again."""
    get_contact(session, contact_id)
    session.execute(delete(MEMBERS).where(MEMBERS.c.contact_id == contact_id))
    session.execute(delete(CONTACTS).where(CONTACTS.c.id == contact_id))


def find_contacts(
    session: Session,
    *,
    list_id: int | None = None,
    search: str | None = None,
    after: int | None = None,
    limit: int = 100,
) -> list[Contact]:
    """A page of contacts in id order: optionally members of ``list_id``, or matching ``search``."""
    stmt = select(Contact).order_by(col(Contact.id)).limit(limit)
    if list_id is not None:
        stmt = stmt.join(ListMember, col(ListMember.contact_id) == col(Contact.id)).where(
            col(ListMember.list_id) == list_id
        )
    if after is not None:
        stmt = stmt.where(col(Contact.id) > after)
    if search:
        like = f"%{search.lower()}%"
        stmt = stmt.where(
            or_(
                func.lower(col(Contact.first_name)).like(like),
                func.lower(col(Contact.last_name)).like(like),
                col(Contact.phone).like(like),
                col(Contact.email).like(like),
            )
        )
    return list(session.execute(stmt).scalars())


def lists_of(session: Session, contact_id: int) -> list[int]:
    """Ids of the lists a contact belongs to."""
    stmt = select(MEMBERS.c.list_id).where(MEMBERS.c.contact_id == contact_id).order_by(MEMBERS.c.list_id)
    return list(session.execute(stmt).scalars())


# ---- lists --------------------------------------------------------------------------------------------


def get_list(session: Session, list_ref: int | str) -> ContactList:
    """A list by id, or by name when ``list_ref`` is not a number; `NotFoundError` otherwise."""
    if isinstance(list_ref, int) or (isinstance(list_ref, str) and list_ref.isdigit()):
        found = session.get(ContactList, int(list_ref))
    else:
        found = session.execute(select(ContactList).where(col(ContactList.name) == list_ref)).scalar()
    if found is None:
        raise NotFoundError(f"list {list_ref!r} does not exist")
    return found


def editable_list(session: Session, list_ref: int | str) -> ContactList:
    """A list that may be changed directly: not the system Opt-Out List."""
    found = get_list(session, list_ref)
    if found.system:
        raise SystemListError(
            f"{found.name!r} is maintained by the gateway: add opt-outs with POST /api/v1/opt-outs"
        )
    return found


def create_list(session: Session, name: str, channel: str = "sms", scope: str = ALL_SCOPES) -> ContactList:
    """Create a list; `ConflictError` when the name is taken."""
    if channel not in CHANNELS:
        raise PayloadError("channel must be sms or email", field="channel")
    if session.execute(select(col(ContactList.id)).where(col(ContactList.name) == name)).scalar() is not None:
        raise ConflictError(f"a list named {name!r} already exists")
    created = ContactList(name=name, channel=channel, scope=scope, system=False, created_at=utcnow())
    session.add(created)
    session.flush()
    return created


def update_list(session: Session, list_ref: int | str, changes: Mapping[str, Any]) -> ContactList:
    """Rename a list or change its channel/scope."""
    found = editable_list(session, list_ref)
    name = changes.get("name")
    if name and name != found.name:
        taken = session.execute(select(col(ContactList.id)).where(col(ContactList.name) == name)).scalar()
        if taken is not None:
            raise ConflictError(f"a list named {name!r} already exists")
        found.name = name
    if changes.get("channel"):
        if changes["channel"] not in CHANNELS:
            raise PayloadError("channel must be sms or email", field="channel")
        found.channel = changes["channel"]
    if changes.get("scope"):
        found.scope = changes["scope"]
    session.flush()
    return found


def delete_list(session: Session, list_ref: int | str) -> None:
    """Delete a list (its contacts stay); refused while a campaign to it is scheduled or sending."""
    found = editable_list(session, list_ref)
    busy = session.execute(
        select(col(Campaign.id)).where(
            col(Campaign.list_id) == found.id, col(Campaign.status).in_(("scheduled", "sending"))
        )
    ).scalar()
    if busy is not None:
        raise ConflictError(f"campaign {busy} is scheduled or sending to this list; cancel it first")
    session.execute(delete(MEMBERS).where(MEMBERS.c.list_id == found.id))
    session.execute(delete(LISTS).where(LISTS.c.id == found.id))


def active_opt_out_count(session: Session) -> int:
    """Active opt-out entries (each channel/address/scope once): the size of the Opt-Out List."""
    stmt = select(func.count()).select_from(OPT_OUTS).where(OPT_OUTS.c.opted_out == true())
    return int(session.execute(stmt).scalar_one())


def member_counts(session: Session) -> dict[int, int]:
    """Members per list id, in one grouped query."""
    stmt = select(MEMBERS.c.list_id, func.count()).group_by(MEMBERS.c.list_id)
    return {int(list_pk): int(n) for list_pk, n in session.execute(stmt)}


def all_lists(session: Session) -> list[tuple[ContactList, int]]:
    """Every list with its member count (the Opt-Out List counts active opt-outs)."""
    counts = member_counts(session)
    rows = list(session.execute(select(ContactList).order_by(col(ContactList.id))).scalars())
    out = []
    for found in rows:
        assert found.id is not None
        out.append((found, active_opt_out_count(session) if found.system else counts.get(found.id, 0)))
    return out


def list_size(session: Session, found: ContactList) -> int:
    """Members of one list (active opt-outs for the Opt-Out List)."""
    if found.system:
        return active_opt_out_count(session)
    stmt = select(func.count()).select_from(MEMBERS).where(MEMBERS.c.list_id == found.id)
    return int(session.execute(stmt).scalar_one())


@dataclass(frozen=True, slots=True)
class OptOutEntry:
    """One row of the Opt-Out List: the opt-out and, when one exists, the contact with that address."""

    id: int
    channel: str
    address: str
    scope: str
    source: str
    since: Any
    contact_id: int | None
    first_name: str | None
    last_name: str | None


def opt_out_list_entries(session: Session, after: int | None = None, limit: int = 100) -> list[OptOutEntry]:
    """A page of the Opt-Out List in opt-out id order (the active ``opt_outs`` joined to contacts)."""
    by_phone = CONTACTS.alias("cp")
    by_email = CONTACTS.alias("ce")
    stmt = (
        select(
            OPT_OUTS.c.id,
            OPT_OUTS.c.channel,
            OPT_OUTS.c.address,
            OPT_OUTS.c.scope,
            OPT_OUTS.c.source,
            OPT_OUTS.c.since,
            func.coalesce(by_phone.c.id, by_email.c.id),
            func.coalesce(by_phone.c.first_name, by_email.c.first_name),
            func.coalesce(by_phone.c.last_name, by_email.c.last_name),
        )
        .select_from(
            OPT_OUTS.outerjoin(
                by_phone, and_(OPT_OUTS.c.channel == "sms", by_phone.c.phone == OPT_OUTS.c.address)
            ).outerjoin(by_email, and_(OPT_OUTS.c.channel == "email", by_email.c.email == OPT_OUTS.c.address))
        )
        .where(OPT_OUTS.c.opted_out == true())
        .order_by(OPT_OUTS.c.id)
        .limit(limit)
    )
    if after is not None:
        stmt = stmt.where(OPT_OUTS.c.id > after)
    return [OptOutEntry(*row) for row in session.execute(stmt)]


# ---- membership ---------------------------------------------------------------------------------------


def _existing_contacts(session: Session, contact_ids: Sequence[int]) -> list[int]:
    wanted = sorted(set(contact_ids))
    found = set(session.execute(select(CONTACTS.c.id).where(CONTACTS.c.id.in_(wanted))).scalars())
    missing = [c for c in wanted if c not in found]
    if missing:
        raise NotFoundError(f"contacts do not exist: {', '.join(map(str, missing[:20]))}")
    return wanted


def add_members(session: Session, list_pk: int, contact_ids: Sequence[int]) -> int:
    """Add contacts to a list; how many were not members yet."""
    ids = _existing_contacts(session, contact_ids)
    now = utcnow()
    rows = [{"list_id": list_pk, "contact_id": c, "added_at": now} for c in ids]
    return insert_many_ignore(session, MEMBERS, rows, ("list_id", "contact_id"))


def remove_members(session: Session, list_pk: int, contact_ids: Sequence[int]) -> int:
    """Remove contacts from a list; how many were members."""
    result = session.execute(
        delete(MEMBERS).where(
            MEMBERS.c.list_id == list_pk, MEMBERS.c.contact_id.in_(sorted(set(contact_ids)))
        )
    )
    return int(getattr(result, "rowcount", 0))


def copy_members(session: Session, source: int, target: int, contact_ids: Sequence[int] | None = None) -> int:
    """Copy members of ``source`` (all, or only ``contact_ids``) into ``target``; how many were new there.

    One ``INSERT ... SELECT ... ON CONFLICT DO NOTHING``, whatever the list's size.
    """
    chosen = select(literal(target, BigId), MEMBERS.c.contact_id, literal(utcnow(), UTCDateTime())).where(
        MEMBERS.c.list_id == source
    )
    if contact_ids is not None:
        chosen = chosen.where(MEMBERS.c.contact_id.in_(sorted(set(contact_ids))))
    return insert_select_ignore(
        session, MEMBERS, ["list_id", "contact_id", "added_at"], chosen, ("list_id", "contact_id")
    )


def move_members(session: Session, source: int, target: int, contact_ids: Sequence[int] | None = None) -> int:
    """Move members of ``source`` (all, or only ``contact_ids``) to ``target``; how many left ``source``."""
    copy_members(session, source, target, contact_ids)
    stmt = delete(MEMBERS).where(MEMBERS.c.list_id == source)
    if contact_ids is not None:
        stmt = stmt.where(MEMBERS.c.contact_id.in_(sorted(set(contact_ids))))
    return int(getattr(session.execute(stmt), "rowcount", 0))


def _duplicate_key(name: str) -> ColumnElement[Any]:
    if name.startswith("fields."):
        key = name.removeprefix("fields.")
        if not key:
            raise PayloadError("fields.NAME needs a custom field name", field="fields")
        return func.lower(CONTACTS.c.fields[key].as_string())
    if name not in DUPLICATE_FIELDS:
        allowed = ", ".join([*DUPLICATE_FIELDS, "fields.NAME"])
        raise PayloadError(f"cannot compare {name!r}; use {allowed}", field="fields")
    return func.lower(CONTACTS.c[name])


def remove_duplicates(session: Session, list_pk: int, fields: Sequence[str]) -> int:
    """Remove members that repeat an earlier member's ``fields`` (case-insensitive); the oldest contact
    (lowest id) of each group stays. Members with any of the fields empty are never duplicates.

    Addresses are unique per contact, so duplicates are people entered twice under different addresses:
    compare names or a custom field (``fields.customer_id``).
    """
    if not fields:
        raise PayloadError("name at least one field to compare", field="fields")
    keys = [_duplicate_key(name) for name in dict.fromkeys(fields)]
    ranked = (
        select(
            CONTACTS.c.id.label("contact_id"),
            func.row_number().over(partition_by=keys, order_by=CONTACTS.c.id).label("rank"),
        )
        .select_from(MEMBERS.join(CONTACTS, CONTACTS.c.id == MEMBERS.c.contact_id))
        .where(
            MEMBERS.c.list_id == list_pk, *[key.is_not(None) for key in keys], *[key != "" for key in keys]
        )
        .subquery()
    )
    extra = select(ranked.c.contact_id).where(ranked.c.rank > 1)
    result = session.execute(
        delete(MEMBERS).where(MEMBERS.c.list_id == list_pk, MEMBERS.c.contact_id.in_(extra))
    )
    return int(getattr(result, "rowcount", 0))


def remove_opted_out(session: Session, found: ContactList, cross_channel: bool = False) -> int:
    """Remove every member opted out on the list's channel in the list's scope; how many were removed.

    One ``DELETE ... WHERE EXISTS`` (ClickSend's "Remove opted-out contacts", done by the database).
    """
    member_contact = CONTACTS.alias("mc")
    condition = (
        select(member_contact.c.id)
        .where(
            member_contact.c.id == MEMBERS.c.contact_id,
            blocked(found.channel, found.scope, cross_channel, member_contact),
        )
        .exists()
    )
    result = session.execute(delete(MEMBERS).where(MEMBERS.c.list_id == found.id, condition))
    return int(getattr(result, "rowcount", 0))


def system_list_id(session: Session) -> int | None:
    """Id of the Opt-Out List row."""
    return session.execute(select(col(ContactList.id)).where(col(ContactList.name) == OPT_OUT_LIST)).scalar()


def touch_contacts(session: Session, contact_ids: Sequence[int]) -> None:
    """Bump ``updated_at`` of some contacts (after a bulk change to them)."""
    session.execute(update(CONTACTS).where(CONTACTS.c.id.in_(contact_ids)).values(updated_at=utcnow()))
