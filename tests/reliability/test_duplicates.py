"""Duplicates: 2,000 distinct inbound messages, each delivered three times at once, through real processes.

Providers deliver webhooks at least once, and a retry can overlap the first attempt. Whatever the
interleaving, each message must be stored once, each real opt-out ledgered as one transition, and each
person confirmed once, even when two different STOP messages from one person race each other.
"""

from __future__ import annotations

from collections import Counter

import pytest

from gateway.models import ConsentEvent, InboundRecord, OptOut
from tests.reliability.harness import PreparedPost, ProviderDouble, Stack, phone, post_all, wait_until

pytestmark = pytest.mark.slow

STOPS = 1600  # people who text STOP once
DOUBLE_STOPS = 200  # people who text STOP and UNSUBSCRIBE (two messages, one transition)
CHATTER = 200  # people who text something that is not a keyword
COPIES = 3


def messages(stack: Stack) -> list[PreparedPost]:
    """The 2,000 distinct webhooks: one STOP per person, a second opt-out from some, and chatter."""
    out = [stack.twilio("STOP", phone(i), f"SM-DUP-STOP-{i}") for i in range(STOPS)]
    out += [stack.twilio("unsubscribe", phone(i), f"SM-DUP-UNSUB-{i}") for i in range(DOUBLE_STOPS)]
    out += [stack.twilio("thanks!", phone(STOPS + i), f"SM-DUP-CHAT-{i}") for i in range(CHATTER)]
    return out


def test_each_message_three_times_concurrently(stack: Stack, double: ProviderDouble) -> None:
    stack.start_server()
    distinct = messages(stack)
    assert len(distinct) == 2000
    # The three copies sit next to each other, so 8 clients have them in flight at the same time.
    deliveries = [item for item in distinct for _ in range(COPIES)]
    statuses = post_all(deliveries, threads=8)

    assert Counter(statuses) == {200: len(deliveries)}, "every delivery, first or repeated, is acknowledged"
    assert stack.count(InboundRecord) == len(distinct)
    assert stack.inbound_ids() == {item.key for item in distinct}

    events = stack.ledger()
    assert len(events) == STOPS + DOUBLE_STOPS, "every opt-out message is ledgered once"
    transitions = Counter(e.address for e in events if e.changed)
    assert transitions == {phone(i): 1 for i in range(STOPS)}, "one real transition per person"
    assert stack.count(OptOut, OptOut.opted_out) == STOPS  # type: ignore[arg-type]
    assert stack.count(ConsentEvent, ConsentEvent.changed == False) == DOUBLE_STOPS  # noqa: E712

    stack.start_worker()
    wait_until(lambda: stack.all_sent(STOPS), 180, "every confirmation to be sent")
    replies = stack.outbox()
    assert Counter(r.recipient for r in replies) == {phone(i): 1 for i in range(STOPS)}
    assert double.deliveries_per_recipient() == {phone(i): 1 for i in range(STOPS)}
    assert double.request_count() == STOPS, "no confirmation was even requested twice"
