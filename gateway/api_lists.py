"""REST API for contacts and lists under ``/api/v1`` (bearer token): CRUD, membership moves, list hygiene
and CSV import. Request and response bodies are pydantic models, registered in ``/openapi.json``.

Pages use a keyset cursor: pass the ``next_cursor`` of one page as ``?cursor=`` to get the next.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from flask import Blueprint, Response, jsonify, request
from pydantic import BaseModel, ConfigDict, Field

from gateway import contacts as svc
from gateway.errors import PayloadError
from gateway.http import gateway, require_token
from gateway.importer import ImportReport, Reject, import_csv, parse_mapping
from gateway.models import Contact, ContactList
from gateway.openapi import document, parse_body

bp = Blueprint("api_lists", __name__)
MAX_PAGE = 1000


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ---- schemas ---------------------------------------------------------------------------------------------


class ContactIn(_In):
    """A new contact: a phone (any format, normalised to E.164) or an email, or both."""

    phone: str | None = Field(default=None, max_length=64)
    email: str | None = Field(default=None, max_length=320)
    first_name: str | None = Field(default=None, max_length=200)
    last_name: str | None = Field(default=None, max_length=200)
    fields: dict[str, Any] = Field(default_factory=dict)
    lists: list[int] = Field(default_factory=list, max_length=100)


class ContactPatch(_In):
    """Fields to change; ``fields`` is merged key by key (a key set to null is removed)."""

    phone: str | None = Field(default=None, max_length=64)
    email: str | None = Field(default=None, max_length=320)
    first_name: str | None = Field(default=None, max_length=200)
    last_name: str | None = Field(default=None, max_length=200)
    fields: dict[str, Any] | None = None


class ContactOut(BaseModel):
    """A contact and the ids of the lists it belongs to."""

    id: int
    phone: str | None
    email: str | None
    first_name: str | None
    last_name: str | None
    fields: dict[str, Any]
    lists: list[int]
    created_at: datetime
    updated_at: datetime


class ContactPage(BaseModel):
    """A page of contacts."""

    items: list[ContactOut]
    next_cursor: str | None


class ListIn(_In):
    """A new list. ``scope`` says which opt-outs clean it: ``*`` (default) any scope, or one scope."""

    name: str = Field(min_length=1, max_length=200)
    channel: Literal["sms", "email"] = "sms"
    scope: str = Field(default="*", min_length=1, max_length=100)


class ListPatch(_In):
    """Changes to a list."""

    name: str | None = Field(default=None, min_length=1, max_length=200)
    channel: Literal["sms", "email"] | None = None
    scope: str | None = Field(default=None, min_length=1, max_length=100)


class ListOut(BaseModel):
    """A list and its size (for the system Opt-Out List: the number of active opt-outs)."""

    id: int
    name: str
    channel: str
    scope: str
    system: bool
    members: int
    created_at: datetime


class ListCollection(BaseModel):
    """Every list."""

    items: list[ListOut]


class OptOutEntryOut(BaseModel):
    """A row of the Opt-Out List: an active opt-out, with the matching contact when there is one."""

    opt_out_id: int
    channel: str
    address: str
    scope: str
    source: str
    since: datetime
    contact_id: int | None
    first_name: str | None
    last_name: str | None


class MemberPage(BaseModel):
    """A page of a list's members (contacts; for the Opt-Out List, opt-out entries)."""

    items: list[ContactOut] | list[OptOutEntryOut]
    next_cursor: str | None


class ContactIds(_In):
    """Contacts to add to or remove from a list."""

    contact_ids: list[int] = Field(min_length=1, max_length=10_000)


class Transfer(_In):
    """Copy or move members to another list (by id or name): all of them, or only ``contact_ids``."""

    to: int | str
    contact_ids: list[int] | None = Field(default=None, min_length=1, max_length=10_000)


class DuplicateFields(_In):
    """Fields compared to find duplicates: phone, email, first_name, last_name or fields.NAME."""

    fields: list[str] = Field(min_length=1, max_length=10)


class Count(BaseModel):
    """How many members an operation affected."""

    count: int


class RejectOut(BaseModel):
    """A CSV row that was not imported."""

    row: int
    column: str
    value: str
    reason: str


class ImportResult(BaseModel):
    """What an import did, with every rejected row."""

    list_id: int
    rows: int
    created: int
    updated: int
    duplicates_merged: int
    added_to_list: int
    already_in_list: int
    skipped_opted_out: int
    rejected: int
    rejects: list[RejectOut]


class CsvUpload(BaseModel):
    """A CSV file as the multipart field ``file`` (or send the CSV itself as ``text/csv``)."""

    file: bytes = Field(json_schema_extra={"format": "binary"})


# ---- helpers shared with the other list-related blueprints ------------------------------------------------


def limit_arg() -> int:
    """``?limit=`` (1..1000, default 100)."""
    raw = request.args.get("limit", "100")
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_PAGE:
        raise PayloadError(f"limit must be a whole number from 1 to {MAX_PAGE}", field="limit")
    return int(raw)


def cursor_arg() -> int | None:
    """``?cursor=`` from a previous page's ``next_cursor``."""
    raw = request.args.get("cursor")
    if raw is None or raw == "":
        return None
    if not raw.isdigit():
        raise PayloadError("cursor is not one this API issued", field="cursor")
    return int(raw)


def next_cursor(ids: list[int], limit: int) -> str | None:
    """The cursor of the page after one holding ``ids`` (None on the last page)."""
    return str(ids[-1]) if len(ids) == limit else None


def flag_arg(name: str) -> bool:
    """A boolean query parameter (``true``/``false``, ``1``/``0``)."""
    raw = (request.args.get(name) or request.form.get(name) or "false").lower()
    if raw not in ("true", "false", "1", "0", "yes", "no"):
        raise PayloadError(f"{name} must be true or false", field=name)
    return raw in ("true", "1", "yes")


def contact_out(contact: Contact, lists: list[int]) -> dict[str, Any]:
    """A contact as `ContactOut` JSON."""
    assert contact.id is not None
    return ContactOut(
        id=contact.id,
        phone=contact.phone,
        email=contact.email,
        first_name=contact.first_name,
        last_name=contact.last_name,
        fields=dict(contact.fields or {}),
        lists=lists,
        created_at=contact.created_at,
        updated_at=contact.updated_at,
    ).model_dump(mode="json")


def list_out(found: ContactList, members: int) -> dict[str, Any]:
    """A list as `ListOut` JSON."""
    assert found.id is not None
    return ListOut(
        id=found.id,
        name=found.name,
        channel=found.channel,
        scope=found.scope,
        system=found.system,
        members=members,
        created_at=found.created_at,
    ).model_dump(mode="json")


def csv_upload() -> tuple[Any, str | None]:
    """The uploaded CSV as a byte stream (multipart ``file`` or a ``text/csv`` body) and its file name.

    Import uploads may be far larger than other request bodies: the limit here is ``max_import_bytes``.
    """
    request.max_content_length = gateway().settings.max_import_bytes
    if request.mimetype == "multipart/form-data":
        upload = request.files.get("file")
        if upload is None:
            raise PayloadError("send the CSV as the multipart field 'file'", field="file")
        return upload.stream, upload.filename
    if request.mimetype in ("text/csv", "text/plain", "application/csv", "application/octet-stream"):
        return request.stream, None
    raise PayloadError("send a CSV file: multipart/form-data field 'file', or a text/csv body", field="file")


# ---- contacts --------------------------------------------------------------------------------------------


@bp.post("/api/v1/contacts")
@document(
    "post",
    "/api/v1/contacts",
    "Create a contact",
    body=ContactIn,
    responses={201: ContactOut},
    tag="contacts",
)
@require_token
def create_contact() -> tuple[Response, int]:
    """Create a contact (409 when its phone or email belongs to another)."""
    gw = gateway()
    data = parse_body(ContactIn)
    with gw.db.transaction() as session:
        contact = svc.create_contact(
            session,
            gw.settings.default_region,
            phone=data.phone,
            email=data.email,
            first_name=data.first_name,
            last_name=data.last_name,
            fields=data.fields,
            list_ids=[svc.editable_list(session, list_pk).id or 0 for list_pk in data.lists],
        )
        assert contact.id is not None
        body = contact_out(contact, svc.lists_of(session, contact.id))
    return jsonify(body), 201


@bp.get("/api/v1/contacts")
@document(
    "get",
    "/api/v1/contacts",
    "List contacts",
    responses={200: ContactPage},
    query={
        "list": "only members of this list (id or name)",
        "q": "search names, phone, email",
        "cursor": "next_cursor of the previous page",
        "limit": "page size (1-1000, default 100)",
    },
    tag="contacts",
)
@require_token
def find_contacts() -> Response:
    """A page of contacts, optionally one list's members or a search."""
    gw = gateway()
    limit = limit_arg()
    with gw.db.read() as session:
        list_ref = request.args.get("list")
        list_pk = svc.get_list(session, list_ref).id if list_ref else None
        found = svc.find_contacts(
            session, list_id=list_pk, search=request.args.get("q"), after=cursor_arg(), limit=limit
        )
        items = [contact_out(c, svc.lists_of(session, c.id or 0)) for c in found]
    return jsonify({"items": items, "next_cursor": next_cursor([c.id or 0 for c in found], limit)})


@bp.get("/api/v1/contacts/<int:contact_id>")
@document(
    "get", "/api/v1/contacts/{contact_id}", "Read a contact", responses={200: ContactOut}, tag="contacts"
)
@require_token
def read_contact(contact_id: int) -> Response:
    """One contact."""
    with gateway().db.read() as session:
        return jsonify(contact_out(svc.get_contact(session, contact_id), svc.lists_of(session, contact_id)))


@bp.patch("/api/v1/contacts/<int:contact_id>")
@document(
    "patch",
    "/api/v1/contacts/{contact_id}",
    "Update a contact",
    body=ContactPatch,
    responses={200: ContactOut},
    tag="contacts",
)
@require_token
def update_contact(contact_id: int) -> Response:
    """Change some of a contact's fields."""
    gw = gateway()
    data = parse_body(ContactPatch)
    changes = {name: getattr(data, name) for name in data.model_fields_set}
    with gw.db.transaction() as session:
        contact = svc.update_contact(session, gw.settings.default_region, contact_id, changes)
        body = contact_out(contact, svc.lists_of(session, contact_id))
    return jsonify(body)


@bp.delete("/api/v1/contacts/<int:contact_id>")
@document(
    "delete", "/api/v1/contacts/{contact_id}", "Delete a contact", responses={204: None}, tag="contacts"
)
@require_token
def delete_contact(contact_id: int) -> tuple[str, int]:
    """Delete a contact; its opt-outs stay (they belong to the address)."""
    with gateway().db.transaction() as session:
        svc.delete_contact(session, contact_id)
    return "", 204


# ---- lists -----------------------------------------------------------------------------------------------


@bp.post("/api/v1/lists")
@document("post", "/api/v1/lists", "Create a list", body=ListIn, responses={201: ListOut}, tag="lists")
@require_token
def create_list() -> tuple[Response, int]:
    """Create a list (409 when the name is taken)."""
    data = parse_body(ListIn)
    with gateway().db.transaction() as session:
        found = svc.create_list(session, data.name, data.channel, data.scope)
        return jsonify(list_out(found, 0)), 201


@bp.get("/api/v1/lists")
@document("get", "/api/v1/lists", "Every list, with sizes", responses={200: ListCollection}, tag="lists")
@require_token
def all_lists() -> Response:
    """Every list, the system Opt-Out List included."""
    with gateway().db.read() as session:
        return jsonify({"items": [list_out(found, n) for found, n in svc.all_lists(session)]})


@bp.get("/api/v1/lists/<list_ref>")
@document(
    "get", "/api/v1/lists/{list_ref}", "Read a list (by id or name)", responses={200: ListOut}, tag="lists"
)
@require_token
def read_list(list_ref: str) -> Response:
    """One list and its size."""
    with gateway().db.read() as session:
        found = svc.get_list(session, list_ref)
        return jsonify(list_out(found, svc.list_size(session, found)))


@bp.patch("/api/v1/lists/<list_ref>")
@document(
    "patch",
    "/api/v1/lists/{list_ref}",
    "Update a list",
    body=ListPatch,
    responses={200: ListOut},
    tag="lists",
)
@require_token
def update_list(list_ref: str) -> Response:
    """Rename a list or change its channel or scope (403 for the Opt-Out List)."""
    data = parse_body(ListPatch)
    with gateway().db.transaction() as session:
        found = svc.update_list(session, list_ref, data.model_dump(exclude_unset=True))
        return jsonify(list_out(found, svc.list_size(session, found)))


@bp.delete("/api/v1/lists/<list_ref>")
@document("delete", "/api/v1/lists/{list_ref}", "Delete a list", responses={204: None}, tag="lists")
@require_token
def delete_list(list_ref: str) -> tuple[str, int]:
    """Delete a list; its contacts stay (403 for the Opt-Out List, 409 while a campaign uses it)."""
    with gateway().db.transaction() as session:
        svc.delete_list(session, list_ref)
    return "", 204


@bp.get("/api/v1/lists/<list_ref>/contacts")
@document(
    "get",
    "/api/v1/lists/{list_ref}/contacts",
    "A page of a list's members (the Opt-Out List shows its opt-out entries)",
    responses={200: MemberPage},
    query={"cursor": "next_cursor of the previous page", "limit": "page size (1-1000, default 100)"},
    tag="lists",
)
@require_token
def list_members(list_ref: str) -> Response:
    """Members in contact id order; for the Opt-Out List, active opt-outs in id order."""
    limit = limit_arg()
    with gateway().db.read() as session:
        found = svc.get_list(session, list_ref)
        if found.system:
            entries = svc.opt_out_list_entries(session, after=cursor_arg(), limit=limit)
            items: list[dict[str, Any]] = [
                OptOutEntryOut(
                    opt_out_id=e.id,
                    **{k: getattr(e, k) for k in OptOutEntryOut.model_fields if k != "opt_out_id"},
                ).model_dump(mode="json")
                for e in entries
            ]
            ids = [e.id for e in entries]
        else:
            found_contacts = svc.find_contacts(session, list_id=found.id, after=cursor_arg(), limit=limit)
            items = [contact_out(c, svc.lists_of(session, c.id or 0)) for c in found_contacts]
            ids = [c.id or 0 for c in found_contacts]
    return jsonify({"items": items, "next_cursor": next_cursor(ids, limit)})


def _members_change(list_ref: str, action: str) -> Response:
    data = parse_body(ContactIds)
    with gateway().db.transaction() as session:
        found = svc.editable_list(session, list_ref)
        assert found.id is not None
        change = svc.add_members if action == "add" else svc.remove_members
        return jsonify({"count": change(session, found.id, data.contact_ids)})


@bp.post("/api/v1/lists/<list_ref>/contacts")
@document(
    "post",
    "/api/v1/lists/{list_ref}/contacts",
    "Add contacts to a list (count = newly added)",
    body=ContactIds,
    responses={200: Count},
    tag="lists",
)
@require_token
def add_members(list_ref: str) -> Response:
    """Add contacts to a list."""
    return _members_change(list_ref, "add")


@bp.post("/api/v1/lists/<list_ref>/contacts/remove")
@document(
    "post",
    "/api/v1/lists/{list_ref}/contacts/remove",
    "Remove contacts from a list (count = removed)",
    body=ContactIds,
    responses={200: Count},
    tag="lists",
)
@require_token
def remove_members(list_ref: str) -> Response:
    """Remove contacts from a list (the contacts themselves stay)."""
    return _members_change(list_ref, "remove")


def _transfer(list_ref: str, move: bool) -> Response:
    data = parse_body(Transfer)
    with gateway().db.transaction() as session:
        source = svc.editable_list(session, list_ref)
        target = svc.editable_list(session, data.to)
        assert source.id is not None and target.id is not None
        if source.id == target.id:
            raise PayloadError("source and target are the same list", field="to")
        operation = svc.move_members if move else svc.copy_members
        return jsonify({"count": operation(session, source.id, target.id, data.contact_ids)})


@bp.post("/api/v1/lists/<list_ref>/copy")
@document(
    "post",
    "/api/v1/lists/{list_ref}/copy",
    "Copy members to another list (count = new there)",
    body=Transfer,
    responses={200: Count},
    tag="lists",
)
@require_token
def copy_members(list_ref: str) -> Response:
    """Copy all members (or ``contact_ids``) to list ``to``."""
    return _transfer(list_ref, move=False)


@bp.post("/api/v1/lists/<list_ref>/move")
@document(
    "post",
    "/api/v1/lists/{list_ref}/move",
    "Move members to another list (count = moved)",
    body=Transfer,
    responses={200: Count},
    tag="lists",
)
@require_token
def move_members(list_ref: str) -> Response:
    """Move all members (or ``contact_ids``) to list ``to``."""
    return _transfer(list_ref, move=True)


@bp.post("/api/v1/lists/<list_ref>/remove-duplicates")
@document(
    "post",
    "/api/v1/lists/{list_ref}/remove-duplicates",
    "Remove members repeating an earlier member's fields (count = removed)",
    body=DuplicateFields,
    responses={200: Count},
    tag="lists",
)
@require_token
def remove_duplicates(list_ref: str) -> Response:
    """Keep the oldest contact of each group with equal ``fields``; remove the rest from the list."""
    data = parse_body(DuplicateFields)
    with gateway().db.transaction() as session:
        found = svc.editable_list(session, list_ref)
        assert found.id is not None
        return jsonify({"count": svc.remove_duplicates(session, found.id, data.fields)})


@bp.post("/api/v1/lists/<list_ref>/remove-opted-out")
@document(
    "post",
    "/api/v1/lists/{list_ref}/remove-opted-out",
    "Remove every member opted out for the list's channel and scope (count = removed)",
    responses={200: Count},
    tag="lists",
)
@require_token
def remove_opted_out(list_ref: str) -> Response:
    """ClickSend's "Remove opted-out contacts", as one set-based DELETE."""
    gw = gateway()
    with gw.db.transaction() as session:
        found = svc.editable_list(session, list_ref)
        return jsonify({"count": svc.remove_opted_out(session, found, gw.settings.compliance.cross_channel)})


@bp.post("/api/v1/lists/<list_ref>/import")
@document(
    "post",
    "/api/v1/lists/{list_ref}/import",
    "Import contacts from a CSV into a list",
    body=CsvUpload,
    responses={200: ImportResult},
    query={
        "include_opted_out": "true to keep people on the Opt-Out List (default false: skipped)",
        "map": "COLUMN=FIELD, repeatable (FIELD: phone, email, first_name, last_name, ignore, or a "
        "custom field name)",
    },
    content_type="multipart/form-data",
    tag="lists",
)
@require_token
def import_contacts(list_ref: str) -> Response:
    """Stream the uploaded CSV into the list; every row not imported is in ``rejects``."""
    gw = gateway()
    stream, _name = csv_upload()
    mapping = parse_mapping(request.args.getlist("map") + request.form.getlist("map"))
    rejects: list[Reject] = []
    report: ImportReport = import_csv(
        gw,
        stream,
        list_ref,
        mapping=mapping,
        include_opted_out=flag_arg("include_opted_out"),
        on_reject=rejects.append,
    )
    rejects.sort(key=lambda r: r.row)
    return jsonify({**report.as_dict(), "rejects": [RejectOut(**vars_of(r)).model_dump() for r in rejects]})


def vars_of(reject: Reject) -> dict[str, Any]:
    """A `Reject` as a dict."""
    return {"row": reject.row, "column": reject.column, "value": reject.value, "reason": reject.reason}
