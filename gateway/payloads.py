"""Parsed provider data made storable on both databases, or refused as malformed.

PostgreSQL refuses what SQLite stores: a NUL character in text, a lone UTF-16 surrogate (JSON's
``"\\ud83d"`` escape decodes to one, and an emoji split across the parts of a UCS-2 SMS leaves one in
each part), and a value longer than its column. Any of them would fail the webhook's transaction with a
500, and the provider would deliver the same webhook again and again: a STOP that can never be stored.

So text is cleaned, both kinds of character becoming U+FFFD (the replacement character; a keyword next
to one still matches), and an identifier too long for its column is a malformed payload (400), which a
provider does not retry. Every string field of the message is cleaned, including fields added later.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any, TypeVar

from sqlalchemy import Column

from gateway.errors import PayloadError
from gateway.messages import InboundMessage, StatusUpdate
from gateway.models import DeliveryEvent, InboundPart, InboundRecord, table

T = TypeVar("T", InboundMessage, StatusUpdate)

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def storable(text: str) -> str:
    """``text`` with NUL characters and lone surrogates replaced by U+FFFD."""
    return _UNSTORABLE.sub("\ufffd", text)


def _clean(value: Any) -> Any:
    """A raw payload with every string in it (keys included) made storable."""
    if isinstance(value, str):
        return storable(value)
    # The common case, a flat form of strings (every form-posting provider): one scan of all its text.
    if (
        type(value) is dict
        and all(type(k) is str and type(v) is str for k, v in value.items())
        and not _UNSTORABLE.search("".join(k + v for k, v in value.items()))
    ):
        return dict(value)
    if isinstance(value, Mapping):
        return {_clean(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def _cleaned(item: T) -> T:
    changes: dict[str, Any] = {}
    for f in dataclasses.fields(item):
        value = getattr(item, f.name)
        if isinstance(value, str) and _UNSTORABLE.search(value):
            changes[f.name] = storable(value)
        elif f.name == "raw":
            changes[f.name] = _clean(value)
    return dataclasses.replace(item, **changes)


def _fits(value: str | None, column: Column[Any], name: str) -> None:
    limit = getattr(column.type, "length", None)
    if value is not None and limit is not None and len(value) > limit:
        raise PayloadError(f"field {name!r} is longer than {limit} characters", field=name)


def inbound(msg: InboundMessage) -> InboundMessage:
    """A parsed inbound message ready for storage; `PayloadError` when an identifier cannot fit."""
    msg = _cleaned(msg)
    columns = table(InboundRecord).c
    _fits(msg.provider_message_id, columns.provider_message_id, "id")
    _fits(msg.sender, columns.sender, "from")
    _fits(msg.recipient, columns.recipient, "to")
    _fits(msg.concat_ref, table(InboundPart).c.concat_ref, "concat_ref")
    return msg


def status(update: StatusUpdate) -> StatusUpdate:
    """A parsed delivery receipt ready for storage; its error code cut to the column's width."""
    update = _cleaned(update)
    columns = table(DeliveryEvent).c
    _fits(update.provider_message_id, columns.provider_message_id, "id")
    limit = getattr(columns.error_code.type, "length", None)
    if update.error_code and limit and len(update.error_code) > limit:
        # The full code stays in the raw payload; the column is for matching known codes.
        update = dataclasses.replace(update, error_code=update.error_code[:limit])
    return update
