"""Address normalisation and masking.

Phone numbers are stored in E.164 (parsed with `phonenumbers` and the configured default region), email
addresses lower-cased. Logs only ever see masked forms.
"""

from __future__ import annotations

import functools
import re

import phonenumbers

from gateway.errors import InvalidAddressError

_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,255}$")


@functools.lru_cache(maxsize=65536)
def normalize_phone(raw: str, region: str = "US") -> str:
    """E.164 form of ``raw`` (``+14155550100``), or `InvalidAddressError`.

    Cached because the webhook path normalises the same few numbers (ours) on every request.
    """
    text = (raw or "").strip()
    if not text:
        raise InvalidAddressError("empty phone number", field="to")
    # Providers that drop the '+' (Vonage, Plivo) send international numbers as bare digits.
    candidates = [text]
    if text.isdigit() and len(text) > 10:
        candidates.insert(0, "+" + text)
    for candidate in candidates:
        try:
            number = phonenumbers.parse(candidate, region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_possible_number(number):
            return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    raise InvalidAddressError(f"not a valid phone number: {mask(text)}", field="to")


def normalize_email(raw: str) -> str:
    """The address lower-cased and stripped, or `InvalidAddressError`."""
    text = (raw or "").strip().lower()
    if not _EMAIL.match(text):
        raise InvalidAddressError("not a valid email address", field="to")
    return text


def normalize_address(channel: str, raw: str, region: str = "US") -> str:
    """Normalise an address for its channel (``sms`` -> E.164, ``email`` -> lower case)."""
    if channel == "email":
        return normalize_email(raw)
    return normalize_phone(raw, region)


def normalize_sender(raw: str, region: str = "US") -> str:
    """Normalise one of our own sender ids: E.164 when it is a number, as-is for short codes and names."""
    try:
        return normalize_phone(raw, region)
    except InvalidAddressError:
        return (raw or "").strip()


def mask(address: str | None) -> str:
    """A log-safe form: ``+1415*****00`` for numbers, ``j***@example.com`` for emails."""
    if not address:
        return "<none>"
    if "@" in address:
        local, _, domain = address.partition("@")
        return f"{local[:1]}***@{domain}"
    if len(address) <= 4:
        return "*" * len(address)
    keep = min(5, len(address) // 3)
    return address[:keep] + "*" * (len(address) - keep - 2) + address[-2:]
