"""Two workers draining one outbox: no message is sent twice, not even requested twice.

On PostgreSQL the claim takes rows with ``FOR UPDATE SKIP LOCKED``; on SQLite claims are serialised by
``BEGIN IMMEDIATE``. Either way each row has one owner, so the provider sees each message exactly once
without needing its idempotency to hide a double claim.
"""

from __future__ import annotations

from collections import Counter

import pytest

from gateway.app import create_app
from gateway.guard import submit
from tests.conftest import OUR_TWILIO, TEST_ENV
from tests.reliability.harness import ProviderDouble, Stack, phone, wait_until

pytestmark = pytest.mark.slow

MESSAGES = 2000


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
