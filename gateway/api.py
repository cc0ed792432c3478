"""REST API under ``/api/v1`` (bearer token) plus the unauthenticated health probes."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from flask import Blueprint, Response, jsonify
from pydantic import BaseModel, Field
from sqlalchemy import text

from gateway.addresses import normalize_address
from gateway.guard import opted_out_among, submit
from gateway.http import gateway, require_token
from gateway.messages import Category
from gateway.openapi import document, parse_body, spec
from gateway.storage import active_opt_out

bp = Blueprint("api", __name__)


class MessageIn(BaseModel):
    """A message to send through the guard."""

    channel: Literal["sms", "email"] = "sms"
    to: str = Field(min_length=1, max_length=320)
    body: str = Field(min_length=1, max_length=10_000)
    subject: str | None = Field(default=None, max_length=998)
    html_body: str | None = None
    sender: str | None = Field(default=None, alias="from", max_length=320)
    category: Literal["marketing", "informational", "transactional"] = "marketing"
    bypass_reason: str | None = Field(default=None, max_length=1000)
    idempotency_key: str | None = Field(default=None, max_length=150)
    # An email topic from `email.topics` (newsletters): blocked when the person left it or everything.
    topic: str | None = Field(default=None, max_length=40)

    model_config = {"populate_by_name": True, "extra": "forbid"}


class MessageAccepted(BaseModel):
    """A queued message."""

    id: int | None
    status: str
    idempotency_key: str


class OptedOutProblem(BaseModel):
    """The 409 answer: the recipient opted out."""

    error: Literal["opted_out"]
    channel: str
    address: str
    scope: str
    since: str | None


class OptOutStatus(BaseModel):
    """Whether an address is opted out on a channel (in a scope, or in any)."""

    opted_out: bool
    channel: str
    address: str
    scope: str | None
    since: datetime | None
    source: str | None


#: Addresses one bulk check may carry: large enough for a campaign page, small enough for one request.
MAX_BULK_CHECK = 10_000
#: Body size a full bulk check needs (10,000 addresses of up to 320 characters, JSON-quoted).
_BULK_CHECK_BYTES = MAX_BULK_CHECK * 330


class BulkCheckIn(BaseModel):
    """Addresses to check against the Opt-Out List in one call."""

    channel: Literal["sms", "email"] = "sms"
    scope: str | None = Field(default=None, max_length=100, description="scope to check (default: any)")
    addresses: list[str] = Field(max_length=MAX_BULK_CHECK)

    model_config = {"extra": "forbid"}


class BulkCheckResult(BaseModel):
    """Which of the addresses are opted out (normalised, in request order) and which are not addresses."""

    opted_out: list[str]
    checked: int = Field(description="distinct valid addresses checked")
    invalid: list[str] = Field(description="inputs that are not valid addresses, as given")


class Health(BaseModel):
    """Liveness/readiness."""

    status: str


@bp.post("/api/v1/messages")
@document(
    "post",
    "/api/v1/messages",
    "Send a message through the opt-out guard",
    body=MessageIn,
    responses={202: MessageAccepted, 409: OptedOutProblem},
    tag="messages",
)
@require_token
def send_message() -> tuple[Response, int]:
    """Queue a message; 409 when the recipient opted out (unless transactional with a bypass reason)."""
    gw = gateway()
    data = parse_body(MessageIn)
    with gw.db.transaction() as session:
        result = submit(
            session,
            gw,
            channel=data.channel,
            to=data.to,
            body=data.body,
            sender=data.sender,
            category=Category(data.category),
            bypass_reason=data.bypass_reason,
            idempotency_key=f"api:{data.idempotency_key}" if data.idempotency_key else None,
            subject=data.subject,
            html_body=data.html_body,
            topic=data.topic,
        )
    payload = MessageAccepted(id=result.id, status=result.status, idempotency_key=result.idempotency_key)
    return jsonify(payload.model_dump()), 202


@bp.get("/api/v1/opt-outs/<channel>/<path:address>")
@document(
    "get",
    "/api/v1/opt-outs/{channel}/{address}",
    "Opt-out status of one address",
    responses={200: OptOutStatus},
    query={"scope": "scope to check (default: any scope)"},
    tag="opt-outs",
)
@require_token
def opt_out_status(channel: str, address: str) -> Response:
    """Whether ``address`` is opted out on ``channel``; ``?scope=`` narrows to one scope (and ``*``)."""
    from flask import request

    from gateway.errors import PayloadError

    gw = gateway()
    if channel not in ("sms", "email"):
        raise PayloadError("channel must be sms or email", field="channel")
    normalized = normalize_address(channel, address, gw.settings.default_region)
    scope = request.args.get("scope") or None
    with gw.db.lookup() as session:
        state = active_opt_out(session, channel, normalized, scope)
    body = OptOutStatus(
        opted_out=state is not None,
        channel=channel,
        address=normalized,
        scope=state.scope if state else scope,
        since=state.since if state else None,
        source=state.source if state else None,
    )
    return jsonify(body.model_dump(mode="json"))


@bp.post("/api/v1/opt-outs/check")
@document(
    "post",
    "/api/v1/opt-outs/check",
    f"Bulk opt-out check of up to {MAX_BULK_CHECK:,} addresses",
    body=BulkCheckIn,
    responses={200: BulkCheckResult},
    tag="opt-outs",
)
@require_token
def bulk_check() -> Response:
    """Which ``addresses`` are opted out on ``channel`` (in ``scope`` and ``*``, or in any scope)."""
    from flask import request

    from gateway.errors import InvalidAddressError

    gw = gateway()
    # The general body limit (max_body_bytes) is sized for webhooks; a full bulk check is larger.
    request.max_content_length = max(gw.settings.max_body_bytes, _BULK_CHECK_BYTES)
    data = parse_body(BulkCheckIn)
    region = gw.settings.default_region
    normalized: dict[str, None] = {}
    invalid: list[str] = []
    for raw in data.addresses:
        try:
            normalized[normalize_address(data.channel, raw, region)] = None
        except InvalidAddressError:
            invalid.append(raw)
    with gw.db.lookup() as session:
        found = opted_out_among(session, data.channel, normalized, data.scope)
    body = BulkCheckResult(
        opted_out=[address for address in normalized if address in found],
        checked=len(normalized),
        invalid=invalid,
    )
    return jsonify(body.model_dump())


@bp.get("/healthz")
@document("get", "/healthz", "Liveness probe", responses={200: Health}, auth=False, tag="health")
def healthz() -> Response:
    """The process is up."""
    return jsonify({"status": "ok"})


@bp.get("/readyz")
@document(
    "get",
    "/readyz",
    "Readiness probe (checks the database)",
    responses={200: Health, 503: Health},
    auth=False,
    tag="health",
)
def readyz() -> tuple[Response, int]:
    """The database answers."""
    gw = gateway()
    try:
        with gw.db.lookup() as session:
            session.execute(text("SELECT 1"))
    except Exception:
        return jsonify({"status": "database unavailable"}), 503
    return jsonify({"status": "ok"}), 200


@bp.get("/openapi.json")
def openapi() -> Response:
    """The OpenAPI document of this API."""
    return jsonify(spec())
