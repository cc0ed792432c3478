"""The adapter contract: what every provider case supplies so one suite can test every adapter.

A case describes a provider's wire format; `tests/adapters/test_contract.py` runs the same assertions over
all of them. Adding a provider means adding `tests/adapters/cases/<name>.py` with a `CASE` object and
listing it in `CASES` below.
"""

from __future__ import annotations

import abc
import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import responses

from adapters.base import Adapter, WebhookRequest
from adapters.registry import adapter_class
from gateway.messages import DeliveryStatus, OutboundMessage

# One module per provider under tests/adapters/cases/, each defining CASE.
CASE_MODULES = ["twilio", "clicksend", "vonage", "plivo", "telnyx", "bandwidth", "sinch", "messagebird"]


@dataclass(frozen=True)
class StatusCase:
    """A signed delivery-receipt webhook and what it must normalise to."""

    request: WebhookRequest
    provider_message_id: str
    status: DeliveryStatus
    opted_out: bool = False


class ProviderCase(abc.ABC):
    """Fixtures for one provider. Subclasses fill in the wire format; the suite does the asserting."""

    name: str
    #: The `providers.<name>` config block.
    settings: Mapping[str, Any] = {}
    #: Environment holding the (fake) credentials the settings point at.
    env: Mapping[str, str] = {}
    #: The same environment with the webhook secret changed: requests signed with `env` must fail.
    wrong_env: Mapping[str, str] | None = None
    #: True when the provider signs webhooks with a timestamp (a stale one must be refused).
    has_timestamp: bool = False
    #: False when the provider proves only who is calling (a secret token in the URL, basic auth) and signs
    #: nothing over the body, so an altered body cannot be detected; the tampering test is then skipped.
    signs_body: bool = True
    #: The URL `send` posts to, for `responses`.
    send_method: str = "POST"
    send_url: str = ""
    #: The outbound message used by the send tests.
    outbound = OutboundMessage(channel="sms", to="+14155550100", body="hello", sender="+14155550199")  # type: ignore[arg-type]

    def adapter(self, env: Mapping[str, str] | None = None) -> Adapter:
        """The adapter under test, built through the registry exactly as the gateway builds it."""
        return adapter_class(self.name).from_config(dict(self.settings), dict(env or self.env))

    @abc.abstractmethod
    def inbound(self, text: str, sender: str, recipient: str, message_id: str) -> WebhookRequest:
        """A correctly signed inbound-message webhook as the provider would deliver it."""

    def tampered(self, request: WebhookRequest) -> WebhookRequest:
        """The same request with its body altered after signing."""
        body = request.body.replace(b"STOP", b"START") if b"STOP" in request.body else request.body + b"x"
        return WebhookRequest.build(request.method, request.url, body, request.headers)

    @abc.abstractmethod
    def unsigned(self, request: WebhookRequest) -> WebhookRequest:
        """The same request without its signature (or token)."""

    def stale(self, text: str) -> WebhookRequest | None:
        """A correctly signed request whose timestamp is outside the tolerance (when `has_timestamp`)."""
        return None

    @abc.abstractmethod
    def mock_send_success(self, rsps: responses.RequestsMock) -> str:
        """Register the provider's success answer; return the provider message id it carries."""

    def mock_send_throttled(self, rsps: responses.RequestsMock) -> None:
        """Register a throttling answer (HTTP 429 by default)."""
        rsps.add(self.send_method, self.send_url, status=429, json={"message": "Too Many Requests"})

    def mock_send_server_error(self, rsps: responses.RequestsMock) -> None:
        """Register a server error answer."""
        rsps.add(self.send_method, self.send_url, status=503, body="unavailable")

    def mock_send_opted_out(self, rsps: responses.RequestsMock) -> str | None:
        """Register the provider's synchronous "recipient opted out" answer; return its code (None: none)."""
        return None

    def status_cases(self) -> list[StatusCase]:
        """Signed delivery receipts and their normalised form (empty: the provider sends none)."""
        return []


def all_cases() -> list[ProviderCase]:
    """Every registered provider case, in `CASE_MODULES` order."""
    return [importlib.import_module(f"tests.adapters.cases.{m}").CASE for m in CASE_MODULES]
