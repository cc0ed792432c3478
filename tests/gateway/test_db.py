"""The SQLite writer queue (shared per file, re-entrant per thread, exclusive across threads) and lookups."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

from gateway.db import Database, WriterQueue


def test_queue_is_shared_per_file(tmp_path: Path) -> None:
    a = Database(f"sqlite:///{tmp_path}/x.db")
    b = Database(f"sqlite:///{tmp_path}/x.db")
    assert a._writers is b._writers is not None


def test_queue_is_reentrant_in_one_thread(tmp_path: Path) -> None:
    queue = WriterQueue(str(tmp_path / "q.lock"))
    with queue.hold(), queue.hold():  # would wait for itself forever if not re-entrant
        pass
    with queue.hold():  # released correctly after the nested use
        pass


def test_queue_excludes_other_threads(tmp_path: Path) -> None:
    queue = WriterQueue(str(tmp_path / "q.lock"))
    inside = threading.Event()
    release = threading.Event()
    order: list[str] = []

    def holder() -> None:
        with queue.hold():
            order.append("holder in")
            inside.set()
            release.wait(10)
            order.append("holder out")

    def waiter() -> None:
        with queue.hold():
            order.append("waiter in")

    t1 = threading.Thread(target=holder)
    t1.start()
    assert inside.wait(10)
    t2 = threading.Thread(target=waiter)
    t2.start()
    release.set()
    t1.join(10)
    t2.join(10)
    assert order == ["holder in", "holder out", "waiter in"]


def test_lookup_sessions_hold_no_transaction(gw: Any, db_url: str) -> None:
    """A lookup's statement is its own transaction: nothing stays open (or pinned to a snapshot) after it."""
    with gw.db.lookup() as s:
        if db_url.startswith("postgresql"):
            pid = s.execute(text("SELECT pg_backend_pid()")).scalar_one()
            admin = create_engine(gw.db.url)
            with admin.connect() as conn:
                state = conn.execute(text("SELECT state FROM pg_stat_activity WHERE pid = :p"), {"p": pid})
                assert state.scalar_one() == "idle"  # a read() session would be "idle in transaction"
            admin.dispose()
        else:
            assert s.execute(text("SELECT count(*) FROM outbox")).scalar_one() == 0
            with gw.db.transaction() as w:  # another writer commits meanwhile
                w.execute(text(
                    "INSERT INTO outbox (kind, channel, provider, recipient, scope, category, body, headers, "
                    "status, attempts, max_attempts, idempotency_key, next_attempt_at, created_at) VALUES "
                    "('message', 'sms', 'x', '+1', 's', 'marketing', 'b', '{}', 'queued', 0, 1, 'k', "
                    "'2026-01-01 00:00:00', '2026-01-01 00:00:00')"
                ))
            # A deferred read transaction would still see its first snapshot (0 rows).
            assert s.execute(text("SELECT count(*) FROM outbox")).scalar_one() == 1


def test_sqlite_connections_stay_autocommit_at_the_driver_after_a_lookup(tmp_path: Path) -> None:
    """Our BEGIN is the only one: the driver's implicit transactions stay off, even after a lookup reset."""
    db = Database(f"sqlite:///{tmp_path}/x.db")
    with db.lookup() as s:
        s.execute(text("SELECT 1"))
    with db.transaction() as s:
        s.execute(text("SELECT 1"))
        assert s.connection().connection.dbapi_connection.isolation_level is None  # type: ignore[union-attr]
    db.dispose()
