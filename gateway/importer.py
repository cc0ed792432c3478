"""Streaming CSV import of contacts into a list.

The file is read row by row with the `csv` module and written in batches (one transaction each), so memory
stays flat however long the file is: a million rows need one batch of rows in memory, not a million.

For each row: the address of the list's channel (phone for SMS lists, email for email lists) is required and
normalised (phones with the configured default region); the other address, names and remaining columns are
optional. Rows naming a contact that exists (or appeared earlier in the file) update it: non-empty values
replace, custom fields merge. People on the Opt-Out List for the list's channel and scope are skipped unless
``include_opted_out``. Every row that is not imported is reported with its row number, column, value and
reason; no row is dropped silently. Row numbers count the header as row 1, as a spreadsheet shows them.
Rejects are reported as they are found (parsing runs ahead of writing): sort by row for order.
"""

from __future__ import annotations

import collections
import contextlib
import csv
import io
import json
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import datetime
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
QUEUED_BATCHES = 2
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


# A parsed row: (row number, primary address, secondary address, first name, last name, then the value of
# each custom field column in header order, None where empty). A flat tuple of strings on purpose: the cyclic
# garbage collector stops tracking a tuple whose items it cannot track (unless it is an instance of a tuple
# subclass, or holds a tracked object such as a dict or a still-tracked tuple), so a batch of 10,000 parsed
# rows adds nothing to its scans. With a tracked object per row, collections cost about 2.5 µs a row.
_Row = tuple[Any, ...]
_CUSTOM = 5  # where the custom field values start in a `_Row`


def _sqlite_stamp(at: datetime) -> str:
    """SQLite keeps UTC timestamps as text in SQLAlchemy's format; the driver-level statements pass that."""
    return at.replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")


def _merged(earlier: _Row, later: _Row) -> _Row:
    """The same person twice in a batch: one contact, ``later``'s non-empty values on top."""
    return earlier[:2] + tuple([b or a for a, b in zip(earlier[2:], later[2:], strict=True)])


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
        self.sms = self.channel == "sms"
        # Column positions, worked out once: the per-row work is then plain indexing.
        where = {target_: i for i, target_ in enumerate(plan) if target_ in ALIASES}
        self.at_primary = where[self.primary_col]
        self.at_secondary = where.get(self.secondary_col)
        self.at_first = where.get("first_name")
        self.at_last = where.get("last_name")
        self.at_custom = [i for i, t in enumerate(plan) if t.startswith("fields.")]
        self.custom_names = [plan[i].removeprefix("fields.") for i in self.at_custom]
        self.report = ImportReport(list_id=target.id)
        self.lock = threading.Lock()
        self.failed = False
        self.sqlite = gw.db.dialect == "sqlite"

    # -- parsing -------------------------------------------------------------------------------------

    def reject(self, row: int, column: str, value: str, reason: str) -> None:
        # Both the parsing thread and the writer thread reject rows.
        with self.lock:
            self.report.rejected += 1
            if self.on_reject is not None:
                self.on_reject(Reject(row, column, value, reason))

    def parse(self, number: int, values: list[str]) -> _Row | None:
        """One CSV record as a `_Row`, or None after reporting why it was rejected."""
        # Runs once per row of files of millions of rows: plain indexing into positions worked out once.
        width, n = self.width, len(values)
        if n != width:
            if n > width and any(v.strip() for v in values[width:]):
                self.reject(number, "", ",".join(values), f"{n} values but the header has {width}")
                return None
            values = values[:width] if n > width else values + [""] * (width - n)
        if "\ufffd" in "".join(values):
            bad = next(i for i, v in enumerate(values) if "\ufffd" in v)
            self.reject(number, self.header[bad], values[bad], "not valid UTF-8 text")
            return None
        # The row has the header's width now (checked above): every position below is a valid index.
        first = values[self.at_first].strip() if self.at_first is not None else ""
        last = values[self.at_last].strip() if self.at_last is not None else ""
        if len(first) > NAME_MAX or len(last) > NAME_MAX:
            at, target, value = (
                (self.at_first, "first_name", first)
                if len(first) > NAME_MAX
                else (self.at_last, "last_name", last)
            )
            assert at is not None
            self.reject(number, self.header[at], value[:50], f"{target} longer than {NAME_MAX} characters")
            return None
        custom = [values[i].strip() or None for i in self.at_custom]
        at = self.at_primary
        raw = values[at].strip()
        if not raw:
            self.reject(number, self.header[at], "", f"missing {self.primary_col}")
            return None
        try:
            primary = normalize_phone(raw, self.region) if self.sms else normalize_email(raw)
        except InvalidAddressError:
            self.reject(number, self.header[at], raw, f"invalid {self.primary_col}")
            return None
        secondary = None
        at2 = self.at_secondary
        if at2 is not None and (raw := values[at2].strip()):
            try:
                secondary = normalize_email(raw) if self.sms else normalize_phone(raw, self.region)
            except InvalidAddressError:
                self.reject(number, self.header[at2], raw, f"invalid {self.secondary_col}")
                return None
        return (number, primary, secondary, first or None, last or None, *custom)

    def _fields(self, row: _Row) -> dict[str, str]:
        """The row's non-empty custom fields by name."""
        return {name: v for name, v in zip(self.custom_names, row[_CUSTOM:], strict=True) if v}

    # -- writing -------------------------------------------------------------------------------------

    def write(self, batch: dict[str, _Row]) -> None:
        """`flush` on the writer thread; once a batch failed, the batches queued behind it are not written
        (the failure reaches the parsing thread, which stops the import)."""
        if self.failed:
            return
        try:
            self.flush(batch)
        except BaseException:
            self.failed = True
            raise

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
        out = self._opted_out(session, self.channel, [r[1] for r in rows])
        if self.gw.settings.compliance.cross_channel:
            other = "email" if self.channel == "sms" else "sms"
            out |= self._opted_out(session, other, [r[2] for r in rows if r[2]])
        kept = [r for r in rows if r[1] not in out and (r[2] is None or r[2] not in out)]
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
            number, primary, secondary = r[:3]
            if secondary and claimed.setdefault(secondary, primary) != primary:
                reason = f"{sec} repeated in this file for another {prim}"
                self.reject(number, self._column(sec), secondary, reason)
            else:
                candidates.append(r)
        joined, created, left = self._create(session, candidates)
        self.report.created += created
        leftovers = [r for r in candidates if r[1] in left]
        if not leftovers:
            return [], joined, created
        by_primary = self._existing(session, prim, [r[1] for r in leftovers])
        by_secondary = self._existing(session, sec, [r[2] for r in leftovers if r[2]])
        updates: list[tuple[dict[str, Any], _Row]] = []
        for r in leftovers:
            number, primary, secondary = r[:3]
            existing = by_primary.get(primary)
            owner = by_secondary.get(secondary) if secondary else None
            if owner is not None and (existing is None or owner["id"] != existing["id"]):
                if existing is None and owner[prim] is None:
                    existing = owner  # the same person, known so far only by the other address
                else:
                    self.reject(
                        number,
                        self._column(sec),
                        secondary or "",
                        f"{sec} already belongs to contact {owner['id']}",
                    )
                    continue
            if existing is None:  # its other address was taken by a concurrent writer after our insert
                self.reject(
                    number, self._column(sec), secondary or "", f"{sec} already belongs to another contact"
                )
                continue
            updates.append((existing, r))
        self._update(session, updates)
        return [existing["id"] for existing, _ in updates], joined, created + len(updates)

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

    def _create(self, session: Session, rows: list[_Row]) -> tuple[int, int, set[str]]:
        """Insert the rows whose addresses are new and add them to the list: (memberships added, contacts
        created, primary addresses that did not insert)."""
        if not rows:
            return 0, 0, set()
        prim, sec = self.primary_col, self.secondary_col
        columns = f"{prim}, {sec}, first_name, last_name, fields, created_at, updated_at"
        now = utcnow()
        # Only fixed column names and positions are formatted into the SQL; every value is a bound parameter.
        # The rows go as they are, one JSON array each (encoded in C, no Python work per row: the writer
        # shares the interpreter with the parser); the database builds the custom fields object.
        records = json.dumps(rows)
        if self.sqlite:
            return self._create_sqlite(session, rows, records, columns, now)
        # PostgreSQL: insert and join the list in one statement and one round trip, returning only the counts
        # and the (usually no) addresses that already had a contact, not a row per new contact.
        if self.custom_names:
            values = ", ".join(f"r->>{_CUSTOM + k}" for k in range(len(self.custom_names)))
            fields = f"jsonb_strip_nulls(jsonb_object(%(names)s::text[], ARRAY[{values}]))::json"
        else:
            fields = "'{}'::json"
        sql = (
            "WITH input AS (SELECT r->>1 AS p, r->>2 AS s, r->>3 AS f, r->>4 AS l, "  # noqa: S608
            f"{fields} AS j FROM jsonb_array_elements(%(rows)s::jsonb) AS e(r)), "
            f"new AS (INSERT INTO contacts ({columns}) SELECT p, s, f, l, j, %(now)s, %(now)s FROM input "
            f"ON CONFLICT DO NOTHING RETURNING id, {prim}), "
            "joined AS (INSERT INTO list_members (list_id, contact_id, added_at) "
            "SELECT %(list)s, id, %(now)s FROM new ON CONFLICT DO NOTHING RETURNING contact_id) "
            "SELECT (SELECT count(*) FROM new), (SELECT count(*) FROM joined), "
            f"(SELECT coalesce(json_agg(i.p), '[]') FROM input i LEFT JOIN new n ON n.{prim} = i.p "
            "WHERE n.id IS NULL)"
        )
        params = {"rows": records, "names": self.custom_names, "now": now, "list": self.report.list_id}
        [(created_n, joined_n, left)] = self._execute(session, sql, params)
        return int(joined_n), int(created_n), set(left)

    def _create_sqlite(
        self, session: Session, rows: list[_Row], records: str, columns: str, now: datetime
    ) -> tuple[int, int, set[str]]:
        """`_create` on SQLite, in three set-based statements that return no row per contact: the Python
        driver takes the interpreter lock back for every row a statement returns, and the parsing thread
        holds it, so a ``RETURNING`` row per new contact made the writer wait ten thousand times a batch."""
        prim, sec = self.primary_col, self.secondary_col
        # This transaction holds SQLite's write lock (BEGIN IMMEDIATE): which rows would conflict with an
        # existing contact cannot change between this query and the insert.
        sql = (
            "SELECT json_group_array(json_extract(value, '$[1]')) FROM json_each(?) "  # noqa: S608
            f"WHERE EXISTS (SELECT 1 FROM contacts WHERE {prim} = json_extract(value, '$[1]')) "
            f"OR EXISTS (SELECT 1 FROM contacts WHERE {sec} = json_extract(value, '$[2]'))"
        )
        [(clashing,)] = self._execute(session, sql, (records,))
        left = set(json.loads(clashing))
        if left:
            records = json.dumps([r for r in rows if r[1] not in left])
        # Custom fields: an object of the non-empty values (json_patch drops the keys whose value is null).
        pairs = ", ".join(
            f"?, json_extract(value, '$[{_CUSTOM + k}]')" for k in range(len(self.custom_names))
        )
        fields = f"json_patch('{{}}', json_object({pairs}))" if pairs else "'{}'"
        stamp = _sqlite_stamp(now)
        sql = (
            f"INSERT INTO contacts ({columns}) SELECT json_extract(value, '$[1]'), "  # noqa: S608
            "json_extract(value, '$[2]'), json_extract(value, '$[3]'), json_extract(value, '$[4]'), "
            f"{fields}, ?, ? FROM json_each(?) WHERE true ON CONFLICT DO NOTHING"
        )
        created = int(self._execute(session, sql, (*self.custom_names, stamp, stamp, records)))
        sql = (
            "INSERT INTO list_members (list_id, contact_id, added_at) SELECT ?, c.id, ? "  # noqa: S608
            f"FROM json_each(?) AS j JOIN contacts AS c ON c.{prim} = json_extract(j.value, '$[1]') "
            "WHERE true ON CONFLICT DO NOTHING"
        )
        joined = int(self._execute(session, sql, (self.report.list_id, stamp, records)))
        return joined, created, left

    def _update(self, session: Session, updates: list[tuple[dict[str, Any], _Row]]) -> None:
        changed: list[dict[str, Any]] = []
        now = utcnow()
        for existing, r in updates:
            _, primary, secondary, first, last = r[:_CUSTOM]
            new = {
                "b_id": existing["id"],
                "b_phone": primary if self.primary_col == "phone" else (secondary or existing["phone"]),
                "b_email": primary if self.primary_col == "email" else (secondary or existing["email"]),
                "b_first": first or existing["first_name"],
                "b_last": last or existing["last_name"],
                "b_fields": {**(existing["fields"] or {}), **self._fields(r)},
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
            stamp = _sqlite_stamp(utcnow())
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


# While an import runs, the interpreter lock changes hands every millisecond instead of every 5 (CPython's
# default). The writer thread needs the lock back after each database round trip (pool checkout, BEGIN,
# each statement, COMMIT) while the parsing thread is busy in pure Python; at 5 ms per hand-over these waits
# made the writer, not the parser, the slow side of the pipeline (measured: 34.7-39.2 against 32.2-33.6 µs
# a row on PostgreSQL; docs/benchmarks.md). Process-wide, so it is counted: the last import to finish
# restores the previous value. Other threads of the process only see shorter time slices meanwhile.
_HANDOFF_SECONDS = 0.001
_handoff_lock = threading.Lock()
_handoff_users = 0
_handoff_saved = 0.0


@contextlib.contextmanager
def _quick_handoff() -> Iterator[None]:
    global _handoff_users, _handoff_saved
    with _handoff_lock:
        if _handoff_users == 0:
            _handoff_saved = sys.getswitchinterval()
            sys.setswitchinterval(min(_handoff_saved, _HANDOFF_SECONDS))
        _handoff_users += 1
    try:
        yield
    finally:
        with _handoff_lock:
            _handoff_users -= 1
            if _handoff_users == 0:
                sys.setswitchinterval(_handoff_saved)


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
    # One writer thread stores earlier batches while this thread parses the next: normalising numbers is
    # CPU work, storing is mostly waiting for the database, and both drivers release the GIL while they
    # wait. Batches are written one after another, in file order. Up to QUEUED_BATCHES wait for the writer,
    # so the two sides, which take about as long per batch, do not stall each other at every batch (a
    # handful of batches in memory, not a file). The first batches are smaller, so writing starts sooner.
    size = max(1, batch_size // 8)
    pending: collections.deque[Future[None]] = collections.deque()
    with _quick_handoff(), ThreadPoolExecutor(max_workers=1, thread_name_prefix="import-writer") as writer:
        for number, values in records:
            importer.report.rows += 1
            parsed = importer.parse(number, values)
            if parsed is None:
                continue
            primary = parsed[1]
            seen = batch.get(primary)
            if seen is not None:
                importer.report.duplicates_merged += 1
                batch[primary] = _merged(seen, parsed)
                continue
            batch[primary] = parsed
            if len(batch) >= size:
                if len(pending) >= QUEUED_BATCHES:
                    pending.popleft().result()  # re-raises a failed batch here
                pending.append(writer.submit(importer.write, batch))
                batch = {}
                size = min(batch_size, size * 2)
        while pending:
            pending.popleft().result()
    importer.flush(batch)
    return importer.report
