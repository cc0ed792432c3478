"""Email fixtures: a real SMTP server in this process (aiosmtpd) and a gateway configured to use it."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from adapters.smtp import SmtpAdapter
from tests.conftest import base_config

NEWS = "news@acme.example"
TOPICS = {"newsletters": "Newsletters", "offers": "Special offers"}


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Inbox:
    """An aiosmtpd handler that keeps what it received and can be told to refuse recipients or data."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.rcpt_reply: str | None = None
        self.data_reply: str | None = None
        self.noop_reply: str | None = None
        self.ehlos = 0

    async def handle_EHLO(self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]) -> list[str]:
        self.ehlos += 1
        session.host_name = hostname
        return responses

    async def handle_NOOP(self, server: Any, session: Any, envelope: Any, arg: str) -> str:
        return self.noop_reply or "250 OK"

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]) -> str:
        if self.rcpt_reply:
            return self.rcpt_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.data_reply:
            return self.data_reply
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        self.messages.append(message_from_bytes(envelope.content, policy=default))  # type: ignore[arg-type]
        return "250 Message accepted for delivery"


class SmtpServer:
    """A started aiosmtpd controller and its inbox."""

    def __init__(self, inbox: Inbox, controller: Controller, port: int) -> None:
        self.inbox = inbox
        self.controller = controller
        self.port = port

    @property
    def messages(self) -> list[EmailMessage]:
        """Every message received so far, oldest first."""
        return self.inbox.messages


def start_server(port: int | None = None, **kwargs: Any) -> SmtpServer:
    """Start an SMTP server on 127.0.0.1 (a free port unless given); `Controller` options pass through."""
    inbox = Inbox()
    port = port or free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port, **kwargs)
    controller.start()
    return SmtpServer(inbox, controller, port)


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    """A plain SMTP server for the gateway's `smtp` provider."""
    server = start_server()
    yield server
    server.controller.stop()


def email_config(db_url: str, smtp_port: int, public_url: str = "https://gateway.example.com") -> dict[str, Any]:
    """The base test configuration plus an `smtp` provider, an email sender in scope `acme` and topics."""
    cfg = base_config(db_url)
    cfg["public_url"] = public_url
    cfg["providers"]["smtp"] = {"host": "127.0.0.1", "port": smtp_port, "security": "none", "timeout": 10}
    cfg["senders"].append({"address": NEWS, "provider": "smtp", "scope": "acme", "channel": "email"})
    cfg["email"] = {"topics": dict(TOPICS), "unsubscribe_mailto": "unsubscribe@acme.example"}
    return cfg


@pytest.fixture
def config(db_url: str, smtp: SmtpServer) -> dict[str, Any]:
    """The email test configuration, pointing at the in-process SMTP server."""
    return email_config(db_url, smtp.port)


@pytest.fixture
def gw(app: Any) -> Iterator[Any]:
    """The app's gateway; its SMTP connection is closed afterwards."""
    gateway = app.extensions["optout"]
    yield gateway
    for adapter in gateway.adapters.values():
        if isinstance(adapter, SmtpAdapter):
            adapter.close()
