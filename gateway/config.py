"""Configuration: `config.yaml` validated with pydantic, secrets from the environment.

A broken file stops start-up with one message naming the key (``providers.twilio.base_url``) or the YAML
line; a missing secret names its environment variable. Values of secrets never appear in errors.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from gateway.errors import ConfigError

DEFAULT_TEMPLATES: dict[str, str] = {
    "opt_out": "{brand}: You are unsubscribed and will receive no more messages. Reply START to resubscribe.",
    "opt_in": "{brand}: You are subscribed again. Reply HELP for help, STOP to opt out.",
    "help": "{brand}: For help contact {support}. Reply STOP to opt out.",
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SenderConfig(_Strict):
    """A number (or email address) we send from, its provider and its opt-out scope."""

    address: str
    provider: str
    scope: str = "default"
    channel: Literal["sms", "email"] = "sms"
    # Messages per second this sender may send (campaign throttling); 0 means unlimited.
    rate_per_second: float = 0


class ComplianceConfig(_Strict):
    """Compliance switches; every default is the safe one."""

    allow_no_opt_out: bool = False
    # Opt-out on one channel blocks every channel of the same contact.
    cross_channel: bool = False
    # Only the person can re-subscribe (START, preference page) unless this says with_reason.
    operator_resubscribe: Literal["deny", "with_reason"] = "deny"
    # Text appended to marketing SMS that lacks opt-out instructions.
    marketing_footer: str = "Reply STOP to opt out"
    # Mass opt-out safeguard: when more than this share of a campaign's sends in the window (counted over
    # at least min_sends) fail with a provider opt-out code, the campaign is paused and the codes held.
    mass_optout_threshold: float = Field(0.2, gt=0, le=1)
    mass_optout_min_sends: int = Field(50, ge=1)
    mass_optout_window_seconds: float = Field(3600.0, gt=0)


class EmailConfig(_Strict):
    """The email channel: unsubscribe links, topics and the optional mailto unsubscribe address."""

    # Topics a marketing email may belong to (slug -> label shown on the preference page).
    topics: dict[str, str] = Field(default_factory=dict)
    # Added to List-Unsubscribe as a mailto: alternative when set (the mailbox must be processed by you).
    unsubscribe_mailto: str | None = None
    # How long an unsubscribe link works. CASL needs 60 days, CAN-SPAM 30; shorter is refused.
    link_max_age_days: int = Field(365, ge=60, le=3650)

    @field_validator("topics")
    @classmethod
    def _topic_slugs(cls, value: dict[str, str]) -> dict[str, str]:
        for slug in value:
            if not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,39}", slug):
                raise ValueError(f"topic {slug!r}: use 1-40 lower-case letters, digits, '-' or '_'")
        return value

    @field_validator("unsubscribe_mailto")
    @classmethod
    def _mailto(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[^@\s?&]+@[^@\s?&]+", value):
            raise ValueError("must be a plain email address")
        return value


class OutboxConfig(_Strict):
    """Worker and retry settings."""

    max_attempts: int = Field(8, ge=1, le=100)
    base_delay: float = Field(2.0, gt=0)
    max_delay: float = Field(600.0, gt=0)
    # A row claimed by a worker that died is claimable again after this many seconds.
    lease_seconds: float = Field(60.0, gt=0)
    batch_size: int = Field(50, ge=1, le=10_000)
    poll_interval: float = Field(1.0, gt=0)


class RateLimitConfig(_Strict):
    """Limits on the public endpoints, per client address (see `gateway.ratelimit`)."""

    enabled: bool = True
    # Rejected webhook requests (bad signature, malformed, unknown provider, too large); verified
    # deliveries never count, so a provider's burst after a campaign is never throttled.
    webhooks: str = "600/minute"
    # Every request to the email preference pages under /u/.
    pages: str = "600/minute"
    # How many reverse proxies in front of the gateway append to X-Forwarded-For (0: use the peer).
    trusted_proxies: int = Field(0, ge=0, le=10)

    @field_validator("webhooks", "pages")
    @classmethod
    def _limit(cls, value: str) -> str:
        from limits import parse_many

        try:
            parse_many(value)
        except ValueError:
            raise ValueError(f"not a rate limit such as '600/minute': {value!r}") from None
        return value


class Settings(_Strict):
    """The whole validated configuration."""

    database_url: str = "sqlite:///optout.db"
    public_url: str | None = None
    api_token_env: str = "OPTOUT_API_TOKEN"
    secret_key_env: str = "OPTOUT_SECRET_KEY"
    previous_secret_key_env: str = "OPTOUT_PREVIOUS_SECRET_KEY"
    default_region: str = "US"
    brand: str = "Our service"
    support: str = "support@example.com"
    default_provider: str = "console"
    max_body_bytes: int = Field(64 * 1024, ge=1024)
    # Largest CSV accepted by the import endpoints (the CLI streams files of any size).
    max_import_bytes: int = Field(256 * 1024 * 1024, ge=1024)
    providers: dict[str, dict[str, Any]] = Field(default_factory=lambda: {"console": dict[str, Any]()})
    senders: list[SenderConfig] = Field(default_factory=list)
    templates: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_TEMPLATES))
    rules: list[Any] | None = None
    rules_file: str | None = None
    compliance: ComplianceConfig = Field(default_factory=ComplianceConfig)
    email: EmailConfig = Field(default_factory=EmailConfig)
    outbox: OutboxConfig = Field(default_factory=OutboxConfig)
    rate_limit: RateLimitConfig = Field(default_factory=RateLimitConfig)
    # Providers whose own keyword handling (Twilio Advanced Opt-Out) already replied: do not reply again.
    skip_reply_when_provider_handled: bool = True
    log_level: str = "INFO"
    # Where the config came from, for messages; set by load_config.
    source: str = "<defaults>"

    @field_validator("public_url")
    @classmethod
    def _strip_slash(cls, value: str | None) -> str | None:
        return value.rstrip("/") if value else value

    @field_validator("default_region")
    @classmethod
    def _region(cls, value: str) -> str:
        import phonenumbers

        if value.upper() not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"unknown region {value!r} (use an ISO 3166 code such as US, GB, AU)")
        return value.upper()

    def api_token(self, env: Mapping[str, str] | None = None) -> str | None:
        """The API bearer token from the environment (None when unset: the API then refuses everything)."""
        return (os.environ if env is None else env).get(self.api_token_env) or None

    def sender_for(self, address: str | None) -> SenderConfig | None:
        """The configured sender with this address, if any (compared on digits for phone numbers)."""
        if not address:
            return None
        key = _address_key(address)
        for sender in self.senders:
            if _address_key(sender.address) == key:
                return sender
        return None

    def scope_for(self, address: str | None) -> str:
        """The opt-out scope of one of our numbers (``default`` for an unknown number)."""
        sender = self.sender_for(address)
        return sender.scope if sender else "default"

    def all_scopes(self) -> list[str]:
        """Every scope a sender is configured with, plus ``default``."""
        return sorted({"default", *(s.scope for s in self.senders)})


def _address_key(address: str) -> str:
    digits = "".join(ch for ch in address if ch.isdigit())
    return digits if digits and "@" not in address else address.strip().lower()


def _format_validation_error(exc: ValidationError, source: str) -> str:
    lines = [f"{source}: invalid configuration"]
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) or "(top level)"
        if err["type"] == "extra_forbidden":
            lines.append(f"  {key}: unknown key")
        else:
            lines.append(f"  {key}: {err['msg']}")
    return "\n".join(lines)


def settings_from_mapping(data: Mapping[str, Any], source: str = "<mapping>") -> Settings:
    """Validate an already-parsed configuration mapping (tests use this with a dict)."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: the configuration must be a mapping of keys to values")
    try:
        return Settings.model_validate({**data, "source": source})
    except ValidationError as exc:
        raise ConfigError(_format_validation_error(exc, source)) from None


def load_config(path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Read, validate and return the configuration.

    The file is ``path``, else ``$OPTOUT_CONFIG``, else ``config.yaml``. ``$DATABASE_URL`` overrides
    ``database_url``. Rules are compiled here too, so a bad rule stops start-up with file, line and name.
    """
    from rules import load_yaml

    env = os.environ if env is None else env
    file = Path(path or env.get("OPTOUT_CONFIG") or "config.yaml")
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read configuration file {file}: {exc.strerror}") from None
    data = load_yaml(text, str(file))
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{file}: the configuration must be a mapping of keys to values")
    data = dict(data)
    if env.get("DATABASE_URL"):
        data["database_url"] = env["DATABASE_URL"]
    if data.get("rules_file"):
        rules_path = (file.parent / str(data["rules_file"])).resolve()
        data["rules_file"] = str(rules_path)
    settings = settings_from_mapping(data, str(file))
    compile_configured_rules(settings)  # fail fast
    return settings


def compile_configured_rules(settings: Settings) -> Any:
    """Compile the rules a configuration names (inline, ``rules_file``, or the shipped defaults)."""
    from rules import DEFAULT_RULES_PATH, compile_rules, load_default_rules, load_yaml

    raw: Any
    filename = settings.source
    if settings.rules_file:
        filename = settings.rules_file
        try:
            text = Path(filename).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"rules_file {filename}: {exc.strerror}") from None
        raw = load_yaml(text, filename)
        if isinstance(raw, Mapping):
            raw = raw.get("rules")
    elif settings.rules is not None:
        raw = settings.rules
    else:
        filename, raw = str(DEFAULT_RULES_PATH), load_default_rules()
    return compile_rules(
        raw,
        filename=filename,
        allow_no_opt_out=settings.compliance.allow_no_opt_out,
        templates=settings.templates.keys(),
    )
