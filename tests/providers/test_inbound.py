"""Every provider's signed inbound webhook, end to end: route, verification, rules, ledger, confirmation."""

from __future__ import annotations

from typing import Any

import pytest

from tests.adapters.cases import plivo, twilio
from tests.adapters.contract import ProviderCase
from tests.gateway.helpers import inbound_count, ledger, opt_out_state, outbox
from tests.providers.conftest import OURS, SCOPE
from tests.providers.helpers import deliver

ME = "+14155550100"


def test_stop_opts_out_and_redelivery_changes_nothing(client: Any, gw: Any, case: ProviderCase) -> None:
    request = case.inbound("STOP", ME, OURS[case.name], f"{case.name}-STOP")
    # Twilio's Advanced Opt-Out marks an exact STOP (OptOutType) and has already answered it itself.
    [parsed] = case.adapter().parse_inbound(request)
    provider_answered = parsed.provider_action == "opt_out"

    assert 200 <= deliver(client, request).status_code < 300
    state = opt_out_state(gw, ME, SCOPE)
    assert state is not None and state.opted_out
    [event] = ledger(gw, ME)
    assert (event.action, event.changed, event.rule, event.raw_text) == ("opt_out", True, "opt-out", "STOP")
    assert (event.provider, event.provider_message_id) == (case.name, f"{case.name}-STOP")
    replies = outbox(gw)
    if provider_answered:
        assert event.source == "provider"
        assert replies == []
    else:
        assert event.source == "sms_keyword"
        [reply] = replies
        assert (reply.recipient, reply.sender, reply.provider) == (ME, OURS[case.name], case.name)
        assert reply.category == "compliance" and "unsubscribed" in reply.body

    assert 200 <= deliver(client, request).status_code < 300
    assert inbound_count(gw) == 1
    assert len(ledger(gw, ME)) == 1
    assert len(outbox(gw)) == len(replies)


def test_stop_with_more_words_is_confirmed_by_us(client: Any, gw: Any, case: ProviderCase) -> None:
    # No provider treats "Stop please" as its own keyword, so our confirmation is the only one.
    request = case.inbound("Stop please", ME, OURS[case.name], f"{case.name}-STOP-PLEASE")
    assert 200 <= deliver(client, request).status_code < 300
    [event] = ledger(gw, ME)
    assert (event.source, event.rule) == ("sms_keyword", "opt-out")
    [reply] = outbox(gw)
    assert (reply.recipient, reply.sender, reply.category) == (ME, OURS[case.name], "compliance")


def test_unsigned_inbound_is_refused_and_changes_nothing(client: Any, gw: Any, case: ProviderCase) -> None:
    request = case.unsigned(case.inbound("STOP", ME, OURS[case.name], f"{case.name}-UNSIGNED"))
    assert deliver(client, request).status_code == 403
    assert inbound_count(gw) == 0
    assert ledger(gw, ME) == []


def _twilio_opt_out_type(text: str) -> Any:
    fields = twilio.inbound_fields(text, ME, OURS["twilio"], "SM-OPTOUTTYPE")
    fields["OptOutType"] = "STOP"
    return twilio.signed(twilio.INBOUND_URL, fields)


def _plivo_intent(text: str) -> Any:
    params = plivo.inbound_params(text, ME, OURS["plivo"], "PLIVO-INTENT")
    params["MessageIntent"] = "optout"
    return plivo.signed_post(params)


@pytest.mark.parametrize(
    ("build", "code"),
    [pytest.param(_twilio_opt_out_type, "STOP", id="twilio-OptOutType"),
     pytest.param(_plivo_intent, "optout", id="plivo-MessageIntent")],
)
def test_provider_keyword_opt_out_is_recorded_even_when_no_rule_matches(
    client: Any, gw: Any, build: Any, code: str
) -> None:
    # The provider matched a keyword our rules do not know: it already blocks the number, so must we.
    assert 200 <= deliver(client, build("please remove me")).status_code < 300
    state = opt_out_state(gw, ME, SCOPE)
    assert state is not None and state.opted_out and state.source == "provider"
    [event] = ledger(gw, ME)
    assert (event.source, event.rule, event.raw_text) == ("provider", None, "please remove me")
    assert event.evidence == {"provider_action": "opt_out", "provider_code": code}
    assert outbox(gw) == []  # the provider sent its own confirmation


@pytest.mark.parametrize(
    "build", [pytest.param(_twilio_opt_out_type, id="twilio"), pytest.param(_plivo_intent, id="plivo")]
)
def test_provider_keyword_and_our_rule_give_one_opt_out_and_no_second_reply(
    client: Any, gw: Any, build: Any
) -> None:
    assert 200 <= deliver(client, build("STOP")).status_code < 300
    [event] = ledger(gw, ME)
    assert (event.source, event.rule) == ("provider", "opt-out")
    assert event.evidence["provider_action"] == "opt_out"
    assert outbox(gw) == []
