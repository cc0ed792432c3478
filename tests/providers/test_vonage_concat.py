"""Vonage delivers a long SMS as separate signed parts: the gateway runs the rules once, on the whole text."""

from __future__ import annotations

from typing import Any

from sqlmodel import col, select

from adapters.base import WebhookRequest
from gateway.models import InboundPart, InboundRecord
from tests.adapters.cases.vonage import form_request, inbound_params, sign
from tests.gateway.helpers import count, inbound_count, ledger, opt_out_state, outbox
from tests.providers.conftest import OURS, SCOPE
from tests.providers.helpers import deliver

ME = "+14155550100"


def part(number: int, text: str, ref: str = "7", total: int = 2,
         sent: str = "2024-03-01 10:00:00") -> WebhookRequest:
    """One signed part of a concatenated message (each part has its own messageId)."""
    params = inbound_params(text, ME, OURS["vonage"], f"VONAGE-{ref}-{sent}-{number}")
    params.update({"concat": "true", "concat-ref": ref, "concat-total": str(total),
                   "concat-part": str(number), "message-timestamp": sent})
    return form_request(sign(params))


def texts(gw: Any) -> list[str]:
    """The text of every stored inbound message."""
    with gw.db.read() as session:
        return list(session.execute(select(InboundRecord.text).order_by(col(InboundRecord.id))).scalars())


def test_parts_out_of_order_and_redelivered_run_the_rules_once(client: Any, gw: Any) -> None:
    first, second = part(1, "ST"), part(2, "OP")
    for request in (second, second):  # the last part first, and delivered twice
        assert deliver(client, request).status_code == 204
    assert inbound_count(gw) == 0 and ledger(gw, ME) == []  # nothing runs on a fragment

    assert deliver(client, first).status_code == 204
    assert texts(gw) == ["STOP"]
    state = opt_out_state(gw, ME, SCOPE)
    assert state is not None and state.opted_out
    [event] = ledger(gw, ME)
    assert (event.raw_text, event.rule) == ("STOP", "opt-out")
    [reply] = outbox(gw)
    assert reply.sender == OURS["vonage"] and reply.provider == "vonage"

    for request in (first, second):  # Vonage delivers both parts again later
        assert deliver(client, request).status_code == 204
    assert texts(gw) == ["STOP"]
    assert len(ledger(gw, ME)) == 1
    assert len(outbox(gw)) == 1
    assert count(gw, InboundPart) == 0


def test_leftover_part_does_not_corrupt_a_later_message_with_the_same_ref(client: Any, gw: Any) -> None:
    first, second = part(1, "ST"), part(2, "OP")
    for request in (first, second, second):  # the last part is redelivered after the message was assembled
        assert deliver(client, request).status_code == 204
    assert texts(gw) == ["STOP"]

    # Weeks later the phone has gone round its concat refs and uses 7 again.
    later = "2024-04-15 09:30:00"
    for request in (part(1, "HE", sent=later), part(2, "LP", sent=later)):
        assert deliver(client, request).status_code == 204
    assert texts(gw) == ["STOP", "HELP"]
    replies = outbox(gw)
    assert len(replies) == 2 and "help@acme.example" in replies[1].body
