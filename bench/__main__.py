"""Run every benchmark and update `docs/benchmarks.md`: ``python -m bench [--quick] [--only NAME ...]``.

Each benchmark module offers ``run(quick=...) -> list[dict]`` (one dict per table row), a ``TITLE`` (its
section heading) and optionally ``describe(quick) -> str`` or ``METHOD`` (how it measures). Modules that
are not part of this checkout are skipped with a note.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import sys
import time
from collections.abc import Sequence
from types import ModuleType

from bench.common import Section, publish

BENCHMARKS = ("bench_rules", "bench_guard", "bench_webhook", "bench_import", "bench_fanout", "bench_email")


def _load(name: str) -> ModuleType | None:
    try:
        return importlib.import_module(f"bench.{name}")
    except ModuleNotFoundError as exc:
        if exc.name != f"bench.{name}":
            raise  # the module exists but something it imports does not: a real error
        return None


def _method(module: ModuleType, quick: bool) -> str:
    describe = getattr(module, "describe", None)
    if callable(describe):
        return str(describe(quick))
    method = getattr(module, "METHOD", None)
    if method:
        return str(method)
    return (module.__doc__ or "").strip().split("\n\n")[0]


def run_one(module: ModuleType, quick: bool, write: bool) -> None:
    """Run one benchmark module and publish its section."""
    run = module.run
    accepts_quick = "quick" in inspect.signature(run).parameters
    rows = run(quick=quick) if accepts_quick else run()
    title = getattr(module, "TITLE", module.__name__.rsplit(".", 1)[-1])
    notes = str(getattr(module, "NOTES", ""))  # analysis kept with the figures (e.g. bench_import)
    publish(Section(title, rows, _method(module, quick), notes), write=write)


def main(argv: Sequence[str] | None = None) -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="shorter runs (minutes in total, not more)")
    parser.add_argument("--only", nargs="+", choices=BENCHMARKS, help="run only these benchmarks")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args(argv)
    for name in args.only or BENCHMARKS:
        module = _load(name)
        if module is None:
            print(f"\n{name}: not in this checkout, skipped", file=sys.stderr)
            continue
        start = time.perf_counter()
        run_one(module, args.quick, write=not args.no_write)
        print(f"({name} took {time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
