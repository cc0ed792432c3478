"""The STOP round trip through the Flask client: verify, parse, dedupe, rules, commit, acknowledge."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from gateway.models import OutboxMessage
from tests.conftest import OUR_CLICKSEND, OUR_OTHER_BRAND, OUR_TWILIO
from tests.gateway.helpers import (
    count,
    inbound_count,
    ledger,
    opt_out_state,
    outbox,
    post_twilio,
    twilio_form,
)

ME = "+14155550100"
AUTH = {"Authorization": "Bearer api-test-token"}


def test_stop_opts_out_and_queues_one_confirmation(client: Any, gw: Any) -> None:
    resp = post_twilio(client, twilio_form("Stop.", sid="SM-A"))
    assert resp.status_code == 200
    assert resp.content_type.startswith("text/xml")
    assert b"<Response" in resp.data
    state = opt_out_state(gw, ME, "acme")
    assert state is not None and state.opted_out and state.source == "sms_keyword"
    [event] = ledger(gw, ME)
    assert (event.action, event.changed, event.rule, event.raw_text) == ("opt_out", True, "opt-out", "Stop.")
    assert event.provider == "twilio" and event.provider_message_id == "SM-A"
    [reply] = outbox(gw)
    assert reply.recipient == ME and reply.sender == OUR_TWILIO
    assert reply.category == "compliance" and "Acme" in reply.body and "START" in reply.body


def test_redelivery_changes_nothing(client: Any, gw: Any) -> None:
    for _ in range(3):
        assert post_twilio(client, twilio_form("STOP", sid="SM-DUP")).status_code == 200
    assert inbound_count(gw) == 1
    assert len(ledger(gw, ME)) == 1
    assert len(outbox(gw)) == 1


def test_second_stop_is_ledgered_without_second_confirmation(client: Any, gw: Any) -> None:
    post_twilio(client, twilio_form("STOP", sid="SM-1"))
    post_twilio(client, twilio_form("unsubscribe", sid="SM-2"))
    events = ledger(gw, ME)
    assert [e.changed for e in events] == [True, False]
    assert len(outbox(gw)) == 1


def test_start_opts_back_in_with_confirmation(client: Any, gw: Any) -> None:
    post_twilio(client, twilio_form("STOP", sid="SM-1"))
    post_twilio(client, twilio_form("start", sid="SM-2"))
    state = opt_out_state(gw, ME, "acme")
    assert state is not None and not state.opted_out
    assert [e.action for e in ledger(gw, ME)] == ["opt_out", "opt_in"]
    bodies = [m.body for m in outbox(gw)]
    assert len(bodies) == 2 and "subscribed again" in bodies[1]


def test_start_without_prior_stop_sends_nothing(client: Any, gw: Any) -> None:
    post_twilio(client, twilio_form("START", sid="SM-1"))
    assert outbox(gw) == []


def test_help_is_answered_even_when_opted_out(client: Any, gw: Any) -> None:
    post_twilio(client, twilio_form("STOP", sid="SM-1"))
    post_twilio(client, twilio_form("help", sid="SM-2"))
    replies = outbox(gw)
    assert len(replies) == 2 and "help@acme.example" in replies[1].body


def test_ordinary_text_has_no_effect(client: Any, gw: Any) -> None:
    assert post_twilio(client, twilio_form("the bus stop is closed", sid="SM-1")).status_code == 200
    assert opt_out_state(gw, ME, "acme") is None
    assert outbox(gw) == [] and inbound_count(gw) == 1


def test_stop_is_per_scope(client: Any, gw: Any) -> None:
    post_twilio(client, twilio_form("STOP", sid="SM-1", to=OUR_TWILIO))
    ok = client.post("/api/v1/messages", json={"to": ME, "body": "hi", "from": OUR_OTHER_BRAND}, headers=AUTH)
    assert ok.status_code == 202
    refused = client.post("/api/v1/messages", json={"to": ME, "body": "hi", "from": OUR_TWILIO}, headers=AUTH)
    assert refused.status_code == 409
    assert refused.get_json()["scope"] == "acme"


def test_stopall_opts_out_of_every_scope(client: Any, gw: Any) -> None:
    post_twilio(client, twilio_form("STOP ALL", sid="SM-1"))
    for sender in (OUR_TWILIO, OUR_OTHER_BRAND):
        resp = client.post("/api/v1/messages", json={"to": ME, "body": "hi", "from": sender}, headers=AUTH)
        assert resp.status_code == 409, sender
    # START in one scope re-subscribes that scope only.
    post_twilio(client, twilio_form("START", sid="SM-2", to=OUR_OTHER_BRAND))
    again = client.post("/api/v1/messages", json={"to": ME, "body": "hi", "from": OUR_OTHER_BRAND}, headers=AUTH)
    assert again.status_code == 202
    still = client.post("/api/v1/messages", json={"to": ME, "body": "hi", "from": OUR_TWILIO}, headers=AUTH)
    assert still.status_code == 409


def test_provider_handled_stop_is_recorded_without_our_reply(client: Any, gw: Any) -> None:
    post_twilio(client, twilio_form("STOP", sid="SM-1", OptOutType="STOP"))
    state = opt_out_state(gw, ME, "acme")
    assert state is not None and state.opted_out and state.source == "provider"
    assert outbox(gw) == []


def test_bad_signature_is_403_and_stores_nothing(client: Any, gw: Any) -> None:
    resp = post_twilio(client, twilio_form("STOP", sid="SM-1"), token="wrong-token")
    assert resp.status_code == 403
    assert inbound_count(gw) == 0 and opt_out_state(gw, ME, "acme") is None


def test_missing_signature_is_403(client: Any, gw: Any) -> None:
    resp = client.post("/webhooks/twilio/inbound", data=twilio_form("STOP"))
    assert resp.status_code == 403


def test_unknown_provider_is_404(client: Any) -> None:
    assert client.post("/webhooks/nosuch/inbound", data={"a": "b"}).status_code == 404
    assert client.post("/webhooks/twilio/nosuch", data={"a": "b"}).status_code == 404


def test_oversized_body_is_413(client: Any, gw: Any) -> None:
    body = urlencode(twilio_form("x" * 70_000))
    resp = client.post("/webhooks/twilio/inbound", data=body,
                       headers={"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": "x"})
    assert resp.status_code == 413
    assert inbound_count(gw) == 0


def test_missing_field_is_400_naming_it(client: Any) -> None:
    form = twilio_form("STOP")
    del form["From"]
    resp = post_twilio(client, form)
    assert resp.status_code == 400
    assert "From" in resp.get_json()["detail"]


def test_failed_commit_is_5xx_never_2xx(client: Any, gw: Any, monkeypatch: Any) -> None:
    import gateway.webhooks

    def boom(*_a: Any, **_k: Any) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(gateway.webhooks, "process", boom)
    resp = post_twilio(client, twilio_form("STOP", sid="SM-X"))
    assert resp.status_code == 500
    assert inbound_count(gw) == 0


def test_clicksend_token_webhook(client: Any, gw: Any) -> None:
    form = {"timestamp": "1700000000", "from": "+61411111111", "to": OUR_CLICKSEND, "body": "STOP",
            "message_id": "CS-1", "custom_string": "", "original_message_id": ""}
    bad = client.post("/webhooks/clicksend/inbound?token=nope", data=form)
    assert bad.status_code == 403
    ok = client.post("/webhooks/clicksend/inbound?token=cs-webhook-token", data=form)
    assert ok.status_code == 200
    state = opt_out_state(gw, "+61411111111", "acme-au")
    assert state is not None and state.opted_out
    [reply] = outbox(gw)
    assert reply.provider == "clicksend" and reply.sender == OUR_CLICKSEND


def test_api_requires_token(client: Any) -> None:
    assert client.post("/api/v1/messages", json={"to": ME, "body": "x"}).status_code == 401
    wrong = {"Authorization": "Bearer nope"}
    assert client.post("/api/v1/messages", json={"to": ME, "body": "x"}, headers=wrong).status_code == 401
    assert client.get(f"/api/v1/opt-outs/sms/{ME}").status_code == 401


def test_api_send_guard_and_bypass(client: Any, gw: Any) -> None:
    post_twilio(client, twilio_form("STOP", sid="SM-1"))
    refused = client.post("/api/v1/messages", json={"to": ME, "body": "Sale!"}, headers=AUTH)
    assert refused.status_code == 409
    body = refused.get_json()
    assert body["error"] == "opted_out" and body["channel"] == "sms" and body["address"] == ME
    assert body["since"]
    no_reason = client.post("/api/v1/messages", json={"to": ME, "body": "Your code", "category": "transactional"},
                            headers=AUTH)
    assert no_reason.status_code == 409
    bypass = client.post("/api/v1/messages", headers=AUTH, json={
        "to": ME, "body": "Your order shipped", "category": "transactional", "bypass_reason": "order receipt"})
    assert bypass.status_code == 202
    assert [e.action for e in ledger(gw, ME)] == ["opt_out", "bypass"]
    assert count(gw, OutboxMessage, OutboxMessage.category == "transactional") == 1


def test_api_validation_names_the_field(client: Any) -> None:
    resp = client.post("/api/v1/messages", json={"to": ME}, headers=AUTH)
    assert resp.status_code == 400
    assert resp.mimetype == "application/problem+json"
    assert resp.get_json()["field"] == "body"
    bad_number = client.post("/api/v1/messages", json={"to": "12", "body": "x"}, headers=AUTH)
    assert bad_number.status_code == 400


def test_api_opt_out_status(client: Any) -> None:
    resp = client.get(f"/api/v1/opt-outs/sms/{ME}", headers=AUTH)
    assert resp.get_json()["opted_out"] is False
    post_twilio(client, twilio_form("STOP", sid="SM-1"))
    data = client.get("/api/v1/opt-outs/sms/(415) 555-0100", headers=AUTH).get_json()
    assert data["opted_out"] is True and data["scope"] == "acme" and data["source"] == "sms_keyword"
    assert data["address"] == ME


def test_health_and_openapi(client: Any) -> None:
    assert client.get("/healthz").get_json() == {"status": "ok"}
    assert client.get("/readyz").status_code == 200
    doc = client.get("/openapi.json").get_json()
    assert "/api/v1/messages" in doc["paths"]
    assert "MessageIn" in doc["components"]["schemas"]


def test_outcome_is_logged_only_after_commit(client: Any, gw: Any, monkeypatch: Any, caplog: Any) -> None:
    import gateway.db

    caplog.set_level("INFO", logger="gateway.inbound")
    assert post_twilio(client, twilio_form("STOP", sid="SM-L1")).status_code == 200
    [line] = [r.getMessage() for r in caplog.records if r.getMessage().startswith("inbound twilio")]
    assert "rule=opt-out changed=True" in line and ME not in line  # masked
    caplog.clear()

    real = gateway.db.Database.transaction

    def failing_commit(self: Any) -> Any:
        import contextlib

        @contextlib.contextmanager
        def tx() -> Any:
            with real(self) as session:
                yield session
                raise RuntimeError("commit failed")  # after the work, before the commit

        return tx()

    monkeypatch.setattr(gateway.db.Database, "transaction", failing_commit)
    assert post_twilio(client, twilio_form("STOP", sid="SM-L2", sender="+14155550101")).status_code == 500
    assert not [r for r in caplog.records if r.getMessage().startswith("inbound twilio")]


def test_transaction_on_a_broken_connection_is_retried(client: Any, gw: Any, monkeypatch: Any) -> None:
    from sqlalchemy.exc import OperationalError

    import gateway.webhooks

    real = gateway.webhooks.process
    calls: list[int] = []

    def first_attempt_loses_its_connection(session: Any, gw_: Any, incoming: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise OperationalError("INSERT ...", {}, Exception("server closed the connection"),
                                   connection_invalidated=True)
        return real(session, gw_, incoming)

    monkeypatch.setattr(gateway.webhooks, "process", first_attempt_loses_its_connection)
    assert post_twilio(client, twilio_form("STOP", sid="SM-R1")).status_code == 200
    assert len(calls) == 2 and inbound_count(gw) == 1
    assert opt_out_state(gw, ME, "acme") is not None
