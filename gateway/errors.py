"""One error root for the whole gateway, with subclasses callers can act on.

Every error the gateway raises on purpose is a `GatewayError`; anything else is a bug. The HTTP layer maps
these onto status codes (see `gateway.app`), the CLI onto exit codes, so each subclass says *what the caller
should do*, not where it happened.
"""

from __future__ import annotations

from typing import Any


class GatewayError(Exception):
    """Root of every deliberate gateway error."""

    #: Stable machine-readable code, used as the problem+json ``type`` suffix.
    code = "gateway_error"
    #: HTTP status this error maps to when it reaches a request handler.
    http_status = 500

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe description of the error (never contains secrets)."""
        return {"error": self.code, "detail": str(self)}


class ConfigError(GatewayError):
    """The configuration is invalid; the message names the key, file and line where known."""

    code = "config_error"


class MissingSecretError(ConfigError):
    """A credential's environment variable is not set. The message names the variable, never a value."""

    code = "missing_secret"


class RuleError(ConfigError):
    """A rule failed to compile; the message carries file, line and rule name."""

    code = "rule_error"


class VerificationError(GatewayError):
    """A webhook failed its signature or token check (HTTP 403)."""

    code = "verification_failed"
    http_status = 403


class PayloadError(GatewayError):
    """A webhook or API payload is malformed: a field is missing or has the wrong shape (HTTP 400)."""

    code = "bad_payload"
    http_status = 400

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field

    def to_dict(self) -> dict[str, Any]:
        """Include the offending field's name when there is one."""
        data = super().to_dict()
        if self.field:
            data["field"] = self.field
        return data


class UnknownProviderError(GatewayError):
    """No adapter is registered or configured under that name (HTTP 404)."""

    code = "unknown_provider"
    http_status = 404


class InvalidAddressError(PayloadError):
    """A phone number or email address cannot be normalised."""

    code = "invalid_address"


class NotFoundError(GatewayError):
    """A requested record does not exist (HTTP 404)."""

    code = "not_found"
    http_status = 404


class PolicyError(GatewayError):
    """The request is well formed but the compliance policy forbids it (HTTP 403)."""

    code = "forbidden_by_policy"
    http_status = 403


class OptedOutError(GatewayError):
    """The guard refused a send: the recipient has opted out for that channel and scope (HTTP 409)."""

    code = "opted_out"
    http_status = 409

    def __init__(self, channel: str, address: str, scope: str, since: str | None, source: str | None) -> None:
        super().__init__(f"recipient opted out of {channel} in scope {scope!r}")
        self.channel = channel
        self.address = address
        self.scope = scope
        self.since = since
        self.source = source

    def to_dict(self) -> dict[str, Any]:
        """The 409 body: which channel, address and scope, and since when."""
        return {
            "error": self.code,
            "channel": self.channel,
            "address": self.address,
            "scope": self.scope,
            "since": self.since,
            "source": self.source,
        }


class SendError(GatewayError):
    """A provider send failed in a way the adapter could not express as a `SendResult`."""

    code = "send_failed"
    http_status = 502


class ProviderError(GatewayError):
    """A provider's API failed or answered something unreadable outside the send path (HTTP 502)."""

    code = "provider_error"
    http_status = 502
