"""Delivery receipts: deduplicated, mapped onto the outbox row, and provider opt-outs recorded."""

from __future__ import annotations

import logging

from sqlalchemy.orm import Session
from sqlmodel import col, select

from gateway.addresses import mask
from gateway.messages import StatusUpdate
from gateway.models import DeliveryEvent, OutboxMessage, table, utcnow
from gateway.runtime import Gateway
from gateway.storage import Evidence, apply_consent, insert_ignore

log = logging.getLogger(__name__)

# A later receipt must not move a row back: "sent" arriving after "delivered" changes nothing.
_RANK = {"unknown": 0, "queued": 1, "sent": 2, "delivered": 3, "undelivered": 3, "failed": 3}


def record_status(session: Session, gw: Gateway, update: StatusUpdate) -> bool:
    """Store one receipt; False when the same (message, status) was already recorded."""
    now = utcnow()
    new_id = insert_ignore(
        session,
        table(DeliveryEvent),
        {
            "provider": update.provider,
            "provider_message_id": update.provider_message_id,
            "status": update.status.value,
            "raw_status": update.raw_status[:64],
            "error_code": update.error_code,
            "raw": dict(update.raw),
            "occurred_at": update.occurred_at or now,
            "recorded_at": now,
        },
        ("provider", "provider_message_id", "raw_status"),
    )
    if new_id is None:
        return False
    row = session.execute(
        select(OutboxMessage).where(
            col(OutboxMessage.provider) == update.provider,
            col(OutboxMessage.provider_message_id) == update.provider_message_id,
        )
    ).scalar_one_or_none()
    if row is not None and _RANK[update.status.value] >= _RANK.get(row.delivery_status or "unknown", 0):
        row.delivery_status = update.status.value
    if update.opted_out:
        address = row.recipient if row is not None else update.recipient
        if address:
            scope = row.scope if row is not None else "default"
            channel = row.channel if row is not None else "sms"
            apply_consent(
                session,
                channel=channel,
                address=address,
                scope=scope,
                opted_out=True,
                evidence=Evidence(
                    source="provider",
                    occurred_at=update.occurred_at,
                    provider=update.provider,
                    provider_message_id=update.provider_message_id,
                    details={"error_code": update.error_code, "status": update.raw_status},
                ),
            )
            log.warning("%s receipt says %s opted out", update.provider, mask(address))
    return True
