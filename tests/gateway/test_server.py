"""The webhook path through a real server process (gunicorn) and a real worker process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import requests
import yaml
from twilio.request_validator import RequestValidator

from gateway.config import load_config
from gateway.runtime import Gateway
from tests.conftest import OUR_TWILIO, TEST_ENV, base_config
from tests.gateway.helpers import ledger, opt_out_state, outbox, twilio_form

pytestmark = pytest.mark.slow
ME = "+14155550123"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(url: str, proc: subprocess.Popen[bytes], deadline: float = 30.0) -> None:
    """Poll the readiness probe until it answers (the server is starting, not a timing assumption)."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise AssertionError(f"server exited with {proc.returncode}")
        try:
            if requests.get(url + "/readyz", timeout=5).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise AssertionError("server did not become ready")


@pytest.fixture
def server(db_url: str, tmp_path: Path) -> Any:
    port = free_port()
    cfg = base_config(db_url)
    cfg["public_url"] = f"http://127.0.0.1:{port}"
    cfg["providers"] = {"twilio": {"base_url": "http://127.0.0.1:9"}, "console": {}, "clicksend": {}}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    env = {**os.environ, **TEST_ENV, "OPTOUT_CONFIG": str(path)}
    env.pop("DATABASE_URL", None)
    subprocess.run([sys.executable, "-m", "gateway", "db", "upgrade"], env=env, check=True, capture_output=True)
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway", "serve", "--port", str(port), "--workers", "2"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, proc)
        yield base, path, env
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_signed_stop_through_real_server(server: Any) -> None:
    base, path, _env = server
    url = base + "/webhooks/twilio/inbound"
    form = twilio_form("STOP please", sender=ME, sid="SM-REAL-1")
    sig = RequestValidator(TEST_ENV["TWILIO_AUTH_TOKEN"]).compute_signature(url, form)
    headers = {"X-Twilio-Signature": sig, "Content-Type": "application/x-www-form-urlencoded"}
    for _ in range(2):  # a redelivery is acknowledged and changes nothing
        resp = requests.post(url, data=urlencode(form), headers=headers, timeout=10)
        assert resp.status_code == 200 and "<Response" in resp.text
    bad = requests.post(url, data=urlencode(form), headers={**headers, "X-Twilio-Signature": "AAAA"}, timeout=10)
    assert bad.status_code == 403
    gw = Gateway(load_config(path), TEST_ENV)
    state = opt_out_state(gw, ME, "acme")
    assert state is not None and state.opted_out
    assert len(ledger(gw, ME)) == 1
    [reply] = outbox(gw)
    assert reply.sender == OUR_TWILIO
    gw.db.dispose()


def test_simulate_cli_and_worker_send_the_reply(server: Any, tmp_path: Path) -> None:
    base, path, env = server
    sim = subprocess.run(
        [sys.executable, "-m", "gateway", "simulate", "twilio", "--from", ME, "--to", OUR_TWILIO, "--url", base,
         "STOP"], env=env, capture_output=True, text=True, timeout=60,
    )
    assert sim.returncode == 0, sim.stderr
    # The worker sends the confirmation through the console provider (no network needed).
    cfg = yaml.safe_load(path.read_text())
    cfg["providers"]["twilio"] = {"adapter": "console"}
    cfg["outbox"]["poll_interval"] = 0.2
    path.write_text(yaml.safe_dump(cfg))
    worker = subprocess.Popen([sys.executable, "-m", "gateway", "worker"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    gw = Gateway(load_config(path), TEST_ENV)
    try:
        end = time.monotonic() + 30
        while time.monotonic() < end and [r.status for r in outbox(gw)] != ["sent"]:
            time.sleep(0.1)
        assert [r.status for r in outbox(gw)] == ["sent"]
    finally:
        worker.terminate()
        out, _ = worker.communicate(timeout=20)
        gw.db.dispose()
    assert "unsubscribed" in out
    status = subprocess.run([sys.executable, "-m", "gateway", "status", ME], env=env, capture_output=True,
                            text=True, timeout=60)
    assert "OPTED OUT" in status.stdout
