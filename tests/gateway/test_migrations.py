"""The Alembic migrations create exactly the schema the models describe, on both databases."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlmodel import SQLModel

from gateway import migrate
from gateway.db import Database


def test_models_match_migrations(db_url: str) -> None:
    db = Database(db_url)
    try:
        with db.engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": False})
            diff = compare_metadata(ctx, SQLModel.metadata)
    finally:
        db.dispose()
    assert diff == [], f"models and migrations differ: {diff}"


def test_single_head() -> None:
    script = ScriptDirectory.from_config(migrate.alembic_config("sqlite://"))
    assert len(script.get_heads()) == 1, "merge migration heads before release"


def test_upgrade_is_idempotent(db_url: str) -> None:
    db = Database(db_url)
    try:
        migrate.upgrade(db)  # already at head: a second run changes nothing and does not fail
        with db.engine.connect() as conn:
            heads = MigrationContext.configure(conn).get_current_heads()
    finally:
        db.dispose()
    script = ScriptDirectory.from_config(migrate.alembic_config(db_url))
    assert set(heads) == set(script.get_heads())
