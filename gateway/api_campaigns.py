"""REST API for the Opt-Out List, the consent ledger and campaigns under ``/api/v1`` (bearer token)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Literal

from flask import Blueprint, Response, jsonify, request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from gateway import campaigns as camp
from gateway import ledger
from gateway.api_lists import CsvUpload, RejectOut, csv_upload, cursor_arg, limit_arg, next_cursor, vars_of
from gateway.errors import PayloadError
from gateway.http import gateway, require_token
from gateway.importer import Reject
from gateway.models import Campaign
from gateway.openapi import document, parse_body
from gateway.storage import ConsentChange

bp = Blueprint("api_campaigns", __name__)

FILTERS = {
    "channel": "sms or email",
    "scope": "opt-out scope (* = every scope)",
    "source": "sms_keyword, provider, api, cli, import, email_link, ...",
    "since": "ISO 8601 time (inclusive)",
    "until": "ISO 8601 time (exclusive)",
    "cursor": "next_cursor of the previous page",
    "limit": "page size (1-1000, default 100)",
}


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OptOutIn(_In):
    """An opt-out made outside the message path (support ticket, web form, previous provider)."""

    channel: Literal["sms", "email"]
    address: str = Field(min_length=1, max_length=320)
    scope: str = Field(default="*", min_length=1, max_length=100)
    reason: str | None = Field(default=None, max_length=2000)
    actor: str | None = Field(default=None, max_length=200)
    occurred_at: datetime | None = None


class ResubscribeIn(_In):
    """An operator lifting an opt-out: needs a reason and the ``with_reason`` policy."""

    channel: Literal["sms", "email"]
    address: str = Field(min_length=1, max_length=320)
    reason: str = Field(min_length=1, max_length=2000)
    scope: str | None = Field(default=None, min_length=1, max_length=100)
    actor: str | None = Field(default=None, max_length=200)


class OptOutOut(BaseModel):
    """An active opt-out."""

    id: int
    channel: str
    address: str
    scope: str
    opted_out: bool
    source: str
    rule: str | None
    since: datetime
    event_at: datetime


class OptOutPage(BaseModel):
    """A page of the Opt-Out List."""

    items: list[OptOutOut]
    next_cursor: str | None


class ChangeOut(BaseModel):
    """The ledger row written for one scope, and whether it changed the state."""

    scope: str
    changed: bool
    event_id: int


class Changes(BaseModel):
    """What a consent change wrote."""

    changes: list[ChangeOut]


class ConsentEventOut(BaseModel):
    """One ledger row, with all its evidence."""

    id: int
    occurred_at: datetime
    recorded_at: datetime
    channel: str
    address: str
    scope: str
    action: str
    changed: bool
    source: str
    rule: str | None
    raw_text: str | None
    provider: str | None
    provider_message_id: str | None
    reason: str | None
    actor: str | None
    evidence: dict[str, Any]


class ConsentEventPage(BaseModel):
    """A page of the ledger, in event order."""

    items: list[ConsentEventOut]
    next_cursor: str | None


class OptOutImportResult(BaseModel):
    """What an opt-out import did."""

    rows: int
    recorded: int
    changed: int
    rejected: int
    rejects: list[RejectOut]


class CampaignIn(_In):
    """A campaign: ``body`` to every eligible member of ``list`` (id or name), now or at ``send_at``."""

    name: str = Field(min_length=1, max_length=200)
    list: int | str
    body: str = Field(min_length=1, max_length=10_000)
    category: Literal["marketing", "informational"] = "marketing"
    channel: Literal["sms", "email"] | None = None
    sender: str | None = Field(default=None, max_length=320)
    subject: str | None = Field(default=None, max_length=998)
    html_body: str | None = Field(default=None, max_length=500_000)
    topic: str | None = Field(default=None, max_length=100)
    send_at: datetime | None = None


class CampaignCounts(BaseModel):
    """Where the campaign's messages are (live from the outbox) and who was left out at fan-out."""

    members: int
    fanned_out: int
    queued: int
    held: int  # queued messages of a paused campaign
    sending: int
    sent: int
    failed: int
    blocked: int
    cancelled: int
    excluded_opted_out: int
    excluded_no_address: int
    opted_out_since: int


class CampaignOut(BaseModel):
    """A campaign, its status and counts."""

    id: int
    name: str
    list_id: int | None
    channel: str
    category: str
    body: str
    subject: str | None
    sender: str | None
    provider: str
    scope: str
    status: str
    segments: int
    encoding: str
    footer_appended: bool
    send_at: datetime
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    counts: CampaignCounts


class CampaignPage(BaseModel):
    """A page of campaigns, newest first."""

    items: list[CampaignOut]
    next_cursor: str | None


def filters_arg() -> ledger.Filters:
    """The shared filters from the query string (times parsed, channel checked)."""
    channel = request.args.get("channel") or None
    if channel not in (None, "sms", "email"):
        raise PayloadError("channel must be sms or email", field="channel")
    times = {}
    for name in ("since", "until"):
        raw = request.args.get(name)
        times[name] = ledger.parse_time(raw, name) if raw else None
    return ledger.Filters(
        channel=channel,
        scope=request.args.get("scope") or None,
        source=request.args.get("source") or None,
        since=times["since"],
        until=times["until"],
        address=request.args.get("address") or None,
    )


def _changes(changes: list[ConsentChange]) -> dict[str, Any]:
    return {
        "changes": [
            ChangeOut(scope=c.scope, changed=c.changed, event_id=c.event_id).model_dump() for c in changes
        ]
    }


# ---- the Opt-Out List ------------------------------------------------------------------------------------


@bp.get("/api/v1/opt-outs")
@document(
    "get", "/api/v1/opt-outs", "The Opt-Out List", responses={200: OptOutPage}, query=FILTERS, tag="opt-outs"
)
@require_token
def opt_outs() -> Response:
    """Active opt-outs, filtered, in id order."""
    limit = limit_arg()
    with gateway().db.read() as session:
        rows = ledger.opt_out_page(session, filters_arg(), cursor_arg(), limit)
    items = [ledger.record_dict(r, ledger.OPT_OUT_FIELDS) for r in rows]
    return jsonify({"items": items, "next_cursor": next_cursor([r.id or 0 for r in rows], limit)})


@bp.post("/api/v1/opt-outs")
@document(
    "post",
    "/api/v1/opt-outs",
    "Add an opt-out by hand",
    body=OptOutIn,
    responses={201: Changes},
    tag="opt-outs",
)
@require_token
def add_opt_out() -> tuple[Response, int]:
    """Record an opt-out (source ``api``); scope ``*`` (default) covers every scope."""
    gw = gateway()
    data = parse_body(OptOutIn)
    with gw.db.transaction() as session:
        changes = ledger.add_opt_out(
            session,
            gw,
            channel=data.channel,
            address=data.address,
            scope=data.scope,
            reason=data.reason,
            actor=data.actor,
            occurred_at=data.occurred_at,
        )
    return jsonify(_changes(changes)), 201


@bp.post("/api/v1/opt-outs/import")
@document(
    "post",
    "/api/v1/opt-outs/import",
    "Import previously opted-out people from a CSV (source import)",
    body=CsvUpload,
    responses={200: OptOutImportResult},
    query={"channel": "sms or email (required)", "scope": "scope for rows without one (default *)"},
    content_type="multipart/form-data",
    tag="opt-outs",
)
@require_token
def import_opt_outs() -> Response:
    """Columns: address (or phone/email), optional scope, opted_out_at (ISO 8601) and reason."""
    gw = gateway()
    channel = request.args.get("channel") or request.form.get("channel")
    if channel not in ("sms", "email"):
        raise PayloadError("channel must be sms or email", field="channel")
    stream, name = csv_upload()
    rejects: list[Reject] = []
    report = ledger.import_opt_outs(
        gw,
        stream,
        channel=channel,
        scope=request.args.get("scope") or request.form.get("scope") or "*",
        actor="api",
        filename=name,
        on_reject=rejects.append,
    )
    return jsonify({**report.as_dict(), "rejects": [RejectOut(**vars_of(r)).model_dump() for r in rejects]})


@bp.post("/api/v1/opt-outs/resubscribe")
@document(
    "post",
    "/api/v1/opt-outs/resubscribe",
    "Lift an opt-out (operator re-subscribe; needs policy with_reason and a reason)",
    body=ResubscribeIn,
    responses={200: Changes},
    tag="opt-outs",
)
@require_token
def resubscribe() -> Response:
    """403 under the default policy (deny): only the person can opt back in."""
    gw = gateway()
    data = parse_body(ResubscribeIn)
    with gw.db.transaction() as session:
        changes = ledger.resubscribe(
            session,
            gw,
            channel=data.channel,
            address=data.address,
            reason=data.reason,
            scope=data.scope,
            actor=data.actor or "api",
        )
    return jsonify(_changes(changes))


@bp.get("/api/v1/consent-events")
@document(
    "get",
    "/api/v1/consent-events",
    "The consent ledger, in event order",
    responses={200: ConsentEventPage},
    query={**FILTERS, "address": "one normalised address"},
    tag="opt-outs",
)
@require_token
def consent_events() -> Response:
    """Ledger rows with every field, filtered; ``since``/``until`` apply to when the event happened."""
    limit = limit_arg()
    with gateway().db.read() as session:
        rows = ledger.event_page(session, filters_arg(), cursor_arg(), limit)
    items = [ledger.record_dict(r, ledger.EVENT_FIELDS) for r in rows]
    return jsonify({"items": items, "next_cursor": next_cursor([r.id or 0 for r in rows], limit)})


# ---- campaigns -----------------------------------------------------------------------------------------


def campaign_out(campaign: Campaign, live: dict[str, int]) -> dict[str, Any]:
    """A campaign as `CampaignOut` JSON."""
    assert campaign.id is not None
    counts = CampaignCounts(
        members=campaign.members,
        fanned_out=campaign.queued,
        queued=live["queued"],
        held=live["held"],
        sending=live["sending"],
        sent=live["sent"],
        failed=live["failed"],
        blocked=live["blocked"],
        cancelled=live["cancelled"],
        excluded_opted_out=campaign.excluded_opted_out,
        excluded_no_address=campaign.excluded_no_address,
        opted_out_since=live["opted_out_since"],
    )
    return CampaignOut(
        **{name: getattr(campaign, name) for name in CampaignOut.model_fields if name != "counts"},
        counts=counts,
    ).model_dump(mode="json")


@bp.post("/api/v1/campaigns")
@document(
    "post",
    "/api/v1/campaigns",
    "Create a campaign",
    body=CampaignIn,
    responses={201: CampaignOut},
    tag="campaigns",
)
@require_token
def create_campaign() -> tuple[Response, int]:
    """Schedule a campaign; the worker fans it out at ``send_at`` (default now)."""
    gw = gateway()
    data = parse_body(CampaignIn)
    with gw.db.transaction() as session:
        campaign = camp.create_campaign(
            session,
            gw,
            name=data.name,
            list_ref=data.list,
            body=data.body,
            category=data.category,
            channel=data.channel,
            sender=data.sender,
            subject=data.subject,
            html_body=data.html_body,
            topic=data.topic,
            send_at=data.send_at,
        )
        body = campaign_out(campaign, camp.live_counts(session, campaign))
    return jsonify(body), 201


@bp.get("/api/v1/campaigns")
@document(
    "get",
    "/api/v1/campaigns",
    "Campaigns, newest first",
    responses={200: CampaignPage},
    query={"cursor": FILTERS["cursor"], "limit": FILTERS["limit"]},
    tag="campaigns",
)
@require_token
def campaigns() -> Response:
    """A page of campaigns with their counts."""
    limit = limit_arg()
    with gateway().db.read() as session:
        found = camp.list_campaigns(session, cursor_arg(), limit)
        items = [campaign_out(c, camp.live_counts(session, c)) for c in found]
    return jsonify({"items": items, "next_cursor": next_cursor([c.id or 0 for c in found], limit)})


@bp.get("/api/v1/campaigns/<int:campaign_id>")
@document(
    "get",
    "/api/v1/campaigns/{campaign_id}",
    "A campaign's status and counts",
    responses={200: CampaignOut},
    tag="campaigns",
)
@require_token
def read_campaign(campaign_id: int) -> Response:
    """Status and counts: queued, sent, failed, excluded as opted out, opted out since."""
    with gateway().db.read() as session:
        found = camp.get_campaign(session, campaign_id)
        return jsonify(campaign_out(found, camp.live_counts(session, found)))


def _transition(action: Callable[[Session, int], Campaign], campaign_id: int) -> Response:
    with gateway().db.transaction() as session:
        found = action(session, campaign_id)
        return jsonify(campaign_out(found, camp.live_counts(session, found)))


@bp.post("/api/v1/campaigns/<int:campaign_id>/cancel")
@document(
    "post",
    "/api/v1/campaigns/{campaign_id}/cancel",
    "Cancel a campaign",
    responses={200: CampaignOut},
    tag="campaigns",
)
@require_token
def cancel_campaign(campaign_id: int) -> Response:
    """Stop a scheduled, sending or paused campaign: nothing more of it is sent (409 once it is sent)."""
    return _transition(camp.cancel_campaign, campaign_id)


@bp.post("/api/v1/campaigns/<int:campaign_id>/pause")
@document(
    "post",
    "/api/v1/campaigns/{campaign_id}/pause",
    "Pause a campaign",
    responses={200: CampaignOut},
    tag="campaigns",
)
@require_token
def pause_campaign(campaign_id: int) -> Response:
    """Hold a scheduled or sending campaign's queued messages until it is resumed (409 once it is sent)."""
    return _transition(camp.pause_campaign, campaign_id)


@bp.post("/api/v1/campaigns/<int:campaign_id>/resume")
@document(
    "post",
    "/api/v1/campaigns/{campaign_id}/resume",
    "Resume a paused campaign",
    responses={200: CampaignOut},
    tag="campaigns",
)
@require_token
def resume_campaign(campaign_id: int) -> Response:
    """Queue a paused campaign's held messages again (409 while a safeguard hold on it is open)."""
    return _transition(camp.resume_campaign, campaign_id)
