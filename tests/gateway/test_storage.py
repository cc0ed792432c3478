"""Consent state and ledger semantics, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from gateway.lists import record_reply
from gateway.messages import InboundMessage
from gateway.models import utcnow
from gateway.storage import Evidence, active_opt_out, apply_consent
from tests.gateway.helpers import ledger

A = "+14155550100"


def consent(gw: Any, opted_out: bool, at: Any, scope: str = "acme", **kw: Any) -> list[Any]:
    with gw.db.transaction() as s:
        return apply_consent(s, channel="sms", address=A, scope=scope, opted_out=opted_out,
                             evidence=Evidence(source="sms_keyword", occurred_at=at), **kw)


def test_out_of_order_events_follow_provider_time(gw: Any) -> None:
    t0 = utcnow()
    consent(gw, True, t0)
    # START sent after the STOP but delivered first, then the STOP's redelivery... in provider order:
    consent(gw, False, t0 + timedelta(seconds=5))
    stale = consent(gw, True, t0 + timedelta(seconds=1))  # an older STOP arriving late
    assert [c.changed for c in stale] == [False]
    with gw.db.read() as s:
        assert active_opt_out(s, "sms", A, "acme") is None
    assert [(e.action, e.changed) for e in ledger(gw, A)] == [("opt_out", True), ("opt_in", True),
                                                              ("opt_out", False)]


def test_all_scopes_and_scope_opt_in(gw: Any) -> None:
    t0 = utcnow()
    consent(gw, True, t0, all_scopes=True, known_scopes=["acme", "other"])
    with gw.db.read() as s:
        assert active_opt_out(s, "sms", A, "brand-new-scope") is not None  # '*' covers new scopes
    consent(gw, False, t0 + timedelta(seconds=1), scope="other")
    with gw.db.read() as s:
        assert active_opt_out(s, "sms", A, "other") is None
        assert active_opt_out(s, "sms", A, "acme") is not None
        assert active_opt_out(s, "sms", A, "brand-new-scope") is None


def test_channels_are_independent(gw: Any) -> None:
    consent(gw, True, utcnow())
    with gw.db.read() as s:
        assert active_opt_out(s, "email", A, "acme") is None
        assert active_opt_out(s, "sms", A, None) is not None


def test_record_inbound_is_idempotent(gw: Any) -> None:
    msg = InboundMessage(provider="twilio", provider_message_id="SM1", sender=A, recipient="+1", text="x")
    row = {"provider": "twilio", "provider_message_id": "SM1", "sender": A, "recipient": "+1", "text": "x"}
    with gw.db.transaction() as s:
        first = record_reply(s, msg, row)
        second = record_reply(s, msg, row)
    assert first is not None and second is None
