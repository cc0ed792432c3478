"""Sending email through the guard and the outbox to a real SMTP server: link, headers, topics, blocking."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.guard import submit
from gateway.models import utcnow
from gateway.storage import enqueue
from tests.email.conftest import NEWS, SmtpServer
from tests.email.helpers import (
    ME,
    ME_NORMAL,
    PUBLIC,
    api_send,
    deliver,
    html_part,
    one_click_url,
    path_of,
    text_part,
)
from tests.gateway.helpers import ledger, opt_out_state, outbox

ONE_CLICK = {"List-Unsubscribe": "One-Click"}


def test_marketing_email_arrives_with_link_and_one_click_headers(client: Any, gw: Any, smtp: SmtpServer) -> None:
    assert api_send(client).status_code == 202
    assert deliver(gw) == 1
    [msg] = smtp.messages
    assert smtp.inbox.envelopes == [(NEWS, [ME_NORMAL])]
    assert msg["Subject"] == "Spring sale" and msg["From"] == NEWS
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    url = one_click_url(msg)
    assert url.startswith(PUBLIC + "/u/")
    assert "<mailto:unsubscribe@acme.example?subject=unsubscribe%20" in str(msg["List-Unsubscribe"])
    # The visible link is in both bodies; in the HTML it sits inside the document, before </body>.
    assert url in text_part(msg) and "Everything half price." in text_part(msg)
    html = html_part(msg)
    assert f'<a href="{url}">Unsubscribe</a>' in html
    assert html.index(url) < html.index("</body>")
    # The address is nowhere in the link: the token is opaque.
    assert "jane" not in url.lower() and "example.org" not in url
    # What the outbox stored is exactly what was sent.
    [row] = outbox(gw)
    assert row.status == "sent" and url in row.body and row.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert row.provider_message_id == msg["Message-ID"]


def test_placeholder_places_the_link_and_no_footer_is_added(client: Any, gw: Any, smtp: SmtpServer) -> None:
    api_send(client, body="Sale! Leave us: {unsubscribe_url} or tune: {preferences_url}",
             html_body='<p>Sale! <a href="{unsubscribe_url}">Leave</a> {x: "braces stay"}</p>')
    deliver(gw)
    [msg] = smtp.messages
    url = one_click_url(msg)
    assert text_part(msg).strip() == f"Sale! Leave us: {url} or tune: {url}/preferences"
    assert html_part(msg).strip() == f'<p>Sale! <a href="{url}">Leave</a> {{x: "braces stay"}}</p>'


def test_text_only_email_gets_the_link_too(client: Any, gw: Any, smtp: SmtpServer) -> None:
    api_send(client, html_body=None, category="informational")
    deliver(gw)
    [msg] = smtp.messages
    assert msg.get_content_type() == "text/plain"
    assert one_click_url(msg) in msg.get_content()


def test_transactional_email_has_no_unsubscribe(client: Any, gw: Any, smtp: SmtpServer) -> None:
    api_send(client, category="transactional", subject="Your receipt", body="Order 42: paid.", html_body=None)
    deliver(gw)
    [msg] = smtp.messages
    assert msg["List-Unsubscribe"] is None and msg["List-Unsubscribe-Post"] is None
    assert "/u/" not in msg.get_content()


def test_one_click_from_the_received_email_blocks_the_next_send(client: Any, gw: Any, smtp: SmtpServer) -> None:
    api_send(client)
    deliver(gw)
    path = path_of(one_click_url(smtp.messages[0]))
    assert client.get(path).status_code == 200
    assert opt_out_state(gw, ME_NORMAL, "acme", channel="email") is None, "a GET never unsubscribes"
    resp = client.post(path, data=ONE_CLICK)
    assert resp.status_code == 200
    state = opt_out_state(gw, ME_NORMAL, "acme", channel="email")
    assert state is not None and state.opted_out and state.source == "one_click"
    refused = api_send(client)
    assert refused.status_code == 409 and refused.get_json()["channel"] == "email"
    # Transactional mail with a stated reason still goes out, and the bypass is ledgered.
    ok = api_send(client, category="transactional", bypass_reason="password reset", html_body=None)
    assert ok.status_code == 202
    assert [e.action for e in ledger(gw, ME_NORMAL)] == ["opt_out", "bypass"]


def test_opt_out_after_queueing_blocks_at_dispatch(client: Any, gw: Any, smtp: SmtpServer) -> None:
    api_send(client, idempotency_key="first")
    deliver(gw)
    api_send(client, idempotency_key="second")
    client.post(path_of(one_click_url(smtp.messages[0])), data=ONE_CLICK)
    deliver(gw)
    assert len(smtp.messages) == 1
    assert [r.status for r in outbox(gw)] == ["sent", "blocked"]


def test_topic_one_click_leaves_only_that_topic(client: Any, gw: Any, smtp: SmtpServer) -> None:
    api_send(client, topic="newsletters")
    deliver(gw)
    client.post(path_of(one_click_url(smtp.messages[0])), data=ONE_CLICK)
    state = opt_out_state(gw, ME_NORMAL, "acme/newsletters", channel="email")
    assert state is not None and state.opted_out
    assert api_send(client, topic="newsletters").status_code == 409
    assert api_send(client, topic="offers").status_code == 202
    assert api_send(client).status_code == 202, "mail without a topic still goes"


def test_leaving_everything_blocks_every_topic(client: Any, gw: Any, smtp: SmtpServer) -> None:
    api_send(client)
    deliver(gw)
    client.post(path_of(one_click_url(smtp.messages[0])), data=ONE_CLICK)
    for topic in ("newsletters", "offers"):
        assert api_send(client, topic=topic).status_code == 409


def test_unknown_topic_is_refused(client: Any) -> None:
    resp = api_send(client, topic="gossip")
    assert resp.status_code == 400 and resp.get_json()["field"] == "topic"


def test_caller_cannot_supply_its_own_unsubscribe_headers(gw: Any, smtp: SmtpServer) -> None:
    with gw.db.transaction() as session:
        submit(session, gw, channel="email", to=ME, body="Hi", subject="Hi",
               headers={"list-unsubscribe": "<https://elsewhere.example/x>", "X-Campaign": "spring"})
    deliver(gw)
    [msg] = smtp.messages
    assert "elsewhere.example" not in str(msg["List-Unsubscribe"])
    assert one_click_url(msg).startswith(PUBLIC) and msg["X-Campaign"] == "spring"


@pytest.mark.parametrize("category", ["marketing", "informational"])
def test_outbox_refuses_an_email_queued_without_the_headers(gw: Any, smtp: SmtpServer, category: str) -> None:
    # A path that bypasses the guard (it must not, but the outbox does not trust that) sends nothing.
    with gw.db.transaction() as session:
        enqueue(session, {"channel": "email", "provider": "smtp", "sender": NEWS, "recipient": ME_NORMAL,
                          "scope": "acme", "category": category, "subject": "x", "body": "no link",
                          "idempotency_key": "raw-1", "max_attempts": 3, "created_at": utcnow()})
    deliver(gw)
    assert smtp.messages == []
    [row] = outbox(gw)
    assert row.status == "failed" and "List-Unsubscribe" in (row.last_error or "")


def test_email_with_the_console_provider_prints_subject_and_headers(
    client: Any, gw: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    with gw.db.transaction() as session:
        submit(session, gw, channel="email", to=ME, body="Hello", subject="Console check", provider="console")
    deliver(gw)
    out = capsys.readouterr().out
    assert "subject: Console check" in out
    assert "header:  List-Unsubscribe: <https://gateway.example.com/u/" in out
    assert "header:  List-Unsubscribe-Post: List-Unsubscribe=One-Click" in out
