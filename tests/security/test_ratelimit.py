"""Rate limits on the public endpoints: forged webhooks and /u/ pages are throttled per client, providers never."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.app import create_app
from gateway.errors import ConfigError
from tests.conftest import TEST_ENV
from tests.gateway.helpers import inbound_count, post_twilio, twilio_form

SMALL = {"webhooks": "5/minute", "pages": "3/minute"}


@pytest.fixture
def limited(config: dict[str, Any]) -> Any:
    """An app whose budgets are small enough to spend in a test."""
    config["rate_limit"] = dict(SMALL)
    app = create_app(config, TEST_ENV)
    yield app
    app.extensions["optout"].db.dispose()


def forged(client: Any, addr: str = "203.0.113.7", **headers: str) -> Any:
    """A webhook with a wrong signature, from ``addr``."""
    return client.post(
        "/webhooks/twilio/inbound",
        data=twilio_form("STOP"),
        headers={"X-Twilio-Signature": "AAAA", **headers},
        environ_base={"REMOTE_ADDR": addr},
    )


def test_forged_webhooks_are_cut_off_with_retry_after(limited: Any) -> None:
    client = limited.test_client()
    assert [forged(client).status_code for _ in range(5)] == [403] * 5
    refused = forged(client)
    assert refused.status_code == 429
    assert refused.mimetype == "application/problem+json"
    assert refused.get_json()["error"] == "rate_limited"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    # Another client still has its whole budget.
    assert forged(client, addr="198.51.100.9").status_code == 403


def test_verified_webhooks_are_never_throttled(limited: Any) -> None:
    client = limited.test_client()
    # Far past the budget of 5: a provider's burst of genuine STOPs is all accepted.
    for i in range(12):
        assert post_twilio(client, twilio_form("STOP", sender=f"+1415555{1000 + i}", sid=f"SM-RL-{i}")).status_code == 200
    assert inbound_count(limited.extensions["optout"]) == 12


def test_a_throttled_client_stays_refused_before_verification(limited: Any) -> None:
    client = limited.test_client()
    for _ in range(5):
        forged(client, addr="127.0.0.1")  # the address the test client's genuine requests come from
    # Even a correctly signed request from that client waits out the window: the limiter runs first,
    # so a flood costs no signature check, no body parsing and no database work.
    assert post_twilio(client, twilio_form("STOP", sid="SM-AFTER")).status_code == 429
    assert inbound_count(limited.extensions["optout"]) == 0


def test_pages_under_u_count_every_request(limited: Any) -> None:
    client = limited.test_client()
    codes = [client.get(f"/u/not-a-token-{i}").status_code for i in range(4)]
    assert codes[:3] != [429] * 3 and codes[3] == 429
    assert client.get("/healthz").status_code == 200, "other paths are not limited"


def test_forwarded_for_is_trusted_only_when_configured(config: dict[str, Any]) -> None:
    config["rate_limit"] = {**SMALL, "trusted_proxies": 1}
    app = create_app(config, TEST_ENV)
    client = app.test_client()
    via_proxy = {"X-Forwarded-For": "192.0.2.50"}
    for _ in range(5):
        forged(client, addr="10.0.0.1", **via_proxy)
    assert forged(client, addr="10.0.0.1", **via_proxy).status_code == 429
    # Same proxy, another client behind it: its own budget.
    assert forged(client, addr="10.0.0.1", **{"X-Forwarded-For": "192.0.2.51"}).status_code == 403
    # A client cannot escape by prepending its own entries: only the proxy's is read.
    spoofed = {"X-Forwarded-For": "1.2.3.4, 192.0.2.50"}
    assert forged(client, addr="10.0.0.1", **spoofed).status_code == 429
    app.extensions["optout"].db.dispose()


def test_untrusted_forwarded_for_is_ignored(limited: Any) -> None:
    client = limited.test_client()
    for i in range(5):
        forged(client, **{"X-Forwarded-For": f"192.0.2.{i}"})
    assert forged(client, **{"X-Forwarded-For": "192.0.2.99"}).status_code == 429


def test_limits_can_be_turned_off(config: dict[str, Any]) -> None:
    config["rate_limit"] = {**SMALL, "enabled": False}
    app = create_app(config, TEST_ENV)
    client = app.test_client()
    assert {forged(client).status_code for _ in range(10)} == {403}
    app.extensions["optout"].db.dispose()


@pytest.mark.parametrize("key", ["webhooks", "pages"])
def test_a_malformed_limit_names_its_key(config: dict[str, Any], key: str) -> None:
    config["rate_limit"] = {key: "lots"}
    with pytest.raises(ConfigError, match=rf"rate_limit\.{key}: .*600/minute"):
        create_app(config, TEST_ENV)


def test_the_defaults_are_generous(config: dict[str, Any]) -> None:
    from gateway.config import settings_from_mapping

    limits = settings_from_mapping(config).rate_limit
    assert limits.enabled
    assert (limits.webhooks, limits.pages) == ("600/minute", "600/minute")
