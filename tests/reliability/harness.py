"""Real processes for the fault tests: the gunicorn server, `optout worker`, and a local provider double.

`Stack` writes a config.yaml for one test database and starts or SIGKILLs the server and the workers.
`ProviderDouble` stands in for Twilio's Messages API on 127.0.0.1: it records every send, delivers a
given idempotency token (``I-Twilio-Idempotency-Token``) at most once, as Twilio does, and can be told to
fail the next requests with 500s, 429s, timeouts, or to hold a request open until released.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

import requests
import yaml
from sqlalchemy import func
from sqlmodel import col, select
from twilio.request_validator import RequestValidator

from gateway.db import Database
from gateway.models import ConsentEvent, InboundRecord, OptOut, OutboxMessage
from tests.conftest import OUR_CLICKSEND, OUR_TWILIO, TEST_ENV, base_config

IDEMPOTENCY_HEADER = "I-Twilio-Idempotency-Token"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(condition: Callable[[], bool], deadline: float, what: str, poll: float = 0.05) -> None:
    """Poll ``condition`` until it holds; fail naming ``what`` once ``deadline`` seconds have passed."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if condition():
            return
        time.sleep(poll)
    if not condition():
        raise AssertionError(f"timed out after {deadline:.0f}s waiting for {what}")


# ---- the provider double -------------------------------------------------------------------------


@dataclass
class Send:
    """One request the double received."""

    token: str
    to: str
    body: str
    at: float
    answer: str


@dataclass
class ProviderDouble:
    """A Twilio Messages API on localhost, with a script of failures for the next requests.

    Script steps: ``"500"`` and ``"429"`` answer an error without delivering; ``"timeout"`` answers only
    after the client gave up, without delivering; ``"late"`` delivers and then answers too late, like a
    provider that took the message while the connection timed out. Without a step the send is delivered.
    `hold_next` makes the next delivered send wait for `release` before answering (a worker killed
    mid-send). A repeated idempotency token gets the first answer and is not delivered again.
    """

    answer_after: float = 2.0
    retry_after: int = 1
    sends: list[Send] = field(default_factory=list)
    delivered: dict[str, Send] = field(default_factory=dict)
    script: deque[str] = field(default_factory=deque)
    hold_next: bool = False
    held: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)
    closing: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> None:
        """Listen on a free local port in a background thread."""
        double = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                status, body, headers = double._answer(self.headers.get(IDEMPOTENCY_HEADER) or "", form)
                try:
                    self.send_response(status)
                    for name, value in {"Content-Type": "application/json", **headers}.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(json.dumps(body).encode())
                except OSError:
                    pass  # the client gave up (a timeout, or its process was killed)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        """The base URL to configure as ``providers.twilio.base_url``."""
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def release(self) -> None:
        """Let a held send answer (its client is usually dead by then)."""
        self.released.set()

    def stop(self) -> None:
        """Answer anything still waiting and shut the listener down."""
        self.closing.set()
        self.released.set()
        self.server.shutdown()
        self.server.server_close()

    def _answer(self, token: str, form: dict[str, str]) -> tuple[int, dict[str, Any], dict[str, str]]:
        with self.lock:
            step = self.script.popleft() if self.script else "ok"
            send = Send(token, form.get("To", ""), form.get("Body", ""), time.time(), step)
            self.sends.append(send)
            if step in ("ok", "late") and token not in self.delivered:
                self.delivered[token] = send
                if self.hold_next and step == "ok":
                    step, self.hold_next = "hold", False
        if step == "500":
            return 500, {"code": 20500, "message": "Internal Server Error", "status": 500}, {}
        if step == "429":
            body = {"code": 20429, "message": "Too Many Requests", "status": 429}
            return 429, body, {"Retry-After": str(self.retry_after)}
        if step in ("timeout", "late"):
            self.closing.wait(self.answer_after)
        if step == "hold":
            self.held.set()
            self.released.wait(60)
        sid = "SM" + hashlib.sha256(token.encode()).hexdigest()[:32]
        return 201, {"sid": sid, "status": "queued", "to": form.get("To")}, {}

    # ---- what happened --------------------------------------------------------------------------

    def requests_per_token(self) -> Counter[str]:
        """How many send requests each idempotency token got."""
        with self.lock:
            return Counter(s.token for s in self.sends)

    def deliveries_per_recipient(self) -> Counter[str]:
        """How many distinct messages reached each phone number."""
        with self.lock:
            return Counter(s.to for s in self.delivered.values())

    def request_count(self) -> int:
        """Every send request received, repeats included."""
        with self.lock:
            return len(self.sends)


# ---- server and worker processes -----------------------------------------------------------------


class Stack:
    """A config.yaml for one test database, and the gateway processes that run on it."""

    def __init__(self, db_url: str, tmp: Path, double: ProviderDouble | None = None) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.tmp = tmp
        self.config = base_config(db_url)
        self.config["public_url"] = self.base
        twilio = {"base_url": double.url if double else "http://127.0.0.1:9", "timeout": 10.0}
        self.config["providers"] = {"twilio": twilio, "clicksend": {"base_url": "http://127.0.0.1:9"}}
        self.config["outbox"] = {
            "base_delay": 0.2,
            "max_delay": 1.0,
            "max_attempts": 50,
            "lease_seconds": 30,
            "poll_interval": 0.1,
            "batch_size": 20,
        }
        self.config_path = tmp / "config.yaml"
        self.env = {**os.environ, **TEST_ENV, "OPTOUT_CONFIG": str(self.config_path)}
        self.env.pop("DATABASE_URL", None)
        self.server: subprocess.Popen[bytes] | None = None
        self.workers: list[subprocess.Popen[bytes]] = []
        self.db = Database(db_url)
        self._logs: list[Path] = []

    def write_config(self) -> None:
        """Write the (possibly edited) configuration for the next process to start."""
        self.config_path.write_text(yaml.safe_dump(self.config))

    def _spawn(self, args: Sequence[str], name: str) -> subprocess.Popen[bytes]:
        out = self.tmp / f"{name}-{len(self._logs)}.out"
        err = self.tmp / f"{name}-{len(self._logs)}.err"
        self._logs += [out, err]
        # A session of its own, so SIGKILL can take the whole process group (gunicorn's master and workers).
        return subprocess.Popen(
            [sys.executable, "-m", "gateway", *args],
            env=self.env,
            stdout=out.open("wb"),
            stderr=err.open("wb"),
            start_new_session=True,
        )

    def start_server(self, workers: int = 2) -> None:
        """Start gunicorn and wait until its readiness probe answers."""
        self.write_config()
        self.server = self._spawn(["serve", "--port", str(self.port), "--workers", str(workers)], "server")

        def ready() -> bool:
            assert self.server is not None
            if self.server.poll() is not None:
                raise AssertionError(f"server exited with {self.server.returncode}: {self.log_text()[-2000:]}")
            try:
                return requests.get(self.base + "/readyz", timeout=5).status_code == 200
            except requests.RequestException:
                return False

        wait_until(ready, 60, "the server to become ready", poll=0.1)

    def start_worker(self) -> subprocess.Popen[bytes]:
        """Start one `optout worker` and wait for its start-up line."""
        self.write_config()
        proc = self._spawn(["worker"], "worker")
        self.workers.append(proc)
        err = self._logs[-1]

        def started() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"worker exited with {proc.returncode}: {err.read_text()[-2000:]}")
            return " started" in err.read_text(errors="replace")

        wait_until(started, 60, "the worker to start", poll=0.1)
        return proc

    def kill_server(self) -> None:
        """SIGKILL the server's master and its workers at once (a crash, not a shutdown)."""
        assert self.server is not None
        os.killpg(self.server.pid, signal.SIGKILL)
        self.server.wait(timeout=30)

    def kill_workers(self) -> None:
        """SIGKILL every outbox worker."""
        for proc in self.workers:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)
        self.workers = []

    def stop(self) -> None:
        """End every process this stack started (SIGTERM, then SIGKILL if needed)."""
        procs = [p for p in [self.server, *self.workers] if p is not None and p.poll() is None]
        for proc in procs:
            os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=20)
        self.db.dispose()

    def log_text(self) -> str:
        """Everything the server and workers wrote to stdout and stderr so far."""
        return "\n".join(p.read_text(errors="replace") for p in self._logs if p.exists())

    # ---- webhooks -------------------------------------------------------------------------------

    def twilio(self, text: str, sender: str, sid: str, to: str = OUR_TWILIO) -> PreparedPost:
        """A signed Twilio inbound webhook for this server."""
        url = self.base + "/webhooks/twilio/inbound"
        form = {
            "MessageSid": sid,
            "SmsSid": sid,
            "AccountSid": TEST_ENV["TWILIO_ACCOUNT_SID"],
            "From": sender,
            "To": to,
            "Body": text,
            "NumMedia": "0",
            "NumSegments": "1",
            "SmsStatus": "received",
            "ApiVersion": "2010-04-01",
        }
        signature = RequestValidator(TEST_ENV["TWILIO_AUTH_TOKEN"]).compute_signature(url, form)
        return PreparedPost(url, urlencode(form).encode(), {**FORM, "X-Twilio-Signature": signature}, sid)

    def clicksend(self, text: str, sender: str, message_id: str, timestamp: int) -> PreparedPost:
        """A ClickSend inbound push (token in the URL) carrying the provider's own ``timestamp``."""
        url = f"{self.base}/webhooks/clicksend/inbound?{urlencode({'token': TEST_ENV['CLICKSEND_WEBHOOK_TOKEN']})}"
        form = {
            "timestamp": str(timestamp),
            "from": sender,
            "to": OUR_CLICKSEND,
            "body": text,
            "message_id": message_id,
            "custom_string": "",
            "original_body": "",
            "original_message_id": "",
        }
        return PreparedPost(url, urlencode(form).encode(), dict(FORM), message_id)

    # ---- the database ---------------------------------------------------------------------------

    def count(self, model: Any, *where: Any) -> int:
        """Rows of ``model`` matching ``where``."""
        with self.db.read() as session:
            stmt = select(func.count()).select_from(model).where(*where)
            return int(session.execute(stmt).scalar_one())

    def outbox(self) -> list[OutboxMessage]:
        """Every outbox row, oldest first."""
        with self.db.read() as session:
            return list(session.execute(select(OutboxMessage).order_by(col(OutboxMessage.id))).scalars())

    def ledger(self) -> list[ConsentEvent]:
        """Every consent event, in the order recorded."""
        with self.db.read() as session:
            return list(session.execute(select(ConsentEvent).order_by(col(ConsentEvent.id))).scalars())

    def states(self) -> dict[str, OptOut]:
        """The consent state rows by address (tests use one scope per provider)."""
        with self.db.read() as session:
            return {s.address: s for s in session.execute(select(OptOut)).scalars()}

    def inbound_ids(self) -> set[str]:
        """The provider message ids of every stored inbound message."""
        with self.db.read() as session:
            return set(session.execute(select(InboundRecord.provider_message_id)).scalars())

    def sent_count(self) -> int:
        """Outbox rows sent so far."""
        return self.count(OutboxMessage, col(OutboxMessage.status) == "sent")

    def all_sent(self, expected: int) -> bool:
        """True once exactly ``expected`` outbox rows exist and every one is sent."""
        return self.count(OutboxMessage) == expected and self.sent_count() == expected


@dataclass(frozen=True)
class PreparedPost:
    """A webhook ready to post (signing is done up front so the load loop only sends)."""

    url: str
    body: bytes
    headers: dict[str, str]
    key: str


_sessions = threading.local()


def post(item: PreparedPost, timeout: float = 30) -> int:
    """POST one webhook; its HTTP status, or 0 when the connection failed."""
    session = getattr(_sessions, "session", None)
    if session is None:  # one per client thread: building a session per request costs more than the post
        session = _sessions.session = requests.Session()
    try:
        return session.post(item.url, data=item.body, headers=item.headers, timeout=timeout).status_code
    except requests.RequestException:
        return 0


def post_all(items: Iterable[PreparedPost], threads: int = 16) -> list[int]:
    """POST every item from ``threads`` concurrent clients; the statuses, in item order."""
    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(post, items))


def phone(i: int, prefix: str = "+1415") -> str:
    """The i-th test phone number (distinct for i < 10**7)."""
    return f"{prefix}{7000000 + i}"


def new_id(prefix: str) -> str:
    """A provider message id nobody used before."""
    return f"{prefix}{uuid.uuid4().hex}"
