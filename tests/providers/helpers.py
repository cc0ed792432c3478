"""Posting a contract case's signed request through the Flask client, and seeding outbox rows."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from adapters.base import WebhookRequest
from gateway.models import OutboxMessage, utcnow
from tests.conftest import OUR_TWILIO

PUBLIC = "https://gateway.example.com"


def deliver(client: Any, request: WebhookRequest) -> Any:
    """Send ``request`` to the gateway exactly as built: same method, path, query, headers and body.

    The request's URL must be on the configured public URL, since signatures cover it.
    """
    parts = urlsplit(request.url)
    assert f"{parts.scheme}://{parts.netloc}" == PUBLIC, request.url
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    return client.open(target, method=request.method, data=request.body, headers=dict(request.headers))


def seed_sent(gw: Any, provider: str, message_id: str, recipient: str, scope: str,
              sender: str = OUR_TWILIO, campaign_id: int | None = None) -> int:
    """An outbox row the provider accepted as ``message_id``; its id."""
    with gw.db.transaction() as session:
        row = OutboxMessage(
            provider=provider, sender=sender, recipient=recipient, scope=scope, body="Sale today",
            status="sent", attempts=1, idempotency_key=f"seed:{provider}:{message_id}",
            provider_message_id=message_id, sent_at=utcnow(), campaign_id=campaign_id,
        )
        session.add(row)
        session.flush()
        assert row.id is not None
        return row.id
