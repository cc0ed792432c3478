"""Webhook throughput: the gateway's full inbound path against a bare Flask endpoint on the same server.

Both run under gunicorn with the same command-line flags, worker count and worker class; the bare app
(`bench.bare_app`) only parses the form and answers the same empty TwiML. The load is correctly signed
Twilio inbound webhooks (STOP, START, HELP and ordinary text) from thousands of distinct numbers, each
with its own MessageSid so deduplication never short-circuits the path; afterwards the database is
checked to prove every answered request stored its message. Rounds alternate bare and gateway runs, and
the medians are reported.

A third server runs in the same rounds: the floor (`bench.floor_app`), the same work written as directly
as the stack allows (the SDK's signature check, `phonenumbers`, hand-written SQL on the bare driver). Its
ratio is the ceiling for any implementation of this path in Flask and Python on the machine.

Target (issue 6): the gateway reaches at least 50% of the bare endpoint's requests/s, with p99 under
25 ms at 16 connections, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import yaml
from twilio.request_validator import RequestValidator

from bench.common import ROOT, Row, Section, database_urls, publish, python, stop
from bench.loadgen import LoadResult, have_wrk, run_load

TITLE = "Webhook throughput"
ACCOUNT_SID = "AC" + "b" * 32
AUTH_TOKEN = "bench-auth-token"
OUR_NUMBER = "+14155550199"
PATH = "/webhooks/twilio/inbound"
#: One cycle of inbound texts: mostly opt-outs (a campaign's replies), some opt-ins, HELP and chatter.
TEXTS = (
    "STOP",
    "What time do you open tomorrow?",
    "stop",
    "START",
    "HELP",
    "Unsubscribe",
    "thanks!",
    "Stop.",
    "yes",
    "the bus stop moved",
)
RATIO_TARGET = 0.5
P99_TARGET_MS = 25.0


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def person(i: int) -> str:
    """The ``i``-th distinct sender number (E.164, US)."""
    return f"+1{415 + (i // 10_000) % 400}555{i % 10_000:04d}"


def twilio_form(i: int, sid: str, senders: int) -> dict[str, str]:
    """The form Twilio posts for an inbound SMS (the same fields, in the same order)."""
    return {
        "ToCountry": "US",
        "ToState": "CA",
        "SmsMessageSid": sid,
        "NumMedia": "0",
        "ToCity": "",
        "FromZip": "",
        "SmsSid": sid,
        "FromState": "CA",
        "SmsStatus": "received",
        "FromCity": "",
        "Body": TEXTS[i % len(TEXTS)],
        "FromCountry": "US",
        "To": OUR_NUMBER,
        "ToZip": "",
        "NumSegments": "1",
        "MessageSid": sid,
        "AccountSid": ACCOUNT_SID,
        "From": person(i % senders),
        "ApiVersion": "2010-04-01",
    }


def write_requests(path: Path, url: str, prefix: str, count: int, senders: int) -> Path:
    """Write ``count`` signed requests for ``url`` (one ``signature<TAB>body`` line each)."""
    validator = RequestValidator(AUTH_TOKEN)
    with path.open("w", encoding="utf-8") as out:
        for i in range(count):
            form = twilio_form(i, f"SM{prefix}{i:010d}", senders)
            out.write(f"{validator.compute_signature(url, form)}\t{urlencode(form)}\n")
    return path


def _config(tmp: Path, db_url: str, port: int) -> Path:
    cfg = {
        "database_url": db_url,
        "public_url": f"http://127.0.0.1:{port}",
        "brand": "Bench",
        "default_provider": "twilio",
        # Sends never happen here (no worker runs), but the adapter needs a base URL on this machine.
        "providers": {"twilio": {"base_url": "http://127.0.0.1:9"}},
        "senders": [{"address": OUR_NUMBER, "provider": "twilio", "scope": "bench"}],
    }
    path = tmp / f"config-{port}.yaml"
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return path


def _wait_ready(base: str, proc: subprocess.Popen[Any], deadline: float = 60.0) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"server on {base} exited with status {proc.returncode}")
        try:
            with urllib.request.urlopen(base + "/readyz", timeout=5) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"server on {base} did not become ready")


def _servers(tmp: Path, db_url: str, workers: int) -> tuple[dict[str, Any], list[subprocess.Popen[Any]]]:
    """Migrate, then start the gateway, the bare app and the floor; {name: base URL} and the processes."""
    from gateway.cli import _gunicorn_args

    gw_port, bare_port, floor_port = free_port(), free_port(), free_port()
    config = _config(tmp, db_url, gw_port)
    env = {
        **os.environ,
        "OPTOUT_CONFIG": str(config),
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "PYTHONPATH": str(ROOT),
    }
    env.pop("DATABASE_URL", None)
    subprocess.run(
        [python(), "-m", "gateway", "db", "upgrade"], env=env, check=True, capture_output=True, cwd=ROOT
    )
    log = (tmp / f"gateway-{gw_port}.log").open("wb")
    gateway = subprocess.Popen(
        [python(), "-m", "gateway", "serve", "--port", str(gw_port), "--workers", str(workers)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log,
        cwd=ROOT,
    )
    # The same gunicorn flags as `optout serve`, with only the application swapped.
    bare_args = [*_gunicorn_args("127.0.0.1", bare_port, workers)[:-1], "bench.bare_app:app"]
    bare = subprocess.Popen(bare_args, env=env, stdout=subprocess.DEVNULL, stderr=log, cwd=ROOT)
    floor_args = [*_gunicorn_args("127.0.0.1", floor_port, workers)[:-1], "bench.floor_app:app"]
    floor_env = {**env, "FLOOR_DATABASE_URL": db_url}
    floor = subprocess.Popen(floor_args, env=floor_env, stdout=subprocess.DEVNULL, stderr=log, cwd=ROOT)
    procs = [gateway, bare, floor]
    bases = {
        "gateway": f"http://127.0.0.1:{gw_port}",
        "bare": f"http://127.0.0.1:{bare_port}",
        "floor": f"http://127.0.0.1:{floor_port}",
    }
    try:
        for name, proc in zip(bases, procs, strict=True):
            _wait_ready(bases[name], proc)
    except Exception:
        for proc in procs:
            stop(proc)
        raise
    return bases, procs


def _inbound_rows(db_url: str) -> int:
    from sqlalchemy import func, select

    from gateway.db import Database
    from gateway.models import InboundRecord

    db = Database(db_url)
    try:
        with db.read() as session:
            return int(session.execute(select(func.count()).select_from(InboundRecord)).scalar_one())
    finally:
        db.dispose()


def _effects(db_url: str) -> dict[str, int]:
    from sqlalchemy import func, select

    from gateway.db import Database
    from gateway.models import ConsentEvent, OptOut, OutboxMessage

    db = Database(db_url)
    try:
        with db.read() as session:
            # The floor app's rows (scope "floor") are not the gateway's.
            return {
                name: int(session.execute(select(func.count()).where(model.scope != "floor")).scalar_one())
                for name, model in (("opt_outs", OptOut), ("ledger", ConsentEvent), ("outbox", OutboxMessage))
            }
    finally:
        db.dispose()


def measure(
    kind: str,
    db_url: str,
    tmp: Path,
    *,
    connections: int,
    workers: int,
    seconds: float,
    rounds: int,
    tool: str,
) -> Row:
    """Bare vs gateway vs floor on one database; one summary row."""
    bases, procs = _servers(tmp, db_url, workers)
    senders = 20_000
    try:
        urls = {name: base + PATH for name, base in bases.items()}
        # Warm both servers up (imports, connection pools, caches) and estimate the gateway's rate.
        warm = {
            n: write_requests(tmp / f"warm-{n}.txt", u, f"W{n[0]}", 3000, senders) for n, u in urls.items()
        }
        run_load(urls["bare"], warm["bare"], connections, 2, tool)
        run_load(urls["floor"], warm["floor"], connections, 2, tool)
        estimate = run_load(urls["gateway"], warm["gateway"], connections, 2, tool)
        # Enough distinct messages that no round repeats one (a repeat would be a cheap duplicate).
        per_round = max(5000, int(estimate.rps * seconds * 3))
        results: dict[str, list[LoadResult]] = {"bare": [], "gateway": [], "floor": []}
        short: list[str] = []
        for r in range(rounds):
            for name in ("bare", "gateway", "floor"):
                reqs = write_requests(
                    tmp / f"{name}-{r}.txt", urls[name], f"R{r}{name[0]}", per_round, senders
                )
                before = _inbound_rows(db_url) if name == "gateway" else 0
                result = run_load(urls[name], reqs, connections, seconds, tool)
                results[name].append(result)
                if name == "gateway":
                    stored = _inbound_rows(db_url) - before
                    # Requests still in flight when the load stopped may be stored without being counted.
                    if not result.requests <= stored <= result.requests + connections:
                        short.append(f"round {r}: {result.requests} answered but {stored} stored")
        effects = _effects(db_url)
    finally:
        for proc in procs:
            stop(proc)
    bare_rps = statistics.median(r.rps for r in results["bare"])
    gw_rps = statistics.median(r.rps for r in results["gateway"])
    gw_p99 = statistics.median(r.p99_ms for r in results["gateway"])
    floor_rps = statistics.median(r.rps for r in results["floor"])
    errors = sum(r.errors for rs in results.values() for r in rs)
    ratio = gw_rps / bare_rps if bare_rps else 0.0
    if short:
        print(f"{kind}: stored-message check failed: {'; '.join(short)}", file=sys.stderr)
    return {
        "database": kind,
        "bare req/s": bare_rps,
        "bare p50 ms": statistics.median(r.p50_ms for r in results["bare"]),
        "bare p99 ms": statistics.median(r.p99_ms for r in results["bare"]),
        "gateway req/s": gw_rps,
        "gateway p50 ms": statistics.median(r.p50_ms for r in results["gateway"]),
        "gateway p99 ms": gw_p99,
        "ratio": ratio,
        "floor req/s": floor_rps,
        "floor p99 ms": statistics.median(r.p99_ms for r in results["floor"]),
        "floor ratio": floor_rps / bare_rps if bare_rps else 0.0,
        "errors": errors,
        "all stored": not short,
        f"ratio ≥ {RATIO_TARGET}": ratio >= RATIO_TARGET,
        f"p99 < {P99_TARGET_MS:.0f} ms": gw_p99 < P99_TARGET_MS,
        "rows (opt-outs/ledger/outbox)": f"{effects['opt_outs']}/{effects['ledger']}/{effects['outbox']}",
    }


def run(
    quick: bool = False,
    databases: Sequence[str] = ("sqlite", "postgresql"),
    connections: int = 16,
    workers: int = 2,
    seconds: float | None = None,
    rounds: int | None = None,
    tool: str = "auto",
) -> list[Row]:
    """Measure every requested database; one row each."""
    seconds = seconds or (3.0 if quick else 10.0)
    rounds = rounds or (1 if quick else 3)
    rows = []
    with tempfile.TemporaryDirectory(prefix="optout-bench-") as tmp_name:
        tmp = Path(tmp_name)
        for kind, database in database_urls(tmp, databases):
            with database as url:
                rows.append(
                    measure(
                        kind,
                        url,
                        tmp,
                        connections=connections,
                        workers=workers,
                        seconds=seconds,
                        rounds=rounds,
                        tool=tool,
                    )
                )
    return rows


def method(connections: int, workers: int, seconds: float, rounds: int, tool: str) -> str:
    """How the numbers in the table were produced."""
    loader = (
        "wrk (1 thread)" if tool == "wrk" or (tool == "auto" and have_wrk()) else "a threaded Python client"
    )
    return (
        f"gunicorn, {workers} sync workers for every server; load from {loader} with {connections} "
        f"connections for {seconds:g} s per run, {rounds} alternating round(s), medians reported. Requests "
        f"are signed Twilio inbound webhooks from 20,000 distinct numbers, each with its own MessageSid, "
        f"cycling through {', '.join(repr(t) for t in TEXTS)}. *ratio* = gateway req/s ÷ bare req/s; "
        f"*all stored* = every answered request's message is in the database (no duplicate short-cut). "
        f"*floor* = `bench.floor_app`, the same work (signature, normalising, keywords, message, opt-out, "
        f"ledger row, reply, one transaction) in hand-written SQL on the bare driver, without the gateway's "
        f"structure, served the same way in the same rounds: the ceiling for any implementation on this "
        f"stack and machine. "
        f"Targets: ratio ≥ {RATIO_TARGET}, gateway p99 < {P99_TARGET_MS:.0f} ms."
    )


def describe(quick: bool = False) -> str:
    """`method` for the settings `run` uses by default."""
    return method(16, 2, 3.0 if quick else 10.0, 1 if quick else 3, "auto")


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: ``python -m bench.bench_webhook [--quick] [--db sqlite] ...``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="one short round")
    parser.add_argument("--db", action="append", choices=["sqlite", "postgresql"], help="database(s) to use")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers for both servers")
    parser.add_argument("--seconds", type=float, default=None, help="length of each load run")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--tool", choices=["auto", "wrk", "python"], default="auto")
    parser.add_argument("--no-write", action="store_true", help="do not update docs/benchmarks.md")
    args = parser.parse_args(argv)
    seconds = args.seconds or (3.0 if args.quick else 10.0)
    rounds = args.rounds or (1 if args.quick else 3)
    rows = run(
        args.quick,
        args.db or ("sqlite", "postgresql"),
        args.connections,
        args.workers,
        seconds,
        rounds,
        args.tool,
    )
    publish(
        Section(TITLE, rows, method(args.connections, args.workers, seconds, rounds, args.tool)),
        write=not args.no_write,
    )


if __name__ == "__main__":
    main()
