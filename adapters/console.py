"""The console adapter: a local stand-in provider for development and demos (the default for ``make run``).

It needs no credentials. Sends are printed to standard output and remembered in memory; inbound messages are
simulated by posting to ``/webhooks/console/inbound``::

    curl -X POST localhost:8000/webhooks/console/inbound \\
         -H 'Content-Type: application/json' \\
         -d '{"from": "+14155550100", "to": "+14155550199", "text": "STOP"}'

Anyone who can reach that URL can opt people out or in, so in production either remove ``console`` from
``providers`` or protect it: set ``token_env`` to the name of an environment variable holding a shared token
(callers then send it in the ``X-Console-Token`` header), or set ``allow_unauthenticated: false`` so the
gateway refuses to start without that token.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import sys
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from adapters.base import Adapter, WebhookRequest, WebhookResponse
from gateway.errors import ConfigError, MissingSecretError, VerificationError
from gateway.messages import DeliveryStatus, InboundMessage, OutboundMessage, SendOutcome, SendResult

TOKEN_HEADER = "X-Console-Token"
DEFAULT_HISTORY = 100

_JSON = "application/json"


def _new_id() -> str:
    return f"console-{uuid.uuid4()}"


class ConsoleAdapter(Adapter):
    """Prints outbound messages and accepts simulated inbound ones; keeps the last sends in `sent`."""

    name: ClassVar[str] = "console"

    def __init__(
        self, token: str | None = None, allow_unauthenticated: bool = True, history: int = DEFAULT_HISTORY
    ) -> None:
        self._token = token or None
        self.allow_unauthenticated = allow_unauthenticated
        #: The most recent outbound messages, oldest first (bounded, so a long demo cannot grow memory).
        self.sent: collections.deque[OutboundMessage] = collections.deque(maxlen=history)

    @classmethod
    def from_config(cls, settings: Mapping[str, Any], env: Mapping[str, str] | None = None) -> ConsoleAdapter:
        """Build from ``providers.console`` (every key optional).

        ``token_env``: environment variable holding a shared token; when it is set, inbound requests must
        carry it. ``allow_unauthenticated`` (default true, this being a development adapter): when false and
        no token is set, raise `MissingSecretError` instead of running an open endpoint. ``history``: how many
        sent messages to keep in memory (default 100).
        """
        token = cls.secret(settings, env, "token", "", required=False)
        allow = settings.get("allow_unauthenticated", True)
        if not isinstance(allow, bool):
            raise ConfigError("providers.console.allow_unauthenticated must be true or false")
        if not token and not allow:
            var = settings.get("token_env")
            missing = f"environment variable {var}" if var else "providers.console.token_env"
            raise MissingSecretError(
                f"{missing} is not set and providers.console.allow_unauthenticated is false"
            )
        history = settings.get("history", DEFAULT_HISTORY)
        if isinstance(history, bool) or not isinstance(history, int) or history < 1:
            raise ConfigError("providers.console.history must be a positive integer")
        return cls(token=token or None, allow_unauthenticated=allow, history=history)

    def verify(self, request: WebhookRequest) -> None:
        """Without a token accept anything (when allowed); with one, require it in the header."""
        if self._token is None:
            if self.allow_unauthenticated:
                return
            raise VerificationError("the console adapter has no token and allow_unauthenticated is false")
        supplied = request.header(TOKEN_HEADER)
        if not supplied or not self.same(supplied, self._token):
            raise VerificationError(f"missing or wrong {TOKEN_HEADER} header")

    def parse_inbound(self, request: WebhookRequest) -> list[InboundMessage]:
        """One simulated message from JSON or form fields ``from``, ``to``, ``text`` and optional ``id``.

        Without ``id`` a fresh one is generated, so re-posting the same text is a new message; send the same
        ``id`` twice to exercise the gateway's duplicate handling.
        """
        if request.content_type != _JSON and request.body.lstrip()[:1] == b"{":
            # `curl -d '{...}'` without -H labels the body as a form; an object body is still meant as JSON.
            headers = {k: v for k, v in request.headers.items() if k.lower() != "content-type"}
            request = dataclasses.replace(request, headers={**headers, "Content-Type": _JSON})
        params = request.params()
        return [
            InboundMessage(
                provider=self.name,
                provider_message_id=self.field(params, "id", required=False) or _new_id(),
                sender=self.field(params, "from"),
                recipient=self.field(params, "to"),
                text=self.field(params, "text", required=False),
                raw=params,
            )
        ]

    def send(self, message: OutboundMessage) -> SendResult:
        """Print the message as one block on standard output and remember it; always accepted."""
        message_id = _new_id()
        lines = [
            f"----- console {message.channel} {message_id} -----",
            f"to:      {message.to}",
            f"from:    {message.sender or '(default sender)'}",
        ]
        if message.subject:
            lines.append(f"subject: {message.subject}")
        # Email headers matter in development: they carry the List-Unsubscribe links to try out.
        lines += [f"header:  {name}: {value}" for name, value in message.headers.items()]
        if message.custom_string:
            lines.append(f"note:    {message.custom_string}")
        if message.idempotency_key:
            lines.append(f"key:     {message.idempotency_key}")
        lines += ["", message.body, "-" * 40, ""]
        # One write per message so concurrent sends print whole blocks; looked up per call so redirected or
        # captured output (gunicorn, tests) is honoured. Flushed so the block shows at once in `make run`.
        out = sys.stdout
        out.write("\n".join(lines))
        out.flush()
        self.sent.append(message)
        return SendResult(
            SendOutcome.ACCEPTED,
            self.name,
            provider_message_id=message_id,
            status=DeliveryStatus.DELIVERED,
            raw={"id": message_id},
        )

    def ack(self, messages: Sequence[InboundMessage]) -> WebhookResponse:
        """A small JSON answer naming the message ids, handy when simulating with curl."""
        body = json.dumps({"received": [m.provider_message_id for m in messages]}).encode("utf-8")
        return WebhookResponse(body, 200, _JSON)
