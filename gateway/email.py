"""The email channel's unsubscribe machinery: signed links, the headers and the visible footer.

Every marketing and informational email leaves `prepare` with a visible unsubscribe link in its text and
HTML bodies and with the RFC 8058 headers (``List-Unsubscribe`` with one HTTPS URI, plus a mailto: when
configured, and ``List-Unsubscribe-Post: List-Unsubscribe=One-Click``). The outbox refuses such an email
without them (`unsubscribe_problem`), so no path can send one that cannot be left.

Links carry an opaque token: the address, scope and topic are sealed with a key derived from
``$OPTOUT_SECRET_KEY`` (NaCl SecretBox, random nonce), then signed and time-stamped by itsdangerous. A
token reveals nothing to whoever sees the URL, cannot be forged or enumerated, and works for
``email.link_max_age_days`` (365 by default; never under the 60 days CASL asks for). To rotate the key,
move the old one to ``$OPTOUT_PREVIOUS_SECRET_KEY``: links already sent keep working, new ones use the
new key.

Topics (``newsletters``) are opt-out scopes of their own, ``<scope>/<topic>`` in ``opt_outs``: leaving a
topic blocks sends with that topic; leaving the scope blocks every send in it, topic or not
(see `gateway.storage.covering_scopes`).
"""

from __future__ import annotations

import hashlib
import html
import json
import logging
import re
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import itsdangerous
from nacl.exceptions import CryptoError
from nacl.secret import SecretBox

from gateway.errors import ConfigError, MissingSecretError, PayloadError
from gateway.messages import Category
from gateway.models import utcnow
from gateway.storage import TOPIC_SEPARATOR

if TYPE_CHECKING:
    from gateway.config import Settings
    from gateway.runtime import Gateway

UNSUBSCRIBE_PLACEHOLDER = "{unsubscribe_url}"
PREFERENCES_PLACEHOLDER = "{preferences_url}"
LIST_UNSUBSCRIBE = "List-Unsubscribe"
LIST_UNSUBSCRIBE_POST = "List-Unsubscribe-Post"
ONE_CLICK = "List-Unsubscribe=One-Click"
#: Categories that must carry the link and headers; transactional and compliance mail does not.
NEEDS_UNSUBSCRIBE = frozenset({Category.MARKETING.value, Category.INFORMATIONAL.value})

log = logging.getLogger(__name__)

_MIN_SECRET = 16
_MAX_TOKEN = 1000
# Clock skew tolerated between the web nodes that issue and read links.
_SKEW = timedelta(minutes=5)
_BODY_END = re.compile(r"</body\s*>", re.IGNORECASE)


class InvalidLinkError(PayloadError):
    """An unsubscribe token that is malformed, tampered with, foreign or expired (deliberately vague)."""

    code = "invalid_link"


@dataclass(frozen=True, slots=True)
class LinkClaim:
    """What a valid token says: whose link it is, for which scope and topic, and when it was issued."""

    address: str
    scope: str
    topic: str | None
    issued_at: datetime

    @property
    def opt_out_scope(self) -> str:
        """The ``opt_outs`` scope this link leaves: the topic's scope, or the whole scope."""
        return topic_scope(self.scope, self.topic)


def topic_scope(scope: str, topic: str | None) -> str:
    """``acme`` + ``newsletters`` -> ``acme/newsletters``; the scope itself without a topic."""
    return f"{scope}{TOPIC_SEPARATOR}{topic}" if topic else scope


class _Sealed:
    """An itsdangerous serializer that encrypts the JSON payload, so the token is opaque, not just signed."""

    def __init__(self, key: bytes) -> None:
        self._box = SecretBox(key)

    def dumps(self, obj: Any) -> bytes:
        return bytes(self._box.encrypt(json.dumps(obj, separators=(",", ":")).encode("utf-8")))

    def loads(self, data: bytes) -> Any:
        try:
            return json.loads(self._box.decrypt(data))
        except CryptoError as exc:  # itsdangerous turns this into BadPayload
            raise ValueError("undecryptable payload") from exc


def _serializer(secret: str) -> itsdangerous.URLSafeTimedSerializer:
    if len(secret) < _MIN_SECRET:
        raise ConfigError(f"the unsubscribe secret must be at least {_MIN_SECRET} characters long")
    raw = secret.encode("utf-8")
    # Separate keys for sealing and signing, both derived from the one secret.
    box_key = hashlib.blake2b(raw, digest_size=SecretBox.KEY_SIZE, person=b"optout-unsub-box").digest()
    sealed = _Sealed(box_key)
    return itsdangerous.URLSafeTimedSerializer(raw, salt="optout-unsubscribe-link", serializer=sealed)


class LinkSigner:
    """Issues and reads unsubscribe tokens and builds the URLs that carry them."""

    def __init__(
        self,
        secret: str,
        public_url: str,
        max_age: timedelta,
        clock: Callable[[], datetime] = utcnow,
        previous: Sequence[str] = (),
    ) -> None:
        # ``previous`` keys still read links issued before a key rotation; only ``secret`` issues new ones.
        self._serializers = [_serializer(key) for key in (secret, *previous)]
        self.public_url = public_url.rstrip("/")
        self.max_age = max_age
        #: Read when checking expiry; tests replace it to travel in time.
        self.clock = clock

    def issue(self, address: str, scope: str, topic: str | None = None) -> str:
        """A new token for ``address`` in ``scope`` (and ``topic``); every call gives a different one."""
        payload: dict[str, str] = {"a": address, "s": scope}
        if topic:
            payload["t"] = topic
        token = self._serializers[0].dumps(payload)
        # A bytes serializer makes itsdangerous hand back bytes; the token is ASCII either way.
        return token.decode("ascii") if isinstance(token, bytes) else token

    def read(self, token: str) -> LinkClaim:
        """The claim inside a token, or `InvalidLinkError` (the same error whatever is wrong with it)."""
        if not token or len(token) > _MAX_TOKEN:
            raise InvalidLinkError("invalid link")
        for serializer in self._serializers:
            try:
                payload, issued = serializer.loads(token, return_timestamp=True)
                break
            except itsdangerous.BadData:
                continue
        else:
            raise InvalidLinkError("invalid link")
        now = self.clock()
        if issued > now + _SKEW or now - issued > self.max_age:
            raise InvalidLinkError("invalid link")
        if not isinstance(payload, dict) or not isinstance(payload.get("a"), str):
            raise InvalidLinkError("invalid link")
        topic = payload.get("t")
        return LinkClaim(payload["a"], str(payload.get("s", "default")), topic if topic else None, issued)

    def url(self, token: str) -> str:
        """The one-click / landing page URL of a token."""
        return f"{self.public_url}/u/{token}"

    def preferences_url(self, token: str) -> str:
        """The preference page URL of a token."""
        return f"{self.public_url}/u/{token}/preferences"


def email_configured(gw: Gateway) -> bool:
    """True when a sender or a configured provider sends email: links must then be possible."""
    return any(s.channel == "email" for s in gw.settings.senders) or any(
        a.channel == "email" for a in gw.adapters.values()
    )


_SIGNERS: weakref.WeakKeyDictionary[Gateway, LinkSigner] = weakref.WeakKeyDictionary()


def signer_for(gw: Gateway) -> LinkSigner:
    """The gateway's `LinkSigner`, built once; `ConfigError` without ``public_url`` or the secret."""
    signer = _SIGNERS.get(gw)
    if signer is None:
        signer = _build_signer(gw.settings, gw.env)
        _SIGNERS[gw] = signer
    return signer


def _build_signer(settings: Settings, env: Mapping[str, str]) -> LinkSigner:
    if not settings.public_url:
        raise ConfigError(
            f"{settings.source}: public_url: required for email (unsubscribe links point at it)"
        )
    secret = env.get(settings.secret_key_env, "")
    if not secret:
        raise MissingSecretError(
            f"environment variable {settings.secret_key_env} is not set (it signs unsubscribe links)"
        )
    previous = env.get(settings.previous_secret_key_env, "")
    return LinkSigner(
        secret,
        settings.public_url,
        timedelta(days=settings.email.link_max_age_days),
        previous=[previous] if previous else [],
    )


def check_email_config(gw: Gateway) -> None:
    """At start-up: when email is configured, fail now if unsubscribe links could not be made."""
    if email_configured(gw):
        signer = signer_for(gw)
        if not signer.public_url.startswith("https://"):
            log.warning("public_url is not https: mailbox providers ignore one-click links without TLS")


def check_topic(settings: Settings, topic: str | None) -> None:
    """`PayloadError` unless ``topic`` is None or one of ``email.topics``."""
    if topic is not None and topic not in settings.email.topics:
        known = ", ".join(sorted(settings.email.topics)) or "none configured"
        raise PayloadError(f"unknown topic {topic!r} (known: {known})", field="topic")


@dataclass(frozen=True, slots=True)
class PreparedEmail:
    """An email's bodies and headers as they will be sent."""

    body: str
    html_body: str | None
    headers: dict[str, str]


def prepare(
    gw: Gateway,
    *,
    category: str,
    address: str,
    scope: str,
    topic: str | None,
    body: str,
    html_body: str | None,
    headers: Mapping[str, Any] | None,
) -> PreparedEmail:
    """Fill the link placeholders; for marketing and informational mail also add the footer and headers.

    ``{unsubscribe_url}`` and ``{preferences_url}`` are replaced wherever they appear; a body without the
    unsubscribe placeholder gets a visible footer link appended (in the HTML, before ``</body>``). Any
    ``List-Unsubscribe*`` header the caller supplied is dropped: only ours record the choice in the ledger.
    """
    own = {k: str(v) for k, v in (headers or {}).items() if not k.lower().startswith("list-unsubscribe")}
    needs = str(category) in NEEDS_UNSUBSCRIBE
    mentions = UNSUBSCRIBE_PLACEHOLDER in body or UNSUBSCRIBE_PLACEHOLDER in (html_body or "")
    if not needs and not mentions and PREFERENCES_PLACEHOLDER not in body + (html_body or ""):
        return PreparedEmail(body, html_body, own)
    signer = signer_for(gw)
    token = signer.issue(address, scope, topic)
    url, prefs = signer.url(token), signer.preferences_url(token)
    brand = gw.settings.brand
    text = _fill(body, url, prefs)
    if needs and UNSUBSCRIBE_PLACEHOLDER not in body:
        text = f"{text.rstrip()}\n\n-- \n{brand}: unsubscribe: {url}\nEmail preferences: {prefs}\n"
    rich = None
    if html_body is not None:
        rich = _fill(html_body, html.escape(url), html.escape(prefs))
        if needs and UNSUBSCRIBE_PLACEHOLDER not in html_body:
            rich = _append_html(rich, _html_footer(brand, url, prefs))
    if needs:
        targets = [f"<{url}>"]
        mailto = gw.settings.email.unsubscribe_mailto
        if mailto:
            targets.append(f"<mailto:{mailto}?subject={quote('unsubscribe ' + token)}>")
        own[LIST_UNSUBSCRIBE] = ", ".join(targets)
        own[LIST_UNSUBSCRIBE_POST] = ONE_CLICK
    return PreparedEmail(text, rich, own)


def _fill(template: str, url: str, prefs: str) -> str:
    # Plain replacement, not str.format: email bodies are full of braces (CSS, JSON snippets).
    return template.replace(UNSUBSCRIBE_PLACEHOLDER, url).replace(PREFERENCES_PLACEHOLDER, prefs)


def _html_footer(brand: str, url: str, prefs: str) -> str:
    return (
        '<p style="margin-top:2em;font-size:13px;color:#444">'
        f"You receive this email from {html.escape(brand)}. "
        f'<a href="{html.escape(url)}">Unsubscribe</a> &middot; '
        f'<a href="{html.escape(prefs)}">Email preferences</a></p>'
    )


def _append_html(document: str, footer: str) -> str:
    ends = list(_BODY_END.finditer(document))
    if not ends:
        return document + footer
    at = ends[-1].start()
    return document[:at] + footer + document[at:]


def unsubscribe_problem(channel: str, category: str, headers: Mapping[str, Any]) -> str | None:
    """Why an outbox row may not be sent (an email that needs an unsubscribe link lacks it), or None."""
    if channel != "email" or category not in NEEDS_UNSUBSCRIBE:
        return None
    lowered = {k.lower(): str(v) for k, v in headers.items()}
    has_url = "<http" in lowered.get(LIST_UNSUBSCRIBE.lower(), "")
    if not has_url or lowered.get(LIST_UNSUBSCRIBE_POST.lower()) != ONE_CLICK:
        return "refused: a marketing email without List-Unsubscribe one-click headers"
    return None
