"""Limits: oversized bodies, catastrophic regexes, YAML bombs, non-mapping configs, unstorable text."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from gateway.config import load_config
from gateway.errors import ConfigError
from gateway.models import InboundRecord, OptOut
from rules import compile_rules, evaluate
from rules.matching import compile_regex
from tests.conftest import TEST_ENV
from tests.gateway.helpers import count, inbound_count, ledger, opt_out_state, post_twilio, twilio_form
from tests.reliability.harness import Stack

LIMIT = 64 * 1024
AUTH = {"Authorization": f"Bearer {TEST_ENV['OPTOUT_API_TOKEN']}"}
ME = "+14155550100"


# ---- bodies over 64 KB -------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/webhooks/twilio/inbound", "/webhooks/console/inbound", "/api/v1/messages"])
def test_json_body_over_64kb_is_413(client: Any, gw: Any, path: str) -> None:
    body = json.dumps({"from": ME, "to": "+14155550199", "text": "STOP " + "x" * LIMIT}).encode()
    resp = client.post(path, data=body, content_type="application/json", headers=AUTH)
    assert resp.status_code == 413
    assert resp.mimetype == "application/problem+json"
    assert inbound_count(gw) == 0


def test_form_body_over_64kb_is_413_even_when_signed(client: Any, gw: Any) -> None:
    resp = post_twilio(client, twilio_form("STOP " + "x" * LIMIT))
    assert resp.status_code == 413
    assert opt_out_state(gw, ME, "acme") is None


def test_chunked_body_over_64kb_is_413(client: Any, gw: Any) -> None:
    # No Content-Length to refuse up front: the limit applies while the body is read.
    body = json.dumps({"from": ME, "to": "+14155550199", "text": "x" * (2 * LIMIT)}).encode()
    resp = client.post("/webhooks/console/inbound", input_stream=io.BytesIO(body),
                       headers={"Content-Type": "application/json", "Transfer-Encoding": "chunked"},
                       environ_base={"wsgi.input_terminated": True})  # as gunicorn marks a chunked body
    assert resp.status_code == 413
    assert inbound_count(gw) == 0


@pytest.mark.slow
def test_real_server_refuses_large_and_chunked_bodies(db_url: str, tmp_path: Path) -> None:
    stack = Stack(db_url, tmp_path)
    try:
        stack.start_server()
        url = stack.base + "/webhooks/twilio/inbound"
        item = stack.twilio("STOP " + "x" * LIMIT, ME, "SM-BIG")
        assert requests.post(url, data=item.body, headers=item.headers, timeout=30).status_code == 413
        chunks = (item.body[i : i + 4096] for i in range(0, len(item.body), 4096))  # no Content-Length
        assert requests.post(url, data=chunks, headers=item.headers, timeout=30).status_code == 413
        small = stack.twilio("STOP", ME, "SM-SMALL")
        assert requests.post(url, data=small.body, headers=small.headers, timeout=30).status_code == 200
        assert stack.inbound_ids() == {"SM-SMALL"}
    finally:
        stack.stop()


def test_body_just_under_the_limit_is_accepted(client: Any, gw: Any) -> None:
    text = "STOP " + "x" * (LIMIT - 200)
    resp = client.post("/webhooks/console/inbound", json={"from": ME, "to": "+14155550199", "text": text})
    assert resp.status_code == 200
    [event] = ledger(gw, ME)
    assert event.raw_text == text


# ---- rules: catastrophic regexes ---------------------------------------------------------------------


def test_catastrophic_regex_runs_in_linear_time() -> None:
    # `(a+)+$` against "aaaa...!" takes 2^n steps with a backtracking engine; the rules compile every
    # pattern with RE2, whose automaton reads each character once. 64 KB of it answers at once (with a
    # backtracking engine this test would never finish).
    ruleset = compile_rules([{"name": "evil", "match": {"regex": [r"(a+)+$", r"(x+x+)+y"]}, "actions": ["stop"]}],
                            allow_no_opt_out=True)
    pattern = compile_regex(r"(a+)+$")
    assert type(pattern).__module__.startswith("re2")
    from gateway.messages import InboundMessage

    evil = InboundMessage("test", "m", ME, "+14155550199", "a" * LIMIT + "b")
    assert evaluate(ruleset, evil) == []
    assert pattern.search("a" * LIMIT + "b") is None


@pytest.mark.parametrize("pattern", [r"(a)\1", r"stop(?=now)", r"(?<!x)stop", r"(?P<n>a)(?P=n)"])
def test_backtracking_only_regex_features_are_refused_at_load(tmp_path: Path, pattern: str) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({
        "database_url": f"sqlite:///{tmp_path}/x.db",
        "rules": [{"name": "evil", "match": {"regex": [pattern]}, "actions": ["opt_out"]}],
    }))
    with pytest.raises(ConfigError, match=r"config\.yaml:\d+.*evil"):
        load_config(path, {})


# ---- configuration files -----------------------------------------------------------------------------

BOMB = "\n".join(
    ["a: &a [x, x, x, x, x, x, x, x, x]"]
    + [f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
       f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]" for i in range(8)]
)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (BOMB, r"alias"),
        ("- database_url: sqlite://\n- brand: x\n", r"must be a mapping"),
        ("just a string\n", r"must be a mapping"),
        ("42\n", r"must be a mapping"),
        ("brand: [unclosed\n", r"config\.yaml:\d+"),
        ("brand: x\nbrand: y\n", r"config\.yaml:2.*duplicate"),
        ("!!python/object/apply:os.system ['true']\n", r"config\.yaml:1"),
    ],
    ids=["yaml-bomb", "list", "scalar", "number", "syntax", "duplicate-key", "python-tag"],
)
def test_hostile_config_files_fail_with_one_clear_error(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(path, {})
    # The command line reports the same in one line and exits 2, with no traceback.
    run = subprocess.run([sys.executable, "-m", "gateway", "--config", str(path), "db", "upgrade"],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 2
    assert run.stderr.startswith("error: ") and "Traceback" not in run.stderr


# ---- text that looks like SQL or script --------------------------------------------------------------

SQL = "STOP'); DROP TABLE opt_outs; --"
SCRIPT = "<script>alert(document.cookie)</script><img src=x onerror=alert(1)>"


def test_sql_and_script_text_is_stored_verbatim(client: Any, gw: Any) -> None:
    assert post_twilio(client, twilio_form(SQL, sid="SM-SQL")).status_code == 200
    assert post_twilio(client, twilio_form(SCRIPT, sender="+14155550101", sid="SM-JS")).status_code == 200
    with gw.db.read() as session:
        texts = {r.provider_message_id: r.text for r in session.query(InboundRecord)}
    assert texts == {"SM-SQL": SQL, "SM-JS": SCRIPT}
    [event] = ledger(gw, ME)
    assert event.raw_text == SQL, "the STOP is ledgered with its exact words"
    assert count(gw, OptOut) == 1, "and the table it names is still there"


def test_sql_and_script_text_is_shown_verbatim_by_the_cli(client: Any, gw: Any, tmp_path: Path) -> None:
    post_twilio(client, twilio_form(SQL, sid="SM-SQL"))
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({**gw.settings.model_dump(exclude={"source"}, exclude_none=True)}))
    run = subprocess.run([sys.executable, "-m", "gateway", "--config", str(path), "status", ME],
                         capture_output=True, text=True, timeout=60, env={**TEST_ENV, "PATH": ""})
    assert run.returncode == 0, run.stderr
    assert "OPTED OUT" in run.stdout and repr(SQL) in run.stdout


@pytest.mark.parametrize("text", ["STOP \x00 now", "STOP \ud83d", "\ude00\ud83d STOP"])
def test_text_postgresql_cannot_store_is_cleaned_not_lost(client: Any, gw: Any, text: str) -> None:
    # A NUL, or half of an emoji split across UCS-2 SMS parts: a 500 here would make the provider retry
    # the STOP forever. The characters become U+FFFD; the keyword still counts.
    resp = client.post("/webhooks/console/inbound", data=json.dumps({"from": ME, "to": "+14155550199",
                       "text": text, "id": "C-1"}), content_type="application/json")
    assert resp.status_code == 200
    state = opt_out_state(gw, ME, "acme")
    assert state is not None and state.opted_out
    [event] = ledger(gw, ME)
    assert "\ufffd" in (event.raw_text or "") and "\x00" not in (event.raw_text or "")


def test_identifiers_too_long_to_store_are_400(client: Any, gw: Any) -> None:
    resp = client.post("/webhooks/console/inbound",
                       json={"from": ME, "to": "+14155550199", "text": "STOP", "id": "x" * 201})
    assert resp.status_code == 400 and resp.get_json()["field"] == "id"
    resp = client.post("/webhooks/console/inbound", json={"from": ME, "to": "y" * 321, "text": "STOP"})
    assert resp.status_code == 400 and resp.get_json()["field"] == "to"
    assert inbound_count(gw) == 0


@pytest.mark.parametrize(
    "body",
    [{"to": ME, "body": "hi\x00"}, {"to": ME, "body": "\ud83d"}, {"to": ME, "body": "hi", "x": 10**30}],
    ids=["nul", "surrogate", "huge-int"],
)
def test_api_refuses_values_no_column_can_hold(client: Any, gw: Any, body: dict[str, Any]) -> None:
    resp = client.post("/api/v1/messages", data=json.dumps(body), content_type="application/json", headers=AUTH)
    assert resp.status_code == 400
