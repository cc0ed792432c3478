"""Provider outage: the provider answers 500s, 429s and times out for a while, then recovers.

Every reply must be delivered after the recovery, none lost and none doubled, and the outbox must show
the back-off: attempts counted, the errors kept while retrying, the provider's Retry-After honoured. The
dangerous case is the timeout after which the provider did take the message ("late"): the retry carries
the same idempotency token, so the provider does not deliver it twice.
"""

from __future__ import annotations

import re
from collections import Counter

import pytest

from tests.reliability.harness import ProviderDouble, Stack, phone, post_all, wait_until

pytestmark = pytest.mark.slow

REPLIES = 20
OUTAGE = ["500"] * 20 + ["429"] * 20 + ["timeout"] * 3 + ["late"] * 3


def test_replies_survive_a_provider_outage(stack: Stack, double: ProviderDouble) -> None:
    double.script.extend(OUTAGE)
    # The worker gives up on a send after 2 s; the double's slow answers come after 3 s.
    stack.config["providers"]["twilio"]["timeout"] = 2.0
    double.answer_after = 3.0
    stack.start_server()
    items = [stack.twilio("STOP", phone(i), f"SM-OUTAGE-{i}") for i in range(REPLIES)]
    assert Counter(post_all(items)) == {200: REPLIES}
    stack.start_worker()

    wait_until(lambda: stack.all_sent(REPLIES), 180, "every reply to be sent after the outage")

    assert not double.script, "the whole outage was played"
    assert double.deliveries_per_recipient() == {phone(i): 1 for i in range(REPLIES)}, "none lost or doubled"
    rows = stack.outbox()
    # Each claim is exactly one request to the provider: the outbox's attempts are the whole story.
    assert sum(r.attempts for r in rows) == double.request_count() >= len(OUTAGE) + REPLIES
    assert all(r.attempts > 1 for r in rows), "the outage reached every reply"
    assert all(r.next_attempt_at > r.created_at for r in rows), "each retry was scheduled later"

    # While retrying, the worker recorded each kind of failure and the delay it chose.
    log = stack.log_text()
    retries = re.findall(r"outbox \d+: retry \d+ in ([\d.]+)s \((.*)\)", log)
    kinds = Counter(reason.split()[0] for _, reason in retries)
    assert (kinds["20500"], kinds["20429"]) == (20, 20) and kinds["network_error"] >= 6
    assert all(float(delay) >= 1.0 for delay, reason in retries if reason.startswith("20429"))
    _assert_retry_after_honoured(double)


def _assert_retry_after_honoured(double: ProviderDouble) -> None:
    # The worker may not claim a row before its next_attempt_at, which a 429 set at least Retry-After
    # seconds after the answer: an ordering the outbox guarantees, not a measure of speed.
    last: dict[str, tuple[float, str]] = {}
    for send in double.sends:
        before = last.get(send.token)
        if before and before[1] == "429":
            assert send.at - before[0] >= double.retry_after
        last[send.token] = (send.at, send.answer)
