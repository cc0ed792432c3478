"""Streaming CSV import of contacts into a list.

The file is read row by row with the `csv` module and written in batches (one transaction each), so memory
stays flat however long the file is: a million rows need one batch of rows in memory, not a million.

For each row: the address of the list's channel (phone for SMS lists, email for email lists) is required and
normalised (phones with the configured default region); the other address, names and remaining columns are
optional. Rows naming a contact that exists (or appeared earlier in the file) update it: non-empty values
replace, custom fields merge. People on the Opt-Out List for the list's channel and scope are skipped unless
``include_opted_out``. Every row that is not imported is reported with its row number, column, value and
reason; no row is dropped silently. Row numbers count the header as row 1, as a spreadsheet shows them.
Rejects are reported as they are found (parsing runs one batch ahead of writing): sort by row for order.
"""

from __future__ import annotations

import csv
import io
import json
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import IO, Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from gateway.addresses import normalize_email, normalize_phone
from gateway.contacts import CONTACTS, editable_list, in_values
from gateway.errors import InvalidAddressError, PayloadError
from gateway.models import ALL_SCOPES, ContactList, utcnow
from gateway.runtime import Gateway
from gateway.storage import covering_scopes

BATCH_SIZE = 10_000
SQLITE_CACHE_KIB = 64 * 1024
NAME_MAX = 200
# Header spellings recognised without a --map (compared lower-cased, with spaces and dashes as underscores).
ALIASES: dict[str, tuple[str, ...]] = {
    "phone": ("phone", "phone_number", "mobile", "mobile_number", "mobile_phone", "cell", "msisdn", "number"),
    "email": ("email", "email_address", "e_mail", "mail"),
    "first_name": ("first_name", "firstname", "first", "given_name"),
    "last_name": ("last_name", "lastname", "last", "surname", "family_name"),
}
TARGETS = (*ALIASES, "ignore")


@dataclass(frozen=True, slots=True)
class Reject:
    """A row that was not imported, and why."""

    row: int
    column: str
    value: str
    reason: str


@dataclass
class ImportReport:
    """What an import did. ``rows`` = created + updated + duplicates_merged + skipped_opted_out + rejected."""

    list_id: int
    rows: int = 0
    created: int = 0
    updated: int = 0
    duplicates_merged: int = 0
    added_to_list: int = 0
    already_in_list: int = 0
    skipped_opted_out: int = 0
    rejected: int = 0

    def as_dict(self) -> dict[str, int]:
        """The counts as a plain dict."""
        return asdict(self)


@dataclass(slots=True)
class _Row:
    row: int
    primary: str
    secondary: str | None
    first_name: str | None
    last_name: str | None
    fields: dict[str, str] = field(default_factory=dict)


def parse_mapping(items: Iterable[str]) -> dict[str, str]:
    """``["Mobile=phone", "Notes=ignore"]`` -> ``{"Mobile": "phone", "Notes": "ignore"}``.

    A target that is not phone/email/first_name/last_name/ignore names a custom field.
    """
    out: dict[str, str] = {}
    for item in items:
        column, sep, target = item.partition("=")
        if not sep or not column.strip() or not target.strip():
            raise PayloadError(f"map {item!r} must look like COLUMN=FIELD", field="map")
        out[column.strip()] = target.strip()
    return out


def header_key(name: str) -> str:
    """A header cell compared loosely: lower case, spaces and dashes as underscores."""
    return name.strip().lower().replace(" ", "_").replace("-", "_")


def column_plan(header: Sequence[str], mapping: Mapping[str, str], channel: str) -> list[str]:
    """The target of each header column: a standard field, ``ignore``, or ``fields.NAME`` (custom)."""
    keys = [header_key(h) for h in header]
    if len(set(keys)) != len(keys):
        raise PayloadError("the header names a column twice", field="file")
    by_key = {header_key(k): v for k, v in mapping.items()}
    unknown = [k for k in mapping if header_key(k) not in keys]
    if unknown:
        raise PayloadError(f"map names columns the header does not have: {', '.join(unknown)}", field="map")
    plan = []
    for raw, key in zip(header, keys, strict=True):
        target = by_key.get(key)
        if target is None:
            target = next(
                (name for name, aliases in ALIASES.items() if key in aliases), f"fields.{raw.strip()}"
            )
        elif header_key(target) in TARGETS:
            target = header_key(target)
        else:
            target = f"fields.{target.removeprefix('fields.')}"
        plan.append(target)
    for standard in ALIASES:
        if plan.count(standard) > 1:
            raise PayloadError(f"two columns map to {standard}", field="map")
    primary = "phone" if channel == "sms" else "email"
    if primary not in plan:
        raise PayloadError(
            f"no {primary} column: name one {primary!r} or map it with --map COLUMN={primary}", field="map"
        )
    return plan


class CountingReader(io.RawIOBase):
    """Passes bytes through and reports how many were read (for a progress bar over the file size)."""

    def __init__(self, inner: IO[bytes], on_progress: Callable[[int], None] | None) -> None:
        self._inner = inner
        self._on_progress = on_progress

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._inner.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        if n and self._on_progress is not None:
            self._on_progress(n)
        return n


class _Importer:
    def __init__(
        self,
        gw: Gateway,
        target: ContactList,
        header: Sequence[str],
        plan: Sequence[str],
        include_opted_out: bool,
        on_reject: Callable[[Reject], None] | None,
    ) -> None:
        assert target.id is not None
        self.gw = gw
        self.target = target
        self.header = header
        self.width = len(plan)
        self.include_opted_out = include_opted_out
        self.on_reject = on_reject
        self.region = gw.settings.default_region
        self.channel = target.channel
        self.primary_col = "phone" if self.channel == "sms" else "email"
        self.secondary_col = "email" if self.channel == "sms" else "phone"
        # Column positions, worked out once: the per-row work is then plain indexing.
        where = {target_: i for i, target_ in enumerate(plan) if target_ in ALIASES}
        self.at_primary = where[self.primary_col]
        self.at_secondary = where.get(self.secondary_col)
        self.at_names = [(i, t) for t, i in where.items() if t in ("first_name", "last_name")]
        self.at_custom = [
            (i, t.removeprefix("fields.")) for i, t in enumerate(plan) if t.startswith("fields.")
        ]
        self.report = ImportReport(list_id=target.id)
        self.lock = threading.Lock()
        self.sqlite = gw.db.dialect == "sqlite"

    # -- parsing -------------------------------------------------------------------------------------

    def reject(self, row: int, column: str, value: str, reason: str) -> None:
        # Both the parsing thread and the writer thread reject rows.
        with self.lock:
            self.report.rejected += 1
            if self.on_reject is not None:
                self.on_reject(Reject(row, column, value, reason))

    def _address(self, kind: str, raw: str) -> str:
        return normalize_phone(raw, self.region) if kind == "phone" else normalize_email(raw)

    def parse(self, number: int, values: list[str]) -> _Row | None:
        n = len(values)
        if n > self.width and any(v.strip() for v in values[self.width :]):
            self.reject(number, "", ",".join(values), f"{n} values but the header has {self.width}")
            return None
        if "\ufffd" in "".join(values):
            bad = next(i for i, v in enumerate(values) if "\ufffd" in v)
            self.reject(
                number, self.header[bad] if bad < self.width else "", values[bad], "not valid UTF-8 text"
            )
            return None
        names: dict[str, str] = {}
        for i, target in self.at_names:
            value = values[i].strip() if i < n else ""
            if len(value) > NAME_MAX:
                self.reject(number, self.header[i], value[:50], f"{target} longer than {NAME_MAX} characters")
                return None
            if value:
                names[target] = value
        custom = {name: v for i, name in self.at_custom if i < n and (v := values[i].strip())}
        raw_primary = values[self.at_primary].strip() if self.at_primary < n else ""
        if not raw_primary:
            self.reject(number, self.header[self.at_primary], "", f"missing {self.primary_col}")
            return None
        try:
            primary = self._address(self.primary_col, raw_primary)
        except InvalidAddressError:
            self.reject(number, self.header[self.at_primary], raw_primary, f"invalid {self.primary_col}")
            return None
        secondary = None
        at = self.at_secondary
        raw_secondary = values[at].strip() if at is not None and at < n else ""
        if raw_secondary:
            try:
                secondary = self._address(self.secondary_col, raw_secondary)
            except InvalidAddressError:
                assert at is not None
                self.reject(number, self.header[at], raw_secondary, f"invalid {self.secondary_col}")
                return None
        return _Row(number, primary, secondary, names.get("first_name"), names.get("last_name"), custom)

    # -- writing -------------------------------------------------------------------------------------

    def flush(self, batch: dict[str, _Row]) -> None:
        if not batch:
            return
        with self.gw.db.transaction() as session:
            if self.sqlite:
                # SQLite's default page cache (2 MB) thrashes once the contact indexes outgrow it; a
                # large import keeps its working set in memory instead (per connection, within budget).
                self._execute(session, f"PRAGMA cache_size = -{SQLITE_CACHE_KIB}", ())
            rows = self._without_opted_out(session, list(batch.values()))
            to_join, joined, contacts = self._upsert(session, rows)
            added = joined + self._join_list(session, to_join)
        self.report.added_to_list += added
        self.report.already_in_list += contacts - added

    def _without_opted_out(self, session: Session, rows: list[_Row]) -> list[_Row]:
        if self.include_opted_out:
            return rows
        out = self._opted_out(session, self.channel, [r.primary for r in rows])
        if self.gw.settings.compliance.cross_channel:
            other = "email" if self.channel == "sms" else "sms"
            out |= self._opted_out(session, other, [r.secondary for r in rows if r.secondary])
        kept = [r for r in rows if r.primary not in out and (r.secondary is None or r.secondary not in out)]
        self.report.skipped_opted_out += len(rows) - len(kept)
        return kept

    def _opted_out(self, session: Session, channel: str, addresses: list[str]) -> set[str]:
        """Which ``addresses`` are opted out on ``channel`` for the list's scope (``*``: any scope), as one
        driver-level statement: the ORM's statement handling cost more than the lookup itself."""
        if not addresses:
            return set()
        scope = self.target.scope
        scopes = [] if scope == ALL_SCOPES else covering_scopes(scope)
        if self.sqlite:
            sql = (
                "SELECT address FROM opt_outs WHERE channel = ? AND opted_out = 1 "
                "AND address IN (SELECT value FROM json_each(?)) "
                "AND (? OR scope IN (SELECT value FROM json_each(?)))"
            )
            params: Any = (channel, json.dumps(addresses), not scopes, json.dumps(scopes))
        else:
            sql = (
                "SELECT address FROM opt_outs WHERE channel = %s AND opted_out "
                "AND address IN (SELECT value FROM json_array_elements_text(%s::json)) "
                "AND (%s OR scope IN (SELECT value FROM json_array_elements_text(%s::json)))"
            )
            params = (channel, json.dumps(addresses), not scopes, json.dumps(scopes))
        return {address for (address,) in self._execute(session, sql, params)}

    def _existing(self, session: Session, column: str, values: list[str]) -> dict[str, dict[str, Any]]:
        if not values:
            return {}
        stmt = select(CONTACTS).where(in_values(session, CONTACTS.c[column], values))
        return {row[column]: dict(row) for row in session.execute(stmt).mappings()}

    def _upsert(self, session: Session, rows: list[_Row]) -> tuple[list[int], int, int]:
        """Create or update the contacts of ``rows``: (contact ids still to add to the list, memberships
        already added, contacts the rows now name).

        New addresses are inserted first (``ON CONFLICT DO NOTHING``), so a fresh import needs no lookups;
        only the rows that did not insert are looked up and become updates, merges or rejects.
        """
        prim, sec = self.primary_col, self.secondary_col
        claimed: dict[str, str] = {}  # secondary address -> primary of the first row in this batch with it
        candidates = []
        for r in rows:
            if r.secondary and claimed.setdefault(r.secondary, r.primary) != r.primary:
                reason = f"{sec} repeated in this file for another {prim}"
                self.reject(r.row, self._column(sec), r.secondary, reason)
            else:
                candidates.append(r)
        ids, joined, created, left = self._create(session, candidates)
        self.report.created += created
        leftovers = [r for r in candidates if r.primary in left]
        if not leftovers:
            return ids, joined, created
        by_primary = self._existing(session, prim, [r.primary for r in leftovers])
        by_secondary = self._existing(session, sec, [r.secondary for r in leftovers if r.secondary])
        updates: list[tuple[dict[str, Any], _Row]] = []
        for r in leftovers:
            existing = by_primary.get(r.primary)
            owner = by_secondary.get(r.secondary) if r.secondary else None
            if owner is not None and (existing is None or owner["id"] != existing["id"]):
                if existing is None and owner[prim] is None:
                    existing = owner  # the same person, known so far only by the other address
                else:
                    self.reject(
                        r.row,
                        self._column(sec),
                        r.secondary or "",
                        f"{sec} already belongs to contact {owner['id']}",
                    )
                    continue
            if existing is None:  # its other address was taken by a concurrent writer after our insert
                self.reject(
                    r.row, self._column(sec), r.secondary or "", f"{sec} already belongs to another contact"
                )
                continue
            updates.append((existing, r))
        self._update(session, updates)
        return ids + [existing["id"] for existing, _ in updates], joined, created + len(updates)

    def _column(self, kind: str) -> str:
        at = self.at_primary if kind == self.primary_col else self.at_secondary
        return self.header[at] if at is not None else kind

    def _execute(self, session: Session, sql: str, params: Any) -> Any:
        """Run ``sql`` on the session's driver connection (the hot statements of a large import skip the
        ORM's per-parameter processing: each batch is one JSON parameter). Returns the cursor's rows."""
        cursor = session.connection().connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute(sql, params)
            return cursor.fetchall() if cursor.description else cursor.rowcount
        finally:
            cursor.close()

    def _create(self, session: Session, rows: list[_Row]) -> tuple[list[int], int, int, set[str]]:
        """Insert the rows whose addresses are new: (new ids still to add to the list, memberships already
        added, contacts created, primary addresses that did not insert)."""
        if not rows:
            return [], 0, 0, set()
        prim, sec = self.primary_col, self.secondary_col
        columns = f"{prim}, {sec}, first_name, last_name, fields, created_at, updated_at"
        records = json.dumps(
            [
                {"p": r.primary, "s": r.secondary, "f": r.first_name, "l": r.last_name, "j": r.fields}
                for r in rows
            ]
        )
        now = utcnow()
        # Only fixed column names are formatted into the SQL; every value is a bound parameter.
        if self.sqlite:
            # SQLite keeps UTC timestamps as text in SQLAlchemy's format; give the driver exactly that.
            stamp = now.replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")
            sql = (
                f"INSERT INTO contacts ({columns}) SELECT json_extract(value, '$.p'), "  # noqa: S608
                "json_extract(value, '$.s'), json_extract(value, '$.f'), json_extract(value, '$.l'), "
                "json_extract(value, '$.j'), ?, ? "
                f"FROM json_each(?) WHERE true ON CONFLICT DO NOTHING RETURNING {prim}, id"
            )
            created = dict(self._execute(session, sql, (stamp, stamp, records)))
            return list(created.values()), 0, len(created), {r.primary for r in rows} - created.keys()
        # PostgreSQL: insert and join the list in one statement and one round trip, returning only the
        # counts and the (usually no) addresses that already had a contact, not a row per new contact.
        sql = (
            "WITH input AS (SELECT * FROM json_to_recordset(%s::json) "  # noqa: S608
            "AS u(p text, s text, f text, l text, j json)), "
            f"new AS (INSERT INTO contacts ({columns}) SELECT p, s, f, l, j, %s, %s FROM input "
            f"ON CONFLICT DO NOTHING RETURNING id, {prim}), "
            "joined AS (INSERT INTO list_members (list_id, contact_id, added_at) SELECT %s, id, %s FROM new "
            "ON CONFLICT DO NOTHING RETURNING contact_id) "
            "SELECT (SELECT count(*) FROM new), (SELECT count(*) FROM joined), "
            f"(SELECT coalesce(json_agg(i.p), '[]') FROM input i LEFT JOIN new n ON n.{prim} = i.p "
            "WHERE n.id IS NULL)"
        )
        [(created_n, joined_n, left)] = self._execute(
            session, sql, (records, now, now, self.report.list_id, now)
        )
        return [], int(joined_n), int(created_n), set(left)

    def _update(self, session: Session, updates: list[tuple[dict[str, Any], _Row]]) -> None:
        changed: list[dict[str, Any]] = []
        now = utcnow()
        for existing, r in updates:
            new = {
                "b_id": existing["id"],
                "b_phone": r.primary if self.primary_col == "phone" else (r.secondary or existing["phone"]),
                "b_email": r.primary if self.primary_col == "email" else (r.secondary or existing["email"]),
                "b_first": r.first_name or existing["first_name"],
                "b_last": r.last_name or existing["last_name"],
                "b_fields": {**(existing["fields"] or {}), **r.fields},
                "b_now": now,
            }
            old = (
                existing["phone"],
                existing["email"],
                existing["first_name"],
                existing["last_name"],
                existing["fields"] or {},
            )
            if (new["b_phone"], new["b_email"], new["b_first"], new["b_last"], new["b_fields"]) != old:
                changed.append(new)
        if changed:
            stmt = (
                update(CONTACTS)
                .where(CONTACTS.c.id == bindparam("b_id"))
                .values(
                    phone=bindparam("b_phone"),
                    email=bindparam("b_email"),
                    first_name=bindparam("b_first"),
                    last_name=bindparam("b_last"),
                    fields=bindparam("b_fields", type_=CONTACTS.c.fields.type),
                    updated_at=bindparam("b_now", type_=CONTACTS.c.updated_at.type),
                )
            )
            session.execute(stmt, changed)
        self.report.updated += len(updates)

    def _join_list(self, session: Session, contact_ids: list[int]) -> int:
        """Add the batch's contacts to the list in one statement; how many were new members."""
        if not contact_ids:
            return 0
        ids = json.dumps(contact_ids)
        if self.sqlite:
            stamp = utcnow().replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")
            sql = (
                "INSERT INTO list_members (list_id, contact_id, added_at) SELECT ?, value, ? "
                "FROM json_each(?) WHERE true ON CONFLICT DO NOTHING"
            )
            params: Any = (self.report.list_id, stamp, ids)
        else:
            sql = (
                "INSERT INTO list_members (list_id, contact_id, added_at) SELECT %s, value::bigint, %s "
                "FROM json_array_elements_text(%s::json) ON CONFLICT DO NOTHING"
            )
            params = (self.report.list_id, utcnow(), ids)
        return int(self._execute(session, sql, params))


def open_text(stream: IO[bytes], on_progress: Callable[[int], None] | None = None) -> IO[str]:
    """A byte stream as CSV-ready text: UTF-8 (a BOM is skipped), undecodable bytes as U+FFFD so the rows
    holding them are rejected one by one rather than the whole file failing half-way."""
    raw = io.BufferedReader(CountingReader(stream, on_progress))
    return io.TextIOWrapper(raw, encoding="utf-8-sig", errors="replace", newline="")


def csv_records(text: IO[str]) -> Iterator[tuple[int, list[str]]]:
    """(row number, values) for each non-blank CSV record."""
    # Row numbers count records (a quoted value may span lines), the header being row 1.
    number = 0
    for values in csv.reader(text):
        if not values or (len(values) == 1 and not values[0].strip()):
            continue  # a blank line is not a row
        number += 1
        yield number, values


def import_csv(
    gw: Gateway,
    stream: IO[bytes],
    list_ref: int | str,
    *,
    mapping: Mapping[str, str] | None = None,
    include_opted_out: bool = False,
    batch_size: int = BATCH_SIZE,
    on_progress: Callable[[int], None] | None = None,
    on_reject: Callable[[Reject], None] | None = None,
) -> ImportReport:
    """Import a CSV (bytes, UTF-8, first row the header) into a list; see the module docstring.

    ``on_progress`` gets the number of bytes read as the file is consumed; ``on_reject`` every row that was
    not imported. Each batch commits on its own, so an interrupted import keeps what it had written and can
    simply be run again (rows already imported update their contact and change nothing else).
    """
    with gw.db.read() as session:
        target = editable_list(session, list_ref)
    records = csv_records(open_text(stream, on_progress))
    first = next(records, None)
    if first is None:
        raise PayloadError("the file is empty: its first row must name the columns", field="file")
    header = first[1]
    plan = column_plan(header, mapping or {}, target.channel)
    importer = _Importer(gw, target, header, plan, include_opted_out, on_reject)
    batch: dict[str, _Row] = {}
    # One writer thread stores batch N while this thread parses batch N + 1: normalising numbers is CPU
    # work, storing is mostly waiting for the database, and both drivers release the GIL while they wait.
    # Batches are still written one after another, in file order, and at most two are in memory.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="import-writer") as writer:
        pending: Future[None] | None = None
        for number, values in records:
            importer.report.rows += 1
            parsed = importer.parse(number, values)
            if parsed is None:
                continue
            seen = batch.get(parsed.primary)
            if seen is not None:
                # The same person twice in a batch: one contact, later non-empty values win.
                importer.report.duplicates_merged += 1
                seen.secondary = parsed.secondary or seen.secondary
                seen.first_name = parsed.first_name or seen.first_name
                seen.last_name = parsed.last_name or seen.last_name
                seen.fields.update(parsed.fields)
                continue
            batch[parsed.primary] = parsed
            if len(batch) >= batch_size:
                if pending is not None:
                    pending.result()  # re-raises a failed batch here
                pending = writer.submit(importer.flush, batch)
                batch = {}
        if pending is not None:
            pending.result()
    importer.flush(batch)
    return importer.report
