"""Secrets and full phone numbers or emails never reach the logs: a STOP round trip, logs grepped.

In-process, the capture is the very handler `gateway.logs.configure` installs (so what it shows is what
production writes); through real processes, everything the server (access log included) and the worker
print is grepped.
"""

from __future__ import annotations

import dataclasses
import io
import logging
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
import requests
import responses

from gateway.logs import MaskingFilter
from gateway.outbox import drain
from tests.conftest import OUR_CLICKSEND, TEST_ENV
from tests.gateway.helpers import post_twilio, twilio_form
from tests.reliability.harness import ProviderDouble, Stack, post, wait_until

ME = "+14155550142"
AU_ME = "+61412345678"
EMAIL = "jane.private@example.org"
SECRETS = [v for k, v in TEST_ENV.items() if k != "TWILIO_ACCOUNT_SID"]
AUTH = {"Authorization": f"Bearer {TEST_ENV['OPTOUT_API_TOKEN']}"}
LINK_TOKEN = "eyJzZWFsZWQiOiJ0aGlzLWlzLWEtbGluay10b2tlbiJ9"


def leaks(text: str) -> list[str]:
    """Every full address or secret found in ``text``, in any of the forms a log line could take."""
    forms = [ME, ME[1:], ME[2:], AU_ME, AU_ME[1:], EMAIL, *SECRETS]
    return [form for form in forms if form in text]


def test_leaks_finds_what_it_looks_for() -> None:
    assert leaks(f"to {ME[2:]} key {TEST_ENV['OPTOUT_API_TOKEN']}") == [ME[2:], TEST_ENV["OPTOUT_API_TOKEN"]]
    assert leaks("to +141******42 j***@example.org") == []


@pytest.fixture
def captured(app: Any) -> Iterator[io.StringIO]:
    """The output of the gateway's own (masking) log handler, at DEBUG, while the test runs."""
    root = logging.getLogger()
    [handler] = [h for h in root.handlers if any(isinstance(f, MaskingFilter) for f in h.filters)]
    assert isinstance(handler, logging.StreamHandler)
    buffer = io.StringIO()
    previous, level = handler.setStream(buffer), root.level
    root.setLevel(logging.DEBUG)
    yield buffer
    handler.setStream(previous)
    root.setLevel(level)


def test_stop_round_trip_logs_nothing_private(client: Any, gw: Any, captured: io.StringIO) -> None:
    # A STOP by Twilio and by ClickSend (whose secret token rides in the URL), a START, a HELP...
    assert post_twilio(client, twilio_form("STOP", sender=ME, sid="SM-LOG-1")).status_code == 200
    assert post_twilio(client, twilio_form("START", sender=ME, sid="SM-LOG-2")).status_code == 200
    assert post_twilio(client, twilio_form("HELP", sender=ME, sid="SM-LOG-3")).status_code == 200
    token = urlencode({"token": TEST_ENV["CLICKSEND_WEBHOOK_TOKEN"]})
    form = {"from": AU_ME, "to": OUR_CLICKSEND, "body": "STOP", "message_id": "CS-LOG-1", "timestamp": "1700000000"}
    assert client.post(f"/webhooks/clicksend/inbound?{token}", data=form).status_code == 200
    # ...a forged webhook, an API send refused for an opted-out number, one to a malformed address...
    assert post_twilio(client, twilio_form("STOP", sender=ME, sid="SM-LOG-4"), token="wrong").status_code == 403
    assert client.post("/api/v1/messages", json={"to": AU_ME, "body": "hi", "from": OUR_CLICKSEND},
                       headers=AUTH).status_code == 409
    assert client.post("/api/v1/messages", json={"to": EMAIL + "@", "body": "hi", "channel": "email"},
                       headers=AUTH).status_code == 400
    # ...and the worker: the provider is down once, then refuses a number as opted out (Twilio 21610).
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        url = f"https://api.twilio.com/2010-04-01/Accounts/{TEST_ENV['TWILIO_ACCOUNT_SID']}/Messages.json"
        rsps.add("POST", url, status=503, body=f"upstream down for {ME}")
        rsps.add("POST", url, status=400, json={"code": 21610, "message": f"{ME} is unsubscribed"})
        rsps.add("POST", url, status=201, json={"sid": "SM" + "a" * 32, "status": "queued"})
        # The three replies to ME meet the three answers in turn; ClickSend's API is not reachable.
        assert drain(gw, "log-test") == 4
    text = captured.getvalue()
    assert "+141******42" in text, "the capture saw the round trip, masked"
    assert "reports +141******42 opted out" in text and text.count(": retry 1 in") == 2
    assert leaks(text) == []


def test_unexpected_errors_log_without_private_data(client: Any, gw: Any, captured: io.StringIO,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*_args: Any, **_kwargs: Any) -> None:
        raise RuntimeError(f"database exploded while handling {ME} / {EMAIL}")

    monkeypatch.setattr("gateway.webhooks.process", boom)
    assert post_twilio(client, twilio_form("STOP", sender=ME, sid="SM-LOG-5")).status_code == 500
    text = captured.getvalue()
    assert "database exploded" in text and "Traceback" in text
    assert leaks(text) == []


@pytest.mark.slow
def test_real_processes_log_nothing_private(db_url: str, tmp_path: Any) -> None:
    double = ProviderDouble()
    double.start()
    stack = Stack(db_url, tmp_path, double)
    try:
        stack.config["log_level"] = "DEBUG"
        stack.start_server()
        stack.start_worker()
        assert post(stack.twilio("STOP", ME, "SM-LOG-REAL")) == 200
        assert post(stack.clicksend("STOP", AU_ME, "CS-LOG-REAL", 1_700_000_000)) == 200
        bad = stack.twilio("STOP", ME, "SM-LOG-FORGED")
        assert post(dataclasses.replace(bad, headers={**bad.headers, "X-Twilio-Signature": "AAAA"})) == 403
        # A number in the path of an API call, and an unsubscribe link's token.
        status = requests.get(f"{stack.base}/api/v1/opt-outs/sms/{ME}", headers=AUTH, timeout=10)
        assert status.json()["opted_out"] is True
        requests.get(f"{stack.base}/u/{LINK_TOKEN}/preferences", timeout=10)
        wait_until(lambda: stack.sent_count() >= 1, 60, "the Twilio reply to be sent")
    finally:
        stack.stop()
        double.stop()
    text = stack.log_text()
    assert "/webhooks/clicksend/inbound" in text and "/u/<token>/preferences" in text, "access log captured"
    assert leaks(text) == []
    assert LINK_TOKEN not in text


def test_access_log_atoms_are_masked() -> None:
    from datetime import timedelta
    from types import SimpleNamespace

    from gunicorn.config import Config

    from gateway.accesslog import AccessLogger

    environ = {
        "REQUEST_METHOD": "GET", "RAW_URI": f"/api/v1/opt-outs/sms/{ME}?token=abc", "PATH_INFO":
        f"/api/v1/opt-outs/sms/{ME}", "QUERY_STRING": "token=abc", "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_REFERER": f"https://mail.example/u/{LINK_TOKEN}", "REMOTE_ADDR": "192.0.2.1",
    }
    resp = SimpleNamespace(status="200 OK", sent=10, headers=[("Set-Cookie", "s=1")])
    req = SimpleNamespace(headers=[("Authorization", "Bearer " + TEST_ENV["OPTOUT_API_TOKEN"])])
    atoms = AccessLogger(Config()).atoms(resp, req, environ, timedelta(milliseconds=5))
    assert atoms["r"] == "GET /api/v1/opt-outs/sms/+141******42 HTTP/1.1"
    assert (atoms["q"], atoms["f"], atoms["h"]) == ("", "-", "192.0.2.1")
    assert "{authorization}i" not in atoms and "{set-cookie}o" not in atoms
    assert leaks(repr(atoms)) == [] and "abc" not in repr(atoms) and LINK_TOKEN not in repr(atoms)
