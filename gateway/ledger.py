"""The Opt-Out List and the consent ledger: queries, exports, manual opt-outs, imports, re-subscribes.

Everything here that changes consent goes through `gateway.storage.apply_consent`, so each change is a
ledger row with its evidence (who, when, how, why). Reads page by id (a keyset cursor), which stays fast
and stable however large the tables grow; exports walk the same pages, so memory stays flat.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import IO, Any

from sqlalchemy import Select
from sqlalchemy.orm import Session
from sqlmodel import SQLModel, col, select

from gateway.addresses import normalize_address
from gateway.errors import InvalidAddressError, NotFoundError, PayloadError, PolicyError
from gateway.importer import Reject, csv_records, header_key, open_text
from gateway.models import ALL_SCOPES, ConsentEvent, OptOut
from gateway.runtime import Gateway
from gateway.storage import ConsentChange, Evidence, active_opt_out, apply_consent

#: Every ledger column, in the order exports write them.
EVENT_FIELDS = (
    "id",
    "occurred_at",
    "recorded_at",
    "channel",
    "address",
    "scope",
    "action",
    "changed",
    "source",
    "rule",
    "raw_text",
    "provider",
    "provider_message_id",
    "reason",
    "actor",
    "evidence",
)
OPT_OUT_FIELDS = ("id", "channel", "address", "scope", "opted_out", "source", "rule", "since", "event_at")
IMPORT_BATCH = 500
_ADDRESS_COLUMNS = (
    "address",
    "phone",
    "phone_number",
    "mobile",
    "number",
    "msisdn",
    "email",
    "email_address",
)
_DATE_COLUMNS = ("opted_out_at", "date", "since", "timestamp", "unsubscribed_at", "created_at")
_REASON_COLUMNS = ("reason", "note", "notes")


@dataclass(frozen=True, slots=True)
class Filters:
    """Filters shared by the opt-out and ledger queries (all optional)."""

    channel: str | None = None
    scope: str | None = None
    source: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    address: str | None = None


def _filtered(stmt: Select[Any], model: type[SQLModel], filters: Filters, time_column: str) -> Select[Any]:
    for name in ("channel", "scope", "source", "address"):
        value = getattr(filters, name)
        if value is not None:
            stmt = stmt.where(col(getattr(model, name)) == value)
    moment = col(getattr(model, time_column))
    if filters.since is not None:
        stmt = stmt.where(moment >= filters.since)
    if filters.until is not None:
        stmt = stmt.where(moment < filters.until)
    return stmt


def opt_out_page(
    session: Session, filters: Filters, after: int | None = None, limit: int = 100
) -> list[OptOut]:
    """Active opt-outs in id order; ``since``/``until`` apply to when the person opted out."""
    stmt = select(OptOut).where(col(OptOut.opted_out)).order_by(col(OptOut.id)).limit(limit)
    if after is not None:
        stmt = stmt.where(col(OptOut.id) > after)
    return list(session.execute(_filtered(stmt, OptOut, filters, "since")).scalars())


def event_page(
    session: Session, filters: Filters, after: int | None = None, limit: int = 100
) -> list[ConsentEvent]:
    """Ledger rows in event (id) order; ``since``/``until`` apply to when the event happened."""
    stmt = select(ConsentEvent).order_by(col(ConsentEvent.id)).limit(limit)
    if after is not None:
        stmt = stmt.where(col(ConsentEvent.id) > after)
    return list(session.execute(_filtered(stmt, ConsentEvent, filters, "occurred_at")).scalars())


def _walk(gw: Gateway, page: Callable[..., Sequence[Any]], filters: Filters, size: int) -> Iterator[Any]:
    after: int | None = None
    while True:
        with gw.db.read() as session:
            rows = page(session, filters, after, size)
        yield from rows
        if len(rows) < size:
            return
        after = rows[-1].id


def iter_events(gw: Gateway, filters: Filters, size: int = 1000) -> Iterator[ConsentEvent]:
    """Every matching ledger row, in order, a page at a time."""
    return _walk(gw, event_page, filters, size)


def iter_opt_outs(gw: Gateway, filters: Filters, size: int = 1000) -> Iterator[OptOut]:
    """Every matching active opt-out, in order, a page at a time."""
    return _walk(gw, opt_out_page, filters, size)


def record_dict(row: SQLModel, fields: Sequence[str]) -> dict[str, Any]:
    """A row as a JSON-ready dict with ``fields`` in order (times in ISO 8601 UTC)."""
    out: dict[str, Any] = {}
    for name in fields:
        value = getattr(row, name)
        out[name] = value.isoformat() if isinstance(value, datetime) else value
    return out


def write_export(rows: Iterator[SQLModel], fields: Sequence[str], out: IO[str], fmt: str) -> int:
    """Write rows as CSV (header first; JSON columns as JSON text) or JSON Lines; rows written."""
    n = 0
    writer = csv.DictWriter(out, fieldnames=list(fields)) if fmt == "csv" else None
    if writer is not None:
        writer.writeheader()
    for row in rows:
        data = record_dict(row, fields)
        if writer is not None:
            writer.writerow({k: json.dumps(v) if isinstance(v, dict) else v for k, v in data.items()})
        else:
            out.write(json.dumps(data, ensure_ascii=False) + "\n")
        n += 1
    return n


# ---- changing consent -------------------------------------------------------------------------------


def add_opt_out(
    session: Session,
    gw: Gateway,
    *,
    channel: str,
    address: str,
    scope: str = ALL_SCOPES,
    source: str = "api",
    reason: str | None = None,
    actor: str | None = None,
    occurred_at: datetime | None = None,
    details: dict[str, Any] | None = None,
) -> list[ConsentChange]:
    """Record an opt-out made outside the message path (support ticket, web form, old system).

    Scope ``*`` (the default) opts the address out of every scope, including scopes configured later.
    """
    normalized = _address(gw, channel, address)
    evidence = Evidence(
        source=source, occurred_at=occurred_at, reason=reason, actor=actor, details=details or None
    )
    return apply_consent(
        session, channel=channel, address=normalized, scope=scope, opted_out=True, evidence=evidence
    )


def resubscribe(
    session: Session,
    gw: Gateway,
    *,
    channel: str,
    address: str,
    reason: str,
    scope: str | None = None,
    source: str = "api",
    actor: str | None = None,
) -> list[ConsentChange]:
    """An operator lifts an opt-out: allowed only by ``compliance.operator_resubscribe: with_reason``.

    ``scope`` None lifts every scope the address is opted out of. The ledger keeps the reason and actor.
    """
    if gw.settings.compliance.operator_resubscribe != "with_reason":
        raise PolicyError(
            "operator re-subscribe is denied by policy (compliance.operator_resubscribe: deny): only the "
            "person can opt back in, by texting START or through the email preference page"
        )
    if not reason or not reason.strip():
        raise PayloadError("a re-subscribe needs a reason", field="reason")
    normalized = _address(gw, channel, address)
    state = active_opt_out(session, channel, normalized, scope)
    if state is None:
        raise NotFoundError(
            f"the address is not opted out of {channel}" + (f" in scope {scope!r}" if scope else "")
        )
    return apply_consent(
        session,
        channel=channel,
        address=normalized,
        # Without a scope: every scope the address is out of (apply_consent adds the others to this one).
        scope=scope or state.scope,
        opted_out=False,
        evidence=Evidence(source=source, reason=reason.strip(), actor=actor),
        all_scopes=scope is None,
    )


def _address(gw: Gateway, channel: str, address: str) -> str:
    if channel not in ("sms", "email"):
        raise PayloadError("channel must be sms or email", field="channel")
    try:
        return normalize_address(channel, address, gw.settings.default_region)
    except InvalidAddressError as exc:
        raise InvalidAddressError(str(exc), field="address") from None


@dataclass
class OptOutImportReport:
    """What an opt-out import did: rows read, ledgered, that changed the state, and rejected."""

    rows: int = 0
    recorded: int = 0
    changed: int = 0
    rejected: int = 0

    def as_dict(self) -> dict[str, int]:
        """The counts as a plain dict."""
        return asdict(self)


def import_opt_outs(
    gw: Gateway,
    stream: IO[bytes],
    *,
    channel: str,
    scope: str = ALL_SCOPES,
    actor: str | None = None,
    filename: str | None = None,
    on_progress: Callable[[int], None] | None = None,
    on_reject: Callable[[Reject], None] | None = None,
) -> OptOutImportReport:
    """Import previously opted-out people from a CSV (source ``import``), in batches.

    Columns: the address (``address``, ``phone`` or ``email`` and common spellings), optionally ``scope``,
    the original opt-out time (``opted_out_at``/``date``, ISO 8601) and a ``reason``. The file name, row
    number and the row itself are kept as evidence on each ledger row.
    """
    if channel not in ("sms", "email"):
        raise PayloadError("channel must be sms or email", field="channel")
    report = OptOutImportReport()

    def reject(row: int, column: str, value: str, why: str) -> None:
        report.rejected += 1
        if on_reject is not None:
            on_reject(Reject(row, column, value, why))

    records = csv_records(open_text(stream, on_progress))
    first = next(records, None)
    if first is None:
        raise PayloadError("the file is empty: its first row must name the columns", field="file")
    header = [header_key(h) for h in first[1]]
    where = {
        kind: next((i for i, h in enumerate(header) if h in names), None)
        for kind, names in (
            ("address", _ADDRESS_COLUMNS),
            ("date", _DATE_COLUMNS),
            ("reason", _REASON_COLUMNS),
            ("scope", ("scope",)),
        )
    }
    if where["address"] is None:
        raise PayloadError("no address column (address, phone or email)", field="file")
    batch: list[tuple[int, str, str, datetime | None, str | None, dict[str, str]]] = []

    def value(values: list[str], kind: str) -> str:
        index = where[kind]
        return values[index].strip() if index is not None and index < len(values) else ""

    def flush() -> None:
        with gw.db.transaction() as session:
            for number, address, row_scope, at, why, raw in batch:
                changes = apply_consent(
                    session,
                    channel=channel,
                    address=address,
                    scope=row_scope,
                    opted_out=True,
                    evidence=Evidence(
                        source="import",
                        occurred_at=at,
                        reason=why,
                        actor=actor,
                        details={"file": filename, "row": number, "raw": raw},
                    ),
                )
                report.recorded += 1
                report.changed += any(c.changed for c in changes)
        batch.clear()

    for number, values in records:
        report.rows += 1
        raw_address = value(values, "address")
        try:
            address = normalize_address(channel, raw_address, gw.settings.default_region)
        except InvalidAddressError:
            reject(number, first[1][where["address"]], raw_address, f"invalid {channel} address")
            continue
        at: datetime | None = None
        raw_date = value(values, "date")
        if raw_date:
            try:
                at = parse_time(raw_date, "date")
            except PayloadError:
                reject(number, "date", raw_date, "not an ISO 8601 date or time")
                continue
        raw = dict(zip(first[1], values, strict=False))
        batch.append(
            (number, address, value(values, "scope") or scope, at, value(values, "reason") or None, raw)
        )
        if len(batch) >= IMPORT_BATCH:
            flush()
    if batch:
        flush()
    return report


def parse_time(text: str, field: str) -> datetime:
    """An ISO 8601 date or time; a time without a zone is UTC. `PayloadError` naming ``field`` otherwise."""
    from datetime import UTC

    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise PayloadError(f"{field} must be an ISO 8601 date or time", field=field) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
