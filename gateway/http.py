"""HTTP plumbing shared by the blueprints: the gateway from the app, problem+json errors, auth."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import Response, current_app, jsonify, request

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
