"""Reads and writes job records; every state change is a conditional UPDATE, so two runners never both run a job."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, delete, func, select, update

from storage.clock import utcnow
from storage.database import inserted_id, is_sqlite, read, write
from storage.heartbeat import abandoned, any_abandoned, refresh_heartbeats
from storage.jobs.tables import batches, jobs

c = jobs.c
FINISHED = ("succeeded", "failed", "cancelled")
# The order due jobs run in: higher priority first, then the earliest due, then the oldest.
RUN_ORDER = (c.priority.desc(), c.scheduled_at, c.id)


class JobStore:
    """One row per job; each method is its own unit of work."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create(self, kind: str, payload: dict[str, Any] | None, *, priority: int = 0,
               scheduled_at: datetime | None = None, max_attempts: int = 1, api_key_id: str | None = None,
               conn: Connection | None = None) -> int:
        """Record a queued job; with `conn`, inside the caller's transaction (a batch and its job commit together)."""
        now = utcnow()
        statement = jobs.insert().values(kind=kind, status="queued", priority=priority,
                                         scheduled_at=scheduled_at or now, payload=payload, attempts=0,
                                         max_attempts=max_attempts, api_key_id=api_key_id, created_at=now,
                                         updated_at=now)
        if conn is not None:
            return inserted_id(conn.execute(statement))
        with write(self.engine) as own:
            return inserted_id(own.execute(statement))

    def get(self, job_id: int) -> dict[str, Any] | None:
        with read(self.engine) as conn:
            row = conn.execute(select(jobs).where(c.id == job_id)).mappings().first()
        return dict(row) if row else None

    def purge_finished(self, before: datetime) -> int:
        """Delete jobs that finished before `before`, except a batch's (its results are read through it)."""
        with write(self.engine) as conn:
            return int(conn.execute(delete(jobs).where(
                c.status.in_(FINISHED) & (c.finished_at < before) & c.id.not_in(select(batches.c.job_id)))).rowcount)

    def has_pending(self, kind: str) -> bool:
        """Whether a job of `kind` is queued or running (a periodic chore submits no second one)."""
        with read(self.engine) as conn:
            return conn.execute(select(c.id).where((c.kind == kind) & c.status.in_(("queued", "running")))
                                .limit(1)).first() is not None

    def claim(self, job_id: int, owner: str) -> dict[str, Any] | None:
        """Atomically start a queued, due job for `owner` (one more attempt); None if another runner has it, it
        is finished or cancelled, or it is not due yet."""
        now = utcnow()
        with write(self.engine) as conn:
            claimed = conn.execute(update(jobs).where(
                (c.id == job_id) & (c.status == "queued") & (c.scheduled_at <= now)).values(
                status="running", owner=owner, heartbeat_at=now, started_at=now, updated_at=now,
                attempts=c.attempts + 1)).rowcount
            if not claimed:
                return None
            return dict(conn.execute(select(jobs).where(c.id == job_id)).mappings().one())

    def next_due(self, limit: int) -> list[int]:
        """The ids of up to `limit` queued jobs that are due, in the order they should run."""
        query = select(c.id).where((c.status == "queued") & (c.scheduled_at <= utcnow())).order_by(*RUN_ORDER)
        with read(self.engine) as conn:
            return [int(row[0]) for row in conn.execute(query.limit(limit))]

    def undispatched(self, resend_after: timedelta) -> list[dict[str, Any]]:
        """Queued due jobs not handed to the Redis queue within `resend_after` (never, or the message was lost)."""
        now = utcnow()
        query = select(c.id, c.priority).where(
            (c.status == "queued") & (c.scheduled_at <= now)
            & (c.dispatched_at.is_(None) | (c.dispatched_at < now - resend_after))).order_by(*RUN_ORDER)
        with read(self.engine) as conn:
            return [dict(row) for row in conn.execute(query.limit(1000)).mappings()]

    def mark_dispatched(self, job_id: int) -> None:
        with write(self.engine) as conn:
            conn.execute(update(jobs).where(c.id == job_id).values(dispatched_at=utcnow()))

    def progress(self, job_id: int, done: int, total: int) -> None:
        with write(self.engine) as conn:
            conn.execute(update(jobs).where(c.id == job_id).values(progress_done=done, progress_total=total,
                                                                   updated_at=utcnow()))

    def finish(self, job_id: int, owner: str, status: str, *, result: Any = None, error: str | None = None) -> bool:
        """End `owner`'s running job; False when it is no longer `owner`'s (reclaimed after its lease expired)."""
        now = utcnow()
        with write(self.engine) as conn:
            return conn.execute(update(jobs).where((c.id == job_id) & (c.status == "running") & (c.owner == owner))
                                .values(status=status, result=result, error=error, finished_at=now, updated_at=now,
                                        owner=None, heartbeat_at=None)).rowcount > 0

    def retry_later(self, job_id: int, owner: str, error: str, delay: timedelta) -> bool:
        """Queue `owner`'s failed attempt again after `delay`."""
        now = utcnow()
        with write(self.engine) as conn:
            return conn.execute(update(jobs).where((c.id == job_id) & (c.status == "running") & (c.owner == owner))
                                .values(status="queued", error=error, scheduled_at=now + delay, updated_at=now,
                                        owner=None, heartbeat_at=None, dispatched_at=None)).rowcount > 0

    def requeue(self, job_id: int) -> bool:
        """Queue a finished job again (a batch whose items came back); False if it is queued or running."""
        with write(self.engine) as conn:
            return conn.execute(update(jobs).where((c.id == job_id) & c.status.in_(("succeeded", "failed")))
                                .values(status="queued", error=None, updated_at=utcnow(), finished_at=None,
                                        dispatched_at=None)).rowcount > 0

    def cancel(self, job_id: int) -> str | None:
        """Cancel a queued job at once; a running one is asked to stop (its handler checks). Returns the status
        after, or None when there is no such job."""
        now = utcnow()
        with write(self.engine) as conn:
            conn.execute(update(jobs).where((c.id == job_id) & (c.status == "queued")).values(
                status="cancelled", finished_at=now, updated_at=now))
            conn.execute(update(jobs).where((c.id == job_id) & (c.status == "running")).values(
                cancel_requested=True, updated_at=now))
            status = conn.execute(select(c.status).where(c.id == job_id)).scalar_one_or_none()
        return None if status is None else str(status)

    def cancel_requested(self, job_id: int) -> bool:
        with read(self.engine) as conn:
            return bool(conn.execute(select(c.cancel_requested).where(c.id == job_id)).scalar_one_or_none())

    def heartbeat(self, owner: str) -> int:
        return refresh_heartbeats(self.engine, jobs, owner)

    def reclaim_abandoned(self, stale_after: timedelta) -> list[dict[str, Any]]:
        """Running jobs whose runner stopped beating: queued again while attempts remain, else failed. Returns
        the rows queued again (to hand to the queue)."""
        if not any_abandoned(self.engine, jobs, stale_after):
            return []
        now = utcnow()
        lost = abandoned(jobs, stale_after)
        with write(self.engine) as conn:
            if not is_sqlite(conn):  # one sweeper at a time decides which it re-queues
                conn.execute(select(func.pg_advisory_xact_lock(7263515)))
            requeued = [dict(row) for row in conn.execute(select(c.id, c.priority).where(
                lost & (c.attempts < c.max_attempts))).mappings()]
            conn.execute(update(jobs).where(lost & (c.attempts < c.max_attempts)).values(
                status="queued", owner=None, heartbeat_at=None, dispatched_at=None, updated_at=now,
                error="the process running it stopped; queued again"))
            conn.execute(update(jobs).where(lost).values(
                status="failed", owner=None, heartbeat_at=None, finished_at=now, updated_at=now,
                error="the process running it stopped and no attempts are left"))
        return requeued


def public_job(row: dict[str, Any]) -> dict[str, Any]:
    """A job as the API shows it."""
    return {
        "id": int(row["id"]), "kind": row["kind"], "status": row["status"], "priority": row["priority"],
        "scheduled_at": _iso(row["scheduled_at"]), "attempts": row["attempts"],
        "max_attempts": row["max_attempts"],
        "progress": {"done": row["progress_done"] or 0, "total": row["progress_total"]},
        "result": row["result"], "error": row["error"], "cancel_requested": bool(row["cancel_requested"]),
        "created_at": _iso(row["created_at"]), "started_at": _iso(row["started_at"]),
        "finished_at": _iso(row["finished_at"]),
    }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() + "Z" if value else None
