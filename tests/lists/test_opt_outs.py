"""The Opt-Out List API, manual and imported opt-outs, operator re-subscribes and the consent ledger."""

from __future__ import annotations

import io
from typing import Any

from gateway.app import create_app
from tests.conftest import OUR_TWILIO
from tests.gateway.helpers import post_twilio, twilio_form
from tests.lists.helpers import api, opt_out

ME = "+14155550100"


def test_opt_out_list_filters_and_pages(client: Any, gw: Any) -> None:
    for i in range(5):
        opt_out(gw, f"+1415555010{i}", scope="acme" if i % 2 else "*")
    opt_out(gw, "ann@example.com", channel="email", scope="*", source="email_link")
    everything = api(client, "get", "/api/v1/opt-outs").get_json()
    assert len(everything["items"]) == 6 and everything["next_cursor"] is None
    sms = api(client, "get", "/api/v1/opt-outs?channel=sms&limit=2").get_json()
    rest = api(client, "get", f"/api/v1/opt-outs?channel=sms&limit=2&cursor={sms['next_cursor']}").get_json()
    assert [r["address"] for r in sms["items"] + rest["items"]] == [f"+1415555010{i}" for i in range(4)]
    scoped = api(client, "get", "/api/v1/opt-outs?scope=acme").get_json()["items"]
    assert {r["address"] for r in scoped} == {"+14155550101", "+14155550103"}
    emailed = api(client, "get", "/api/v1/opt-outs?source=email_link").get_json()["items"]
    assert [r["address"] for r in emailed] == ["ann@example.com"]
    first_since = everything["items"][3]["since"]
    later = api(client, "get", "/api/v1/opt-outs", query_string={"since": first_since}).get_json()["items"]
    earlier = api(client, "get", "/api/v1/opt-outs", query_string={"until": first_since}).get_json()["items"]
    assert len(later) + len(earlier) == 6 and later[0]["since"] == first_since
    bad = api(client, "get", "/api/v1/opt-outs?since=yesterday")
    assert bad.status_code == 400 and bad.get_json()["field"] == "since"
    assert api(client, "get", "/api/v1/opt-outs?channel=fax").get_json()["field"] == "channel"


def test_manual_opt_out_is_ledgered_and_enforced(client: Any, gw: Any) -> None:
    resp = api(client, "post", "/api/v1/opt-outs", json={
        "channel": "sms", "address": "(415) 555-0100", "reason": "asked on the phone", "actor": "agent-7",
        "occurred_at": "2026-01-02T03:04:05Z"})
    assert resp.status_code == 201
    [change] = resp.get_json()["changes"]
    assert change["scope"] == "*" and change["changed"] is True
    refused = api(client, "post", "/api/v1/messages", json={"to": ME, "body": "Sale", "from": OUR_TWILIO})
    assert refused.status_code == 409, "scope * blocks every sender"
    [event] = api(client, "get", "/api/v1/consent-events", query_string={"address": ME}).get_json()["items"]
    assert event["source"] == "api" and event["reason"] == "asked on the phone" and event["actor"] == "agent-7"
    assert event["occurred_at"].startswith("2026-01-02T03:04:05") and event["id"] == change["event_id"]
    bad = api(client, "post", "/api/v1/opt-outs", json={"channel": "sms", "address": "12"})
    assert bad.status_code == 400 and bad.get_json()["field"] == "address"


def test_operator_resubscribe_is_denied_by_default(client: Any, gw: Any) -> None:
    opt_out(gw, ME)
    resp = api(client, "post", "/api/v1/opt-outs/resubscribe",
               json={"channel": "sms", "address": ME, "reason": "customer called"})
    assert resp.status_code == 403 and resp.get_json()["type"].endswith("/forbidden_by_policy")
    assert api(client, "get", f"/api/v1/opt-outs/sms/{ME}").get_json()["opted_out"] is True


def test_operator_resubscribe_with_reason_is_a_ledger_event(config: dict[str, Any], env: Any) -> None:
    config["compliance"] = {"operator_resubscribe": "with_reason"}
    app = create_app(config, env)
    client, gw = app.test_client(), app.extensions["optout"]
    try:
        opt_out(gw, ME, scope="acme")
        no_reason = api(client, "post", "/api/v1/opt-outs/resubscribe", json={"channel": "sms", "address": ME})
        assert no_reason.status_code == 400 and no_reason.get_json()["field"] == "reason"
        ok = api(client, "post", "/api/v1/opt-outs/resubscribe",
                 json={"channel": "sms", "address": ME, "reason": "signed form on file", "actor": "ops"})
        assert ok.status_code == 200 and ok.get_json()["changes"][0]["changed"] is True
        assert api(client, "get", f"/api/v1/opt-outs/sms/{ME}").get_json()["opted_out"] is False
        events = api(client, "get", "/api/v1/consent-events", query_string={"address": ME}).get_json()["items"]
        assert [e["action"] for e in events] == ["opt_out", "opt_in"]
        assert events[1]["reason"] == "signed form on file" and events[1]["actor"] == "ops"
        again = api(client, "post", "/api/v1/opt-outs/resubscribe",
                    json={"channel": "sms", "address": ME, "reason": "again"})
        assert again.status_code == 404
    finally:
        gw.db.dispose()


def test_ledger_keeps_every_field_of_a_stop_in_event_order(client: Any, gw: Any) -> None:
    post_twilio(client, twilio_form("STOP", sid="SM-stop"))
    post_twilio(client, twilio_form("START", sid="SM-start"))
    api(client, "post", "/api/v1/opt-outs", json={"channel": "email", "address": "x@example.com"})
    events = api(client, "get", "/api/v1/consent-events").get_json()["items"]
    assert [(e["action"], e["channel"]) for e in events] == [("opt_out", "sms"), ("opt_in", "sms"),
                                                            ("opt_out", "email")]
    stop = events[0]
    assert stop["address"] == ME and stop["scope"] == "acme" and stop["source"] == "sms_keyword"
    assert stop["rule"] == "opt-out" and stop["raw_text"] == "STOP" and stop["provider"] == "twilio"
    assert stop["provider_message_id"] == "SM-stop"
    only_sms = api(client, "get", "/api/v1/consent-events?channel=sms&limit=1").get_json()
    assert len(only_sms["items"]) == 1 and only_sms["next_cursor"] == str(stop["id"])
    after = api(client, "get", f"/api/v1/consent-events?channel=sms&cursor={only_sms['next_cursor']}").get_json()
    assert [e["action"] for e in after["items"]] == ["opt_in"]


def test_opt_out_import_keeps_evidence_and_rejects_bad_rows(client: Any, gw: Any) -> None:
    text = (
        "Phone,Date,Reason,Scope\n"
        "4155550100,2024-05-01T10:00:00Z,replied STOP on old platform,\n"
        "not a number,2024-05-01,,\n"
        "4155550101,last tuesday,,\n"
        "4155550102,,,acme\n"
    )
    upload = {"file": (io.BytesIO(text.encode()), "clicksend-optouts.csv")}
    resp = api(client, "post", "/api/v1/opt-outs/import?channel=sms", data=upload,
               content_type="multipart/form-data")
    body = resp.get_json()
    assert resp.status_code == 200, body
    assert (body["rows"], body["recorded"], body["changed"], body["rejected"]) == (4, 2, 2, 2)
    assert [(r["row"], r["reason"]) for r in body["rejects"]] == [
        (3, "invalid sms address"), (4, "not an ISO 8601 date or time")]
    scopes = {r["address"]: r["scope"] for r in api(client, "get", "/api/v1/opt-outs").get_json()["items"]}
    assert scopes == {ME: "*", "+14155550102": "acme"}
    [event] = api(client, "get", "/api/v1/consent-events", query_string={"address": ME}).get_json()["items"]
    assert event["source"] == "import" and event["reason"] == "replied STOP on old platform"
    assert event["occurred_at"].startswith("2024-05-01T10:00:00")
    assert event["evidence"]["file"] == "clicksend-optouts.csv" and event["evidence"]["row"] == 2
    assert event["evidence"]["raw"]["Phone"] == "4155550100"
    no_channel = api(client, "post", "/api/v1/opt-outs/import", data="phone\n1\n", content_type="text/csv")
    assert no_channel.status_code == 400 and no_channel.get_json()["field"] == "channel"


def test_an_imported_old_opt_out_does_not_undo_a_newer_opt_in(client: Any, gw: Any) -> None:
    post_twilio(client, twilio_form("STOP", sid="SM-1"))
    post_twilio(client, twilio_form("START", sid="SM-2"))
    resp = api(client, "post", "/api/v1/opt-outs/import?channel=sms&scope=acme",
               data="phone,date\n4155550100,2020-01-01\n", content_type="text/csv")
    assert resp.get_json()["recorded"] == 1 and resp.get_json()["changed"] == 0
    assert api(client, "get", f"/api/v1/opt-outs/sms/{ME}?scope=acme").get_json()["opted_out"] is False
