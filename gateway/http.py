"""HTTP plumbing shared by the blueprints: the gateway from the app, problem+json errors, auth."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import Response, current_app, jsonify, request
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.routing import IntegerConverter

from gateway.errors import GatewayError
from gateway.runtime import Gateway

F = TypeVar("F", bound=Callable[..., Any])
PROBLEM_BASE = "https://optout-gateway.dev/problems/"


def gateway() -> Gateway:
    """The `Gateway` of the current app."""
    return current_app.extensions["optout"]


def problem(status: int, code: str, detail: str, **extra: Any) -> Response:
    """An RFC 9457 ``application/problem+json`` response with a stable ``type``."""
    body = {"type": PROBLEM_BASE + code, "title": code.replace("_", " "), "status": status, "detail": detail,
            "error": code}
    body.update({k: v for k, v in extra.items() if v is not None})
    resp = jsonify(body)
    resp.status_code = status
    resp.mimetype = "application/problem+json"
    return resp


def error_response(exc: GatewayError) -> Response:
    """Map a `GatewayError` onto its problem response (the error's own fields included)."""
    extra = {k: v for k, v in exc.to_dict().items() if k != "detail"}
    return problem(exc.http_status, exc.code, str(exc), **extra)


def require_token(view: F) -> F:
    """Require ``Authorization: Bearer $OPTOUT_API_TOKEN`` (constant-time compare); 401 otherwise."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        gw = gateway()
        expected = gw.settings.api_token(gw.env)
        header = request.headers.get("Authorization", "")
        scheme, _, given = header.partition(" ")
        if not expected:
            return problem(401, "unauthorized", f"the API is disabled: set {gw.settings.api_token_env}")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected.encode()):
            resp = problem(401, "unauthorized", "missing or wrong bearer token")
            resp.headers["WWW-Authenticate"] = 'Bearer realm="optout-gateway"'
            return resp
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


class IdConverter(IntegerConverter):
    """``<int:...>`` bounded to the database's BIGINT ids: a larger number names nothing (404), not a 500."""

    def __init__(self, map: Any, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max", 2**63 - 1)
        super().__init__(map, *args, **kwargs)


def refuse_oversized_stream() -> None:
    """413 for a body sent without a length (chunked) that is larger than ``MAX_CONTENT_LENGTH``.

    A declared length is refused up front, but a chunked body is only cut off at the limit as it is
    read, and would then be processed truncated. Reading it here (at most the limit, so memory stays
    bounded) and finding more behind it refuses it instead.
    """
    limit = request.max_content_length
    if limit is None or request.content_length is not None or "wsgi.input_terminated" not in request.environ:
        return
    if len(request.get_data(cache=True)) >= limit and request.environ["wsgi.input"].read(1):
        raise RequestEntityTooLarge()
