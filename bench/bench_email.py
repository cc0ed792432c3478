"""Email channel: the cost of unsubscribe links, and SMTP throughput with and without a kept connection.

- Token issue and read (seal + sign, verify + open), and `gateway.email.prepare` on a marketing email
  with text and HTML bodies: what every email adds to `submit`.
- Sends per second from `SmtpAdapter` to an SMTP server on 127.0.0.1 (aiosmtpd in this process), plain
  and with STARTTLS, keeping one connection open (what the adapter does) against a new connection per
  message (the baseline, forced by closing after each send).
- One-click ``POST /u/<token>`` through the Flask app on SQLite: the write transaction and the ledger row.

Target: with STARTTLS a kept connection sends at least 1.5x the messages per second of one connection
per message (the handshake is the cost it saves). The server shares this process and its interpreter
lock, and loopback has no round-trip time, so the gain against a real relay is larger than measured here.
"""

from __future__ import annotations

import argparse
import logging
import socket
import ssl
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.common import Row, Section, percentile, publish
from gateway.messages import Channel, OutboundMessage

TITLE = "Email channel"
REUSE_TARGET = 1.5
SECRET = "benchmark-secret-key-not-for-production"
METHOD = __doc__.split("\n\n", 1)[1] if __doc__ else ""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _per_call(fn: Any, count: int, rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(count):
            fn()
        best = min(best, (time.perf_counter() - start) / count)
    return best


def token_rows(count: int, rounds: int) -> list[Row]:
    """Microseconds per token issue, token read and `prepare` call."""
    from datetime import timedelta

    from gateway.config import settings_from_mapping
    from gateway.email import LinkSigner, prepare
    from gateway.runtime import Gateway

    signer = LinkSigner(SECRET, "https://gateway.example.com", timedelta(days=365))
    token = signer.issue("jane.doe@example.org", "acme", "newsletters")
    with tempfile.TemporaryDirectory() as tmp:
        gw = Gateway(
            settings_from_mapping({
                "database_url": f"sqlite:///{Path(tmp) / 'unused.db'}",
                "public_url": "https://gateway.example.com",
                "senders": [{"address": "news@acme.example", "provider": "console", "scope": "acme",
                             "channel": "email"}],
                "email": {"topics": {"newsletters": "Newsletters"}},
            }),
            {"OPTOUT_SECRET_KEY": SECRET},
        )
        html = "<html><body>" + "<p>Spring sale: everything half price.</p>" * 40 + "</body></html>"

        def prepare_one() -> None:
            prepare(gw, category="marketing", address="jane.doe@example.org", scope="acme",
                    topic="newsletters", body="Spring sale. " * 40, html_body=html, headers={})

        return [
            {"measure": "token issue", "µs per call": _per_call(
                lambda: signer.issue("jane.doe@example.org", "acme", "newsletters"), count, rounds) * 1e6},
            {"measure": "token read",
             "µs per call": _per_call(lambda: signer.read(token), count, rounds) * 1e6},
            {"measure": "prepare (marketing, text + 2 KB HTML)",
             "µs per call": _per_call(prepare_one, count, rounds) * 1e6},
        ]


def smtp_rows(count: int, rounds: int) -> list[Row]:
    """Messages per second to a local SMTP server, kept connection against one per message."""
    import trustme
    from aiosmtpd.controller import Controller

    from adapters.smtp import SmtpAdapter

    class Sink:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            return "250 OK"

    logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd logs every command at INFO
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_ctx)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        ca_file = str(Path(tmp) / "ca.pem")
        ca.cert_pem.write_to_path(ca_file)
        for security, kwargs in (("none", {}), ("starttls", {"tls_context": server_ctx})):
            port = _free_port()
            controller = Controller(Sink(), hostname="127.0.0.1", port=port, **kwargs)
            controller.start()
            try:
                rates = {}
                for mode in ("new connection per message", "kept connection"):
                    adapter = SmtpAdapter("127.0.0.1", port, security, ca_file=ca_file, timeout=10)
                    message = OutboundMessage(
                        channel=Channel.EMAIL, to="jane@example.org", body="Hello " * 200,
                        sender="news@acme.example", subject="Bench", html_body="<p>Hello</p>" * 100,
                        idempotency_key="bench",
                    )

                    def send_one(adapter: SmtpAdapter = adapter, mode: str = mode) -> None:
                        assert adapter.send(message).provider_message_id  # noqa: B023
                        if mode.startswith("new"):
                            adapter.close()

                    rates[mode] = 1 / _per_call(send_one, count, rounds)
                    adapter.close()
                base = rates["new connection per message"]
                for mode, rate in rates.items():
                    rows.append({"measure": f"smtp send ({security}), {mode}", "msgs/s": rate,
                                 "vs new connection": rate / base})
                if security == "starttls":
                    rows.append({"measure": f"target: kept >= {REUSE_TARGET}x with STARTTLS",
                                 "met": rates["kept connection"] / base >= REUSE_TARGET})
            finally:
                controller.stop()
    return rows


def one_click_rows(count: int) -> list[Row]:
    """Latency of one-click POSTs (distinct addresses, so each is a real state change) on SQLite."""
    from gateway import migrate
    from gateway.app import create_app
    from gateway.email import signer_for

    with tempfile.TemporaryDirectory() as tmp:
        app = create_app({
            "database_url": f"sqlite:///{Path(tmp) / 'bench.db'}",
            "public_url": "https://gateway.example.com",
            "log_level": "WARNING",
            "senders": [{"address": "news@acme.example", "provider": "console", "scope": "acme",
                         "channel": "email"}],
        }, {"OPTOUT_SECRET_KEY": SECRET})
        gw = app.extensions["optout"]
        migrate.upgrade(gw.db)
        client = app.test_client()
        signer = signer_for(gw)
        paths = [f"/u/{signer.issue(f'person{i}@example.org', 'acme')}" for i in range(count)]
        timings = []
        for path in paths:
            start = time.perf_counter()
            resp = client.post(path, data="List-Unsubscribe=One-Click",
                               content_type="application/x-www-form-urlencoded")
            timings.append(time.perf_counter() - start)
            assert resp.status_code == 200
        gw.db.dispose()
    return [{"measure": "one-click POST (SQLite)", "p50 ms": percentile(timings, 50) * 1e3,
             "p95 ms": percentile(timings, 95) * 1e3}]


def run(quick: bool = False) -> list[Row]:
    """Every measurement, one row each."""
    count, rounds = (200, 2) if quick else (2_000, 5)
    return [*token_rows(count, rounds), *smtp_rows(50 if quick else 300, rounds),
            *one_click_rows(100 if quick else 500)]


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: ``python -m bench.bench_email [--quick] [--no-write]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args(argv)
    publish(Section(TITLE, run(args.quick), METHOD), write=not args.no_write)


if __name__ == "__main__":
    main()
