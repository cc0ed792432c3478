"""The outbox worker: claims, leases, retries with backoff, provider opt-outs, the guard at dispatch."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
import responses

from gateway.guard import submit
from gateway.models import utcnow
from gateway.outbox import backoff, claim, dispatch, drain
from tests.conftest import OUR_TWILIO, TEST_ENV
from tests.gateway.helpers import ledger, opt_out_state, outbox, post_twilio, twilio_form

ME = "+14155550100"
SEND_URL = f"https://api.twilio.com/2010-04-01/Accounts/{TEST_ENV['TWILIO_ACCOUNT_SID']}/Messages.json"


def ok_body(sid: str = "SMout1") -> dict[str, Any]:
    return {"sid": sid, "status": "queued", "to": ME, "from": OUR_TWILIO, "error_code": None}


def queue(gw: Any, body: str = "hello", category: str = "marketing", key: str | None = None) -> None:
    with gw.db.transaction() as session:
        submit(session, gw, channel="sms", to=ME, body=body, sender=OUR_TWILIO, category=category,
               idempotency_key=key)


def test_reply_is_sent_once(client: Any, gw: Any) -> None:
    post_twilio(client, twilio_form("STOP", sid="SM-1"))
    with responses.RequestsMock() as rsps:
        rsps.add("POST", SEND_URL, json=ok_body(), status=201)
        assert drain(gw, "w1") == 1
        assert drain(gw, "w1") == 0
        assert len(rsps.calls) == 1
        sent = rsps.calls[0].request
        assert sent.headers["I-Twilio-Idempotency-Token"] == "reply:1:1"
    [row] = outbox(gw)
    assert row.status == "sent" and row.provider_message_id == "SMout1" and row.attempts == 1


def test_throttled_then_success_with_backoff(gw: Any) -> None:
    queue(gw)
    with responses.RequestsMock() as rsps:
        rsps.add("POST", SEND_URL, status=429, json={"code": 20429, "message": "Too Many Requests"},
                 headers={"Retry-After": "5"})
        assert drain(gw, "w1") == 1
    [row] = outbox(gw)
    assert row.status == "queued" and row.attempts == 1 and row.last_error
    assert row.next_attempt_at >= utcnow() + timedelta(seconds=4)
    assert drain(gw, "w1") == 0, "not due yet"
    later = row.next_attempt_at + timedelta(seconds=1)
    with responses.RequestsMock() as rsps:
        rsps.add("POST", SEND_URL, json=ok_body(), status=201)
        [item] = claim(gw, "w1", 10, now=later)
        assert dispatch(gw, item, "w1") == "sent"
    [row] = outbox(gw)
    assert row.status == "sent" and row.attempts == 2


def test_server_errors_until_max_attempts_then_failed(gw: Any) -> None:
    queue(gw)
    at = utcnow()
    with responses.RequestsMock() as rsps:
        rsps.add("POST", SEND_URL, status=503, body="down")
        for _ in range(4):  # max_attempts in the test config
            at += timedelta(hours=1)
            [item] = claim(gw, "w1", 10, now=at)
            dispatch(gw, item, "w1")
    [row] = outbox(gw)
    assert row.status == "failed" and row.attempts == 4


def test_21610_records_opt_out_and_is_not_retried(gw: Any) -> None:
    queue(gw)
    with responses.RequestsMock() as rsps:
        rsps.add("POST", SEND_URL, status=400, json={
            "code": 21610, "message": "Attempt to send to unsubscribed recipient", "status": 400})
        drain(gw, "w1")
    [row] = outbox(gw)
    assert row.status == "failed" and "21610" in (row.last_error or "")
    state = opt_out_state(gw, ME, "acme")
    assert state is not None and state.opted_out and state.source == "provider"
    [event] = ledger(gw, ME)
    assert event.evidence["error_code"] == "21610"


def test_guard_rechecked_at_dispatch(client: Any, gw: Any) -> None:
    queue(gw, "Big sale")
    post_twilio(client, twilio_form("STOP", sid="SM-1"))
    with responses.RequestsMock() as rsps:
        rsps.add("POST", SEND_URL, json=ok_body(), status=201)
        drain(gw, "w1")
        # Only the confirmation went out; the sale was blocked.
        assert len(rsps.calls) == 1
        assert "Big+sale" not in str(rsps.calls[0].request.body)
    statuses = {r.body[:8]: r.status for r in outbox(gw)}
    assert statuses["Big sale"] == "blocked"


def test_expired_lease_is_reclaimed_and_old_owner_cannot_finish(gw: Any) -> None:
    queue(gw)
    [mine] = claim(gw, "dead-worker", 10)
    assert claim(gw, "w2", 10) == [], "leased rows are not claimable"
    later = utcnow() + timedelta(seconds=gw.settings.outbox.lease_seconds + 1)
    [theirs] = claim(gw, "w2", 10, now=later)
    assert theirs.id == mine.id and theirs.attempts == 2
    with responses.RequestsMock() as rsps:
        rsps.add("POST", SEND_URL, json=ok_body(), status=201)
        dispatch(gw, theirs, "w2")
        # The dead worker wakes up and tries to record a result: it no longer owns the row.
        rsps.add("POST", SEND_URL, json=ok_body("SMother"), status=201)
        dispatch(gw, mine, "dead-worker")
    [row] = outbox(gw)
    assert row.status == "sent" and row.provider_message_id == "SMout1" and row.claimed_by == "w2"


def test_idempotency_key_dedupes_submissions(gw: Any) -> None:
    queue(gw, key="order-1")
    queue(gw, key="order-1")
    assert len(outbox(gw)) == 1


def test_concurrent_workers_send_each_row_once(gw: Any) -> None:
    for i in range(40):
        queue(gw, f"msg {i}")
    sent: list[bytes] = []
    lock = threading.Lock()

    def callback(request: Any) -> tuple[int, dict[str, str], str]:
        with lock:
            sent.append(request.body)
        return 201, {}, '{"sid": "SM%d", "status": "queued"}' % len(sent)

    with responses.RequestsMock() as rsps:
        rsps.add_callback("POST", SEND_URL, callback=callback)
        threads = [threading.Thread(target=drain, args=(gw, f"w{i}", 5)) for i in range(4)]
        for _ in range(3):
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            threads = [threading.Thread(target=drain, args=(gw, f"w{i}", 5)) for i in range(4)]
    assert len(sent) == len(set(sent)) == 40
    assert all(r.status == "sent" for r in outbox(gw))


@pytest.mark.parametrize("attempt", [1, 2, 5, 20])
def test_backoff_is_bounded_and_jittered(attempt: int) -> None:
    low = backoff(attempt, 2.0, 600.0, rand=lambda: 0.0)
    high = backoff(attempt, 2.0, 600.0, rand=lambda: 1.0)
    expected = min(600.0, 2.0 * 2 ** (attempt - 1))
    assert low == expected / 2 and high == expected
