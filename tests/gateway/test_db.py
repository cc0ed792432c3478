"""The SQLite writer queue: shared per file, re-entrant per thread, exclusive across threads."""

from __future__ import annotations

import threading
from pathlib import Path

from gateway.db import Database, WriterQueue


def test_queue_is_shared_per_file(tmp_path: Path) -> None:
    a = Database(f"sqlite:///{tmp_path}/x.db")
    b = Database(f"sqlite:///{tmp_path}/x.db")
    assert a._writers is b._writers is not None


def test_queue_is_reentrant_in_one_thread(tmp_path: Path) -> None:
    queue = WriterQueue(str(tmp_path / "q.lock"))
    with queue.hold(), queue.hold():  # would wait for itself forever if not re-entrant
        pass
    with queue.hold():  # released correctly after the nested use
        pass


def test_queue_excludes_other_threads(tmp_path: Path) -> None:
    queue = WriterQueue(str(tmp_path / "q.lock"))
    inside = threading.Event()
    release = threading.Event()
    order: list[str] = []

    def holder() -> None:
        with queue.hold():
            order.append("holder in")
            inside.set()
            release.wait(10)
            order.append("holder out")

    def waiter() -> None:
        with queue.hold():
            order.append("waiter in")

    t1 = threading.Thread(target=holder)
    t1.start()
    assert inside.wait(10)
    t2 = threading.Thread(target=waiter)
    t2.start()
    release.set()
    t1.join(10)
    t2.join(10)
    assert order == ["holder in", "holder out", "waiter in"]
