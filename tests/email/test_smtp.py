"""The SMTP adapter against real SMTP servers in this process: plain, STARTTLS with login, implicit TLS."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiosmtpd.smtp import AuthResult, LoginPassword

from adapters.base import WebhookRequest
from adapters.registry import adapter_class
from adapters.smtp import SmtpAdapter
from gateway.errors import ConfigError, MissingSecretError, PayloadError
from gateway.messages import Channel, OutboundMessage, SendOutcome
from tests.email.conftest import NEWS, SmtpServer, free_port, start_server
from tests.email.helpers import html_part, text_part

TO = "jane@example.org"
CREDS = {"SMTP_USER": "relay-user", "SMTP_PASS": "relay-password"}


def email(**overrides: Any) -> OutboundMessage:
    fields: dict[str, Any] = {"channel": Channel.EMAIL, "to": TO, "sender": NEWS, "subject": "Hello",
                              "body": "Plain text", "html_body": "<p>Rich text</p>", "idempotency_key": "msg:1",
                              "headers": {"List-Unsubscribe": "<https://g.example/u/t>", "X-Campaign": "7"}}
    return OutboundMessage(**{**fields, **overrides})


def adapter(port: int, **settings: Any) -> SmtpAdapter:
    built = adapter_class("smtp").from_config({"host": "127.0.0.1", "port": port, "security": "none",
                                               "timeout": 5, **settings}, dict(CREDS))
    assert isinstance(built, SmtpAdapter)
    return built


@pytest.fixture
def plain(smtp: SmtpServer) -> Iterator[SmtpAdapter]:
    a = adapter(smtp.port)
    yield a
    a.close()


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def ca_file(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


def server_context(ca: trustme.CA) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(ctx)
    return ctx


class Auth:
    """An aiosmtpd authenticator accepting one user, remembering who logged in."""

    def __init__(self) -> None:
        self.logins: list[str] = []

    def __call__(self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (b"relay-user", b"relay-password")
        if ok:
            self.logins.append(data.login.decode())
        return AuthResult(success=ok, handled=False)


def test_registered_as_the_email_channel() -> None:
    assert adapter_class("smtp") is SmtpAdapter and SmtpAdapter.channel == "email"


def test_sends_text_with_html_alternative_and_the_given_headers(smtp: SmtpServer, plain: SmtpAdapter) -> None:
    result = plain.send(email())
    assert result.outcome is SendOutcome.ACCEPTED
    [msg] = smtp.messages
    assert smtp.inbox.envelopes == [(NEWS, [TO])]
    assert msg.get_content_type() == "multipart/alternative"
    assert text_part(msg).strip() == "Plain text" and html_part(msg).strip() == "<p>Rich text</p>"
    assert (msg["From"], msg["To"], msg["Subject"]) == (NEWS, TO, "Hello")
    assert msg["List-Unsubscribe"] == "<https://g.example/u/t>" and msg["X-Campaign"] == "7"
    assert msg["Message-ID"] == result.provider_message_id and msg["Date"]


def test_message_id_is_stable_for_one_idempotency_key(plain: SmtpAdapter, smtp: SmtpServer) -> None:
    first, again, other = (plain.send(email()), plain.send(email()),
                           plain.send(email(idempotency_key="msg:2")))
    assert first.provider_message_id == again.provider_message_id != other.provider_message_id
    assert str(first.provider_message_id).endswith("@acme.example>")


def test_callers_cannot_replace_addressing_headers(smtp: SmtpServer, plain: SmtpAdapter) -> None:
    plain.send(email(headers={"From": "ceo@bank.example", "Bcc": "spy@example.net", "Subject": "x"}))
    [msg] = smtp.messages
    assert msg["From"] == NEWS and msg["Bcc"] is None and msg["Subject"] == "Hello"
    assert smtp.inbox.envelopes == [(NEWS, [TO])]


def test_header_injection_fails_permanently_and_sends_nothing(smtp: SmtpServer, plain: SmtpAdapter) -> None:
    result = plain.send(email(headers={"X-Note": "hi\r\nBcc: spy@example.net"}))
    assert result.outcome is SendOutcome.FAILED
    assert smtp.messages == []


def test_a_message_without_sender_fails_unless_from_address_is_set(smtp: SmtpServer) -> None:
    bare = adapter(smtp.port)
    assert bare.send(email(sender=None)).outcome is SendOutcome.FAILED
    bare.close()
    with_default = adapter(smtp.port, from_address="noreply@acme.example")
    assert with_default.send(email(sender=None)).outcome is SendOutcome.ACCEPTED
    with_default.close()
    assert smtp.inbox.envelopes == [("noreply@acme.example", [TO])]


@pytest.mark.parametrize(
    ("stage", "reply", "outcome"),
    [
        ("rcpt", "450 4.2.1 Mailbox busy", SendOutcome.RETRY),
        ("rcpt", "550 5.1.1 No such user", SendOutcome.FAILED),
        ("data", "451 4.3.0 Try again later", SendOutcome.RETRY),
        ("data", "554 5.7.1 Rejected as spam", SendOutcome.FAILED),
    ],
)
def test_4xx_is_retried_and_5xx_is_permanent(
    smtp: SmtpServer, plain: SmtpAdapter, stage: str, reply: str, outcome: SendOutcome
) -> None:
    setattr(smtp.inbox, f"{stage}_reply", reply)
    result = plain.send(email())
    assert result.outcome is outcome and result.error_code == reply[:3]
    assert smtp.messages == []
    # The relay recovers: the adapter sends again (over the same or a fresh connection).
    setattr(smtp.inbox, f"{stage}_reply", None)
    assert plain.send(email()).outcome is SendOutcome.ACCEPTED


def test_connection_refused_is_retried() -> None:
    result = adapter(free_port()).send(email())
    assert result.outcome is SendOutcome.RETRY and result.error_message


def test_a_relay_that_never_answers_times_out_and_is_retried() -> None:
    with socket.socket() as silent:  # accepts TCP connections (backlog) but never greets
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        a = adapter(silent.getsockname()[1], timeout=0.3)
        result = a.send(email())
    assert result.outcome is SendOutcome.RETRY


def test_one_connection_serves_many_sends_and_a_stale_one_is_replaced(smtp: SmtpServer) -> None:
    a = adapter(smtp.port)
    try:
        for _ in range(3):
            assert a.send(email()).outcome is SendOutcome.ACCEPTED
        assert smtp.inbox.ehlos == 1
        # The relay no longer wants the kept connection (NOOP is not 250): the adapter opens a new one.
        smtp.inbox.noop_reply = "421 4.4.2 Idle for too long"
        assert a.send(email()).outcome is SendOutcome.ACCEPTED
    finally:
        a.close()
    assert smtp.inbox.ehlos == 2 and len(smtp.messages) == 4


def test_starttls_with_login(ca: trustme.CA, ca_file: str) -> None:
    auth = Auth()
    server = start_server(tls_context=server_context(ca), require_starttls=True, authenticator=auth,
                          auth_required=True)
    a = adapter(server.port, security="starttls", ca_file=ca_file, username_env="SMTP_USER",
                password_env="SMTP_PASS")
    try:
        assert a.send(email()).outcome is SendOutcome.ACCEPTED
    finally:
        a.close()
        server.controller.stop()
    assert auth.logins == ["relay-user"] and len(server.messages) == 1


def test_wrong_password_is_a_permanent_failure(ca: trustme.CA, ca_file: str) -> None:
    server = start_server(tls_context=server_context(ca), require_starttls=True, authenticator=Auth(),
                          auth_required=True)
    a = SmtpAdapter.from_config({"host": "127.0.0.1", "port": server.port, "ca_file": ca_file,
                                 "username_env": "SMTP_USER", "password_env": "SMTP_PASS"},
                                {"SMTP_USER": "relay-user", "SMTP_PASS": "wrong"})
    try:
        result = a.send(email())
    finally:
        a.close()
        server.controller.stop()
    assert result.outcome is SendOutcome.FAILED and result.error_code == "535"
    assert "wrong" not in (result.error_message or "")


def test_implicit_tls(ca: trustme.CA, ca_file: str) -> None:
    server = start_server(ssl_context=server_context(ca))
    a = adapter(server.port, security="tls", ca_file=ca_file)
    try:
        assert a.send(email()).outcome is SendOutcome.ACCEPTED
    finally:
        a.close()
        server.controller.stop()
    assert len(server.messages) == 1


def test_never_falls_back_to_clear_text(smtp: SmtpServer) -> None:
    # starttls is configured but this relay does not offer it: nothing may be sent in clear.
    a = adapter(smtp.port, security="starttls")
    assert a.send(email()).outcome is SendOutcome.RETRY
    a.close()
    assert smtp.messages == []


def test_untrusted_certificate_is_refused(ca: trustme.CA) -> None:
    server = start_server(tls_context=server_context(ca), require_starttls=True)
    a = adapter(server.port, security="starttls")  # the system store does not know the test CA
    try:
        assert a.send(email()).outcome is SendOutcome.RETRY
    finally:
        a.close()
        server.controller.stop()
    assert server.messages == []


def test_configuration_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="host"):
        SmtpAdapter.from_config({}, {})
    with pytest.raises(ConfigError, match="security"):
        SmtpAdapter.from_config({"host": "mx.example", "security": "ssl3"}, {})
    with pytest.raises(ConfigError, match="in clear"):
        SmtpAdapter.from_config({"host": "mx.example", "security": "none", "username_env": "SMTP_USER",
                                 "password_env": "SMTP_PASS"}, CREDS)
    with pytest.raises(MissingSecretError, match="SMTP_PASS") as err:
        SmtpAdapter.from_config({"host": "mx.example", "username_env": "SMTP_USER",
                                 "password_env": "SMTP_PASS"}, {"SMTP_USER": "u"})
    assert "relay" not in str(err.value)
    assert SmtpAdapter.from_config({"host": "mx.example"}, {}).port == 587
    assert SmtpAdapter.from_config({"host": "mx.example", "security": "tls"}, {}).port == 465


def test_smtp_receives_no_webhooks() -> None:
    request = WebhookRequest.build("POST", "https://g.example/webhooks/smtp/inbound", b"{}")
    with pytest.raises(PayloadError):
        SmtpAdapter("mx.example", 25).verify(request)
