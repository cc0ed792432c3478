"""`optout worker`: an APScheduler loop that drains the outbox.

Each tick drains batches until nothing is due, so a burst is sent at full speed and an idle worker costs
one cheap query per poll interval. Any number of workers may run against one PostgreSQL database.
"""

from __future__ import annotations

import contextlib
import logging
import signal
from collections.abc import Callable
from types import FrameType

from apscheduler.schedulers.blocking import BlockingScheduler

from gateway.outbox import drain, worker_id
from gateway.runtime import Gateway

log = logging.getLogger(__name__)


def tick(gw: Gateway, owner: str, max_batches: int = 100) -> int:
    """Drain until the outbox has nothing due (or ``max_batches`` ran); rows handled."""
    total = 0
    for _ in range(max_batches):
        handled = drain(gw, owner)
        total += handled
        if handled == 0:
            break
    return total


def run_worker(gw: Gateway) -> None:
    """Run the outbox worker (and any jobs other modules register) until SIGTERM or Ctrl-C."""
    owner = worker_id()
    scheduler = BlockingScheduler(timezone="UTC")
    scheduler.add_job(
        tick,
        "interval",
        args=[gw, owner],
        seconds=gw.settings.outbox.poll_interval,
        id="outbox",
        max_instances=1,
        coalesce=True,
        misfire_grace_time=None,
    )
    for job in EXTRA_JOBS:
        job(scheduler, gw)

    def stop(signum: int, _frame: FrameType | None) -> None:
        log.info("worker %s stopping (signal %d)", owner, signum)
        scheduler.shutdown(wait=False)

    signal.signal(signal.SIGTERM, stop)
    log.info("worker %s started: outbox poll every %.1fs", owner, gw.settings.outbox.poll_interval)
    with contextlib.suppress(KeyboardInterrupt):
        scheduler.start()


#: Functions ``(scheduler, gateway) -> None`` that add more scheduled jobs (campaign dispatch, ...).
EXTRA_JOBS: list[Callable[[BlockingScheduler, Gateway], None]] = []


def _register_campaigns() -> None:
    from gateway.campaigns import add_jobs

    EXTRA_JOBS.append(add_jobs)


_register_campaigns()
