"""The unsubscribe endpoints through the Flask client: GET, the form, one-click, undo, preferences, bad links."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from gateway.email import LinkSigner, signer_for
from gateway.models import utcnow
from tests.email.helpers import ME_NORMAL, PUBLIC, path_of
from tests.gateway.helpers import ledger, opt_out_state

ONE_CLICK = "List-Unsubscribe=One-Click"


def link(gw: Any, topic: str | None = None, address: str = ME_NORMAL) -> str:
    """The path of a fresh unsubscribe link, as the gateway would put in an email."""
    signer = signer_for(gw)
    return path_of(signer.url(signer.issue(address, "acme", topic)))


def is_out(gw: Any, scope: str = "acme") -> bool:
    state = opt_out_state(gw, ME_NORMAL, scope, channel="email")
    return bool(state and state.opted_out)


def test_get_shows_masked_address_and_a_button_but_unsubscribes_nobody(client: Any, gw: Any) -> None:
    path = link(gw)
    for _ in range(3):  # a link scanner may open it many times
        resp = client.get(path)
        assert resp.status_code == 200 and resp.mimetype == "text/html"
        page = resp.get_data(as_text=True)
        assert "j***@example.org" in page and ME_NORMAL not in page
        assert '<button type="submit" id="confirm">Unsubscribe</button>' in page
        assert "<script" not in page and '<html lang="en">' in page
        assert resp.headers["Cache-Control"] == "no-store" and "Set-Cookie" not in resp.headers
    assert client.head(path).status_code == 200
    assert opt_out_state(gw, ME_NORMAL, "acme", channel="email") is None
    assert ledger(gw, ME_NORMAL) == []


def test_form_post_unsubscribes_and_the_undo_resubscribes(client: Any, gw: Any) -> None:
    path = link(gw)
    done = client.post(path, data={"action": "unsubscribe"})
    assert done.status_code == 200
    assert "You are unsubscribed" in done.get_data(as_text=True)
    assert 'value="resubscribe"' in done.get_data(as_text=True)
    assert is_out(gw)
    undone = client.post(path, data={"action": "resubscribe"})
    assert "You are subscribed again" in undone.get_data(as_text=True)
    assert not is_out(gw)
    events = ledger(gw, ME_NORMAL)
    assert [(e.action, e.source, e.changed, e.actor) for e in events] == [
        ("opt_out", "email_link", True, "recipient"),
        ("opt_in", "email_link", True, "recipient"),
    ]
    assert events[0].evidence["via"] == "unsubscribe_page" and events[0].evidence["link_scope"] == "acme"


@pytest.mark.parametrize("encoding", ["urlencoded", "multipart"])
def test_one_click_post_unsubscribes_with_a_plain_200(client: Any, gw: Any, encoding: str) -> None:
    path = link(gw)
    if encoding == "urlencoded":
        resp = client.post(path, data=ONE_CLICK, content_type="application/x-www-form-urlencoded")
    else:
        boundary = "----optout-test-boundary"
        body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"List-Unsubscribe\"\r\n\r\n"
                f"One-Click\r\n--{boundary}--\r\n")
        resp = client.post(path, data=body, content_type=f"multipart/form-data; boundary={boundary}")
    assert resp.status_code == 200
    assert "Location" not in resp.headers and "Set-Cookie" not in resp.headers
    assert is_out(gw)
    [event] = ledger(gw, ME_NORMAL)
    assert event.source == "one_click" and event.action == "opt_out" and event.changed


def test_one_click_repeats_are_idempotent(client: Any, gw: Any) -> None:
    path = link(gw)
    answers = [client.post(path, data=ONE_CLICK, content_type="application/x-www-form-urlencoded")
               for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert len({a.get_data() for a in answers}) == 1
    assert is_out(gw)
    # One transition; the repeats are ledgered as such and change nothing.
    assert [e.changed for e in ledger(gw, ME_NORMAL)] == [True, False, False]


def test_one_click_on_a_topic_link_leaves_the_topic_only(client: Any, gw: Any) -> None:
    client.post(link(gw, "newsletters"), data=ONE_CLICK, content_type="application/x-www-form-urlencoded")
    assert is_out(gw, "acme/newsletters")
    assert not is_out(gw, "acme")


def bad_links(gw: Any) -> dict[str, str]:
    good = link(gw)
    prefix, token = good.rsplit("/", 1)
    payload, stamp, signature = token.split(".")
    flip = {"A": "B"}

    def swap(text: str, at: int) -> str:
        return text[:at] + flip.get(text[at], "A") + text[at + 1:]

    foreign = LinkSigner("another-deployment-secret-key", PUBLIC, timedelta(days=365))
    return {
        "payload": f"{prefix}/{swap(payload, len(payload) // 2)}.{stamp}.{signature}",
        "timestamp": f"{prefix}/{payload}.{swap(stamp, 1)}.{signature}",
        "signature": f"{prefix}/{payload}.{stamp}.{swap(signature, 3)}",
        "truncated": good[:-5],
        "garbage": "/u/not-a-token",
        "too-long": "/u/" + "A" * 1500,
        "foreign": path_of(foreign.url(foreign.issue(ME_NORMAL, "acme"))),
    }


def test_bad_links_get_one_400_page_that_reveals_nothing(client: Any, gw: Any) -> None:
    pages = set()
    for name, path in bad_links(gw).items():
        for resp in (client.get(path), client.post(path, data=ONE_CLICK,
                                                   content_type="application/x-www-form-urlencoded"),
                     client.post(path, data={"action": "unsubscribe"}), client.get(path + "/preferences")):
            assert resp.status_code == 400, name
            body = resp.get_data(as_text=True)
            assert "This link does not work" in body
            assert "example.org" not in body and "j***" not in body
            assert not any(word in body.lower() for word in ("expired", "signature", "tamper", "scope"))
            pages.add(body)
    assert len(pages) == 1, "every failure looks the same"
    assert ledger(gw, ME_NORMAL) == []


def test_links_work_for_a_year_and_then_expire(client: Any, gw: Any) -> None:
    path = link(gw)
    signer = signer_for(gw)
    signer.clock = lambda: utcnow() + timedelta(days=61)  # past CASL's 60 days: must still work
    assert client.get(path).status_code == 200
    signer.clock = lambda: utcnow() + timedelta(days=366)
    assert client.get(path).status_code == 400
    assert client.post(path, data=ONE_CLICK, content_type="application/x-www-form-urlencoded").status_code == 400
    assert not is_out(gw)


def test_post_without_a_known_action_changes_nothing(client: Any, gw: Any) -> None:
    path = link(gw)
    assert client.post(path, data={"action": "delete-everything"}).status_code == 400
    assert client.post(path, data={"List-Unsubscribe": "Two-Clicks"}).status_code == 400
    assert ledger(gw, ME_NORMAL) == []


def prefs(client: Any, path: str, action: str, target: str) -> str:
    resp = client.post(path + "/preferences", data={"action": action, "target": target})
    assert resp.status_code == 200
    return str(resp.get_data(as_text=True))


def test_preference_page_lists_topics_and_leaves_one(client: Any, gw: Any) -> None:
    path = link(gw, "newsletters")
    page = client.get(path + "/preferences").get_data(as_text=True)
    assert "Newsletters" in page and "Special offers" in page and 'id="leave-newsletters"' in page
    assert opt_out_state(gw, ME_NORMAL, "acme/newsletters", channel="email") is None
    page = prefs(client, path, "leave", "newsletters")
    assert "You left Newsletters." in page and 'id="join-newsletters"' in page
    assert is_out(gw, "acme/newsletters") and not is_out(gw, "acme/offers") and not is_out(gw, "acme")


def test_preference_page_leaves_everything_and_opts_back_in(client: Any, gw: Any) -> None:
    # The deny policy forbids operators re-subscribing people; the person's own choice is allowed.
    assert gw.settings.compliance.operator_resubscribe == "deny"
    path = link(gw)
    assert 'id="join-all"' in prefs(client, path, "leave", "all")
    assert is_out(gw)
    assert 'id="leave-all"' in prefs(client, path, "join", "all")
    assert not is_out(gw)
    events = ledger(gw, ME_NORMAL)
    assert [(e.action, e.source, e.evidence["via"]) for e in events] == [
        ("opt_out", "email_link", "preferences"), ("opt_in", "email_link", "preferences")]


def test_preference_form_refuses_unknown_targets(client: Any, gw: Any) -> None:
    path = link(gw)
    for data in ({"action": "leave", "target": "gossip"}, {"action": "explode", "target": "all"}, {}):
        assert client.post(path + "/preferences", data=data).status_code == 400
    assert ledger(gw, ME_NORMAL) == []


def test_link_of_one_person_cannot_touch_another(client: Any, gw: Any) -> None:
    client.post(link(gw, address="someone.else@example.org"), data=ONE_CLICK,
                content_type="application/x-www-form-urlencoded")
    assert not is_out(gw)


def test_endpoints_are_in_the_openapi_document(client: Any) -> None:
    doc = client.get("/openapi.json").get_json()
    assert {"/u/{token}", "/u/{token}/preferences"} <= set(doc["paths"])
    one_click = doc["paths"]["/u/{token}"]["post"]
    assert "security" not in one_click, "one-click carries no credentials but the token"
    assert "application/x-www-form-urlencoded" in one_click["requestBody"]["content"]
    assert "topic" in doc["components"]["schemas"]["MessageIn"]["properties"]
