"""REST API of the mass opt-out safeguard, `/api/v1/safeguard` (bearer token): list, confirm, dismiss."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Literal

from flask import Blueprint, Response, jsonify, request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from gateway import safeguard
from gateway.errors import PayloadError
from gateway.http import gateway, require_token
from gateway.models import CampaignHold
from gateway.openapi import document, parse_body
from gateway.runtime import Gateway

bp = Blueprint("api_safeguard", __name__)
STATUSES = ("open", "confirmed", "dismissed")


class HoldOut(BaseModel):
    """A campaign paused by the safeguard, and what was decided."""

    id: int
    campaign_id: int
    status: Literal["open", "confirmed", "dismissed"]
    campaign_status: str
    opt_outs: int
    sends: int
    threshold: float
    held: int
    opened_at: datetime
    resolved_at: datetime | None
    resolved_by: str | None
    reason: str | None


class HoldList(BaseModel):
    """Holds, newest first."""

    items: list[HoldOut]


class ConfirmIn(BaseModel):
    """Apply every held opt-out (they were real)."""

    model_config = ConfigDict(extra="forbid")
    reason: str | None = Field(default=None, max_length=2000)
    actor: str | None = Field(default=None, max_length=200)


class DismissIn(BaseModel):
    """Discard every held opt-out (the provider was wrong); the reason goes into the ledger."""

    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=1, max_length=2000)
    actor: str | None = Field(default=None, max_length=200)


def hold_out(session: Session, hold: CampaignHold) -> dict[str, object]:
    """The JSON form of a hold."""
    assert hold.id is not None
    body = HoldOut.model_validate({**hold.model_dump(), "held": safeguard.held_count(session, hold.id)})
    return body.model_dump(mode="json")


@bp.get("/api/v1/safeguard/holds")
@document(
    "get",
    "/api/v1/safeguard/holds",
    "Campaigns paused by the mass opt-out safeguard",
    responses={200: HoldList},
    query={"status": "open (default), confirmed, dismissed or all"},
    tag="safeguard",
)
@require_token
def list_holds() -> Response:
    """Holds with this status, newest first."""
    status = request.args.get("status") or "open"
    if status not in (*STATUSES, "all"):
        raise PayloadError("status must be open, confirmed, dismissed or all", field="status")
    with gateway().db.read() as session:
        holds = safeguard.list_holds(session, None if status == "all" else status)
        return jsonify({"items": [hold_out(session, h) for h in holds]})


@bp.post("/api/v1/safeguard/holds/<int:hold_id>/confirm")
@document(
    "post",
    "/api/v1/safeguard/holds/{hold_id}/confirm",
    "Confirm held provider opt-outs: apply them and resume the campaign",
    body=ConfirmIn,
    responses={200: HoldOut},
    tag="safeguard",
)
@require_token
def confirm_hold(hold_id: int) -> Response:
    """Apply every held opt-out (ledgered) and resume the campaign; 409 when already decided."""
    data = parse_body(ConfirmIn)
    return _decided(lambda gw: safeguard.confirm(gw, hold_id, data.actor or "api", data.reason))


@bp.post("/api/v1/safeguard/holds/<int:hold_id>/dismiss")
@document(
    "post",
    "/api/v1/safeguard/holds/{hold_id}/dismiss",
    "Dismiss held provider opt-outs: discard them (reason ledgered) and resume the campaign",
    body=DismissIn,
    responses={200: HoldOut},
    tag="safeguard",
)
@require_token
def dismiss_hold(hold_id: int) -> Response:
    """Discard every held opt-out with the reason in the ledger, resume the campaign; 409 when decided."""
    data = parse_body(DismissIn)
    return _decided(lambda gw: safeguard.dismiss(gw, hold_id, data.actor or "api", data.reason))


def _decided(decide: Callable[[Gateway], CampaignHold]) -> Response:
    gw = gateway()
    hold = decide(gw)
    with gw.db.read() as session:
        return jsonify(hold_out(session, hold))
