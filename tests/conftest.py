"""Shared fixtures: a database per test on SQLite and on PostgreSQL, the app, its client.

Every test that takes `db_url` (directly or through `gw`, `app`, `client`) runs twice: on SQLite and on
PostgreSQL. PostgreSQL comes from ``$TEST_DATABASE_URL``; this process creates its own database there
(so parallel runs never share tables), migrates it once, and empties every table before each test.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from sqlalchemy import create_engine, text

from gateway.db import Database, normalize_url
from gateway.models import tables

PG_URL = os.environ.get("TEST_DATABASE_URL")

# Property tests: no per-example deadline (a loaded CI machine is not a failure), and in CI a fixed
# example sequence, so a red run is reproducible and a green one does not depend on luck.
hypothesis_settings.register_profile("default", deadline=None)
hypothesis_settings.register_profile(
    "ci", deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
hypothesis_settings.load_profile("ci" if os.environ.get("CI") else "default")

TEST_ENV = {
    "TWILIO_ACCOUNT_SID": "AC" + "1" * 32,
    "TWILIO_AUTH_TOKEN": "twilio-test-token",
    "CLICKSEND_USERNAME": "cs-user",
    "CLICKSEND_API_KEY": "cs-key",
    "CLICKSEND_WEBHOOK_TOKEN": "cs-webhook-token",
    "OPTOUT_API_TOKEN": "api-test-token",
    "OPTOUT_SECRET_KEY": "secret-key-for-tests-only",
}

OUR_TWILIO = "+14155550199"
OUR_CLICKSEND = "+61422222222"
OUR_OTHER_BRAND = "+14155550188"


def base_config(db_url: str) -> dict[str, Any]:
    """The configuration most tests use: Twilio, ClickSend and console, two scopes."""
    return {
        "database_url": db_url,
        "public_url": "https://gateway.example.com",
        "brand": "Acme",
        "support": "help@acme.example",
        "default_provider": "twilio",
        "providers": {"twilio": {}, "clicksend": {}, "console": {}},
        "senders": [
            {"address": OUR_TWILIO, "provider": "twilio", "scope": "acme"},
            {"address": OUR_CLICKSEND, "provider": "clicksend", "scope": "acme-au"},
            {"address": OUR_OTHER_BRAND, "provider": "twilio", "scope": "other-brand"},
        ],
        "outbox": {"base_delay": 1, "max_delay": 60, "max_attempts": 4},
    }


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from gateway import migrate

    path = tmp_path_factory.mktemp("template") / "template.db"
    db = Database(f"sqlite:///{path}")
    migrate.upgrade(db)
    db.dispose()
    return path


@pytest.fixture(scope="session")
def _pg_database() -> Iterator[str]:
    assert PG_URL
    name = f"optout_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = create_engine(normalize_url(PG_URL), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = normalize_url(PG_URL).rsplit("/", 1)[0] + "/" + name
    from gateway import migrate

    db = Database(url)
    migrate.upgrade(db)
    db.dispose()
    yield url
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _backends() -> list[Any]:
    reason = "TEST_DATABASE_URL is not set (CI sets it; see .ci/run)"
    pg = pytest.param("postgresql", marks=pytest.mark.skipif(not PG_URL, reason=reason))
    return ["sqlite", pg]


@pytest.fixture(params=_backends())
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated, empty database: a copy of the SQLite template, or the emptied PostgreSQL database."""
    if request.param == "sqlite":
        path = tmp_path / "optout.db"
        shutil.copy(request.getfixturevalue("_sqlite_template"), path)
        return f"sqlite:///{path}"
    url: str = request.getfixturevalue("_pg_database")
    engine = create_engine(url)
    names = ", ".join(f'"{t.name}"' for t in tables() if t.name != "alembic_version")
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        conn.execute(text(
            "INSERT INTO contact_lists (name, channel, scope, system, created_at) "
            "VALUES ('Opt-Out List', 'sms', '*', true, now())"
        ))
    engine.dispose()
    return url


@pytest.fixture
def config(db_url: str) -> dict[str, Any]:
    """The test configuration mapping (tests may edit it before `app` is built)."""
    return base_config(db_url)


@pytest.fixture
def env() -> dict[str, str]:
    """The fake credential environment the app reads."""
    return dict(TEST_ENV)


@pytest.fixture
def app(config: dict[str, Any], env: dict[str, str]) -> Iterator[Any]:
    """The Flask app built by the factory, on the test database."""
    from gateway.app import create_app

    application = create_app(config, env)
    application.testing = True
    yield application
    application.extensions["optout"].db.dispose()


@pytest.fixture
def gw(app: Any) -> Any:
    """The app's `Gateway` (settings, database, rules, adapters)."""
    return app.extensions["optout"]


@pytest.fixture
def client(app: Any) -> Any:
    """A Flask test client."""
    return app.test_client()
