"""Statements executed on the driver (`gateway.fastpath`) behave exactly as through SQLAlchemy.

On SQLite and PostgreSQL: same rows stored, same values read back (timestamps timezone-aware), literals
and defaults applied, driver errors raised as SQLAlchemy's exceptions, and the cached connection never
outlives its transaction. On PostgreSQL, a pooled connection the server closed is replaced at checkout.
"""

from __future__ import annotations

import select
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import bindparam, create_engine, text
from sqlalchemy.exc import IntegrityError
from sqlmodel import select as sql_select

from gateway.fastpath import Prepared, insert_statement, with_defaults
from gateway.models import ConsentEvent, OutboxMessage, table
from gateway.storage import enqueue, insert_ignore
from tests.conftest import PG_URL

_PG_ONLY = pytest.mark.skipif(not PG_URL, reason="TEST_DATABASE_URL is not set (CI sets it; see .ci/run)")
_OUTBOX = table(OutboxMessage)
_BY_RECIPIENT = Prepared(
    sql_select(_OUTBOX.c.id, _OUTBOX.c.status, _OUTBOX.c.created_at, _OUTBOX.c.headers)
    .where(_OUTBOX.c.recipient == bindparam("to"), _OUTBOX.c.kind == "message")
    .order_by(_OUTBOX.c.id)
    .limit(5)
)


def _outbox_row(key: str, **extra: Any) -> dict[str, Any]:
    return {"provider": "twilio", "recipient": "+14155550100", "body": "hi", "idempotency_key": key, **extra}


def test_rows_match_what_the_orm_reads(gw: Any) -> None:
    created = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    with gw.db.transaction() as s:
        first = enqueue(s, _outbox_row("k1", created_at=created, headers={"X-A": "1"}))
        assert enqueue(s, _outbox_row("k1")) is None  # ON CONFLICT DO NOTHING: no second id
        enqueue(s, _outbox_row("k2", kind="forward"))  # filtered out by the literal kind == "message"
    with gw.db.read() as s:
        rows = _BY_RECIPIENT.rows(s, {"to": "+14155550100"})
        orm = s.execute(sql_select(OutboxMessage).where(OutboxMessage.id == first)).scalar_one()
    assert rows == [(first, "queued", created, {"X-A": "1"})]
    assert orm.created_at == created and orm.created_at.tzinfo is not None
    assert orm.status == "queued" and orm.kind == "message"  # Python-side defaults were applied


def test_with_defaults_adds_column_defaults_only_where_missing() -> None:
    row = with_defaults(_OUTBOX, {"provider": "x", "status": "sent"})
    assert row["status"] == "sent"
    assert row["kind"] == "message" and row["category"] == "marketing" and row["attempts"] == 0
    # No column default, no value: left to the caller (Core's insert would not invent one either).
    assert "created_at" not in row and "id" not in row


def test_driver_errors_are_sqlalchemy_errors_and_roll_back(gw: Any) -> None:
    events = table(ConsentEvent)
    bad = {"channel": "sms", "address": "+14155550100", "scope": "acme", "action": "opt_out", "source": None,
           "evidence": {}, "occurred_at": datetime.now(UTC), "recorded_at": datetime.now(UTC)}
    bad = with_defaults(events, bad)
    with pytest.raises(IntegrityError), gw.db.transaction() as s:
        enqueue(s, _outbox_row("before-error"))
        insert_statement(events, tuple(bad)).rows(s, bad)  # source is NOT NULL
    with gw.db.read() as s:
        assert _BY_RECIPIENT.rows(s, {"to": "+14155550100"}) == []  # the whole transaction rolled back


def test_cached_connection_does_not_outlive_its_transaction(gw: Any) -> None:
    with gw.db.read() as s:
        _BY_RECIPIENT.rows(s, {"to": "nobody"})
        assert "fastpath.connection" in s.info
        s.commit()
        assert "fastpath.connection" not in s.info
        with gw.db.transaction() as w:
            enqueue(w, _outbox_row("later"))
        # A new transaction on the same session takes a connection (and a snapshot) of its own.
        assert [r[1] for r in _BY_RECIPIENT.rows(s, {"to": "+14155550100"})] == ["queued"]


def test_insert_ignore_is_atomic_per_key(gw: Any) -> None:
    at = datetime.now(UTC) - timedelta(days=1)
    values = {"channel": "sms", "address": "+14155550100", "scope": "acme", "source": "import", "since": at,
              "event_at": at}
    from gateway.models import OptOut

    with gw.db.transaction() as s:
        ids = [insert_ignore(s, table(OptOut), values, ("channel", "address", "scope")) for _ in range(3)]
    assert ids[0] is not None and ids[1:] == [None, None]


def _terminate(gw: Any, pid: int, fd: int) -> None:
    """Have the server close backend ``pid``; return once its goodbye reached the socket ``fd``."""
    admin = create_engine(gw.db.url)
    with admin.connect() as conn:
        assert conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid}).scalar_one()
    admin.dispose()
    # Wait for the server's goodbye to reach the pooled connection's socket (an event, not a timer).
    readable, _, _ = select.select([fd], [], [], 10)
    assert readable


# Server-closed connections exist only on PostgreSQL.
@pytest.mark.parametrize("db_url", [pytest.param("postgresql", marks=_PG_ONLY)], indirect=True)
def test_postgres_replaces_a_connection_the_server_closed(gw: Any) -> None:
    with gw.db.read() as s:
        before = s.execute(text("SELECT pg_backend_pid()")).scalar_one()
        fd = s.connection().connection.dbapi_connection.fileno()  # type: ignore[union-attr]
    _terminate(gw, before, fd)
    with gw.db.transaction() as s:  # no error: the pool discarded the dead connection at checkout
        after = s.execute(text("SELECT pg_backend_pid()")).scalar_one()
    assert after != before


@pytest.mark.parametrize("db_url", [pytest.param("postgresql", marks=_PG_ONLY)], indirect=True)
def test_postgres_lookups_keep_autocommit_connections_and_replace_closed_ones(gw: Any) -> None:
    """Lookups have their own pool of autocommit connections, checked at checkout like the main pool's."""
    with gw.db.lookup() as s:
        before = s.execute(text("SELECT pg_backend_pid()")).scalar_one()
        dbapi = s.connection().connection.dbapi_connection
        assert dbapi.autocommit is True  # type: ignore[union-attr]
        fd = dbapi.fileno()  # type: ignore[union-attr]
    with gw.db.read() as s:  # the main pool's connections are not autocommit ones
        assert s.connection().connection.dbapi_connection.autocommit is False  # type: ignore[union-attr]
    _terminate(gw, before, fd)
    with gw.db.lookup() as s:
        after = s.execute(text("SELECT pg_backend_pid()")).scalar_one()
        replacement = s.connection().connection.dbapi_connection
    assert after != before and not replacement.closed  # type: ignore[union-attr]
    gw.db.dispose()  # closes the lookup pool too
    assert replacement.closed  # type: ignore[union-attr]
