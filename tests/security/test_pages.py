"""HTML pages carry the security headers and show hostile text escaped; JSON is never sniffed as HTML."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.email import signer_for
from tests.conftest import TEST_ENV

SCRIPT = "<script>alert(1)</script>"
ADDRESS = f"a@{SCRIPT}.example"
LABEL = "<img src=x onerror=alert(2)>"


@pytest.fixture
def config(config: dict[str, Any]) -> dict[str, Any]:
    """The test configuration with an email topic whose label looks like markup."""
    config["email"] = {"topics": {"news": LABEL}}
    return config


def pages(gw: Any) -> list[str]:
    """Every HTML page of the unsubscribe flow, for a link to ``ADDRESS`` in topic ``news``."""
    token = signer_for(gw).issue(ADDRESS, "acme", "news")
    return [f"/u/{token}", f"/u/{token}/preferences", "/u/not-a-valid-token"]


def test_html_pages_carry_the_security_headers(client: Any, gw: Any) -> None:
    for path in pages(gw):
        resp = client.get(path)
        assert resp.mimetype == "text/html", path
        csp = resp.headers["Content-Security-Policy"]
        assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp and "script-src" not in csp
        assert resp.headers["X-Frame-Options"] == "DENY"
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        assert resp.headers["Referrer-Policy"] == "no-referrer"
        assert resp.headers["Cache-Control"] == "no-store"
        assert "Set-Cookie" not in resp.headers


def test_markup_in_addresses_and_labels_is_escaped(client: Any, gw: Any) -> None:
    landing, preferences, _ = pages(gw)
    for path in (landing, preferences):
        html = client.get(path).get_data(as_text=True)
        assert "<script>" not in html and "<img" not in html
        assert "&lt;img src=x onerror=alert(2)&gt;" in html, "the label is shown, as text"
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in client.get(landing).get_data(as_text=True)
    after = client.post(landing, data={"action": "unsubscribe"}).get_data(as_text=True)
    assert "<script>" not in after and "&lt;script&gt;" in after


def test_json_with_markup_is_never_served_as_html(client: Any) -> None:
    auth = {"Authorization": f"Bearer {TEST_ENV['OPTOUT_API_TOKEN']}"}
    resp = client.get(f"/api/v1/opt-outs/email/{ADDRESS}", headers=auth)
    assert resp.status_code == 200 and resp.get_json()["address"] == ADDRESS
    assert resp.mimetype == "application/json"
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    missing = client.get(f"/webhooks/{SCRIPT}/inbound")
    assert missing.status_code == 404 and missing.mimetype == "application/problem+json"
    assert missing.headers["X-Content-Type-Options"] == "nosniff"
