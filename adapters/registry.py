"""Provider name -> adapter class. Adding a provider adds one line here."""

from __future__ import annotations

from adapters.bandwidth import BandwidthAdapter
from adapters.base import Adapter
from adapters.clicksend import ClickSendAdapter
from adapters.console import ConsoleAdapter
from adapters.messagebird import MessageBirdAdapter
from adapters.plivo import PlivoAdapter
from adapters.sinch import SinchAdapter
from adapters.smtp import SmtpAdapter
from adapters.telnyx import TelnyxAdapter
from adapters.twilio import TwilioAdapter
from adapters.vonage import VonageAdapter
from gateway.errors import UnknownProviderError

REGISTRY: dict[str, type[Adapter]] = {
    ConsoleAdapter.name: ConsoleAdapter,
    TwilioAdapter.name: TwilioAdapter,
    ClickSendAdapter.name: ClickSendAdapter,
    SmtpAdapter.name: SmtpAdapter,
    VonageAdapter.name: VonageAdapter,
    PlivoAdapter.name: PlivoAdapter,
    TelnyxAdapter.name: TelnyxAdapter,
    BandwidthAdapter.name: BandwidthAdapter,
    SinchAdapter.name: SinchAdapter,
    MessageBirdAdapter.name: MessageBirdAdapter,
}


def adapter_class(name: str) -> type[Adapter]:
    """The adapter class registered under ``name``, or `UnknownProviderError`."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise UnknownProviderError(f"no provider adapter named {name!r}") from None
