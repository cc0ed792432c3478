"""Delivery receipts and provider opt-out codes, end to end through `/webhooks/<name>/status` and the worker."""

from __future__ import annotations

from typing import Any

import pytest
import responses

from gateway.guard import submit
from gateway.models import DeliveryEvent, OutboxMessage
from gateway.outbox import drain
from tests.adapters.contract import ProviderCase
from tests.gateway.helpers import count, ledger, opt_out_state, outbox
from tests.providers.conftest import CASES, OURS, SCOPE
from tests.providers.helpers import deliver, seed_sent

ME = "+14155550100"

#: The raw code each provider uses for "the recipient opted out", as it must appear in the ledger.
OPT_OUT_CODES = {
    "twilio": "21610",
    "telnyx": "40300",
    "vonage": "9",
    "plivo": "200",
    "messagebird": "103",
    "bandwidth": "4775",
}

# (case, index) pairs; the requests themselves are built inside each test, since signatures expire.
STATUS_CASES = [
    pytest.param(case, index, id=f"{case.name}-{index}")
    for case in CASES
    for index in range(len(case.status_cases()))
]
# Providers that refuse a send to an opted-out number there and then (the rest say so in a receipt).
SYNC_OPT_OUT = [
    pytest.param(case, id=case.name)
    for case in CASES
    if type(case).mock_send_opted_out is not ProviderCase.mock_send_opted_out
]


def test_every_opt_out_code_has_a_status_case() -> None:
    flagged = {case.name for case in CASES for sc in case.status_cases() if sc.opted_out}
    assert flagged == set(OPT_OUT_CODES)


@pytest.mark.parametrize(("provider_case", "index"), STATUS_CASES)
def test_status_callback_updates_the_outbox_row_once(
    client: Any, gw: Any, provider_case: ProviderCase, index: int
) -> None:
    name = provider_case.name
    sc = provider_case.status_cases()[index]
    row_id = seed_sent(gw, name, sc.provider_message_id, ME, SCOPE, sender=OURS[name])

    for _ in range(2):  # the provider delivers the callback, then delivers it again
        assert 200 <= deliver(client, sc.request).status_code < 300

    with gw.db.read() as session:
        row = session.get(OutboxMessage, row_id)
        assert row is not None and row.delivery_status == sc.status.value
    assert count(gw, DeliveryEvent) == 1
    events = ledger(gw, ME)
    if sc.opted_out:
        state = opt_out_state(gw, ME, SCOPE)
        assert state is not None and state.opted_out and state.source == "provider"
        [event] = events
        assert (event.action, event.source, event.provider) == ("opt_out", "provider", name)
        assert event.provider_message_id == sc.provider_message_id
        assert event.evidence["error_code"] == OPT_OUT_CODES[name]
    else:
        assert events == []
        assert opt_out_state(gw, ME, SCOPE) is None


@pytest.mark.parametrize("provider_case", SYNC_OPT_OUT)
def test_send_refused_as_opted_out_is_recorded_and_not_retried(
    gw: Any, provider_case: ProviderCase
) -> None:
    name = provider_case.name
    with gw.db.transaction() as session:
        submit(session, gw, channel="sms", to=ME, body="Sale today", sender=OURS[name])
    with responses.RequestsMock() as rsps:
        code = provider_case.mock_send_opted_out(rsps)
        assert drain(gw, "worker-1") == 1
    assert code == OPT_OUT_CODES[name]

    [row] = outbox(gw)
    assert (row.provider, row.status, row.attempts) == (name, "failed", 1)
    state = opt_out_state(gw, ME, SCOPE)
    assert state is not None and state.opted_out and state.source == "provider"
    [event] = ledger(gw, ME)
    assert (event.source, event.provider, event.evidence["error_code"]) == ("provider", name, code)
    with responses.RequestsMock():  # no request may be made: nothing is due any more
        assert drain(gw, "worker-1") == 0


#: Providers whose receipts name the number the message was sent from (Vonage's names our sender ID).
RECEIPT_NAMES_SENDER = {"twilio", "plivo", "telnyx", "bandwidth"}


@pytest.mark.parametrize(
    "provider_case", [pytest.param(case, id=case.name) for case in CASES if case.name in OPT_OUT_CODES]
)
def test_opt_out_receipt_for_a_message_we_did_not_send_uses_the_senders_scope(
    client: Any, gw: Any, provider_case: ProviderCase
) -> None:
    # Sent around the gateway (before it, or from another tool): the outbox has no row for it.
    sc = next(sc for sc in provider_case.status_cases() if sc.opted_out)
    assert 200 <= deliver(client, sc.request).status_code < 300
    scope = SCOPE if provider_case.name in RECEIPT_NAMES_SENDER else "default"
    state = opt_out_state(gw, ME, scope)
    assert state is not None and state.opted_out and state.source == "provider"
    [event] = ledger(gw, ME)
    assert event.scope == scope
