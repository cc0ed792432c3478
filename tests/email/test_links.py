"""Unsubscribe tokens, the footer and headers `prepare` adds, and the start-up checks (no database needed)."""

from __future__ import annotations

import base64
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from gateway.config import settings_from_mapping
from gateway.email import (
    InvalidLinkError,
    LinkSigner,
    prepare,
    signer_for,
    unsubscribe_problem,
)
from gateway.errors import ConfigError, MissingSecretError
from gateway.models import utcnow
from gateway.runtime import Gateway
from tests.conftest import TEST_ENV
from tests.email.conftest import NEWS, TOPICS

PUBLIC = "https://gateway.example.com"
SECRET = "a-long-enough-test-secret"


def signer(secret: str = SECRET) -> LinkSigner:
    return LinkSigner(secret, PUBLIC, timedelta(days=365))


def gateway(tmp_path: Path, env: dict[str, str] | None = None, **overrides: Any) -> Gateway:
    """A gateway with an email sender on the console provider (no database is touched)."""
    cfg: dict[str, Any] = {
        "database_url": f"sqlite:///{tmp_path / 'unused.db'}",
        "public_url": PUBLIC,
        "brand": "Acme <Deals>",
        "senders": [{"address": NEWS, "provider": "console", "scope": "acme", "channel": "email"}],
        "email": {"topics": TOPICS, "unsubscribe_mailto": "unsubscribe@acme.example"},
        **overrides,
    }
    return Gateway(settings_from_mapping(cfg), dict(TEST_ENV if env is None else env))


def test_token_round_trip_binds_address_scope_and_topic() -> None:
    s = signer()
    claim = s.read(s.issue("jane@example.org", "acme", "newsletters"))
    assert (claim.address, claim.scope, claim.topic) == ("jane@example.org", "acme", "newsletters")
    assert claim.opt_out_scope == "acme/newsletters"
    assert abs((utcnow() - claim.issued_at).total_seconds()) < 60
    plain = s.read(s.issue("jane@example.org", "acme"))
    assert plain.topic is None and plain.opt_out_scope == "acme"


def test_tokens_are_opaque_and_never_repeat() -> None:
    s = signer()
    tokens = {s.issue("jane@example.org", "acme", "newsletters") for _ in range(50)}
    assert len(tokens) == 50, "a fresh nonce each time: nothing to enumerate"
    for token in tokens:
        payload = token.split(".")[0]
        decoded = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
        for secret_part in (b"jane", b"example.org", b"acme", b"newsletters"):
            assert secret_part not in decoded and secret_part.decode() not in token


def test_foreign_and_tampered_tokens_are_refused() -> None:
    token = signer().issue("jane@example.org", "acme")
    with pytest.raises(InvalidLinkError):
        signer("some-other-deployment-secret").read(token)
    for at in range(len(token)):
        # Change the high bits of the base64 digit: a last digit's low bits may be padding.
        changed = token[:at] + ("z" if token[at] in "ABCDEFGHIJKLMNOP" else "A") + token[at + 1:]
        with pytest.raises(InvalidLinkError):
            signer().read(changed)


def test_expiry_follows_the_injected_clock() -> None:
    s = signer()
    token = s.issue("jane@example.org", "acme")
    s.clock = lambda: utcnow() + timedelta(days=364)
    assert s.read(token).address == "jane@example.org"
    s.clock = lambda: utcnow() + timedelta(days=366)
    with pytest.raises(InvalidLinkError):
        s.read(token)
    s.clock = lambda: utcnow() - timedelta(hours=1)  # issued "in the future": a forged clock or worse
    with pytest.raises(InvalidLinkError):
        s.read(token)


def test_short_secrets_and_short_link_lifetimes_are_refused() -> None:
    with pytest.raises(ConfigError):
        LinkSigner("short", PUBLIC, timedelta(days=365))
    with pytest.raises(ConfigError, match="link_max_age_days"):
        settings_from_mapping({"email": {"link_max_age_days": 30}})
    with pytest.raises(ConfigError, match="topics"):
        settings_from_mapping({"email": {"topics": {"News Letters": "x"}}})


def test_a_rotated_key_keeps_old_links_working_and_issues_with_the_new_one(tmp_path: Path) -> None:
    old_token = signer("the-old-secret-key-1").issue("jane@example.org", "acme")
    rotated = gateway(tmp_path, {**TEST_ENV, "OPTOUT_PREVIOUS_SECRET_KEY": "the-old-secret-key-1"})
    assert signer_for(rotated).read(old_token).address == "jane@example.org"
    new_token = signer_for(rotated).issue("jane@example.org", "acme")
    # New links are the current key's: they read without the previous key...
    assert signer(TEST_ENV["OPTOUT_SECRET_KEY"]).read(new_token).address == "jane@example.org"
    with pytest.raises(InvalidLinkError):
        signer("the-old-secret-key-1").read(new_token)
    # ...and once the previous key is dropped, its links stop working, as any unknown key's.
    with pytest.raises(InvalidLinkError):
        signer_for(gateway(tmp_path)).read(old_token)
    with pytest.raises(ConfigError):  # a previous key is held to the same length rule
        signer_for(gateway(tmp_path, {**TEST_ENV, "OPTOUT_PREVIOUS_SECRET_KEY": "short"}))


def test_startup_requires_the_secret_and_public_url_only_when_email_is_configured(tmp_path: Path) -> None:
    env = {k: v for k, v in TEST_ENV.items() if k != "OPTOUT_SECRET_KEY"}
    with pytest.raises(MissingSecretError, match="OPTOUT_SECRET_KEY") as err:
        gateway(tmp_path, env)
    assert TEST_ENV["OPTOUT_SECRET_KEY"] not in str(err.value)
    with pytest.raises(ConfigError, match="public_url"):
        gateway(tmp_path, public_url=None)
    # An SMS-only gateway needs neither.
    Gateway(settings_from_mapping({"database_url": f"sqlite:///{tmp_path / 'x.db'}"}), env)
    # A configured smtp provider counts as email even before any email sender is listed.
    with pytest.raises(MissingSecretError):
        gateway(tmp_path, env, senders=[], providers={"console": {}, "smtp": {"host": "127.0.0.1"}})


def test_prepare_adds_footer_and_headers_to_marketing(tmp_path: Path) -> None:
    gw = gateway(tmp_path)
    out = prepare(gw, category="marketing", address="jane@example.org", scope="acme", topic="offers",
                  body="Sale!", html_body="<HTML><BODY><p>Sale!</p></BODY></HTML>", headers={"X-Id": "7"})
    url = out.headers["List-Unsubscribe"].split(">")[0][1:]
    claim = signer_for(gw).read(url.rsplit("/", 1)[1])
    assert (claim.address, claim.scope, claim.topic) == ("jane@example.org", "acme", "offers")
    assert out.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert out.headers["X-Id"] == "7"
    assert out.body.startswith("Sale!\n\n-- \n") and f"unsubscribe: {url}" in out.body
    assert out.html_body is not None
    assert out.html_body.endswith("</BODY></HTML>") and f'<a href="{url}">Unsubscribe</a>' in out.html_body
    assert "Acme &lt;Deals&gt;" in out.html_body, "the brand is escaped in HTML"


def test_prepare_leaves_transactional_mail_alone(tmp_path: Path) -> None:
    gw = gateway(tmp_path)
    out = prepare(gw, category="transactional", address="jane@example.org", scope="acme", topic=None,
                  body="Receipt", html_body=None, headers={"List-Unsubscribe": "<https://x.example/>"})
    assert (out.body, out.html_body, out.headers) == ("Receipt", None, {})


def test_unsubscribe_problem_names_what_the_outbox_refuses() -> None:
    ok = {"List-Unsubscribe": "<https://g.example/u/t>", "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}
    assert unsubscribe_problem("email", "marketing", ok) is None
    assert unsubscribe_problem("email", "marketing", {}) is not None
    assert unsubscribe_problem("email", "informational", {"List-Unsubscribe": "<mailto:x@y.example>",
                                                          "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"})
    assert unsubscribe_problem("email", "transactional", {}) is None
    assert unsubscribe_problem("sms", "marketing", {}) is None
