"""The webhook benchmark's floor: the gateway's webhook work written as directly as this stack allows.

The bare endpoint (`bench.bare_app`) measures the web stack alone. This app measures the least that the
*work* of a webhook costs on the same stack: it checks the Twilio signature with the SDK, normalises the
sender with `phonenumbers`, matches the stock keywords with a dictionary, and stores the message, the
opt-out or opt-in, its ledger row and the confirmation reply in one transaction with hand-written SQL on
the bare driver (sqlite3 or psycopg, writers queued on a file lock on SQLite as the gateway does). It has
none of the gateway's structure: no rule engine, adapters, ORM, pool, validation, error contract, rate
limit, logging or idempotent replies. Its rate against the bare endpoint is the ceiling for any
implementation of the webhook path in Flask and Python on this machine: the gap between it and the
gateway is what the gateway's own code costs, the gap between it and the bare endpoint is the work.

Configured from the environment the benchmark sets: ``FLOOR_DATABASE_URL`` and ``TWILIO_AUTH_TOKEN``.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import sqlite3
from datetime import UTC, datetime
from typing import Any

from flask import Flask, Response, request
from twilio.request_validator import RequestValidator

from adapters.twilio import EMPTY_TWIML
from gateway.addresses import normalize_phone

app = Flask(__name__)
_VALIDATOR = RequestValidator(os.environ.get("TWILIO_AUTH_TOKEN", ""))
_URL = os.environ.get("FLOOR_DATABASE_URL", "")
_SCOPE = "floor"  # its own scope: its opt-outs never change what the gateway finds
_PUNCTUATION = re.compile(r"[\W_]+")
# keyword -> True (opt out), False (opt in), None (help): the stock rules' exact keywords.
_KEYWORDS: dict[str, bool | None] = {
    **dict.fromkeys(["STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "OPTOUT", "REVOKE"], True),
    **dict.fromkeys(["START", "UNSTOP", "YES", "RESUME"], False),
    **dict.fromkeys(["HELP", "INFO"], None),
}
_REPLIES = {True: "You are unsubscribed.", False: "You are subscribed again.", None: "Help: reply STOP."}


class _Store:
    """One connection per worker process, opened on first use (after gunicorn forked)."""

    def __init__(self, url: str) -> None:
        self.sqlite = url.startswith("sqlite")
        self.mark = "?" if self.sqlite else "%s"
        if self.sqlite:
            path = url.split("///", 1)[1]
            self.conn: Any = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON", "busy_timeout=30000"):
                self.conn.execute(f"PRAGMA {pragma}")
            self.lock = os.open(path + ".floor-lock", os.O_RDWR | os.O_CREAT, 0o600)
        else:
            import psycopg

            self.conn = psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"))

    def sql(self, text: str) -> str:
        return text.replace("?", self.mark)

    def store(self, form: dict[str, str], sender: str, action: bool | None, matched: bool) -> None:
        now = datetime.now(UTC)
        stamp: Any = now.strftime("%Y-%m-%d %H:%M:%S.%f") if self.sqlite else now
        if self.sqlite:
            fcntl.flock(self.lock, fcntl.LOCK_EX)
            self.conn.execute("BEGIN IMMEDIATE")
        try:
            cur = self.conn.execute(
                self.sql(
                    "INSERT INTO inbound_messages (provider, provider_message_id, channel, sender,"
                    " recipient, text, rule, raw, received_at, recorded_at)"
                    " VALUES ('twilio', ?, 'sms', ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING RETURNING id"
                ),
                (form["MessageSid"], sender, form["To"], form["Body"], "floor" if matched else None,
                 json.dumps(form), stamp, stamp),
            )  # fmt: skip
            row = cur.fetchone()
            if row is not None and matched:
                self._effects(row[0], sender, form, action, stamp)
            self.conn.commit()
        except BaseException:
            self.conn.rollback()
            raise
        finally:
            if self.sqlite:
                fcntl.flock(self.lock, fcntl.LOCK_UN)

    def _effects(
        self, inbound_id: int, sender: str, form: dict[str, str], action: bool | None, stamp: Any
    ) -> None:
        reply = action is None
        if action is not None:
            # One upsert: a row comes back when the address is new or its state flips.
            cur = self.conn.execute(
                self.sql(
                    "INSERT INTO opt_outs (channel, address, scope, opted_out, source, rule, since,"
                    " event_at) VALUES ('sms', ?, ?, ?, 'sms_keyword', 'floor', ?, ?)"
                    " ON CONFLICT (channel, address, scope) DO UPDATE SET opted_out = excluded.opted_out,"
                    " since = excluded.since, event_at = excluded.event_at"
                    " WHERE opt_outs.opted_out <> excluded.opted_out RETURNING id"
                ),
                (sender, _SCOPE, action, stamp, stamp),
            )
            changed = cur.fetchone() is not None
            self.conn.execute(
                self.sql(
                    "INSERT INTO consent_events (channel, address, scope, action, changed, source, rule,"
                    " raw_text, provider, provider_message_id, evidence, occurred_at, recorded_at)"
                    " VALUES ('sms', ?, ?, ?, ?, 'sms_keyword', 'floor', ?, 'twilio', ?, '{}', ?, ?)"
                ),
                (sender, _SCOPE, "opt_out" if action else "opt_in", changed, form["Body"], form["MessageSid"],
                 stamp, stamp),
            )  # fmt: skip
            reply = changed
        if reply:
            reply_key = f"floor:{inbound_id}"
            self.conn.execute(
                self.sql(
                    "INSERT INTO outbox (kind, channel, provider, sender, recipient, scope, category, body,"
                    " headers, status, attempts, max_attempts, next_attempt_at, idempotency_key, inbound_id,"
                    " created_at) VALUES ('message', 'sms', 'twilio', ?, ?, ?, 'compliance', ?, '{}',"
                    " 'queued', 0, 8, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
                ),
                (form["To"], sender, _SCOPE, _REPLIES[action], stamp, reply_key, inbound_id, stamp),
            )


_store: _Store | None = None


@app.post("/webhooks/twilio/inbound")
def inbound() -> Response:
    """Verify, normalise, match and store one inbound SMS; acknowledge with empty TwiML."""
    global _store
    form = request.form.to_dict()
    if not form.get("MessageSid"):
        return Response(b"missing MessageSid", status=400)
    if not _VALIDATOR.validate(request.url, form, request.headers.get("X-Twilio-Signature", "")):
        return Response(b"bad signature", status=403)
    sender = normalize_phone(form["From"], "US")
    keyword = _PUNCTUATION.sub(" ", form["Body"]).strip().upper()
    matched = keyword in _KEYWORDS
    if _store is None:
        _store = _Store(_URL)
    _store.store(form, sender, _KEYWORDS.get(keyword), matched)
    return Response(EMPTY_TWIML, status=200, content_type="text/xml")


@app.get("/readyz")
def readyz() -> Response:
    """Answers once the worker is up (the benchmark waits for it)."""
    return Response(b"ok", status=200)
