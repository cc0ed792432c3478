"""Crash: SIGKILL the server and the worker in the middle of a load of signed STOPs, then restart.

A 2xx tells the provider it may forget the webhook, so every acknowledged STOP must be in the database
with all its effects. The worker is killed while a send is in flight (the provider has the message, the
gateway has not recorded it): after the lease runs out the restarted worker sends that row again with
the same idempotency token, and the provider's deduplication keeps the person from a second text.
"""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest

from gateway.models import InboundRecord, OptOut
from tests.reliability.harness import PreparedPost, ProviderDouble, Stack, phone, post, post_all, wait_until

pytestmark = pytest.mark.slow

LOAD = 600
KILL_AFTER = 200  # acknowledged STOPs before the crash


class Load:
    """Posts webhooks from several threads and counts the 2xx answers as they come."""

    def __init__(self, items: list[PreparedPost]) -> None:
        self.items = items
        self.status: dict[str, int] = {}
        self.acked = 0
        self.cond = threading.Condition()

    def _one(self, item: PreparedPost) -> None:
        code = post(item, timeout=10)
        with self.cond:
            self.status[item.key] = code
            self.acked += 200 <= code < 300
            self.cond.notify_all()

    def run(self, pool: ThreadPoolExecutor) -> list[object]:
        """Submit every item; the futures, to wait on."""
        return [pool.submit(self._one, item) for item in self.items]

    def wait_acked(self, count: int, deadline: float = 120) -> None:
        """Block until ``count`` webhooks were acknowledged."""
        with self.cond:
            assert self.cond.wait_for(lambda: self.acked >= count, deadline), "load stalled"


def test_sigkill_server_and_worker_mid_load(stack: Stack, double: ProviderDouble) -> None:
    stack.config["outbox"]["lease_seconds"] = 3  # how long a dead worker's rows wait to be reclaimed
    stack.start_server()
    stack.start_worker()
    items = [stack.twilio("STOP", phone(i), f"SM-CRASH-{i}") for i in range(LOAD)]
    load = Load(items)
    with ThreadPoolExecutor(8) as pool:
        futures = load.run(pool)
        load.wait_acked(KILL_AFTER)
        # Catch the worker with a send in flight: the double takes the message, then holds the answer.
        double.hold_next = True
        assert double.held.wait(60), "the worker sent nothing"
        stack.kill_server()
        stack.kill_workers()
        delivered_before_restart = set(double.delivered)
        double.release()
        for future in futures:
            future.result()  # type: ignore[attr-defined]

    acked = {key for key, code in load.status.items() if 200 <= code < 300}
    assert KILL_AFTER <= len(acked) < LOAD, "the crash landed in the middle of the load"
    # The killed worker left claimed rows behind, one of them already taken by the provider.
    stuck = {r.idempotency_key for r in stack.outbox() if r.status == "sending"}
    in_flight = stuck & delivered_before_restart
    assert in_flight, "the kill caught a send in flight"

    stack.start_server()
    stack.start_worker()
    # Every acknowledged STOP is stored with its effects: inbound row, opt-out, ledger event, reply.
    stored = stack.inbound_ids()
    assert acked <= stored
    states = stack.states()
    ledgered = {e.provider_message_id for e in stack.ledger() if e.changed}
    queued = {r.recipient for r in stack.outbox()}
    for i, item in enumerate(items):
        if item.key in acked:
            assert states[phone(i)].opted_out and item.key in ledgered and phone(i) in queued

    # The provider redelivers everything that got no 2xx; the restarted processes finish the job.
    retry = [item for item in items if item.key not in acked]
    assert Counter(post_all(retry, threads=8)) == {200: len(retry)}
    assert stack.count(InboundRecord) == LOAD
    assert stack.count(OptOut, OptOut.opted_out) == LOAD  # type: ignore[arg-type]
    wait_until(lambda: stack.all_sent(LOAD), 180, "every confirmation to be sent after the restart")

    replies = stack.outbox()
    assert Counter(r.recipient for r in replies) == {phone(i): 1 for i in range(LOAD)}
    assert double.deliveries_per_recipient() == {phone(i): 1 for i in range(LOAD)}, "each person texted once"
    # The send cut short by the kill was made again after the lease expired, with the same token, and
    # the provider delivered it once; nothing else was requested twice.
    repeated = {t for t, n in double.requests_per_token().items() if n > 1}
    assert repeated == in_flight
