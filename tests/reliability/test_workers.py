"""Two workers draining one outbox: no message is sent twice, not even requested twice.

On PostgreSQL the claim takes rows with ``FOR UPDATE SKIP LOCKED``; on SQLite claims are serialised by
``BEGIN IMMEDIATE``. Either way each row has one owner, so the provider sees each message exactly once
without needing its idempotency to hide a double claim.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import pytest

from gateway.app import create_app
from gateway.guard import submit
from gateway.models import utcnow
from gateway.outbox import drain
from tests.conftest import OUR_TWILIO, TEST_ENV
from tests.gateway.helpers import outbox as outbox_rows
from tests.reliability.harness import ProviderDouble, Stack, phone, wait_until

pytestmark = pytest.mark.slow

MESSAGES = 1000


def test_two_workers_send_each_message_once(stack: Stack, double: ProviderDouble) -> None:
    first, second = stack.start_worker(), stack.start_worker()
    gw = create_app(stack.config, TEST_ENV).extensions["optout"]
    try:
        # One commit, so both idle workers find the whole batch due at the same moment.
        with gw.db.transaction() as session:
            for i in range(MESSAGES):
                submit(session, gw, channel="sms", to=phone(i), body=f"News #{i}", sender=OUR_TWILIO)
    finally:
        gw.db.dispose()

    wait_until(lambda: stack.all_sent(MESSAGES), 240, "both workers to drain the outbox")

    assert double.request_count() == MESSAGES, "no message was requested twice"
    assert len(double.requests_per_token()) == MESSAGES
    assert double.deliveries_per_recipient() == {phone(i): 1 for i in range(MESSAGES)}
    rows = stack.outbox()
    assert {r.attempts for r in rows} == {1}
    owners = Counter(r.claimed_by for r in rows)
    assert len(owners) == 2, f"both workers took a share: {owners}"
    assert first.poll() is None and second.poll() is None, "neither worker crashed"


def test_a_batch_that_outlives_its_lease_is_not_sent_twice(config: dict[str, Any], double: ProviderDouble) -> None:
    # A worker claims a batch; its first send hangs past the lease, and a second worker takes the batch
    # over. The first worker must not then send the rest of the batch as well.
    config["providers"]["twilio"] = {"base_url": double.url}
    config["outbox"] = {**config["outbox"], "lease_seconds": 1.0, "batch_size": 10}
    gw = create_app(config, TEST_ENV).extensions["optout"]
    with gw.db.transaction() as session:
        for i in range(3):
            submit(session, gw, channel="sms", to=phone(i), body="hello", sender=OUR_TWILIO)
    double.hold_next = True
    slow = threading.Thread(target=drain, args=(gw, "worker-a"))
    slow.start()
    assert double.held.wait(30)
    leases = [r.lease_until for r in outbox_rows(gw)]
    wait_until(lambda: utcnow() > max(leases), 30, "the first worker's lease to run out")
    assert drain(gw, "worker-b") == 3, "the second worker takes the whole batch over"
    double.release()
    slow.join(30)

    rows = outbox_rows(gw)
    assert [r.status for r in rows] == ["sent"] * 3
    requests = double.requests_per_token()
    # The send in flight at the takeover is repeated with its token (the provider delivers it once);
    # the rest of the batch is sent by its new owner only.
    assert sorted(requests.values()) == [1, 1, 2]
    assert double.deliveries_per_recipient() == {phone(i): 1 for i in range(3)}
    gw.db.dispose()
