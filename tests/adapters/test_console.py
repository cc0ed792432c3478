"""The console adapter: printed sends, simulated inbound, and its optional shared token."""

from __future__ import annotations

import json

import pytest

from adapters.base import WebhookRequest
from adapters.console import TOKEN_HEADER, ConsoleAdapter
from adapters.registry import adapter_class
from gateway.errors import ConfigError, MissingSecretError, PayloadError, VerificationError
from gateway.messages import Channel, DeliveryStatus, OutboundMessage, SendOutcome

URL = "http://localhost:8000/webhooks/console/inbound"
PAYLOAD = {"from": "+14155550100", "to": "+14155550199", "text": "STOP"}


def json_request(payload: object, headers: dict[str, str] | None = None) -> WebhookRequest:
    return WebhookRequest.build(
        "POST", URL, json.dumps(payload).encode(), {"Content-Type": "application/json", **(headers or {})}
    )


def test_registered_and_builds_from_the_default_config() -> None:
    # The gateway's default config is `providers: {console: {}}` with no environment at all.
    adapter = adapter_class("console").from_config({}, {})
    assert isinstance(adapter, ConsoleAdapter)
    adapter.verify(json_request(PAYLOAD))


# ---- the optional token ---------------------------------------------------------------------------------


def tokened() -> ConsoleAdapter:
    return ConsoleAdapter.from_config({"token_env": "CONSOLE_TOKEN"}, {"CONSOLE_TOKEN": "s3cret-test-token"})


def test_token_when_set_is_required() -> None:
    adapter = tokened()
    adapter.verify(json_request(PAYLOAD, {TOKEN_HEADER: "s3cret-test-token"}))
    for headers in ({}, {TOKEN_HEADER: ""}, {TOKEN_HEADER: "wrong"}):
        with pytest.raises(VerificationError):
            adapter.verify(json_request(PAYLOAD, headers))


def test_named_but_unset_token_variable_leaves_it_open_by_default() -> None:
    ConsoleAdapter.from_config({"token_env": "CONSOLE_TOKEN"}, {}).verify(json_request(PAYLOAD))


@pytest.mark.parametrize(
    "settings",
    [{"allow_unauthenticated": False}, {"allow_unauthenticated": False, "token_env": "CONSOLE_TOKEN"}],
)
def test_refuses_to_start_open_when_told_not_to(settings: dict[str, object]) -> None:
    with pytest.raises(MissingSecretError, match="allow_unauthenticated"):
        ConsoleAdapter.from_config(settings, {})


def test_closed_adapter_with_token_works() -> None:
    adapter = ConsoleAdapter.from_config(
        {"allow_unauthenticated": False, "token_env": "CONSOLE_TOKEN"}, {"CONSOLE_TOKEN": "t0ken"}
    )
    adapter.verify(json_request(PAYLOAD, {TOKEN_HEADER: "t0ken"}))
    with pytest.raises(VerificationError):
        adapter.verify(json_request(PAYLOAD))


def test_directly_built_closed_adapter_refuses_everything() -> None:
    with pytest.raises(VerificationError):
        ConsoleAdapter(allow_unauthenticated=False).verify(json_request(PAYLOAD))


@pytest.mark.parametrize(
    "settings", [{"allow_unauthenticated": "yes"}, {"history": 0}, {"history": "10"}, {"history": True}]
)
def test_bad_settings_are_config_errors(settings: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        ConsoleAdapter.from_config(settings, {})


# ---- simulated inbound ----------------------------------------------------------------------------------


def test_json_inbound_with_id() -> None:
    [msg] = ConsoleAdapter().parse_inbound(json_request({**PAYLOAD, "id": "sim-1"}))
    assert (msg.provider, msg.provider_message_id) == ("console", "sim-1")
    assert (msg.sender, msg.recipient, msg.text) == ("+14155550100", "+14155550199", "STOP")
    assert msg.raw == {**PAYLOAD, "id": "sim-1"}


def test_form_inbound() -> None:
    body = b"from=%2B14155550100&to=%2B14155550199&text=HELP"
    request = WebhookRequest.build("POST", URL, body, {"Content-Type": "application/x-www-form-urlencoded"})
    [msg] = ConsoleAdapter().parse_inbound(request)
    assert (msg.sender, msg.text) == ("+14155550100", "HELP")


def test_json_sent_with_curls_default_form_type_is_read_as_json() -> None:
    request = WebhookRequest.build(
        "POST", URL, json.dumps(PAYLOAD).encode(), {"Content-Type": "application/x-www-form-urlencoded"}
    )
    [msg] = ConsoleAdapter().parse_inbound(request)
    assert msg.text == "STOP"


def test_generated_ids_are_unique() -> None:
    adapter = ConsoleAdapter()
    ids = {adapter.parse_inbound(json_request(PAYLOAD))[0].provider_message_id for _ in range(5)}
    assert len(ids) == 5
    assert all(i.startswith("console-") for i in ids)


@pytest.mark.parametrize("missing", ["from", "to"])
def test_missing_field_is_named(missing: str) -> None:
    with pytest.raises(PayloadError) as exc:
        ConsoleAdapter().parse_inbound(json_request({k: v for k, v in PAYLOAD.items() if k != missing}))
    assert exc.value.field == missing


def test_no_receipts() -> None:
    with pytest.raises(PayloadError):
        ConsoleAdapter().parse_status(json_request(PAYLOAD))


def test_ack_names_the_ids() -> None:
    adapter = ConsoleAdapter()
    messages = adapter.parse_inbound(json_request({**PAYLOAD, "id": "sim-2"}))
    response = adapter.ack(messages)
    assert (response.status, response.content_type) == (200, "application/json")
    assert json.loads(response.body) == {"received": ["sim-2"]}


# ---- sending --------------------------------------------------------------------------------------------


def test_send_prints_one_block_and_remembers(capsys: pytest.CaptureFixture[str]) -> None:
    adapter = ConsoleAdapter()
    message = OutboundMessage(
        channel=Channel.SMS,
        to="+14155550100",
        body="You are unsubscribed.",
        sender="+14155550199",
        idempotency_key="out-1",
    )
    result = adapter.send(message)
    out = capsys.readouterr().out
    assert result.outcome is SendOutcome.ACCEPTED
    assert result.status is DeliveryStatus.DELIVERED
    assert result.provider_message_id is not None and result.provider_message_id.startswith("console-")
    assert result.provider_message_id in out
    for part in ("+14155550100", "+14155550199", "You are unsubscribed.", "out-1"):
        assert part in out
    assert list(adapter.sent) == [message]


def test_email_send_shows_the_subject(capsys: pytest.CaptureFixture[str]) -> None:
    ConsoleAdapter().send(
        OutboundMessage(channel=Channel.EMAIL, to="a@example.com", body="Bye", subject="Unsubscribed")
    )
    out = capsys.readouterr().out
    assert "email" in out and "Unsubscribed" in out and "(default sender)" in out


def test_history_is_bounded() -> None:
    adapter = ConsoleAdapter.from_config({"history": 2}, {})
    for n in range(3):
        adapter.send(OutboundMessage(channel=Channel.SMS, to=f"+1415555010{n}", body=str(n)))
    assert [m.body for m in adapter.sent] == ["1", "2"]
