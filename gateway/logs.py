"""Logging set-up: every record passes a filter that masks phone numbers and email addresses.

Masking in a filter, not at each call site, means a forgotten ``mask()`` cannot leak a full number.
"""

from __future__ import annotations

import logging
import re

from gateway.addresses import mask

# E.164 numbers, or runs of 10-15 digits; dates and times ("2026-11-26 21:41:58") are left alone.
_PHONE = re.compile(r"\+\d{6,15}(?!\d)|(?<![\d.])\d{10,15}(?![\d.])")
_EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}")


def scrub(text: str) -> str:
    """Replace phone numbers and email addresses in free text with their masked forms."""
    text = _EMAIL.sub(lambda m: mask(m.group(0)), text)
    return _PHONE.sub(lambda m: mask(m.group(0)), text)


class MaskingFilter(logging.Filter):
    """Rewrites each record's message with `scrub` (arguments are merged first), and its traceback."""

    _tracebacks = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        """Mask the formatted message in place; never drops a record."""
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not kill logging
            return True
        record.msg = scrub(message)
        record.args = None
        # An exception's text (a database error lists its parameters) is printed after the message:
        # formatters reuse ``exc_text`` when it is set, so the masked rendering is the one written.
        if record.exc_info and not record.exc_text:
            record.exc_text = self._tracebacks.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = scrub(record.exc_text)
        if record.stack_info:
            record.stack_info = scrub(record.stack_info)
        return True


def configure(level: str = "INFO") -> None:
    """Configure the root logger once: one line per record, masked."""
    root = logging.getLogger()
    if any(isinstance(f, MaskingFilter) for h in root.handlers for f in h.filters):
        root.setLevel(level)
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(MaskingFilter())
    root.addHandler(handler)
    root.setLevel(level)
    # The scheduler logs every tick at INFO; only its warnings are worth a line.
    logging.getLogger("apscheduler").setLevel(max(logging.WARNING, root.level))
