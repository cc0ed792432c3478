"""The unsubscribe pages behind every email's link: ``/u/<token>`` and ``/u/<token>/preferences``.

- ``GET /u/<token>`` only shows a page (the address partly masked, one button). Link scanners that open
  every URL in an email therefore unsubscribe nobody.
- ``POST /u/<token>`` with ``List-Unsubscribe=One-Click`` (RFC 8058, urlencoded or multipart) unsubscribes
  and answers a plain 200: no redirect, no cookie, nothing to render. Mail clients send it.
- ``POST /u/<token>`` from the page's button unsubscribes and shows a confirmation with an undo button.
- The preference page leaves or rejoins one topic or everything in the link's scope.

The token in the URL is the only credential, so a form needs no CSRF token: a forged cross-site POST would
have to know it. Every change is a ledger event, source ``one_click`` or ``email_link``; a re-subscription
here is the person's own act, the one kind the ``deny`` policy allows. Pages are server-rendered with no
script, no cookies and ``Cache-Control: no-store``. A bad, tampered, foreign or expired token gets the same
400 page, which says nothing about why.
"""

from __future__ import annotations

from typing import Any, Literal, TypeVar

from flask import Blueprint, Response, render_template, request
from pydantic import BaseModel, Field, ValidationError
from sqlmodel import col, select

from gateway.addresses import mask
from gateway.email import InvalidLinkError, LinkClaim, signer_for, topic_scope
from gateway.http import gateway
from gateway.models import OptOut
from gateway.openapi import document
from gateway.runtime import Gateway
from gateway.storage import Evidence, active_opt_out, apply_consent

bp = Blueprint("unsubscribe", __name__, template_folder="templates")

CHANNEL = "email"
ALL = "all"
_FORM = "application/x-www-form-urlencoded"


class UnsubscribeForm(BaseModel):
    """``List-Unsubscribe=One-Click`` from a mail client (RFC 8058), or the page's button."""

    list_unsubscribe: Literal["One-Click"] | None = Field(default=None, alias="List-Unsubscribe")
    action: Literal["unsubscribe", "resubscribe"] | None = None


class PreferenceForm(BaseModel):
    """Leave or rejoin one topic, or everything (``target=all``)."""

    action: Literal["leave", "join"]
    target: str = Field(description="a topic from email.topics, or 'all'")


F = TypeVar("F", bound=BaseModel)


def _form(model: type[F]) -> F:
    """The posted form (urlencoded or multipart) validated by the model its endpoint documents."""
    try:
        return model.model_validate(request.form.to_dict())
    except ValidationError:
        raise InvalidLinkError("bad form") from None


def _page(template: str, status: int = 200, **values: Any) -> Response:
    gw = gateway()
    values.setdefault("brand", gw.settings.brand)
    values.setdefault("support", gw.settings.support)
    resp = Response(render_template(template, **values), status=status, mimetype="text/html")
    resp.headers["Cache-Control"] = "no-store"
    resp.headers["X-Robots-Tag"] = "noindex"
    return resp


@bp.errorhandler(InvalidLinkError)
def invalid_link(_exc: InvalidLinkError) -> Response:
    """One page for every unusable token: it reveals neither the address nor what was wrong."""
    return _page("unsubscribe_invalid.html", status=400)


def _claim(gw: Gateway, token: str) -> LinkClaim:
    return signer_for(gw).read(token)


def _change(gw: Gateway, claim: LinkClaim, scope: str, opted_out: bool, source: str, via: str) -> bool:
    """Record the person's choice for ``scope``; True when it changed their state."""
    evidence = Evidence(
        source=source,
        actor="recipient",
        details={
            "via": via,
            "link_scope": claim.scope,
            "link_topic": claim.topic,
            "link_issued_at": claim.issued_at.isoformat(),
        },
    )
    with gw.db.transaction() as session:
        changes = apply_consent(
            session,
            channel=CHANNEL,
            address=claim.address,
            scope=scope,
            opted_out=opted_out,
            evidence=evidence,
        )
    return any(c.changed for c in changes)


def _topic_label(gw: Gateway, topic: str | None) -> str | None:
    return gw.settings.email.topics.get(topic, topic) if topic else None


def _is_out(gw: Gateway, claim: LinkClaim, scope: str) -> bool:
    with gw.db.read() as session:
        return active_opt_out(session, CHANNEL, claim.address, scope) is not None


def _landing(gw: Gateway, token: str, claim: LinkClaim, template: str, **values: Any) -> Response:
    signer = signer_for(gw)
    return _page(
        template,
        masked=mask(claim.address),
        topic=_topic_label(gw, claim.topic),
        opted_out=_is_out(gw, claim, claim.opt_out_scope),
        preferences_url=signer.preferences_url(token),
        **values,
    )


@bp.get("/u/<token>")
@document("get", "/u/{token}", "Unsubscribe page (HTML; changes nothing)", responses={200: None, 400: None},
          auth=False, tag="email")
def landing(token: str) -> Response:
    """The page an unsubscribe link opens: who, from what, and one button. Changes nothing."""
    gw = gateway()
    claim = _claim(gw, token)
    return _landing(gw, token, claim, "unsubscribe.html")


@bp.post("/u/<token>")
@document("post", "/u/{token}", "One-click unsubscribe (RFC 8058), or the unsubscribe page's buttons",
          body=UnsubscribeForm, responses={200: None, 400: None}, auth=False, tag="email", content_type=_FORM)
def unsubscribe(token: str) -> Response:
    """One-click (RFC 8058) or the page's button: unsubscribe; the page's undo button: resubscribe."""
    gw = gateway()
    claim = _claim(gw, token)
    form = _form(UnsubscribeForm)
    if form.list_unsubscribe == "One-Click":
        _change(gw, claim, claim.opt_out_scope, True, "one_click", "one_click")
        resp = Response("You are unsubscribed.\n", status=200, mimetype="text/plain")
        resp.headers["Cache-Control"] = "no-store"
        return resp
    if form.action is None:
        raise InvalidLinkError("no action")
    _change(gw, claim, claim.opt_out_scope, form.action == "unsubscribe", "email_link", "unsubscribe_page")
    return _landing(gw, token, claim, "unsubscribe_done.html")


def _preference_rows(gw: Gateway, claim: LinkClaim) -> tuple[bool, list[dict[str, Any]]]:
    """Whether the person left everything in the link's scope, and each topic with its state."""
    topics = dict(gw.settings.email.topics)
    if claim.topic and claim.topic not in topics:  # a topic since removed from the config
        topics[claim.topic] = claim.topic
    scopes = {topic_scope(claim.scope, t): t for t in topics}
    with gw.db.read() as session:
        everything = active_opt_out(session, CHANNEL, claim.address, claim.scope) is not None
        left = set(
            session.execute(
                select(OptOut.scope).where(
                    col(OptOut.channel) == CHANNEL,
                    col(OptOut.address) == claim.address,
                    col(OptOut.opted_out),
                    col(OptOut.scope).in_(list(scopes)),
                )
            ).scalars()
        )
    rows = [{"slug": t, "label": label, "opted_out": topic_scope(claim.scope, t) in left}
            for t, label in sorted(topics.items(), key=lambda item: item[1].lower())]
    return everything, rows


def _preferences(gw: Gateway, claim: LinkClaim, message: str | None = None) -> Response:
    everything, rows = _preference_rows(gw, claim)
    return _page(
        "unsubscribe_preferences.html",
        masked=mask(claim.address),
        everything=everything,
        topics=rows,
        message=message,
    )


@bp.get("/u/<token>/preferences")
@document("get", "/u/{token}/preferences", "Email preference page (HTML)", responses={200: None, 400: None},
          auth=False, tag="email")
def preferences(token: str) -> Response:
    """The preference page: every topic and "all email", each with its state and one button."""
    gw = gateway()
    return _preferences(gw, _claim(gw, token))


@bp.post("/u/<token>/preferences")
@document("post", "/u/{token}/preferences", "Leave or rejoin a topic or all email", body=PreferenceForm,
          responses={200: None, 400: None}, auth=False, tag="email", content_type=_FORM)
def change_preferences(token: str) -> Response:
    """Leave or rejoin one topic (``target=<slug>``) or everything (``target=all``)."""
    gw = gateway()
    claim = _claim(gw, token)
    form = _form(PreferenceForm)
    _, rows = _preference_rows(gw, claim)
    labels = {row["slug"]: row["label"] for row in rows}
    if form.target != ALL and form.target not in labels:
        raise InvalidLinkError("unknown topic")
    scope = claim.scope if form.target == ALL else topic_scope(claim.scope, form.target)
    _change(gw, claim, scope, form.action == "leave", "email_link", "preferences")
    what = f"all email from {gw.settings.brand}" if form.target == ALL else labels[form.target]
    done = "You left" if form.action == "leave" else "You are subscribed again to"
    return _preferences(gw, claim, f"{done} {what}.")
