"""Database engines and transactions for SQLite (embedded default) and PostgreSQL (scale-out).

Write transactions on SQLite start with ``BEGIN IMMEDIATE``: it takes the write lock up front, so two
writers queue on ``busy_timeout`` instead of one failing with "database is locked" when it upgrades a read
lock. Before that, `Database.transaction` queues its writers on an OS file lock beside the database: a
waiting process is woken the moment the lock is free, whereas SQLite's busy handler polls with sleeps of
1 ms and more, which under load left the database idle between writers and doubled webhook latency.
PostgreSQL uses ordinary transactions and row locks (``FOR UPDATE SKIP LOCKED`` in the outbox).
"""

from __future__ import annotations

import contextlib
import os
import select
import threading
from collections.abc import Iterator
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import Session, sessionmaker


def normalize_url(url: str) -> str:
    """Use the psycopg 3 driver for plain ``postgresql://`` URLs."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # Autocommit at the driver level: SQLAlchemy's begin event below then issues BEGIN itself, which is
    # the documented way to control SQLite transaction modes with pysqlite.
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def _sqlite_checkout(dbapi_conn: Any, _record: Any, _proxy: Any) -> None:
    # After an autocommit `lookup`, SQLAlchemy resets the connection's isolation level on checkin, which for
    # pysqlite turns the driver's own implicit transactions back on (isolation_level ""); every other use
    # relies on `_sqlite_begin` alone, so put autocommit-at-the-driver back before the next use.
    dbapi_conn.isolation_level = None


def _sqlite_begin(conn: Any) -> None:
    options = conn.get_execution_options()
    if options.get("isolation_level") == "AUTOCOMMIT":
        return  # `Database.lookup`: each statement is its own transaction
    mode = "IMMEDIATE" if options.get("sqlite_write") else "DEFERRED"
    # Straight to the driver: BEGIN needs no statement compilation or result handling, and going through
    # `exec_driver_sql` cost a third of an empty write transaction. pysqlite's own commit() ends it.
    conn.connection.dbapi_connection.execute(f"BEGIN {mode}")


def _discard_if_closed(dbapi_conn: Any, _record: Any, _proxy: Any) -> None:
    """Pool checkout: refuse a connection the server has closed, without a round trip.

    An idle connection's socket has nothing to read; when it is readable, the server has sent its
    termination notice or closed it (a restart, ``pg_terminate_backend``, an idle timeout). Raising
    `DisconnectionError` makes the pool drop it and hand out a fresh connection instead.
    """
    if dbapi_conn.closed or dbapi_conn.broken:
        raise DisconnectionError("connection closed")
    try:
        readable, _, _ = select.select([dbapi_conn.fileno()], [], [], 0)
    except (OSError, ValueError):
        raise DisconnectionError("connection socket unusable") from None
    if readable:
        raise DisconnectionError("server closed the connection")


class WriterQueue:
    """Serialises SQLite write transactions across threads and processes without polling.

    A blocking ``flock`` on a separate lock file (never the database file itself: closing any descriptor
    of that file would drop SQLite's own POSIX locks). Where ``flock`` does not exist, only threads of
    one process queue here and processes fall back to SQLite's busy handler. One queue per database file
    per process (see `_writer_queue`), and re-entrant per thread: a transaction opened inside another on
    the same thread must not wait for itself forever (SQLite's busy timeout then reports it instead).
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._threads = threading.RLock()
        self._local = threading.local()
        self._fd: int | None = None
        self._pid = 0

    def _descriptor(self) -> int:
        # A forked child must not share its parent's open file description (it would share the lock).
        if self._fd is None or self._pid != os.getpid():
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            self._pid = os.getpid()
        return self._fd

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        """Hold the lock for the duration of the block."""
        depth = getattr(self._local, "depth", 0)
        if depth:
            self._local.depth = depth + 1
            try:
                yield
            finally:
                self._local.depth = depth
            return
        with self._threads:
            try:
                import fcntl
            except ImportError:  # not a POSIX system
                fcntl = None  # type: ignore[assignment]
            fd = self._descriptor()
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)
            self._local.depth = 1
            try:
                yield
            finally:
                self._local.depth = 0
                if fcntl is not None:
                    fcntl.flock(fd, fcntl.LOCK_UN)


_QUEUES: dict[str, WriterQueue] = {}
_QUEUES_LOCK = threading.Lock()


def _writer_queue(url: str) -> WriterQueue | None:
    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    path = os.path.abspath(f"{database}-writer.lock")
    # Shared by every Database object of this process on the same file, so two engines in one thread
    # (a test's second Gateway, a CLI command) cannot lock each other out.
    with _QUEUES_LOCK:
        return _QUEUES.setdefault(path, WriterQueue(path))


class Database:
    """One engine per process, with a read session factory and a write-transaction context manager."""

    def __init__(self, url: str, *, pool_size: int = 10, echo: bool = False) -> None:
        self.url = normalize_url(url)
        self.dialect = make_url(self.url).get_backend_name()
        kwargs: dict[str, Any] = {"echo": echo, "future": True}
        if self.dialect == "sqlite":
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        else:
            # No pool_pre_ping: its SELECT 1 is a round trip before every transaction (a sixth of a webhook's
            # time on PostgreSQL). `_discard_if_closed` notices a connection the server has closed without
            # one, and the webhook route retries a transaction whose connection broke mid-way.
            kwargs.update(pool_size=pool_size, max_overflow=pool_size)
        self.engine: Engine = create_engine(self.url, **kwargs)
        if self.dialect == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
            event.listen(self.engine, "begin", _sqlite_begin)
            event.listen(self.engine, "checkout", _sqlite_checkout)
        else:
            event.listen(self.engine, "checkout", _discard_if_closed)
        self._write_engine = self.engine.execution_options(sqlite_write=True)
        self._read = sessionmaker(self.engine, expire_on_commit=False)
        # Lookups run in autocommit. On PostgreSQL they get a small pool of their own whose connections stay
        # in autocommit: switching a shared connection in and out of it at every checkout and return cost
        # about a fifth of a guard check's CPU (~50 of ~230 µs). SQLite has no server connections to spare
        # that on, and its lookups skip BEGIN through `_sqlite_begin`.
        self._lookup_engine: Engine | None = None
        lookups: Engine
        if self.dialect == "sqlite":
            lookups = self.engine.execution_options(isolation_level="AUTOCOMMIT")
        else:
            half = max(1, pool_size // 2)
            lookups = self._lookup_engine = create_engine(
                self.url, echo=echo, isolation_level="AUTOCOMMIT", pool_size=half, max_overflow=half
            )
            event.listen(lookups, "checkout", _discard_if_closed)
        self._lookup = sessionmaker(lookups, expire_on_commit=False)
        self._write = sessionmaker(self._write_engine, expire_on_commit=False)
        self._writers = _writer_queue(self.url) if self.dialect == "sqlite" else None

    @property
    def is_postgres(self) -> bool:
        """True on PostgreSQL (row locks with SKIP LOCKED are available)."""
        return self.dialect == "postgresql"

    @contextlib.contextmanager
    def read(self) -> Iterator[Session]:
        """A session for reads; rolled back at the end."""
        with self._read() as session:
            yield session

    @contextlib.contextmanager
    def lookup(self) -> Iterator[Session]:
        """A session for a single-statement read (a guard check, a status lookup), in autocommit mode.

        No ``BEGIN`` and no ``ROLLBACK`` around the one query: on PostgreSQL one round trip instead of
        three. Several reads that must agree with each other belong in `read`, which has one snapshot.
        """
        with self._lookup() as session:
            yield session

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Session]:
        """A write transaction: committed when the block ends normally, rolled back on any exception."""
        queue = self._writers.hold() if self._writers is not None else contextlib.nullcontext()
        with queue, self._write() as session, session.begin():
            yield session

    def dispose(self) -> None:
        """Close pooled connections (after fork, or at shutdown)."""
        self.engine.dispose()
        if self._lookup_engine is not None:
            self._lookup_engine.dispose()
