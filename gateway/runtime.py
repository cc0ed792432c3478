"""The process-wide gateway object: settings, database, compiled rules and adapters, built once.

Web nodes and workers both build one `Gateway` at start-up; nothing on the request path reloads
configuration or recompiles rules.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

from adapters.base import Adapter, WebhookRequest
from adapters.registry import adapter_class
from gateway.config import Settings, compile_configured_rules
from gateway.db import Database
from gateway.errors import ConfigError, UnknownProviderError

log = logging.getLogger(__name__)


def _accepts_unsigned(adapter: Adapter, name: str) -> bool:
    """Whether ``adapter`` lets an empty request with no signature or token through `Adapter.verify`."""
    probe = WebhookRequest.build("POST", f"http://localhost/webhooks/{name}/inbound")
    try:
        adapter.verify(probe)
    except Exception:  # any refusal will do: the probe only asks whether it is let through
        return False
    return True


class Gateway:
    """Everything a request handler or a worker needs, constructed once per process."""

    def __init__(self, settings: Settings, env: Mapping[str, str] | None = None) -> None:
        self.settings = settings
        self.env = os.environ if env is None else env
        self.db = Database(settings.database_url)
        self.rules: Any = compile_configured_rules(settings)
        self.adapters: dict[str, Adapter] = {}
        for name, block in settings.providers.items():
            self.adapters[name] = self._build_adapter(name, block)
        if settings.default_provider not in self.adapters:
            raise ConfigError(
                f"{settings.source}: default_provider: {settings.default_provider!r} is not configured "
                "under providers"
            )
        for sender in settings.senders:
            if sender.provider not in self.adapters:
                raise ConfigError(
                    f"{settings.source}: senders: {sender.address}: provider {sender.provider!r} "
                    "is not configured under providers"
                )
        from gateway.email import check_email_config

        check_email_config(self)  # email configured: public_url and the link secret must be there

    def _build_adapter(self, name: str, block: Mapping[str, Any]) -> Adapter:
        kind = str(block.get("adapter", name))
        try:
            cls = adapter_class(kind)
        except UnknownProviderError:
            source = self.settings.source
            raise ConfigError(f"{source}: providers.{name}: no adapter named {kind!r}") from None
        settings = {k: v for k, v in block.items() if k != "adapter"}
        try:
            adapter = cls.from_config(settings, self.env)
        except ConfigError as exc:
            raise type(exc)(f"{self.settings.source}: providers.{name}: {exc}") from None
        if settings.get("verify_signatures") is False or settings.get("allow_unauthenticated") is True:
            log.warning("providers.%s: webhook verification is turned OFF by configuration", name)
        elif _accepts_unsigned(adapter, name):
            # No switch says so, yet anyone can post to it (the console adapter without a token).
            log.warning("providers.%s: webhooks are accepted without any signature or token", name)
        return adapter

    def adapter(self, name: str) -> Adapter:
        """The configured adapter ``name``, or `UnknownProviderError` (a 404 on the webhook route)."""
        try:
            return self.adapters[name]
        except KeyError:
            raise UnknownProviderError(f"provider {name!r} is not configured") from None

    def provider_for_sender(self, address: str | None) -> str:
        """The provider that owns one of our numbers (the default provider for an unknown one)."""
        sender = self.settings.sender_for(address)
        return sender.provider if sender else self.settings.default_provider

    def default_sender(self, channel: str = "sms") -> str | None:
        """The first configured sender for a channel, used when a send names none."""
        for sender in self.settings.senders:
            if sender.channel == channel:
                return sender.address
        return None
