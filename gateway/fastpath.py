"""Hot-path statements executed straight on the database driver, inside the session's transaction.

The webhook path runs four to six statements per message and the guard one per check. SQLAlchemy spends
50-80 µs of Python executing each cached statement (building an execution context, processing
parameters, wrapping the cursor in a result) while SQLite itself needs 5-30 µs, so on this path the
ORM's machinery cost more than the database. A `Prepared` statement keeps everything that makes
SQLAlchemy worth having - the SQL is a Core construct compiled by SQLAlchemy for the dialect, with its
parameter style and its type conversions (`bind_processor` / `result_processor`) - and does once, at
first use per dialect, what SQLAlchemy otherwise re-does on every execution.

Driver errors are re-raised as SQLAlchemy's exceptions (`DBAPIError.instance`), with the connection
invalidated on a disconnect, so callers' retry logic (``OperationalError``, deadlocks, locked databases)
sees exactly what it would see from ``session.execute``.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

from sqlalchemy import Table, bindparam, event, insert
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ClauseElement

_Processor = Callable[[Any], Any] | None
_CONNECTION = "fastpath.connection"


@event.listens_for(Session, "after_transaction_end")
def _forget_connection(session: Session, _transaction: Any) -> None:
    session.info.pop(_CONNECTION, None)


@dataclass(frozen=True, slots=True)
class _Plan:
    """A statement compiled for one dialect: its SQL text and how to build and read its parameters."""

    sql: str
    positional: bool
    # (parameter name in the SQL, key the caller passes or None for a constant, constant value, processor)
    binds: tuple[tuple[str, str | None, Any, _Processor], ...]
    results: tuple[_Processor, ...]

    def parameters(self, params: Mapping[str, Any]) -> Any:
        """The driver's parameters (a tuple or a dict) for the caller's ``params``."""
        values = []
        for _name, key, constant, process in self.binds:
            value = constant if key is None else params[key]
            # None goes through the processor too, as in SQLAlchemy (a JSON column stores it as JSON null).
            values.append(process(value) if process is not None else value)
        if self.positional:
            return tuple(values)
        return {name: value for (name, *_), value in zip(self.binds, values, strict=True)}

    def row(self, raw: Sequence[Any]) -> tuple[Any, ...]:
        """A result row with SQLAlchemy's result conversions applied (e.g. timestamps on SQLite)."""
        return tuple(p(v) if p is not None else v for p, v in zip(self.results, raw, strict=True))


class Prepared:
    """A Core statement compiled once per dialect and executed on the session's driver connection."""

    __slots__ = ("_lock", "_plans", "statement")

    def __init__(self, statement: ClauseElement) -> None:
        self.statement = statement
        self._plans: dict[str, _Plan] = {}
        self._lock = threading.Lock()

    def _plan(self, dialect: Dialect) -> _Plan:
        plan = self._plans.get(dialect.name)
        if plan is None:
            with self._lock:
                plan = self._plans.get(dialect.name) or _compile(self.statement, dialect)
                self._plans[dialect.name] = plan
        return plan

    def rows(self, session: Session, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        """Execute with ``params``; every result row, converted."""
        connection = session.info.get(_CONNECTION)
        if connection is None:
            # Asking the session for its connection costs ~20 µs each time; it cannot change before the
            # transaction ends, which drops this entry (see `_forget_connection`).
            connection = session.info[_CONNECTION] = session.connection()
        dialect = connection.dialect
        plan = self._plan(dialect)
        driver = connection.connection.driver_connection
        parameters = plan.parameters(params)
        try:
            cursor = driver.execute(plan.sql, parameters)  # type: ignore[union-attr]
            raw = cursor.fetchall() if cursor.description else []
        except dialect.loaded_dbapi.Error as exc:
            _reraise(connection, dialect, plan.sql, parameters, exc)
        return [plan.row(r) for r in raw]

    def first(self, session: Session, params: Mapping[str, Any]) -> tuple[Any, ...] | None:
        """Execute; the first row, or None."""
        found = self.rows(session, params)
        return found[0] if found else None

    def scalar(self, session: Session, params: Mapping[str, Any]) -> Any:
        """Execute; the first column of the first row, or None."""
        found = self.rows(session, params)
        return found[0][0] if found else None


def _reraise(connection: Any, dialect: Dialect, sql: str, params: Any, exc: BaseException) -> NoReturn:
    # The same exception classes SQLAlchemy raises, so retry and error handling do not change; a broken
    # connection is invalidated so the pool does not hand it out again.
    disconnect = dialect.is_disconnect(exc, connection.connection.dbapi_connection, None)  # type: ignore[arg-type]
    if disconnect:
        connection.invalidate(exc)
    raise DBAPIError.instance(
        sql, params, exc, dialect.loaded_dbapi.Error, connection_invalidated=disconnect, dialect=dialect
    ) from exc


def _compile(statement: ClauseElement, dialect: Dialect) -> _Plan:
    compiled = statement.compile(dialect=dialect)
    assert isinstance(compiled, SQLCompiler)  # a DML or SELECT statement, never DDL
    if getattr(compiled, "insert_prefetch", None) or getattr(compiled, "update_prefetch", None):
        # Column defaults computed in Python would be skipped here: callers pass every column instead.
        raise ValueError("a prepared statement must not rely on Python-side column defaults")
    by_name = {name: bp for bp, name in compiled.bind_names.items()}
    order = compiled.positiontup if compiled.positional else list(by_name)
    binds: list[tuple[str, str | None, Any, _Processor]] = []
    for name in order or ():
        bp = by_name[name]
        process = bp.type.dialect_impl(dialect).bind_processor(dialect)
        if bp.unique:  # a literal in the statement (``kind == "message"``, ``LIMIT 1``)
            binds.append((name, None, bp.effective_value, process))
        else:
            binds.append((name, bp.key, None, process))
    columns = list(getattr(statement, "exported_columns", ()))
    results = tuple(c.type.dialect_impl(dialect).result_processor(dialect, None) for c in columns)
    return _Plan(compiled.string, bool(compiled.positional), tuple(binds), results)


@functools.lru_cache(maxsize=128)
def insert_ignore_statement(
    dialect: str, target: Table, columns: tuple[str, ...], conflict: tuple[str, ...]
) -> Prepared:
    """``INSERT ... ON CONFLICT (conflict) DO NOTHING RETURNING id`` for exactly ``columns``."""
    insert_for = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = (
        insert_for(target)
        .values({name: bindparam(name, type_=target.c[name].type) for name in columns})
        .on_conflict_do_nothing(index_elements=list(conflict))
        .returning(target.c.id)
    )
    return Prepared(stmt)


@functools.lru_cache(maxsize=128)
def insert_statement(target: Table, columns: tuple[str, ...]) -> Prepared:
    """``INSERT ... RETURNING id`` for exactly ``columns``."""
    stmt = insert(target).values({name: bindparam(name, type_=target.c[name].type) for name in columns})
    return Prepared(stmt.returning(target.c.id))


def with_defaults(target: Table, values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` plus the Python-side default of every column it leaves out (what Core's insert adds)."""
    row = dict(values)
    for column in target.columns:
        default = column.default
        if column.key in row or default is None or column.primary_key:
            continue
        if default.is_scalar:
            row[column.key] = default.arg  # type: ignore[attr-defined]
        elif default.is_callable:
            # SQLAlchemy wraps a zero-argument default so that it takes the execution context.
            row[column.key] = default.arg(None)  # type: ignore[attr-defined]
    return row
