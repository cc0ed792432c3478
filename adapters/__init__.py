"""Provider adapters: one module per provider, one class per module.

An adapter verifies and parses a provider's webhooks and sends messages through the provider's API. It knows
nothing of Flask routing or storage: the gateway hands it a `WebhookRequest` and a `Sender` configuration and
gets back plain dataclasses.
"""

from adapters.base import Adapter, WebhookRequest, WebhookResponse
from adapters.registry import REGISTRY, adapter_class

__all__ = ["REGISTRY", "Adapter", "WebhookRequest", "WebhookResponse", "adapter_class"]
