"""Drive an HTTP endpoint with pre-built POST requests: wrk when installed, else a threaded Python client.

Both take the same requests file (one ``signature<TAB>body`` line per request), keep a fixed number of
connections busy for a fixed time, and report the same fields: completed requests, errors, and latency
percentiles in microseconds. wrk is preferred because a Python client on a small machine competes with
the server for the CPU and becomes the bottleneck itself.
"""

from __future__ import annotations

import http.client
import itertools
import json
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from bench.common import percentile

LUA = Path(__file__).with_name("wrk_post.lua")


@dataclass(frozen=True)
class LoadResult:
    """What one load run measured."""

    tool: str
    requests: int
    seconds: float
    errors: int
    p50_ms: float
    p99_ms: float
    max_ms: float

    @property
    def rps(self) -> float:
        """Completed requests per second."""
        return self.requests / self.seconds if self.seconds else 0.0


def have_wrk() -> bool:
    """Whether wrk is on the PATH."""
    return shutil.which("wrk") is not None


def run_load(
    url: str, requests_file: Path, connections: int, seconds: float, tool: str = "auto"
) -> LoadResult:
    """Keep ``connections`` requests in flight against ``url`` for ``seconds``."""
    if tool == "wrk" or (tool == "auto" and have_wrk()):
        return _wrk(url, requests_file, connections, seconds)
    return _python(url, requests_file, connections, seconds)


def _wrk(url: str, requests_file: Path, connections: int, seconds: float) -> LoadResult:
    # One wrk thread drives every connection: it needs a fraction of a core, leaving the rest to the server.
    cmd = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "10s",
        "-s",
        str(LUA),
        url,
        "--",
        str(requests_file),
    ]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    line = next(line for line in out.splitlines() if line.startswith("RESULT "))
    data = json.loads(line.removeprefix("RESULT "))
    errors = sum(
        data[k] for k in ("status_errors", "connect_errors", "read_errors", "write_errors", "timeouts")
    )
    return LoadResult(
        "wrk",
        int(data["requests"]),
        data["duration_us"] / 1e6,
        int(errors),
        data["p50_us"] / 1000,
        data["p99_us"] / 1000,
        data["max_us"] / 1000,
    )


def read_requests(requests_file: Path) -> list[tuple[str, bytes]]:
    """The (signature, body) pairs of a requests file."""
    pairs = []
    for line in requests_file.read_text(encoding="utf-8").splitlines():
        signature, _, body = line.partition("\t")
        pairs.append((signature, body.encode()))
    return pairs


def _python(url: str, requests_file: Path, connections: int, seconds: float) -> LoadResult:
    parts = urlsplit(url)
    host, port, path = parts.hostname or "127.0.0.1", parts.port or 80, parts.path or "/"
    prepared = read_requests(requests_file)
    order = itertools.count()
    lock = threading.Lock()
    latencies: list[list[float]] = [[] for _ in range(connections)]
    errors = [0] * connections
    deadline = time.perf_counter() + seconds

    def client(slot: int) -> None:
        conn = http.client.HTTPConnection(host, port, timeout=10)
        while time.perf_counter() < deadline:
            with lock:
                signature, body = prepared[next(order) % len(prepared)]
            headers = {"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature}
            start = time.perf_counter()
            try:
                conn.request("POST", path, body=body, headers=headers)
                resp = conn.getresponse()
                resp.read()
                status = resp.status
                if resp.will_close:
                    conn.close()
            except (OSError, http.client.HTTPException):
                conn.close()
                status = 0
            latencies[slot].append(time.perf_counter() - start)
            if status != 200:
                errors[slot] += 1
        conn.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(connections)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    flat = [x * 1000 for slot in latencies for x in slot]
    return LoadResult(
        "python",
        len(flat),
        elapsed,
        sum(errors),
        percentile(flat, 50),
        percentile(flat, 99),
        max(flat, default=0),
    )
