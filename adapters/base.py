"""The adapter interface and the framework-free request type adapters read.

Adding a provider means writing one subclass of `Adapter` in `adapters/<name>.py`, its test case under
`tests/adapters/cases/`, and one line in `adapters/registry.py`.
"""

from __future__ import annotations

import abc
import hmac
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import parse_qsl

import requests

from gateway.errors import MissingSecretError, PayloadError
from gateway.messages import InboundMessage, OutboundMessage, SendOutcome, SendResult, StatusUpdate


@dataclass(frozen=True, slots=True)
class WebhookRequest:
    """An incoming webhook, as an adapter sees it: no Flask, just the bytes and their decoding.

    ``url`` is the URL the provider called: the configured ``public_url`` plus path and query when set,
    otherwise the URL the server saw. ``query`` and ``form`` keep repeated keys as lists, in arrival order.
    """

    method: str
    url: str
    path: str
    headers: Mapping[str, str]
    body: bytes
    query: Mapping[str, list[str]] = field(default_factory=dict)
    form: Mapping[str, list[str]] = field(default_factory=dict)
    remote_addr: str | None = None

    def header(self, name: str) -> str | None:
        """A header value, looked up case-insensitively."""
        lowered = name.lower()
        for key, value in self.headers.items():
            if key.lower() == lowered:
                return value
        return None

    @property
    def content_type(self) -> str:
        """The media type without parameters, lower-cased ("" when absent)."""
        return (self.header("Content-Type") or "").split(";", 1)[0].strip().lower()

    def json(self) -> Any:
        """The body parsed as JSON, or a `PayloadError` naming the problem."""
        try:
            return json.loads(self.body.decode("utf-8"))
        # ValueError also covers an integer literal past Python's digit limit; RecursionError deep nesting.
        except (ValueError, RecursionError) as exc:
            raise PayloadError(f"body is not valid JSON: {exc}") from None

    def params(self) -> dict[str, str]:
        """Query and form (or flat JSON object) merged into single values; the body wins over the query.

        Providers that can deliver the same fields as GET, form or JSON (ClickSend, Vonage) read this.
        """
        merged: dict[str, str] = {k: v[0] for k, v in self.query.items() if v}
        if self.content_type == "application/json" and self.body.strip():
            data = self.json()
            if not isinstance(data, dict):
                raise PayloadError("JSON body must be an object")
            merged.update({k: "" if v is None else str(v) for k, v in data.items()})
        else:
            merged.update({k: v[0] for k, v in self.form.items() if v})
        return merged

    @classmethod
    def build(
        cls,
        method: str,
        url: str,
        body: bytes = b"",
        headers: Mapping[str, str] | None = None,
        remote_addr: str | None = None,
    ) -> WebhookRequest:
        """Build a request from raw parts, decoding the query and a form body (used by tests and tools)."""
        headers = dict(headers or {})
        path, _, query_string = url.partition("?")
        path = "/" + path.split("://", 1)[-1].partition("/")[2] if "://" in path else path
        query = _multi(parse_qsl(query_string, keep_blank_values=True))
        ctype = next((v for k, v in headers.items() if k.lower() == "content-type"), "")
        form: dict[str, list[str]] = {}
        if ctype.split(";", 1)[0].strip().lower() == "application/x-www-form-urlencoded":
            form = _multi(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        return cls(method.upper(), url, path, headers, body, query, form, remote_addr)


def _multi(pairs: Sequence[tuple[str, str]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for key, value in pairs:
        out.setdefault(key, []).append(value)
    return out


@dataclass(frozen=True, slots=True)
class WebhookResponse:
    """What the route answers a provider with after the webhook's effects are committed."""

    body: bytes = b""
    status: int = 200
    content_type: str = "text/plain"


class Adapter(abc.ABC):
    """Base class of every provider adapter.

    Subclasses set `name`, implement `from_config`, `verify`, `parse_inbound` and `send`, and may implement
    `parse_status` (delivery receipts) and `ack` (the body the provider expects back).
    """

    name: ClassVar[str]
    #: Channel the adapter sends on.
    channel: ClassVar[str] = "sms"
    #: Default environment variable names of the credentials, by setting name.
    env_defaults: ClassVar[Mapping[str, str]] = {}
    #: Default API base URL.
    default_base_url: ClassVar[str] = ""

    timeout: float = 10.0

    @classmethod
    @abc.abstractmethod
    def from_config(cls, settings: Mapping[str, Any], env: Mapping[str, str] | None = None) -> Adapter:
        """Build an adapter from its `providers.<name>` config block and the environment.

        ``settings`` may name environment variables (``account_sid_env: MY_SID``); `secret` resolves them.
        """

    @abc.abstractmethod
    def verify(self, request: WebhookRequest) -> None:
        """Raise `VerificationError` unless the request provably comes from the provider."""

    @abc.abstractmethod
    def parse_inbound(self, request: WebhookRequest) -> list[InboundMessage]:
        """The person-to-us messages in a verified inbound webhook; `PayloadError` names a missing field."""

    @abc.abstractmethod
    def send(self, message: OutboundMessage) -> SendResult:
        """Send one message. Never raises for provider or network trouble: the result says retry or not."""

    def parse_status(self, request: WebhookRequest) -> list[StatusUpdate]:
        """The delivery receipts in a verified status webhook (default: the provider sends none)."""
        raise PayloadError(f"{self.name} does not send delivery receipts to this gateway")

    def ack(self, messages: Sequence[InboundMessage]) -> WebhookResponse:
        """The 2xx body the provider expects once we have committed (default: empty 200)."""
        return WebhookResponse()

    # ---- helpers for subclasses -------------------------------------------------------------------

    @staticmethod
    def secret(
        settings: Mapping[str, Any],
        env: Mapping[str, str] | None,
        key: str,
        default_env: str,
        required: bool = True,
    ) -> str:
        """Resolve credential ``key`` from the environment variable named by ``<key>_env`` (or the default).

        A missing variable raises `MissingSecretError` naming the variable, never a value.
        """
        env = os.environ if env is None else env
        var = str(settings.get(f"{key}_env") or default_env)
        value = env.get(var, "")
        if required and not value:
            raise MissingSecretError(f"environment variable {var} is not set (credential {key!r})")
        return value

    @staticmethod
    def field(data: Mapping[str, Any], *names: str, required: bool = True) -> str:
        """The first present, non-empty value among ``names`` as a string (aliases in order).

        A required field that is missing raises `PayloadError` naming it, so a provider's change of shape
        is a 400 with a reason, not a 500.
        """
        for name in names:
            value = data.get(name)
            if value is not None and value != "":
                if isinstance(value, dict | list):
                    raise PayloadError(f"field {name!r} has the wrong type", field=name)
                return str(value)
        if required:
            raise PayloadError(f"missing field {names[0]!r}", field=names[0])
        return ""

    @staticmethod
    def same(a: str, b: str) -> bool:
        """Constant-time string comparison for signatures and tokens."""
        return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))

    def send_result(self, outcome: SendOutcome, **details: Any) -> SendResult:
        """A `SendResult` from this provider (``details`` are `SendResult`'s optional fields)."""
        return SendResult(outcome, self.name, **details)

    def network_failure(self, exc: Exception) -> SendResult:
        """A send that got no answer (timeout, refused or reset connection): worth another attempt."""
        return self.send_result(SendOutcome.RETRY, error_code="network", error_message=type(exc).__name__)

    def transient_failure(
        self,
        response: requests.Response,
        raw: Mapping[str, Any],
        error_code: str | None = None,
        error_message: str | None = None,
    ) -> SendResult:
        """A throttled or server-error answer: retried, no sooner than the provider's ``Retry-After``."""
        return self.send_result(
            SendOutcome.RETRY,
            error_code=error_code or str(response.status_code),
            error_message=error_message,
            retry_after=retry_after_seconds(response),
            raw=raw,
        )

    def unreadable_success(self, raw: Mapping[str, Any]) -> SendResult:
        """A 2xx without a readable message id: as ambiguous as a timeout (it may have gone out): retry."""
        return self.send_result(SendOutcome.RETRY, error_code="bad_response", raw=raw)


def retry_after_seconds(response: requests.Response) -> float | None:
    """The provider's ``Retry-After`` in seconds when it is a number, else None."""
    value = response.headers.get("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def is_transient_status(status_code: int) -> bool:
    """HTTP statuses worth retrying: throttling, timeouts and server errors."""
    return status_code in (408, 425, 429) or status_code >= 500
