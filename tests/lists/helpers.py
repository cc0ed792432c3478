"""Helpers for the contacts, lists, opt-outs and campaign tests."""

from __future__ import annotations

from typing import Any

from gateway.storage import Evidence, apply_consent

AUTH = {"Authorization": "Bearer api-test-token"}


def api(client: Any, method: str, path: str, **kwargs: Any) -> Any:
    """Call the API with the test bearer token."""
    return client.open(path, method=method.upper(), headers=AUTH, **kwargs)


def make_list(client: Any, name: str = "Customers", **extra: Any) -> int:
    """Create a list through the API; its id."""
    resp = api(client, "post", "/api/v1/lists", json={"name": name, **extra})
    assert resp.status_code == 201, resp.get_json()
    return int(resp.get_json()["id"])


def make_contact(client: Any, **fields: Any) -> int:
    """Create a contact through the API; its id."""
    resp = api(client, "post", "/api/v1/contacts", json=fields)
    assert resp.status_code == 201, resp.get_json()
    return int(resp.get_json()["id"])


def opt_out(gw: Any, address: str, scope: str = "acme", channel: str = "sms", source: str = "sms_keyword") -> None:
    """Record an opt-out directly in storage (as the webhook path would)."""
    with gw.db.transaction() as session:
        apply_consent(session, channel=channel, address=address, scope=scope, opted_out=True,
                      evidence=Evidence(source=source, raw_text="STOP"))


def member_ids(client: Any, list_ref: int | str) -> list[int]:
    """Contact ids in a list (first 1000)."""
    resp = api(client, "get", f"/api/v1/lists/{list_ref}/contacts?limit=1000")
    assert resp.status_code == 200, resp.get_json()
    return [item["id"] for item in resp.get_json()["items"]]
