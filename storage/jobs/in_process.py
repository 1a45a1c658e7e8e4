"""The embedded job executor (no JOBS_URL / REDIS_URL): a bounded thread pool fed by one scheduler thread.

The scheduler takes due jobs from the database, highest priority first, whenever a slot is free; it wakes on a
submission and otherwise polls, so a scheduled job starts within one poll of its time, in whichever process
polls first (the claim lets only one have it). Threads start on first use in each process, never in a pre-fork
master (see `storage.run_sweeper`).
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

from storage.jobs.runner import JobRunner

log = logging.getLogger(__name__)


class InProcessQueue:
    """Runs jobs on up to `concurrency` threads of this process."""

    def __init__(self, runner: JobRunner, *, concurrency: int, poll_seconds: float) -> None:
        self.runner = runner
        self.concurrency = concurrency
        self.poll_seconds = poll_seconds
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._pid = 0
        self._busy = 0
        self._pool: ThreadPoolExecutor | None = None
        self._stopped = False

    def dispatch(self, job_id: int, priority: int, scheduled_at: datetime) -> None:
        """Wake the scheduler: the job runs as soon as it is due and a slot is free."""
        self.wake()

    def wake(self) -> None:
        """Have the scheduler look for due jobs now."""
        self.ensure_started()
        self._wake.set()

    def stop(self) -> None:
        """End the scheduler thread and let the pool's threads go once their jobs end (an app being disposed of)."""
        self._stopped = True
        self._wake.set()
        if self._pool is not None:
            self._pool.shutdown(wait=False)

    def idle(self) -> bool:
        """No job of this process is running or about to."""
        with self._lock:
            return self._busy == 0

    def ensure_started(self) -> None:
        """Start this process's scheduler thread and pool unless they run already (cheap: a pid comparison)."""
        if self._pid == os.getpid():
            return
        with self._lock:
            if self._pid != os.getpid():
                self._pid, self._busy = os.getpid(), 0
                self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="job")
                threading.Thread(target=_schedule_forever, args=(weakref.ref(self), self._wake, self.poll_seconds),
                                 name="job-scheduler", daemon=True).start()

    def _start_due(self) -> None:
        with self._lock:
            free = self.concurrency - self._busy
        if free <= 0:
            return
        for job_id in self.runner.store.next_due(free):
            with self._lock:
                self._busy += 1
                assert self._pool is not None
                self._pool.submit(self._run, job_id)

    def _run(self, job_id: int) -> None:
        try:
            self.runner.run(job_id)
        except Exception:  # the job record says what failed; keep the pool's thread
            log.exception("Job %s failed outside its handler", job_id)
        finally:
            with self._lock:
                self._busy -= 1
            self._wake.set()  # a slot is free: look for the next due job


def _schedule_forever(queue: weakref.ref[InProcessQueue], wake: threading.Event, poll_seconds: float) -> None:
    """The scheduler thread: it ends once its queue is gone (an app dropped by a test or a library user), since it
    holds no reference to it while waiting."""
    failing = False
    while True:
        wake.wait(poll_seconds)
        wake.clear()
        current = queue()
        if current is None or current._stopped:
            return
        try:
            current._start_due()
        except Exception as exc:  # a database hiccup: try again at the next poll; one traceback per streak
            log.error("Starting due jobs failed: %s; retrying in %s s", exc, poll_seconds, exc_info=not failing)
            failing = True
        else:
            failing = False
        del current
