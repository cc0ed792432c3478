"""Helpers shared by the provider adapters: provider answers, typed payload fields, times, settings.

Every adapter reads JSON answers, checks the types of webhook fields and parses timestamps the same way;
those rules live here once, so an adapter module holds only what is particular to its provider.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import requests

from gateway.errors import ConfigError, PayloadError

# ---- provider answers -------------------------------------------------------------------------------


def response_body(response: requests.Response) -> dict[str, Any]:
    """The response's JSON object, or its text under ``"text"`` when it is not one (kept for the record)."""
    try:
        data = response.json()
    # RecursionError: a pathologically nested answer must not crash the send path.
    except (ValueError, RecursionError):
        return {"text": response.text[:500]}
    return data if isinstance(data, dict) else {"json": data}


def json_object(response: requests.Response) -> dict[str, Any]:
    """The response body as a JSON object, or {} when it is anything else (an HTML error page, nothing)."""
    try:
        data = response.json()
    except (ValueError, RecursionError):
        return {}
    return data if isinstance(data, dict) else {}


# ---- webhook payload fields: every access checks the type, so a changed shape is a PayloadError ----------


def string_field(data: Mapping[str, Any], key: str, name: str | None = None) -> str:
    """The required non-empty string ``data[key]``; ``name`` (default ``key``) locates it in the errors."""
    name = name or key
    value = data.get(key)
    if value is None or value == "":
        raise PayloadError(f"missing field {name!r}", field=name)
    if not isinstance(value, str):
        raise PayloadError(f"field {name!r} has the wrong type", field=name)
    return value


def object_field(data: Mapping[str, Any], key: str, name: str | None = None) -> dict[str, Any]:
    """The required JSON object ``data[key]``; ``name`` (default ``key``) locates it in the errors."""
    name = name or key
    value = data.get(key)
    if value is None:
        raise PayloadError(f"missing field {name!r}", field=name)
    if not isinstance(value, dict):
        raise PayloadError(f"field {name!r} has the wrong type", field=name)
    return value


# ---- times: an unreadable timestamp is dropped, never worth losing a message (it may be a STOP) over -----


def iso_time(value: Any) -> datetime | None:
    """An ISO-8601 time (``Z`` accepted), or None when absent or unreadable; naive times are UTC."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def parse_time(value: str | None, layout: str) -> datetime | None:
    """A time in ``strptime`` ``layout``, or None when absent or unreadable; naive times are UTC."""
    try:
        parsed = datetime.strptime(value or "", layout)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


# ---- settings ---------------------------------------------------------------------------------------


def number_setting(settings: Mapping[str, Any], provider: str, key: str, default: float) -> float:
    """The numeric setting ``providers.<provider>.<key>``, or a `ConfigError` naming it."""
    try:
        return float(settings.get(key, default))
    except (TypeError, ValueError):
        raise ConfigError(f"providers.{provider}.{key} must be a number") from None
