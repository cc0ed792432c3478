"""SMTP: the email channel's adapter. Sends through any mail relay; receives nothing.

Configuration (``providers.smtp``)::

    smtp:
      host: smtp.example.com
      port: 587                  # default: 587 with starttls, 465 with tls, 25 with none
      security: starttls         # starttls | tls (implicit TLS) | none
      username_env: SMTP_USERNAME  # log in only when named; the password comes from password_env
      password_env: SMTP_PASSWORD
      from_address: news@example.com  # when a message names no sender
      ca_file: /etc/ssl/private-relay.pem  # trust a private CA instead of the system store
      timeout: 30

Replies of class 4xx, dropped connections, TLS failures and timeouts are transient (the outbox retries);
5xx replies are permanent. The Message-ID is derived from the outbox's idempotency key, so a message sent
again after a crash carries the same id and receiving systems can recognise the duplicate. One connection
is kept open between sends (checked with NOOP before reuse) so a campaign does not pay a TLS handshake per
message.
"""

from __future__ import annotations

import hashlib
import logging
import smtplib
import ssl
import threading
from collections.abc import Mapping
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import formatdate
from typing import Any, ClassVar

from adapters.base import Adapter, WebhookRequest
from gateway.addresses import mask
from gateway.errors import ConfigError, PayloadError
from gateway.messages import DeliveryStatus, InboundMessage, OutboundMessage, SendOutcome, SendResult

log = logging.getLogger(__name__)

SECURITY_PORTS: Mapping[str, int] = {"starttls": 587, "tls": 465, "none": 25}
#: Headers the adapter writes itself; a caller's `OutboundMessage.headers` cannot replace them.
RESERVED_HEADERS = frozenset(
    {"from", "to", "cc", "bcc", "subject", "date", "message-id", "mime-version", "sender", "reply-to"}
)
_LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})


def _outcome(code: int) -> SendOutcome:
    # 5xx is a permanent refusal (unknown mailbox, policy); anything else the relay said is worth a retry.
    return SendOutcome.FAILED if 500 <= code < 600 else SendOutcome.RETRY


class SmtpAdapter(Adapter):
    """Sends `OutboundMessage` emails (text plus optional HTML alternative) through one SMTP relay."""

    name: ClassVar[str] = "smtp"
    channel: ClassVar[str] = "email"

    def __init__(
        self,
        host: str,
        port: int,
        security: str = "starttls",
        username: str | None = None,
        password: str | None = None,
        from_address: str | None = None,
        ca_file: str | None = None,
        timeout: float = 30.0,
        local_hostname: str | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.security = security
        self._username = username
        self._password = password
        self.from_address = from_address
        self.ca_file = ca_file
        self.timeout = timeout
        self.local_hostname = local_hostname
        self._lock = threading.Lock()
        self._conn: smtplib.SMTP | None = None

    @classmethod
    def from_config(cls, settings: Mapping[str, Any], env: Mapping[str, str] | None = None) -> SmtpAdapter:
        """Build from ``providers.smtp``; a login is used only when ``username_env`` is named."""
        host = settings.get("host")
        if not host or not isinstance(host, str):
            raise ConfigError("providers.smtp.host is required")
        security = settings.get("security", "starttls")
        if security not in SECURITY_PORTS:
            raise ConfigError("providers.smtp.security must be starttls, tls or none")
        port = settings.get("port", SECURITY_PORTS[security])
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
            raise ConfigError("providers.smtp.port must be a port number")
        username = password = None
        if settings.get("username_env"):
            username = cls.secret(settings, env, "username", "SMTP_USERNAME")
            password = cls.secret(settings, env, "password", "SMTP_PASSWORD")
            if security == "none" and host not in _LOOPBACK:
                raise ConfigError("providers.smtp: a login needs security starttls or tls (never in clear)")
        timeout = settings.get("timeout", 30)
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
            raise ConfigError("providers.smtp.timeout must be a positive number of seconds")
        return cls(
            host,
            port,
            security,
            username,
            password,
            from_address=settings.get("from_address"),
            ca_file=settings.get("ca_file"),
            timeout=float(timeout),
            local_hostname=settings.get("local_hostname"),
        )

    def verify(self, request: WebhookRequest) -> None:
        """SMTP has no webhooks: every request to its webhook URL is refused."""
        raise PayloadError("the smtp adapter receives no webhooks")

    def parse_inbound(self, request: WebhookRequest) -> list[InboundMessage]:
        """Never reached (`verify` refuses first)."""
        raise PayloadError("the smtp adapter receives no webhooks")

    # ---- sending -----------------------------------------------------------------------------------

    def build(self, message: OutboundMessage) -> EmailMessage:
        """The MIME message for ``message``; `ValueError` for a header that would be unsafe to send."""
        sender = message.sender or self.from_address
        if not sender:
            raise ValueError("no sender address (set a sender or providers.smtp.from_address)")
        msg = EmailMessage(policy=SMTP_POLICY)
        msg["From"] = sender
        msg["To"] = message.to
        msg["Subject"] = message.subject or ""
        msg["Date"] = formatdate(localtime=False, usegmt=True)
        msg["Message-ID"] = self.message_id(message, sender)
        for name, value in message.headers.items():
            if name.lower() not in RESERVED_HEADERS:
                msg[name] = value  # the policy refuses CR/LF in values: no header injection
        msg.set_content(message.body)
        if message.html_body:
            msg.add_alternative(message.html_body, subtype="html")
        return msg

    @staticmethod
    def message_id(message: OutboundMessage, sender: str) -> str:
        """``<hash@sender-domain>``: stable for one idempotency key, so a re-send keeps its id."""
        domain = Address(addr_spec=sender).domain or "localhost"
        seed = message.idempotency_key or f"{message.to}\0{message.subject}\0{message.body}"
        return f"<{hashlib.sha256(seed.encode('utf-8')).hexdigest()[:40]}@{domain}>"

    def send(self, message: OutboundMessage) -> SendResult:
        """Send one email; never raises for relay or network trouble."""
        try:
            mime = self.build(message)
        except (ValueError, TypeError) as exc:
            return SendResult(SendOutcome.FAILED, self.name, error_message=f"unsendable message: {exc}")
        message_id = str(mime["Message-ID"])
        with self._lock:
            try:
                self._connection().send_message(mime, to_addrs=[message.to])
            except smtplib.SMTPRecipientsRefused as exc:
                code, reply = next(iter(exc.recipients.values()), (550, b""))
                return self._refused(message, code, reply)
            except smtplib.SMTPResponseException as exc:
                self.close()
                return self._refused(message, exc.smtp_code, exc.smtp_error)
            except (smtplib.SMTPException, OSError) as exc:  # disconnects, TLS errors, timeouts, refusals
                self.close()
                return SendResult(SendOutcome.RETRY, self.name, error_message=type(exc).__name__)
        return SendResult(
            SendOutcome.ACCEPTED, self.name, provider_message_id=message_id, status=DeliveryStatus.SENT
        )

    def _refused(self, message: OutboundMessage, code: int, reply: bytes | str) -> SendResult:
        text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
        log.info("smtp refused mail to %s: %s", mask(message.to), code)
        return SendResult(_outcome(code), self.name, error_code=str(code), error_message=text[:200])

    def _connection(self) -> smtplib.SMTP:
        if self._conn is not None:
            try:
                if self._conn.noop()[0] == 250:
                    return self._conn
            except (smtplib.SMTPException, OSError):
                pass
            self.close()
        self._conn = self._connect()
        return self._conn

    def _connect(self) -> smtplib.SMTP:
        context = ssl.create_default_context(cafile=self.ca_file)
        conn: smtplib.SMTP
        if self.security == "tls":
            conn = smtplib.SMTP_SSL(
                self.host, self.port, self.local_hostname, timeout=self.timeout, context=context
            )
        else:
            conn = smtplib.SMTP(self.host, self.port, self.local_hostname, timeout=self.timeout)
        try:
            if self.security == "starttls":
                # Raises when the relay does not offer STARTTLS: never fall back to sending in clear.
                conn.starttls(context=context)
            if self._username is not None:
                conn.login(self._username, self._password or "")
        except BaseException:
            conn.close()
            raise
        return conn

    def close(self) -> None:
        """Close the kept connection, if any (politely, then for sure)."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            conn.quit()
        except (smtplib.SMTPException, OSError):
            conn.close()
