"""Rate limits on the public endpoints: the provider webhooks and the email preference pages under ``/u/``.

Both budgets are per client address and set under ``rate_limit`` in config.yaml:

* ``webhooks`` counts *rejected* webhook requests (bad signature, malformed payload, unknown provider,
  body too large). A verified delivery never counts: after a campaign a provider may send thousands of
  STOPs and receipts a minute, and a provider that does not retry a refused webhook would lose the STOP.
  A client sending forged or broken requests is cut off once its budget is spent.
* ``pages`` counts every request under ``/u/``: those pages answer anyone holding a link.

A client over budget gets ``429`` with ``Retry-After`` before its body is read, so a flood costs one
dictionary lookup per request.

Counting is done by the `limits` library's moving window (the library Flask-Limiter is built on).
Flask-Limiter itself attaches limits to view functions; ours follow URL prefixes, including paths no
view answers (a flood of ``/u/<garbage>`` is limited too), and webhooks are charged only once the
response shows a rejection. Counters live in process memory: with N server workers one client gets at
most N times the budget, which is still a bound.
"""

from __future__ import annotations

import math
import time

from flask import Flask, Response, request
from limits import RateLimitItem, parse_many
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from gateway.config import RateLimitConfig
from gateway.http import problem

WEBHOOK_PREFIX = "/webhooks/"
PAGES_PREFIX = "/u/"


class RateLimiter:
    """The two budgets of one server process, and the hooks that enforce them."""

    def __init__(self, config: RateLimitConfig) -> None:
        self.trusted_proxies = config.trusted_proxies
        self.webhooks: list[RateLimitItem] = parse_many(config.webhooks)
        self.pages: list[RateLimitItem] = parse_many(config.pages)
        self._window = MovingWindowRateLimiter(MemoryStorage())

    def client(self) -> str:
        """The client's address: the peer, or the entry our trusted proxies appended to X-Forwarded-For."""
        peer = request.remote_addr or "unknown"
        if not self.trusted_proxies:
            return peer
        hops = [part.strip() for part in request.headers.get("X-Forwarded-For", "").split(",")]
        hops = [hop for hop in hops if hop]
        # Each trusted proxy appended the address it saw; entries further left are the client's to forge.
        return hops[-self.trusted_proxies] if len(hops) >= self.trusted_proxies else peer

    def before_request(self) -> Response | None:
        """Refuse a client that spent its budget; charge a page request up front."""
        budget = _budget(request.path)
        if budget is None:
            return None
        items = self.webhooks if budget == "webhooks" else self.pages
        client = self.client()
        for item in items:
            if not self._window.test(item, budget, client):
                return self._refuse(item, budget, client)
        if budget == "pages":
            for item in items:
                self._window.hit(item, budget, client)
        return None

    def after_request(self, response: Response) -> Response:
        """Charge a webhook request that was rejected (a 4xx other than our own 429)."""
        rejected = 400 <= response.status_code < 500 and response.status_code != 429
        if rejected and _budget(request.path) == "webhooks":
            client = self.client()
            for item in self.webhooks:
                self._window.hit(item, "webhooks", client)
        return response

    def _refuse(self, item: RateLimitItem, budget: str, client: str) -> Response:
        reset_at = self._window.get_window_stats(item, budget, client).reset_time
        wait = max(1, math.ceil(reset_at - time.time()))
        resp = problem(429, "rate_limited", f"too many requests from this client; retry in {wait} s")
        resp.headers["Retry-After"] = str(wait)
        return resp


def _budget(path: str) -> str | None:
    if path.startswith(WEBHOOK_PREFIX):
        return "webhooks"
    if path.startswith(PAGES_PREFIX):
        return "pages"
    return None


def init_app(app: Flask, config: RateLimitConfig) -> RateLimiter | None:
    """Install the limiter on ``app`` (nothing when ``rate_limit.enabled`` is false)."""
    if not config.enabled:
        return None
    limiter = RateLimiter(config)
    app.before_request(limiter.before_request)
    app.after_request(limiter.after_request)
    app.extensions["optout_ratelimit"] = limiter
    return limiter
