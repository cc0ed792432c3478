"""Shared benchmark plumbing: timing statistics, tables, the machine description and `docs/benchmarks.md`.

Every benchmark reports ratios against a baseline measured in the same run on the same machine, so a
busy or slow machine still gives comparable numbers. Each script owns one ``## `` section of
`docs/benchmarks.md` and replaces only that section, so the scripts can be run one at a time.
"""

from __future__ import annotations

import contextlib
import os
import platform
import shlex
import sqlite3
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "benchmarks.md"
#: Where PostgreSQL benchmarks create (and afterwards drop) their own database.
PG_ADMIN_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")

Row = dict[str, Any]

_DOC_HEADER = """# Benchmarks

Run by hand with `make bench` (everything) or `python -m bench.<name>`; `--quick` gives a shorter run.
Every figure that carries a target is a **ratio against a baseline measured in the same run on the same
machine** (or an absolute latency bound the issue sets), so a noisy machine still gives honest numbers.
Each section below is rewritten by the script named in it; results are committed together with the
code that produced them.
"""


# ---- timing ---------------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of ``values`` by nearest rank; 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def best_of(rounds: int, fn: Callable[[], float]) -> float:
    """The smallest of ``rounds`` timings of ``fn`` (which returns seconds): the least disturbed run."""
    return min(fn() for _ in range(max(1, rounds)))


def median_of(rounds: int, fn: Callable[[], float]) -> float:
    """The median of ``rounds`` results of ``fn``."""
    return statistics.median(fn() for _ in range(max(1, rounds)))


def timed(fn: Callable[[], object]) -> float:
    """Seconds ``fn`` takes once."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


# ---- PostgreSQL -----------------------------------------------------------------------------------


def postgres_available() -> bool:
    """Whether the benchmark PostgreSQL server answers (``$BENCH_POSTGRES_URL``)."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import OperationalError

    from gateway.db import normalize_url

    engine = create_engine(normalize_url(PG_ADMIN_URL))
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return True
    except OperationalError:
        return False
    finally:
        engine.dispose()


@contextlib.contextmanager
def postgres_database(prefix: str = "optout_bench") -> Iterator[str]:
    """A fresh PostgreSQL database for one benchmark, dropped afterwards; yields its URL."""
    from sqlalchemy import create_engine, text

    from gateway.db import normalize_url

    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = create_engine(normalize_url(PG_ADMIN_URL), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def database_urls(
    tmp: Path, databases: Sequence[str]
) -> Iterator[tuple[str, contextlib.AbstractContextManager[str]]]:
    """(name, context manager yielding a URL) for each requested database kind that is available."""
    for kind in databases:
        if kind == "sqlite":
            yield kind, contextlib.nullcontext(f"sqlite:///{tmp / f'bench-{uuid.uuid4().hex[:6]}.db'}")
        elif kind == "postgresql":
            if postgres_available():
                yield kind, postgres_database()
            else:
                print(f"PostgreSQL at {PG_ADMIN_URL} does not answer: skipped", file=sys.stderr)


# ---- machine --------------------------------------------------------------------------------------


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _memory_gib() -> str:
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    return "unknown"


def _postgres_version() -> str:
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import OperationalError

    from gateway.db import normalize_url

    engine = create_engine(normalize_url(PG_ADMIN_URL))
    try:
        with engine.connect() as conn:
            version = str(conn.execute(text("SHOW server_version")).scalar_one())
        return version.split()[0]
    except OperationalError:
        return "not available"
    finally:
        engine.dispose()


def machine() -> dict[str, str]:
    """What the numbers were measured on."""
    return {
        "cpus": str(os.cpu_count()),
        "cpu": _cpu_model(),
        "memory": _memory_gib(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "postgresql": _postgres_version(),
        # Other work on the machine while measuring: the reason baselines are measured in the same run.
        "load": " / ".join(f"{x:.1f}" for x in os.getloadavg()),
    }


def machine_line(info: dict[str, str] | None = None) -> str:
    """The machine in one line, for the head of a section."""
    m = info or machine()
    return (
        f"{m['cpus']} x {m['cpu']}, {m['memory']} RAM, {m['os']}, Python {m['python']}, "
        f"SQLite {m['sqlite']}, PostgreSQL {m['postgresql']}; load average (1/5/15 min) when written: "
        f"{m['load']}"
    )


# ---- tables and the results document --------------------------------------------------------------


def fmt(value: Any) -> str:
    """A table cell: floats with a sensible number of digits, booleans as yes/no."""
    if isinstance(value, bool):
        return "yes" if value else "**NO**"
    if isinstance(value, float):
        if value == 0:
            return "0"
        if abs(value) >= 100:
            return f"{value:,.0f}"
        if abs(value) >= 1:
            return f"{value:.2f}"
        return f"{value:.3f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _columns(rows: Sequence[Row]) -> list[str]:
    columns: list[str] = []
    for row in rows:
        columns.extend(key for key in row if key not in columns)
    return columns


def text_table(rows: Sequence[Row]) -> str:
    """Rows as an aligned plain-text table for the terminal."""
    if not rows:
        return "(no results)"
    columns = _columns(rows)
    cells = [[fmt(row.get(c, "")).replace("**", "") for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines.extend("  ".join(v.rjust(w) for v, w in zip(r, widths, strict=True)) for r in cells)
    return "\n".join(lines)


def markdown_table(rows: Sequence[Row]) -> str:
    """Rows as a GitHub-flavoured Markdown table."""
    if not rows:
        return "(no results)"
    columns = _columns(rows)
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    lines.extend("| " + " | ".join(fmt(row.get(c, "")) for c in columns) + " |" for row in rows)
    return "\n".join(lines)


def command_line() -> str:
    """How this process was started, as a shell command a reader can repeat."""
    module = sys.modules["__main__"].__spec__
    name = module.name if module is not None else Path(sys.argv[0]).name
    return " ".join(["python -m", name.removesuffix(".__main__"), *map(shlex.quote, sys.argv[1:])])


@dataclass(frozen=True)
class Section:
    """One benchmark's part of `docs/benchmarks.md`."""

    title: str
    rows: Sequence[Row]
    method: str = ""
    notes: str = ""

    def markdown(self, info: dict[str, str], command: str) -> str:
        """The section's Markdown, headed by date, machine and command."""
        stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        parts = [
            f"## {self.title}",
            f"Measured {stamp} on {machine_line(info)}.\nCommand: `{command}`",
        ]
        if self.method:
            parts.append(self.method.strip())
        parts.append(markdown_table(self.rows))
        if self.notes:
            parts.append(self.notes.strip())
        return "\n\n".join(parts) + "\n"


def write_section(section: Section, path: Path = DOCS, command: str | None = None) -> None:
    """Replace (or append) ``section`` in the results document, leaving every other section alone."""
    body = section.markdown(machine(), command or command_line())
    text = path.read_text(encoding="utf-8") if path.exists() else _DOC_HEADER
    lines = text.splitlines(keepends=True)
    heading = f"## {section.title}"
    start = next((i for i, line in enumerate(lines) if line.rstrip() == heading), None)
    if start is None:
        new_text = text.rstrip("\n") + "\n\n" + body
    else:
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
        new_text = "".join(lines[:start]) + body + ("\n" + "".join(lines[end:]) if end < len(lines) else "")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(new_text, encoding="utf-8")


def publish(section: Section, write: bool = True) -> None:
    """Print a section's table and, unless ``write`` is false, store it in `docs/benchmarks.md`."""
    print(f"\n{section.title}\n{text_table(section.rows)}")
    if section.notes:
        print(section.notes.strip())
    if write:
        write_section(section)
        print(f"(written to {DOCS.relative_to(ROOT)})")


# ---- processes ------------------------------------------------------------------------------------


def python() -> str:
    """The interpreter running the benchmarks (servers are started with the same one)."""
    return sys.executable


def stop(proc: subprocess.Popen[Any], timeout: float = 20) -> None:
    """Terminate a process we started and wait for it; kill it if it does not go."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout)
