"""Helpers for email tests: send through the API, deliver through the worker, read what arrived."""

from __future__ import annotations

import re
from email.message import EmailMessage
from typing import Any

from gateway.outbox import drain
from tests.conftest import TEST_ENV

AUTH = {"Authorization": f"Bearer {TEST_ENV['OPTOUT_API_TOKEN']}"}
PUBLIC = "https://gateway.example.com"
ME = "Jane.Doe@Example.org"
ME_NORMAL = "jane.doe@example.org"


def api_send(client: Any, to: str = ME, **fields: Any) -> Any:
    """POST /api/v1/messages for an email (marketing unless ``category`` says otherwise)."""
    payload = {"channel": "email", "to": to, "subject": "Spring sale", "body": "Everything half price.",
               "html_body": "<html><body><h1>Spring sale</h1><p>Everything half price.</p></body></html>",
               **fields}
    return client.post("/api/v1/messages", json=payload, headers=AUTH)


def deliver(gw: Any) -> int:
    """Run the outbox once, as the worker would; rows handled."""
    return drain(gw, "test-worker")


def text_part(msg: EmailMessage) -> str:
    """The text/plain body of a received message."""
    part = msg.get_body(("plain",))
    assert part is not None
    return str(part.get_content())  # type: ignore[attr-defined]


def html_part(msg: EmailMessage) -> str:
    """The text/html body of a received message."""
    part = msg.get_body(("html",))
    assert part is not None
    return str(part.get_content())  # type: ignore[attr-defined]


def one_click_url(msg: EmailMessage) -> str:
    """The http(s) URI of a received message's List-Unsubscribe header."""
    header = str(msg["List-Unsubscribe"])
    found = re.search(r"<(https?://[^>]+)>", header)
    assert found, header
    return found.group(1)


def path_of(url: str, base: str = PUBLIC) -> str:
    """A public URL as a path for the Flask test client."""
    assert url.startswith(base + "/"), url
    return url[len(base):]
