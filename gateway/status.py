"""Delivery receipts: deduplicated, mapped onto the outbox row, and provider opt-outs recorded."""

from __future__ import annotations

import logging

from sqlalchemy.orm import Session
from sqlmodel import col, select

from gateway import safeguard
from gateway.addresses import mask, normalize_address
from gateway.errors import InvalidAddressError
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
    target = _opt_out_target(gw, update, row) if update.opted_out else None
    if target is None:
        return True
    channel, address, scope = target
    evidence = Evidence(
        source="provider",
        occurred_at=update.occurred_at,
        provider=update.provider,
        provider_message_id=update.provider_message_id,
        details={"error_code": update.error_code, "status": update.raw_status},
    )
    if row is not None and row.campaign_id is not None:
        # A campaign's codes pass the mass opt-out safeguard, which may hold them for review.
        safeguard.provider_opt_out(session, gw, row, evidence)
    else:
        apply_consent(
            session, channel=channel, address=address, scope=scope, opted_out=True, evidence=evidence
        )
    log.warning("%s receipt says %s opted out", update.provider, mask(address))
    return True


def _opt_out_target(
    gw: Gateway, update: StatusUpdate, row: OutboxMessage | None
) -> tuple[str, str, str] | None:
    """The (channel, address, scope) an opt-out receipt applies to; None when the address is unusable."""
    if row is not None:
        return row.channel, row.recipient, row.scope
    # A message the outbox does not know (sent before the gateway, or around it): the number as the
    # provider wrote it (Vonage, Plivo and MessageBird drop the "+"), in the scope of the sender it names.
    try:
        address = normalize_address("sms", update.recipient or "", gw.settings.default_region)
    except InvalidAddressError:
        log.warning("%s opt-out receipt %s: no usable number", update.provider, update.provider_message_id)
        return None
    return "sms", address, gw.settings.scope_for(update.sender)
