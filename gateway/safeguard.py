"""The mass opt-out safeguard: a provider that suddenly reports everyone as opted out is held, not believed.

A provider's opt-out code (Twilio 21610, Telnyx 40300, Vonage err-code 9, ...) normally becomes an opt-out
at once. For a campaign message the campaign's recent sends are looked at first: when more than
``compliance.mass_optout_threshold`` of its sends within ``mass_optout_window_seconds`` came back with such
a code, that looks like a fault at the provider (a wrong code, a mixed-up opt-out list) rather than people
leaving. The campaign is then paused, its queued messages held, and a `CampaignHold` opened; codes that
arrive for the campaign from then on are held instead of applied. An operator confirms (each held opt-out
is applied and ledgered) or dismisses (each is discarded, ledgered with the reason); either way the
campaign goes back to what it was doing.

The share is taken over at least ``mass_optout_min_sends`` sends: with fewer in the window the missing ones
count as clean. A small sample therefore cannot trip it on a few genuine opt-outs, and at most
threshold x min_sends codes (10 by default) are applied before it trips. Those stay applied.
"""

from __future__ import annotations

import logging
import math
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, update
from sqlalchemy import select as sa_select
from sqlalchemy.orm import Session
from sqlmodel import col, select

from gateway.addresses import mask
from gateway.campaigns import transition
from gateway.contacts import ConflictError
from gateway.errors import NotFoundError, PayloadError
from gateway.models import (
    Campaign,
    CampaignHold,
    ConsentEvent,
    OutboxMessage,
    ProviderOptOutSignal,
    table,
    utcnow,
)
from gateway.runtime import Gateway
from gateway.storage import Evidence, apply_consent, insert_ignore

log = logging.getLogger(__name__)

SIGNALS = table(ProviderOptOutSignal)
OUTBOX = table(OutboxMessage)
CAMPAIGNS = table(Campaign)
#: Signal states that count towards the share (resolved ones were reviewed by an operator).
COUNTED = ("applied", "held")
#: Campaign states a hold pauses; any other (sent, cancelled) has nothing left to pause.
PAUSABLE = ("scheduled", "sending")


def provider_opt_out(session: Session, gw: Gateway, row: OutboxMessage, evidence: Evidence) -> bool:
    """Record a provider's opt-out code for campaign message ``row``: True when applied, False when held.

    Runs in the caller's transaction. ``evidence.details["error_code"]`` is the provider's code.
    """
    assert row.id is not None and row.campaign_id is not None
    now = utcnow()
    campaign = _locked(session, row.campaign_id)  # serialises the signals of one campaign
    details = dict(evidence.details or {})
    signal_id = insert_ignore(
        session,
        SIGNALS,
        {
            "campaign_id": row.campaign_id,
            "outbox_id": row.id,
            "state": "applied",
            "channel": row.channel,
            "address": row.recipient,
            "scope": row.scope,
            "provider": evidence.provider or row.provider,
            "provider_message_id": evidence.provider_message_id or row.provider_message_id,
            "error_code": str(details["error_code"]) if details.get("error_code") else None,
            "evidence": details,
            "occurred_at": evidence.occurred_at or now,
            "recorded_at": now,
        },
        ("outbox_id",),
    )
    if signal_id is None:
        # Another receipt with a code for the same message: counted once, treated as the first was.
        state = session.execute(sa_select(SIGNALS.c.state).where(SIGNALS.c.outbox_id == row.id)).scalar_one()
        if state in ("held", "dismissed"):
            return False
        _apply(session, row, evidence)
        return True
    hold = _open_hold(session, row.campaign_id)
    if hold is None and campaign is not None:
        hold = _trip(session, gw, campaign, now)
    if hold is None:
        _apply(session, row, evidence)
        return True
    session.execute(update(SIGNALS).where(SIGNALS.c.id == signal_id).values(state="held", hold_id=hold.id))
    session.add(
        ConsentEvent(
            channel=row.channel,
            address=row.recipient,
            scope=row.scope,
            action="opt_out_held",
            changed=False,
            source="provider",
            provider=evidence.provider,
            provider_message_id=evidence.provider_message_id,
            reason=f"held by the mass opt-out safeguard (hold {hold.id}, campaign {row.campaign_id})",
            evidence={**details, "hold_id": hold.id},
            occurred_at=evidence.occurred_at or now,
            recorded_at=now,
        )
    )
    log.info("campaign %s: opt-out code for %s held (hold %s)", row.campaign_id, mask(row.recipient), hold.id)
    return False


def _apply(session: Session, row: OutboxMessage, evidence: Evidence) -> None:
    channel, address, scope = row.channel, row.recipient, row.scope
    apply_consent(session, channel=channel, address=address, scope=scope, opted_out=True, evidence=evidence)


def _locked(session: Session, campaign_id: int) -> Campaign | None:
    stmt = select(Campaign).where(col(Campaign.id) == campaign_id).with_for_update()
    return session.execute(stmt.execution_options(populate_existing=True)).scalar_one_or_none()


def _open_hold(session: Session, campaign_id: int) -> CampaignHold | None:
    stmt = select(CampaignHold).where(
        col(CampaignHold.campaign_id) == campaign_id, col(CampaignHold.status) == "open"
    )
    return session.execute(stmt.limit(1)).scalar_one_or_none()


def _trip(session: Session, gw: Gateway, campaign: Campaign, now: datetime) -> CampaignHold | None:
    """Open a hold when the campaign's share of opt-out codes in the window is over the threshold."""
    assert campaign.id is not None
    cfg = gw.settings.compliance
    threshold, floor = cfg.mass_optout_threshold, cfg.mass_optout_min_sends
    cutoff = now - timedelta(seconds=cfg.mass_optout_window_seconds)
    in_window = and_(
        SIGNALS.c.campaign_id == campaign.id, SIGNALS.c.recorded_at >= cutoff, SIGNALS.c.state.in_(COUNTED)
    )
    opt_outs = int(session.execute(sa_select(func.count()).where(in_window)).scalar_one())
    if opt_outs <= threshold * floor:
        return None  # not over the share whatever the sends: no need to count them
    sends = _sends(session, campaign.id, cutoff, in_window, limit=math.ceil(opt_outs / threshold))
    if opt_outs <= threshold * max(sends, floor):
        return None
    return _pause(session, campaign, opt_outs, sends, threshold, now)


def _sends(session: Session, campaign_id: int, cutoff: datetime, in_window: Any, limit: int) -> int:
    """The campaign's sends in the window, counted no further than ``limit`` (enough to decide)."""
    accepted = (
        sa_select(OUTBOX.c.id)
        .where(OUTBOX.c.campaign_id == campaign_id, OUTBOX.c.sent_at >= cutoff)
        .limit(limit)
        .subquery()
    )
    n_accepted = session.execute(sa_select(func.count()).select_from(accepted)).scalar_one()
    # A send refused on the spot with an opt-out code has no sent_at: its signal stands for it.
    refused = (
        sa_select(func.count())
        .select_from(SIGNALS.join(OUTBOX, OUTBOX.c.id == SIGNALS.c.outbox_id))
        .where(in_window, or_(OUTBOX.c.sent_at.is_(None), OUTBOX.c.sent_at < cutoff))
    )
    return int(n_accepted) + int(session.execute(refused).scalar_one())


def _pause(
    session: Session, campaign: Campaign, opt_outs: int, sends: int, threshold: float, now: datetime
) -> CampaignHold:
    assert campaign.id is not None
    hold = CampaignHold(
        campaign_id=campaign.id,
        campaign_status=campaign.status,
        opt_outs=opt_outs,
        sends=sends,
        threshold=threshold,
        opened_at=now,
    )
    session.add(hold)
    if campaign.status in PAUSABLE:
        # A fan-out in progress stops at its next chunk (it only renews a campaign that is "sending").
        transition(session, campaign, {"status": "paused"}, ("queued",), "held")
    session.flush()
    log.warning(
        "campaign %s paused: %d of %d sends came back with a provider opt-out code (over %.0f%%); "
        "confirm or dismiss hold %s",
        campaign.id,
        opt_outs,
        sends,
        threshold * 100,
        hold.id,
    )
    return hold


# ---- operator decisions -------------------------------------------------------------------------------


def list_holds(session: Session, status: str | None = "open") -> list[CampaignHold]:
    """Holds, newest first (``status`` None: all of them)."""
    stmt = select(CampaignHold).order_by(col(CampaignHold.id).desc())
    if status is not None:
        stmt = stmt.where(col(CampaignHold.status) == status)
    return list(session.execute(stmt).scalars())


def held_count(session: Session, hold_id: int) -> int:
    """Opt-out codes still waiting under a hold."""
    stmt = sa_select(func.count()).where(SIGNALS.c.hold_id == hold_id, SIGNALS.c.state == "held")
    return int(session.execute(stmt).scalar_one())


def confirm(gw: Gateway, hold_id: int, actor: str, reason: str | None = None) -> CampaignHold:
    """The held codes were real opt-outs: apply each (ledgered), then resume the campaign."""
    return _resolve(gw, hold_id, True, actor, reason)


def dismiss(gw: Gateway, hold_id: int, actor: str, reason: str) -> CampaignHold:
    """The held codes were a provider fault: discard each, ``reason`` in the ledger; resume the campaign."""
    if not reason or not reason.strip():
        raise PayloadError("dismissing held opt-outs needs a reason for the ledger", field="reason")
    return _resolve(gw, hold_id, False, actor, reason.strip())


def _resolve(gw: Gateway, hold_id: int, confirmed: bool, actor: str, reason: str | None) -> CampaignHold:
    now = utcnow()
    with gw.db.transaction() as session:
        stmt = select(CampaignHold).where(col(CampaignHold.id) == hold_id).with_for_update()
        hold = session.execute(stmt.execution_options(populate_existing=True)).scalar_one_or_none()
        if hold is None:
            raise NotFoundError(f"hold {hold_id} does not exist")
        if hold.status != "open":
            raise ConflictError(f"hold {hold_id} was already {hold.status}")
        campaign = _locked(session, hold.campaign_id)
        signals = session.execute(
            select(ProviderOptOutSignal)
            .where(col(ProviderOptOutSignal.hold_id) == hold_id, col(ProviderOptOutSignal.state) == "held")
            .order_by(col(ProviderOptOutSignal.id))
        ).scalars()
        verdict = "confirmed" if confirmed else "dismissed"
        note = f"mass opt-out safeguard hold {hold_id} {verdict}" + (f": {reason}" if reason else "")
        for signal in list(signals):
            details = {**signal.evidence, "hold_id": hold_id}
            if confirmed:
                evidence = Evidence(
                    source="provider",
                    occurred_at=signal.occurred_at,
                    provider=signal.provider,
                    provider_message_id=signal.provider_message_id,
                    reason=note,
                    actor=actor,
                    details=details,
                )
                apply_consent(
                    session,
                    channel=signal.channel,
                    address=signal.address,
                    scope=signal.scope,
                    opted_out=True,
                    evidence=evidence,
                )
            else:
                session.add(
                    ConsentEvent(
                        channel=signal.channel,
                        address=signal.address,
                        scope=signal.scope,
                        action="opt_out_dismissed",
                        changed=False,
                        source="provider",
                        provider=signal.provider,
                        provider_message_id=signal.provider_message_id,
                        reason=note,
                        actor=actor,
                        evidence=details,
                        occurred_at=signal.occurred_at,
                        recorded_at=now,
                    )
                )
            signal.state = verdict
        hold.status, hold.resolved_at, hold.resolved_by, hold.reason = verdict, now, actor, reason
        if campaign is not None and campaign.status == "paused" and hold.campaign_status in PAUSABLE:
            transition(session, campaign, {"status": hold.campaign_status}, ("held",), "queued")
        session.flush()
    log.info("hold %s %s by %s; campaign %s resumed", hold_id, verdict, actor, hold.campaign_id)
    return hold
