"""One suite, every adapter: signatures, parsing, STOP, sends and retries, status callbacks."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
import requests
import responses

from adapters.base import WebhookRequest
from gateway.errors import PayloadError, VerificationError
from gateway.messages import SendOutcome
from tests.adapters.contract import ProviderCase, all_cases

CASES = all_cases()
ids = [c.name for c in CASES]


@pytest.fixture(params=CASES, ids=ids)
def case(request: pytest.FixtureRequest) -> ProviderCase:
    return request.param  # type: ignore[no-any-return]


def test_valid_signature_parses_message(case: ProviderCase) -> None:
    adapter = case.adapter()
    req = case.inbound("Hello there", "+14155550100", "+14155550199", "MSG-1")
    adapter.verify(req)
    [msg] = adapter.parse_inbound(req)
    assert msg.provider == case.name
    assert msg.text == "Hello there"
    assert msg.provider_message_id == "MSG-1"
    assert msg.sender.lstrip("+") == "14155550100"
    assert msg.recipient.lstrip("+") == "14155550199"
    assert msg.raw, "the raw payload is kept"


def test_stop_is_parsed(case: ProviderCase) -> None:
    adapter = case.adapter()
    req = case.inbound("STOP", "+14155550100", "+14155550199", "MSG-STOP")
    adapter.verify(req)
    [msg] = adapter.parse_inbound(req)
    assert msg.text == "STOP"


def test_tampered_body_is_rejected(case: ProviderCase) -> None:
    if not case.signs_body:
        pytest.skip(f"{case.name} does not sign the body: only the caller is authenticated")
    req = case.inbound("STOP", "+14155550100", "+14155550199", "MSG-2")
    with pytest.raises(VerificationError):
        case.adapter().verify(case.tampered(req))


def test_missing_signature_is_rejected(case: ProviderCase) -> None:
    req = case.inbound("STOP", "+14155550100", "+14155550199", "MSG-3")
    with pytest.raises(VerificationError):
        case.adapter().verify(case.unsigned(req))


def test_wrong_secret_is_rejected(case: ProviderCase) -> None:
    if case.wrong_env is None:
        pytest.fail("every provider case must define wrong_env")
    req = case.inbound("STOP", "+14155550100", "+14155550199", "MSG-4")
    with pytest.raises(VerificationError):
        case.adapter(case.wrong_env).verify(req)


def test_stale_timestamp_is_rejected(case: ProviderCase) -> None:
    stale = case.stale("STOP")
    if not case.has_timestamp:
        assert stale is None
        return
    assert stale is not None
    with pytest.raises(VerificationError):
        case.adapter().verify(stale)


def test_missing_field_is_payload_error(case: ProviderCase) -> None:
    adapter = case.adapter()
    req = WebhookRequest.build("POST", case.inbound("x", "+1", "+2", "M").url, b"{}",
                               {"Content-Type": "application/json"})
    with pytest.raises(PayloadError):
        adapter.parse_inbound(req)


def test_send_success(case: ProviderCase) -> None:
    with responses.RequestsMock() as rsps:
        expected_id = case.mock_send_success(rsps)
        result = case.adapter().send(case.outbound)
    assert result.outcome is SendOutcome.ACCEPTED
    assert result.provider_message_id == expected_id


def test_throttled_then_success(case: ProviderCase) -> None:
    adapter = case.adapter()
    with responses.RequestsMock() as rsps:
        case.mock_send_throttled(rsps)
        first = adapter.send(case.outbound)
    assert first.outcome is SendOutcome.RETRY
    with responses.RequestsMock() as rsps:
        case.mock_send_success(rsps)
        second = adapter.send(case.outbound)
    assert second.outcome is SendOutcome.ACCEPTED


def test_server_error_is_retried(case: ProviderCase) -> None:
    with responses.RequestsMock() as rsps:
        case.mock_send_server_error(rsps)
        result = case.adapter().send(case.outbound)
    assert result.outcome is SendOutcome.RETRY


def test_network_error_is_retried(case: ProviderCase) -> None:
    with responses.RequestsMock() as rsps:
        rsps.add(case.send_method, case.send_url, body=requests.ConnectionError("connection reset"))
        result = case.adapter().send(case.outbound)
    assert result.outcome is SendOutcome.RETRY


def test_timeout_is_retried(case: ProviderCase) -> None:
    with responses.RequestsMock() as rsps:
        rsps.add(case.send_method, case.send_url, body=requests.Timeout("read timed out"))
        result = case.adapter().send(case.outbound)
    assert result.outcome is SendOutcome.RETRY


def test_opted_out_code_is_not_retried(case: ProviderCase) -> None:
    with responses.RequestsMock() as rsps:
        code = case.mock_send_opted_out(rsps)
        if code is None:
            rsps.reset()
            return  # this provider reports opt-outs only asynchronously (see status cases)
        result = case.adapter().send(case.outbound)
    assert result.outcome is SendOutcome.OPTED_OUT
    assert result.error_code == code


def test_status_callbacks_normalised(case: ProviderCase) -> None:
    adapter = case.adapter()
    for sc in case.status_cases():
        adapter.verify(sc.request)
        [update] = adapter.parse_status(sc.request)
        assert update.provider_message_id == sc.provider_message_id
        assert update.status is sc.status
        assert update.opted_out is sc.opted_out
        assert update.raw_status


def test_requests_target_the_gateway_routes(case: ProviderCase) -> None:
    # The end-to-end tests post these very requests to the gateway, where signatures cover the URL.
    inbound = case.inbound("STOP", "+14155550100", "+14155550199", "MSG-ROUTE")
    assert urlsplit(inbound.url).path == f"/webhooks/{case.name}/inbound"
    for sc in case.status_cases():
        assert urlsplit(sc.request.url).path == f"/webhooks/{case.name}/status"
