"""Jobs handed to RQ workers over Redis (JOBS_URL, else REDIS_URL).

RQ carries only job ids, on one queue per priority band that a worker drains in order (high, default, low).
Everything else lives in the database: when a job is due (a scheduled job is sent by the sweep of any live
process once its time comes), its retries, its lease, and whether it ran; a duplicate or stale message finds the
job claimed or finished and does nothing, and a message lost with a killed worker is sent again by the sweep.
Workers are RQ's `SimpleWorker`, running jobs in the worker process itself: killing a worker kills its jobs.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from redis import Redis
from rq import Queue, SimpleWorker

from storage.clock import utcnow
from storage.jobs.job_store import JobStore

BANDS = ("high", "default", "low")
# A queued job's message is sent again when the job is still queued this long after (its message was lost).
RESEND_AFTER = timedelta(minutes=5)


def band(priority: int) -> str:
    """The queue of a priority: above 0 high, 0 default, below 0 low; a band is first come, first served (batch
    items, whatever job drains them, are taken in the database's priority order)."""
    return "high" if priority > 0 else "default" if priority == 0 else "low"


class RedisQueue:
    """Sends due jobs to RQ queues named `<prefix>:<band>`; `perform` is the import path of the function an RQ
    worker calls with a job id."""

    def __init__(self, url: str, store: JobStore, *, prefix: str, perform: str) -> None:
        self.connection = Redis.from_url(url)
        self.store = store
        self.prefix = prefix
        self.perform = perform

    def stop(self) -> None:
        """Nothing runs here (workers are processes of their own): release the connection."""
        self.connection.close()

    def queues(self) -> list[Queue]:
        """Every band's queue, highest first: the order a worker drains them in."""
        return [Queue(f"{self.prefix}:{name}", connection=self.connection) for name in BANDS]

    def dispatch(self, job_id: int, priority: int, scheduled_at: datetime) -> None:
        """Send the job now when it is due; a later one is sent by `send_due` once it is."""
        if scheduled_at <= utcnow():
            self._send(job_id, priority)

    def send_due(self, resend_after: timedelta = RESEND_AFTER) -> int:
        """Send the due jobs not sent yet (scheduled ones whose time came, lost messages); the sweep calls it."""
        due = self.store.undispatched(resend_after)
        for job in due:
            self._send(int(job["id"]), job["priority"])
        return len(due)

    def _send(self, job_id: int, priority: int) -> None:
        queue = Queue(f"{self.prefix}:{band(priority)}", connection=self.connection)
        # No RQ timeout or retry: the lease and the retry policy are the database's.
        queue.enqueue(self.perform, job_id, job_timeout=-1, result_ttl=0, failure_ttl=86_400,
                      description=f"job {job_id}")
        self.store.mark_dispatched(job_id)

    def worker(self, **options: Any) -> SimpleWorker:
        return SimpleWorker(self.queues(), connection=self.connection, **options)
