"""Runs job records: claims one, calls its kind's handler under a heartbeat, then records how it ended.

Whoever delivers a job id (the in-process pool, an RQ worker, a duplicate message) goes through `run`, whose
atomic claim lets only one runner have the job; a runner that dies stops beating, and the sweep queues its job
again while attempts remain. Handlers report progress and look for cancellation through their `JobContext`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from storage.heartbeat import RunHeartbeat, stale_after
from storage.jobs.job_store import JobStore

log = logging.getLogger(__name__)


class JobCancelled(Exception):
    """Raised by a handler (through `JobContext.check_cancelled`) that stops because its job was cancelled."""


@dataclass
class JobContext:
    """What a handler gets: its job's id, payload and key, and the ways to report progress and see cancellation."""

    job_id: int
    payload: dict[str, Any]
    api_key_id: str | None
    store: JobStore

    def progress(self, done: int, total: int) -> None:
        self.store.progress(self.job_id, done, total)

    def cancelled(self) -> bool:
        return self.store.cancel_requested(self.job_id)

    def check_cancelled(self) -> None:
        if self.cancelled():
            raise JobCancelled(f"job {self.job_id} was cancelled")


Handler = Callable[[JobContext], Any]  # returns the job's result (JSON)


@dataclass(frozen=True)
class JobKind:
    """A kind of job: its handler and retry policy. A failed attempt is retried after `backoff` x 2^(attempt - 1)
    seconds while attempts remain; the same attempts bound re-runs after the runner's process died."""

    handler: Handler
    max_attempts: int = 3
    backoff: float = 5.0


class Transport(Protocol):
    """Where queued jobs are handed for execution: the in-process pool or the Redis queues."""

    def dispatch(self, job_id: int, priority: int, scheduled_at: datetime) -> None: ...


class JobRunner:
    """The kinds of job this process knows, and the one way they are submitted, run and reclaimed."""

    def __init__(self, store: JobStore, *, heartbeat_interval: float) -> None:
        self.store = store
        self.kinds: dict[str, JobKind] = {}
        self.transport: Transport | None = None
        self.heartbeat = RunHeartbeat(self._beat, name="job-heartbeat", interval=heartbeat_interval)
        self._beats: list[Callable[[str], object]] = [store.heartbeat]
        self._reclaims: list[Callable[[], object]] = []

    def register(self, kind: str, job_kind: JobKind) -> None:
        self.kinds[kind] = job_kind

    def also_beat(self, beat: Callable[[str], object]) -> None:
        """Refresh another table's leases (batch items) with the jobs': they are held by the same runner."""
        self._beats.append(beat)

    def also_reclaim(self, reclaim: Callable[[], object]) -> None:
        """Run another reclaim (batch items) before the jobs' own in each sweep: it may queue jobs again."""
        self._reclaims.append(reclaim)

    @property
    def owner(self) -> str:
        return self.heartbeat.owner

    def submit(self, kind: str, payload: dict[str, Any] | None = None, *, priority: int = 0,
               scheduled_at: datetime | None = None, api_key_id: str | None = None) -> int:
        """Record a queued job and hand it to the transport; returns its id."""
        job_kind = self.kinds[kind]
        job_id = self.store.create(kind, payload, priority=priority, scheduled_at=scheduled_at,
                                   max_attempts=job_kind.max_attempts, api_key_id=api_key_id)
        self.dispatch(job_id)
        return job_id

    def submit_unless_pending(self, kind: str) -> int | None:
        """A periodic chore's job: submitted unless one of `kind` is queued or running already."""
        return None if self.store.has_pending(kind) else self.submit(kind)

    def dispatch(self, job_id: int) -> None:
        job = self.store.get(job_id)
        if job is not None and self.transport is not None:
            self.transport.dispatch(job_id, job["priority"], job["scheduled_at"])

    def run(self, job_id: int) -> bool:
        """Run the job if it is queued and due and no one else has it; True when this call ran it."""
        with self.heartbeat.driving() as owner:
            job = self.store.claim(job_id, owner)
            if job is None:
                return False
            context = JobContext(job_id, job["payload"] or {}, job["api_key_id"], self.store)
            job_kind = self.kinds.get(job["kind"])
            try:
                if job_kind is None:
                    raise LookupError(f"no handler for job kind {job['kind']!r} in this process")
                result = job_kind.handler(context)
            except JobCancelled:
                self.store.finish(job_id, owner, "cancelled")
            except Exception as exc:
                self._failed(job, owner, job_kind, f"{type(exc).__name__}: {exc}")
            else:
                self.store.finish(job_id, owner, "succeeded", result=result)
        return True

    def _failed(self, job: dict[str, Any], owner: str, job_kind: JobKind | None, error: str) -> None:
        log.warning("Job %s (%s) attempt %s failed: %s", job["id"], job["kind"], job["attempts"], error)
        if job_kind is not None and job["attempts"] < job_kind.max_attempts:
            delay = timedelta(seconds=job_kind.backoff * 2 ** (job["attempts"] - 1))
            if self.store.retry_later(job["id"], owner, error, delay):
                self.dispatch(job["id"])
            return
        self.store.finish(job["id"], owner, "failed", error=error)

    def requeue(self, job_id: int) -> None:
        """Run a finished job again (a batch whose items came back); a queued or running one is left alone."""
        if self.store.requeue(job_id):
            self.dispatch(job_id)

    def reclaim_abandoned(self) -> int:
        """Queue again (or fail, without attempts left) the jobs whose runner died; the service's sweep calls it."""
        for reclaim in self._reclaims:
            reclaim()
        requeued = self.store.reclaim_abandoned(stale_after(self.heartbeat.interval))
        for job in requeued:
            self.dispatch(int(job["id"]))
        if requeued:
            log.warning("Queued again %d job(s) whose process stopped", len(requeued))
        return len(requeued)

    def _beat(self, owner: str) -> None:
        for beat in self._beats:
            beat(owner)
