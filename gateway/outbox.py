"""The durable outbox: claim due rows, send them, record the outcome; retry what is transient.

Claims are leases. A worker marks rows ``sending`` with ``lease_until`` and its id; a row whose lease ran
out (its worker died) is claimable again. On PostgreSQL the claim uses ``FOR UPDATE SKIP LOCKED`` so
several workers never take one row; on SQLite the claim runs in a ``BEGIN IMMEDIATE`` transaction, which
serialises claimers. Outcomes are written only while the row is still ours (``claimed_by`` matches), so
a worker that lost its lease cannot overwrite the new owner's result, and a batch that has used half its
lease renews it before the next send, skipping rows another worker has taken over meanwhile. Our
idempotency key travels to providers that support it, so a send repeated after a crash is not delivered
twice.
"""

from __future__ import annotations

import logging
import random
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import requests
from sqlalchemy import or_, update
from sqlmodel import col, select

from adapters.base import is_transient_status, retry_after_seconds
from gateway import safeguard
from gateway.addresses import mask
from gateway.email import unsubscribe_problem
from gateway.errors import OptedOutError
from gateway.guard import check
from gateway.messages import Category, OutboundMessage, SendOutcome, SendResult
from gateway.models import OutboxMessage, utcnow
from gateway.runtime import Gateway
from gateway.storage import Evidence, apply_consent

log = logging.getLogger(__name__)


def worker_id() -> str:
    """A name for this worker process, unique across hosts and restarts."""
    return f"{socket.gethostname()}:{uuid.uuid4().hex[:8]}"


def backoff(attempt: int, base: float, cap: float, rand: Callable[[], float] = random.random) -> float:
    """Seconds to wait before retry ``attempt`` (1-based): exponential with full jitter, capped.

    Full jitter (a random point in [d/2, d]) keeps a fleet of retries from arriving in lockstep.
    """
    delay = min(cap, base * (2 ** max(0, attempt - 1)))
    return delay / 2 + rand() * delay / 2


@dataclass(frozen=True, slots=True)
class Claimed:
    """A claimed row, detached from its session."""

    id: int
    kind: str
    channel: str
    provider: str
    sender: str | None
    recipient: str
    scope: str
    category: str
    subject: str | None
    body: str
    html_body: str | None
    headers: dict[str, str]
    idempotency_key: str
    attempts: int
    max_attempts: int


def claim(gw: Gateway, owner: str, limit: int, now: datetime | None = None) -> list[Claimed]:
    """Lease up to ``limit`` due rows to ``owner``: queued and due, or sending with an expired lease."""
    now = now or utcnow()
    lease = now + timedelta(seconds=gw.settings.outbox.lease_seconds)
    due = or_(
        (col(OutboxMessage.status) == "queued") & (col(OutboxMessage.next_attempt_at) <= now),
        (col(OutboxMessage.status) == "sending") & (col(OutboxMessage.lease_until) < now),
    )
    with gw.db.transaction() as session:
        stmt = select(OutboxMessage).where(due).order_by(col(OutboxMessage.next_attempt_at)).limit(limit)
        if gw.db.is_postgres:
            stmt = stmt.with_for_update(skip_locked=True)
        rows = list(session.execute(stmt).scalars())
        out = []
        for row in rows:
            row.status = "sending"
            row.lease_until = lease
            row.claimed_by = owner
            row.attempts += 1
            assert row.id is not None
            out.append(
                Claimed(
                    row.id,
                    row.kind,
                    row.channel,
                    row.provider,
                    row.sender,
                    row.recipient,
                    row.scope,
                    row.category,
                    row.subject,
                    row.body,
                    row.html_body,
                    dict(row.headers or {}),
                    row.idempotency_key,
                    row.attempts,
                    row.max_attempts,
                )
            )
        return out


def _finish(gw: Gateway, item: Claimed, owner: str, **values: object) -> bool:
    """Write an outcome if the row is still ours; False when the lease was lost meanwhile."""
    with gw.db.transaction() as session:
        result = session.execute(
            update(OutboxMessage)
            .where(
                col(OutboxMessage.id) == item.id,
                col(OutboxMessage.claimed_by) == owner,
                col(OutboxMessage.status) == "sending",
            )
            .values(lease_until=None, **values)
        )
        return bool(getattr(result, "rowcount", 0))


def _forward(gw: Gateway, item: Claimed) -> SendResult:
    """POST a forwarded message's JSON to its URL; the same retry rules as a provider send."""
    try:
        resp = requests.post(
            item.recipient,
            data=item.body.encode("utf-8"),
            headers={"Content-Type": "application/json", "Idempotency-Key": item.idempotency_key},
            timeout=10,
        )
    except requests.RequestException as exc:
        return SendResult(SendOutcome.RETRY, "forward", error_message=type(exc).__name__)
    if 200 <= resp.status_code < 300:
        return SendResult(SendOutcome.ACCEPTED, "forward")
    outcome = SendOutcome.RETRY if is_transient_status(resp.status_code) else SendOutcome.FAILED
    return SendResult(
        outcome, "forward", error_code=str(resp.status_code), retry_after=retry_after_seconds(resp)
    )


def dispatch(gw: Gateway, item: Claimed, owner: str, now: Callable[[], datetime] = utcnow) -> str:
    """Send one claimed row and record the outcome; returns the row's new status."""
    if item.kind == "message" and item.category != Category.COMPLIANCE:
        # Re-check at dispatch: an opt-out that arrived after queueing must still stop the message.
        try:
            with gw.db.read() as session:
                check(session, gw, item.channel, item.recipient, item.scope)
        except OptedOutError as exc:
            _finish(gw, item, owner, status="blocked", last_error=f"opted out since {exc.since}")
            return "blocked"
    refused = item.kind == "message" and unsubscribe_problem(item.channel, item.category, item.headers)
    if refused:  # a marketing email that cannot be left is never sent, whatever path queued it
        _finish(gw, item, owner, status="failed", last_error=refused)
        return "failed"
    if item.kind == "forward":
        result = _forward(gw, item)
    else:
        message = OutboundMessage(
            channel=item.channel,  # type: ignore[arg-type]
            to=item.recipient,
            body=item.body,
            sender=item.sender,
            idempotency_key=item.idempotency_key,
            # Echoed back by ClickSend on replies, which ties a reply to the campaign it answers.
            custom_string=item.idempotency_key,
            subject=item.subject,
            html_body=item.html_body,
            headers=item.headers,
        )
        try:
            result = gw.adapter(item.provider).send(message)
        except Exception as exc:  # an adapter bug must not lose the message: retry it like an outage
            log.exception("adapter %s raised on send", item.provider)
            result = SendResult(SendOutcome.RETRY, item.provider, error_message=type(exc).__name__)
    return record_result(gw, item, owner, result, now())


def record_result(gw: Gateway, item: Claimed, owner: str, result: SendResult, at: datetime) -> str:
    """Store a send's outcome: sent, retry later with backoff, failed, or opted out at the provider."""
    error = " ".join(x for x in (result.error_code, result.error_message) if x) or None
    if result.outcome is SendOutcome.ACCEPTED:
        _finish(
            gw,
            item,
            owner,
            status="sent",
            sent_at=at,
            provider_message_id=result.provider_message_id,
            delivery_status=result.status.value,
            last_error=None,
        )
        return "sent"
    if result.outcome is SendOutcome.RETRY and item.attempts < item.max_attempts:
        cfg = gw.settings.outbox
        delay = max(backoff(item.attempts, cfg.base_delay, cfg.max_delay), result.retry_after or 0.0)
        _finish(
            gw,
            item,
            owner,
            status="queued",
            claimed_by=None,
            last_error=error,
            next_attempt_at=at + timedelta(seconds=delay),
        )
        log.info("outbox %s: retry %d in %.1fs (%s)", item.id, item.attempts, delay, error)
        return "queued"
    if result.outcome is SendOutcome.OPTED_OUT:
        # The provider knows of an opt-out we did not: record it so every other path respects it too.
        evidence = Evidence(
            source="provider",
            occurred_at=at,
            provider=result.provider,
            details={"error_code": result.error_code, "outbox_id": item.id},
        )
        with gw.db.transaction() as session:
            row = session.get(OutboxMessage, item.id)
            if row is not None and row.campaign_id is not None:
                # A campaign's codes pass the mass opt-out safeguard, which may hold them for review.
                safeguard.provider_opt_out(session, gw, row, evidence)
            else:
                apply_consent(
                    session,
                    channel=item.channel,
                    address=item.recipient,
                    scope=item.scope,
                    opted_out=True,
                    evidence=evidence,
                )
        log.warning("outbox %s: %s reports %s opted out", item.id, result.provider, mask(item.recipient))
    _finish(gw, item, owner, status="failed", last_error=error or result.outcome.value)
    return "failed"


def renew(gw: Gateway, owner: str, ids: list[int]) -> set[int]:
    """Extend the lease of those of ``ids`` still claimed by ``owner``; the ids that are."""
    lease_until = utcnow() + timedelta(seconds=gw.settings.outbox.lease_seconds)
    with gw.db.transaction() as session:
        result = session.execute(
            update(OutboxMessage)
            .where(
                col(OutboxMessage.id).in_(ids),
                col(OutboxMessage.claimed_by) == owner,
                col(OutboxMessage.status) == "sending",
            )
            .values(lease_until=lease_until)
            .returning(col(OutboxMessage.id))
        )
        return {row_id for row_id in result.scalars() if row_id is not None}


def drain(gw: Gateway, owner: str, limit: int | None = None) -> int:
    """Claim and dispatch one batch; the number of rows handled (0 when nothing was due)."""
    items = claim(gw, owner, limit or gw.settings.outbox.batch_size)
    lease = gw.settings.outbox.lease_seconds
    renewed = time.monotonic()
    mine = {item.id for item in items}
    for index, item in enumerate(items):
        if time.monotonic() - renewed > lease / 2:
            # A slow batch (a provider timing out) must not outlive its lease: another worker would
            # claim the rest and both would send it. Renew what is still ours, skip what was taken over.
            mine = renew(gw, owner, [i.id for i in items[index:]])
            renewed = time.monotonic()
        if item.id in mine:
            dispatch(gw, item, owner)
    return len(items)
