"""Races: STOP and START from one number, arriving at the same moment or in the wrong order.

The final state must follow the provider's order (ClickSend stamps each message; Twilio does not, so its
order is the order the gateway received them), the ledger must show both messages, and each real
transition gets exactly one confirmation: a START that arrives before an older STOP does not leave the
person opted out, and the stale STOP sends no "you are unsubscribed".
"""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest

from gateway.models import ConsentEvent, OutboxMessage
from tests.reliability.harness import PreparedPost, Stack, phone, post, post_all

pytestmark = pytest.mark.slow

PEOPLE = 100
T0 = 1_700_000_000


def confirmations(rows: list[OutboxMessage]) -> Counter[tuple[str, str]]:
    """(recipient, kind) of each queued confirmation, kind being opt_out or opt_in."""
    kinds = Counter[tuple[str, str]]()
    for row in rows:
        kinds[(row.recipient, "opt_out" if "unsubscribed" in row.body else "opt_in")] += 1
    return kinds


def transitions(events: list[ConsentEvent]) -> Counter[tuple[str, str]]:
    """(address, action) of each ledger event that changed the state."""
    return Counter((e.address, e.action) for e in events if e.changed)


def pairs(stack: Stack, prefix: str, offset: int) -> tuple[list[tuple[PreparedPost, PreparedPost]], dict[str, bool]]:
    """For each person a STOP and a START five seconds apart (START last for even i), and the state
    the provider's order implies: opted out when STOP is the later message."""
    out = []
    expected = {}
    for i in range(PEOPLE):
        number = phone(offset + i, prefix="+61412")
        stop_at, start_at = (T0, T0 + 5) if i % 2 == 0 else (T0 + 5, T0)
        stop = stack.clicksend("STOP", number, f"CS-{prefix}-STOP-{i}", stop_at)
        start = stack.clicksend("START", number, f"CS-{prefix}-START-{i}", start_at)
        # Later message first: the one the provider received first arrives last.
        out.append((stop, start) if stop_at > start_at else (start, stop))
        expected[number] = stop_at > start_at
    return out, expected


def test_stamped_stop_and_start_settle_by_provider_time(stack: Stack) -> None:
    stack.start_server()
    concurrent, expected_a = pairs(stack, "RACE", 0)
    reversed_order, expected_b = pairs(stack, "LATE", PEOPLE)
    with ThreadPoolExecutor(8) as pool:
        # Both messages of a pair in flight at once...
        racing = pool.map(post, [m for pair in concurrent for m in pair])
        # ...and, for other people, the later message delivered completely before the earlier one.
        in_order = pool.map(lambda pair: (post(pair[0]), post(pair[1])), reversed_order)
        statuses = [*racing, *(s for both in in_order for s in both)]
    assert Counter(statuses) == {200: 4 * PEOPLE}

    states = stack.states()
    expected = {**expected_a, **expected_b}
    assert {n: states[n].opted_out for n in expected} == expected, "the provider's order decides"
    events = stack.ledger()
    assert Counter(e.address for e in events) == {n: 2 for n in expected}, "the ledger shows both"
    assert confirmations(stack.outbox()) == transitions(events), "one confirmation per real transition"
    # Delivered late-first, the older message changes nothing, so those people get at most one reply.
    late_first = transitions([e for e in events if e.address in expected_b])
    assert late_first == {(n, "opt_out"): 1 for n, out in expected_b.items() if out}


def test_unstamped_stop_and_start_at_once_stay_consistent(stack: Stack) -> None:
    stack.start_server()
    numbers = [phone(5000 + i) for i in range(PEOPLE)]
    # Everyone opted out first, then STOP again and START sent at the same moment.
    assert Counter(post_all([stack.twilio("STOP", n, f"SM-PRE-{n}") for n in numbers])) == {200: PEOPLE}
    racing = [m for n in numbers for m in (stack.twilio("STOP", n, f"SM-S-{n}"), stack.twilio("START", n, f"SM-G-{n}"))]
    assert Counter(post_all(racing, threads=8)) == {200: 2 * PEOPLE}

    states = stack.states()
    events = stack.ledger()
    assert Counter(e.address for e in events) == {n: 3 for n in numbers}, "the ledger shows every message"
    for number in numbers:
        mine = [e for e in events if e.address == number]
        # Twilio sends no timestamp: the gateway's receive time orders them, and the latest one wins.
        latest = max(mine, key=lambda e: (e.occurred_at, e.id))
        assert states[number].opted_out == (latest.action == "opt_out")
    assert confirmations(stack.outbox()) == transitions(events), "one confirmation per real transition"
