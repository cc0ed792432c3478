"""Bulk opt-out checks: `POST /api/v1/opt-outs/check` and the guard's `opted_out_among` behind it."""

from __future__ import annotations

from typing import Any

from gateway.guard import opted_out_among
from gateway.storage import Evidence, apply_consent

AUTH = {"Authorization": "Bearer api-test-token"}
URL = "/api/v1/opt-outs/check"


def person(i: int) -> str:
    """The ``i``-th test number, E.164."""
    return f"+1212555{i:04d}"


def record(gw: Any, address: str, scope: str, opted_out: bool = True, channel: str = "sms") -> None:
    """Store an opt-out (or opt-in) as the webhook path would."""
    with gw.db.transaction() as session:
        apply_consent(session, channel=channel, address=address, scope=scope, opted_out=opted_out,
                      evidence=Evidence(source="sms_keyword", raw_text="STOP"))


def check(client: Any, **body: Any) -> Any:
    """POST a bulk check with the test token."""
    return client.post(URL, json=body, headers=AUTH)


def test_reports_opted_out_in_scope_and_everywhere(client: Any, gw: Any) -> None:
    record(gw, person(1), "acme")
    record(gw, person(2), "*")
    record(gw, person(3), "other-brand")
    record(gw, person(4), "acme")
    record(gw, person(4), "acme", opted_out=False)  # opted back in: may receive again
    addresses = [person(i) for i in range(6)]
    resp = check(client, channel="sms", scope="acme", addresses=list(reversed(addresses)))
    assert resp.status_code == 200
    # Normalised, in request order; "*" covers every scope; another brand's opt-out does not count here.
    assert resp.get_json() == {"opted_out": [person(2), person(1)], "checked": 6, "invalid": []}


def test_without_scope_any_scope_counts(client: Any, gw: Any) -> None:
    record(gw, person(1), "acme")
    record(gw, person(3), "other-brand")
    data = check(client, addresses=[person(1), person(2), person(3)]).get_json()
    assert data["opted_out"] == [person(1), person(3)]


def test_addresses_are_normalised_and_counted_once(client: Any, gw: Any) -> None:
    record(gw, "+14155550100", "acme")
    data = check(client, scope="acme", addresses=["(415) 555-0100", "+1 415 555 0100", "4155550101"]).get_json()
    assert data == {"opted_out": ["+14155550100"], "checked": 2, "invalid": []}


def test_email_channel_is_separate(client: Any, gw: Any) -> None:
    record(gw, "ann@example.com", "acme", channel="email")
    record(gw, person(1), "acme")
    data = check(client, channel="email", addresses=["Ann@Example.com", "bob@example.com"]).get_json()
    assert data["opted_out"] == ["ann@example.com"] and data["checked"] == 2
    assert check(client, channel="sms", addresses=[person(1)]).get_json()["opted_out"] == [person(1)]


def test_invalid_addresses_are_reported_not_checked(client: Any, gw: Any) -> None:
    record(gw, person(1), "acme")
    data = check(client, addresses=["not a number", person(1), "12", ""]).get_json()
    assert data == {"opted_out": [person(1)], "checked": 1, "invalid": ["not a number", "12", ""]}


def test_nul_characters_are_400_not_server_errors(client: Any) -> None:
    # No database column can hold a NUL; PostgreSQL would fail the query, so the request is refused first.
    bad = check(client, channel="email", addresses=["ok@example.com", "a\x00b@example.com"])
    assert bad.status_code == 400 and bad.get_json()["field"] == "addresses.1"
    assert check(client, scope="ac\x00me", addresses=[person(1)]).get_json()["field"] == "scope"


def test_ten_thousand_is_the_limit(client: Any, gw: Any) -> None:
    record(gw, person(9999), "acme")
    full = check(client, addresses=[person(i) for i in range(10_000)])
    # 10,000 numbers are a larger body than the webhook-sized default limit, and still accepted.
    assert full.status_code == 200
    assert full.get_json()["opted_out"] == [person(9999)] and full.get_json()["checked"] == 10_000
    over = check(client, addresses=[person(i) for i in range(10_001)])
    assert over.status_code == 400
    assert over.mimetype == "application/problem+json" and over.get_json()["field"] == "addresses"


def test_malformed_bodies_are_400(client: Any) -> None:
    assert check(client, channel="fax", addresses=[]).get_json()["field"] == "channel"
    assert check(client, addresses="+12125550001").status_code == 400
    assert check(client, addresses=[], extra=True).status_code == 400
    assert client.post(URL, data="nope", headers=AUTH).status_code == 400


def test_needs_the_api_token(client: Any) -> None:
    assert client.post(URL, json={"addresses": [person(1)]}).status_code == 401
    wrong = {"Authorization": "Bearer nope"}
    assert client.post(URL, json={"addresses": [person(1)]}, headers=wrong).status_code == 401


def test_documented_in_openapi(client: Any) -> None:
    doc = client.get("/openapi.json").get_json()
    assert "post" in doc["paths"][URL]
    assert {"BulkCheckIn", "BulkCheckResult"} <= set(doc["components"]["schemas"])


def test_opted_out_among_across_chunk_boundaries(gw: Any) -> None:
    # SQLite checks in chunks of 5,000: opt-outs on both sides of each boundary must all be found.
    addresses = [person(i) for i in range(12_000)]
    marked = {addresses[i] for i in (0, 4_999, 5_000, 5_001, 9_999, 10_000, 11_999)}
    for address in marked:
        record(gw, address, "acme")
    record(gw, person(7), "other-brand")
    with gw.db.read() as session:
        assert opted_out_among(session, "sms", addresses, "acme") == marked
        assert opted_out_among(session, "sms", addresses, None) == marked | {person(7)}
        assert opted_out_among(session, "sms", [], "acme") == set()
        assert opted_out_among(session, "email", addresses, None) == set()
