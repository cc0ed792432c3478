"""The one generic webhook route: verify -> parse -> clean -> dedupe -> rules -> commit -> acknowledge.

Every provider goes through this view; adapters only verify and parse. Error contract (the providers'
retry logic depends on it): a bad signature or token is 403, a malformed payload 400, an unknown provider
404, an oversized body 413; anything unexpected is a 5xx so the provider delivers again, and a 2xx is
sent only after the transaction holding the message and all its effects has committed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from flask import Blueprint, Response, request
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from adapters.base import WebhookRequest
from gateway import payloads
from gateway.errors import GatewayError, UnknownProviderError
from gateway.http import gateway
from gateway.inbound import log_outcome, prepare, process
from gateway.runtime import Gateway
from gateway.status import record_status

log = logging.getLogger(__name__)
T = TypeVar("T")
bp = Blueprint("webhooks", __name__)

# Deadlocks and serialisation failures under concurrent load are retried here rather than answered 5xx.
_TX_ATTEMPTS = 3


def webhook_request(gw: Gateway) -> WebhookRequest:
    """The Flask request as an adapter sees it, with the URL the provider signed."""
    # The request object itself rather than the context-local proxy: every attribute read through the
    # proxy costs a context lookup, and this function reads a dozen of them per webhook.
    req = request._get_current_object()  # type: ignore[attr-defined]
    base = gw.settings.public_url
    path = req.path
    if base:
        query = req.query_string.decode("latin-1")
        url = f"{base}{path}?{query}" if query else f"{base}{path}"
    else:
        url = req.url
    body = req.get_data(cache=True)  # raises 413 past MAX_CONTENT_LENGTH
    return WebhookRequest(
        method=req.method,
        url=url,
        path=path,
        headers=dict(req.headers.items()),
        body=body,
        query=req.args.to_dict(flat=False),
        form=req.form.to_dict(flat=False),
        remote_addr=req.remote_addr,
    )


@bp.route("/webhooks/<provider>/<kind>", methods=["POST", "GET"])
def webhook(provider: str, kind: str) -> Response:
    """Receive one provider webhook (``kind`` is ``inbound`` or ``status``)."""
    gw = gateway()
    adapter = gw.adapter(provider)
    if kind not in ("inbound", "status"):
        raise UnknownProviderError(f"no webhook {kind!r} for {provider}")
    req = webhook_request(gw)
    adapter.verify(req)
    if kind == "inbound":
        messages = [payloads.inbound(m) for m in adapter.parse_inbound(req)]
        # Normalising and rule evaluation happen before the transaction, so it holds its locks only for
        # its statements; the log lines are written once the effects are committed.
        incoming = [prepare(gw, m) for m in messages]
        outcomes = _commit(gw, lambda session: [process(session, gw, m) for m in incoming])
        for outcome in outcomes:
            log_outcome(outcome)
        ack = adapter.ack(messages)
    else:
        updates = [payloads.status(u) for u in adapter.parse_status(req)]
        _commit(gw, lambda session: [record_status(session, gw, u) for u in updates])
        ack = adapter.ack([])
    return Response(ack.body, status=ack.status, content_type=ack.content_type)


def _commit(gw: Gateway, work: Callable[[Session], T]) -> T:
    """Run ``work`` in a write transaction and commit; retried on deadlocks and a locked database."""
    for attempt in range(1, _TX_ATTEMPTS + 1):
        try:
            with gw.db.transaction() as session:
                result = work(session)
            return result
        except OperationalError as exc:
            if attempt == _TX_ATTEMPTS or not _retryable(exc):
                raise
            log.warning("webhook transaction retried after %s", type(exc.orig).__name__)
        except GatewayError:
            raise
    raise AssertionError("unreachable: the last attempt returns or raises")


def _retryable(exc: OperationalError) -> bool:
    code = getattr(exc.orig, "sqlstate", None)
    # 40001 serialization_failure, 40P01 deadlock_detected; SQLite reports "database is locked". A
    # connection that broke mid-transaction (the server restarted) is invalidated: the retry gets a new one.
    return code in ("40001", "40P01") or "locked" in str(exc.orig) or exc.connection_invalidated
