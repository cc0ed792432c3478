"""Profile the webhook path in one process with pyinstrument: where does a request's time go?

``python -m bench.profile_webhook [--db sqlite|postgresql] [--requests N]`` builds the app exactly as the
server does, posts N signed Twilio webhooks through the WSGI interface (no network, no gunicorn), and
prints pyinstrument's call tree. This is the tool behind the fixes listed in `docs/benchmarks.md`.
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from bench.bench_webhook import ACCOUNT_SID, AUTH_TOKEN, OUR_NUMBER, PATH, write_requests
from bench.common import database_urls
from bench.loadgen import read_requests


def build_app(tmp: Path, db_url: str) -> Any:
    """The gateway app on a migrated database, configured like the webhook benchmark's server."""
    from gateway import migrate
    from gateway.app import create_app

    cfg = {
        "database_url": db_url,
        "public_url": "http://bench.invalid",
        "default_provider": "twilio",
        "providers": {"twilio": {"base_url": "http://127.0.0.1:9"}},
        "senders": [{"address": OUR_NUMBER, "provider": "twilio", "scope": "bench"}],
    }
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    env = {**os.environ, "TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN}
    app = create_app(str(path), env)
    migrate.upgrade(app.extensions["optout"].db)
    return app


def post_all(app: Any, requests: Sequence[tuple[str, bytes]]) -> None:
    """Post each request through the WSGI app; fail loudly on anything but 200."""
    client = app.test_client()
    for signature, body in requests:
        resp = client.post(
            PATH,
            data=body,
            headers={"X-Twilio-Signature": signature, "Content-Type": "application/x-www-form-urlencoded"},
        )
        if resp.status_code != 200:
            raise RuntimeError(f"HTTP {resp.status_code}: {resp.get_data(as_text=True)[:200]}")


def main(argv: Sequence[str] | None = None) -> None:
    """Command line entry point."""
    from pyinstrument import Profiler

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--html", type=Path, default=None, help="also write pyinstrument's HTML report here")
    parser.add_argument("--no-profile", action="store_true", help="only time the requests (no profiler)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="optout-profile-") as tmp_name:
        tmp = Path(tmp_name)
        for _kind, database in database_urls(tmp, [args.db]):
            with database as url:
                app = build_app(tmp, url)
                warm = read_requests(
                    write_requests(tmp / "w.txt", "http://bench.invalid" + PATH, "W", 300, 20_000)
                )
                reqs = read_requests(
                    write_requests(tmp / "r.txt", "http://bench.invalid" + PATH, "P", args.requests, 20_000)
                )
                # Logging to the terminal would dominate the profile; the server logs to a file instead.
                with (tmp / "gateway.log").open("w", encoding="utf-8") as log:
                    for handler in logging.getLogger().handlers:
                        if isinstance(handler, logging.StreamHandler):
                            handler.setStream(log)
                    post_all(app, warm)
                    profiler = Profiler(interval=0.0005)
                    start, cpu = time.perf_counter(), time.process_time()
                    if not args.no_profile:
                        profiler.start()
                    post_all(app, reqs)
                    if not args.no_profile:
                        profiler.stop()
                    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
                app.extensions["optout"].db.dispose()
                each, cpu_each = elapsed / args.requests * 1000, cpu / args.requests * 1000
                print(
                    f"{args.requests} requests in {elapsed:.2f} s: {each:.2f} ms each ({cpu_each:.2f} ms CPU)"
                )
                if args.no_profile:
                    continue
                print(profiler.output_text(unicode=True, color=False, show_all=False))
                if args.html:
                    args.html.write_text(profiler.output_html(), encoding="utf-8")


if __name__ == "__main__":
    main()
