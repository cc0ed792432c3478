"""The Flask application factory."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException

from gateway import logs, ratelimit
from gateway.config import Settings, load_config, settings_from_mapping
from gateway.errors import GatewayError
from gateway.http import IdConverter, error_response, problem, refuse_oversized_stream
from gateway.runtime import Gateway

log = logging.getLogger(__name__)


def create_app(
    config: Settings | Mapping[str, Any] | str | None = None, env: Mapping[str, str] | None = None
) -> Flask:
    """Build the app from a `Settings`, a config mapping, a config file path, or ``$OPTOUT_CONFIG``.

    Everything expensive (config validation, rule compilation, adapters, the database engine) happens
    here once, never per request.
    """
    if isinstance(config, Settings):
        settings = config
    elif isinstance(config, Mapping):
        settings = settings_from_mapping(config)
    else:
        settings = load_config(config, env)
    logs.configure(settings.log_level)
    gw = Gateway(settings, env)
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.config["MAX_FORM_MEMORY_SIZE"] = settings.max_body_bytes
    app.extensions["optout"] = gw
    ratelimit.init_app(app, settings.rate_limit)  # first, so a refused client costs no more work
    app.before_request(refuse_oversized_stream)
    app.url_map.converters["int"] = IdConverter  # before any route is added

    # One line per feature blueprint.
    from gateway.api import bp as api_bp
    from gateway.api_campaigns import bp as api_campaigns_bp
    from gateway.api_lists import bp as api_lists_bp
    from gateway.safeguard_api import bp as api_safeguard_bp
    from gateway.unsubscribe import bp as unsubscribe_bp
    from gateway.webhooks import bp as webhooks_bp

    for blueprint in (webhooks_bp, api_bp, unsubscribe_bp, api_lists_bp, api_campaigns_bp, api_safeguard_bp):
        app.register_blueprint(blueprint)

    @app.errorhandler(GatewayError)
    def gateway_error(exc: GatewayError) -> Response:
        if exc.http_status >= 500:
            log.error("request failed: %s", exc)
        return error_response(exc)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        code = (exc.name or "error").lower().replace(" ", "_")
        return problem(exc.code or 500, code, exc.description or "")

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> Response:
        # A 5xx (never a 2xx) so providers deliver the webhook again; details stay in the log.
        log.exception("unhandled error on %s %s", request.method, request.path)
        return problem(500, "internal_error", "internal error; the request can be retried")

    @app.after_request
    def security_headers(resp: Response) -> Response:
        resp.headers.setdefault("X-Content-Type-Options", "nosniff")
        resp.headers.setdefault("Referrer-Policy", "no-referrer")
        resp.headers.setdefault("X-Frame-Options", "DENY")
        if resp.mimetype == "text/html":
            resp.headers.setdefault(
                "Content-Security-Policy",
                "default-src 'none'; style-src 'self' 'unsafe-inline'; "
                "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
            )
        return resp

    return app


def wsgi_app() -> Flask:
    """Entry point for WSGI servers: ``gunicorn 'gateway.app:wsgi_app()'`` reads ``$OPTOUT_CONFIG``."""
    return create_app(os.environ.get("OPTOUT_CONFIG"))
