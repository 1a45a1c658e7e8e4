"""Batches and their items: an item is claimed atomically, leased by its runner's heartbeat, and completed only
by the runner holding it, so a killed worker's items run again elsewhere and none completes twice.

Items are taken highest priority first across every batch (then oldest batch, then position), never before
their batch's time, and never more than `model_limit` at once per model across all processes: claims are
serialized (SQLite's writer lock; a transaction-scoped advisory lock on PostgreSQL), so the count they check
holds until they commit.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, func, select, update

from storage.clock import utcnow
from storage.database import inserted_id, is_sqlite, read, write
from storage.heartbeat import abandoned, any_abandoned, refresh_heartbeats
from storage.jobs.job_store import JobStore
from storage.jobs.tables import batch_items, batches, jobs

i = batch_items.c
DONE = ("succeeded", "failed", "cancelled")
CLAIM_LOCK = 7263516  # the PostgreSQL advisory lock that serializes item claims
RESULTS_PAGE = 500
Settled = tuple[str, dict[str, Any]]  # an item's final status and result


@dataclass(frozen=True)
class NewItem:
    """One request of a submitted batch, validated: its kind (generate or chat), model and JSON body."""

    kind: str
    model: str
    request: dict[str, Any]
    custom_id: str | None = None
    priority: int | None = None  # None: the batch's
    context: dict[str, Any] | None = None  # user and tags fixed at submission


class BatchStore:
    """One row per batch and per item; each method is its own unit of work."""

    def __init__(self, engine: Engine, jobs_store: JobStore) -> None:
        self.engine = engine
        self.jobs = jobs_store

    def create(self, items: Sequence[NewItem], *, format: str, priority: int, scheduled_at: datetime | None,
               api_key_id: str | None, max_attempts: int) -> tuple[int, int]:
        """Record the batch, its items and its queued job in one transaction; returns (batch id, job id)."""
        now = utcnow()
        at = scheduled_at or now
        with write(self.engine) as conn:
            job_id = self.jobs.create("batch", None, priority=priority, scheduled_at=at,
                                      max_attempts=max_attempts, api_key_id=api_key_id, conn=conn)
            batch_id = inserted_id(conn.execute(batches.insert().values(
                job_id=job_id, format=format, priority=priority, scheduled_at=at, total=len(items),
                api_key_id=api_key_id, created_at=now)))
            conn.execute(update(jobs).where(jobs.c.id == job_id).values(payload={"batch_id": batch_id},
                                                                        progress_done=0, progress_total=len(items)))
            conn.execute(batch_items.insert(), [
                {"batch_id": batch_id, "position": position, "custom_id": item.custom_id, "kind": item.kind,
                 "model": item.model, "priority": priority if item.priority is None else item.priority,
                 "not_before": at, "request": item.request, "context": item.context, "status": "queued",
                 "attempts": 0} for position, item in enumerate(items)])
        return batch_id, job_id

    def get(self, batch_id: int, api_key_id: str | None = None) -> dict[str, Any] | None:
        """The batch with its item counts by status; None when absent (or another tenant's, with `api_key_id`)."""
        query = select(batches).where(batches.c.id == batch_id)
        if api_key_id is not None:
            query = query.where(batches.c.api_key_id == api_key_id)
        with read(self.engine) as conn:
            row = conn.execute(query).mappings().first()
            if row is None:
                return None
            counts: dict[str, int] = {status: int(n) for status, n in conn.execute(
                select(i.status, func.count()).where(i.batch_id == batch_id).group_by(i.status))}
            finished = conn.execute(select(func.max(i.finished_at)).where(i.batch_id == batch_id)).scalar()
        return {**dict(row), "counts": counts, "finished_at": finished}

    def claim_item(self, owner: str, model_limit: int) -> dict[str, Any] | None:
        """Take the next due item of any batch for `owner`, unless each model with due items runs `model_limit`
        already; the item gets a fresh request id for the call it is about to make."""
        now = utcnow()
        with write(self.engine) as conn:
            if not is_sqlite(conn):
                conn.execute(select(func.pg_advisory_xact_lock(CLAIM_LOCK)))
            full = select(i.model).where(i.status == "running").group_by(i.model).having(
                func.count() >= model_limit)
            candidate = conn.execute(select(i.id).where(
                (i.status == "queued") & (i.not_before <= now) & i.model.not_in(full))
                .order_by(i.priority.desc(), i.batch_id, i.position).limit(1)).scalar()
            if candidate is None:
                return None
            conn.execute(update(batch_items).where((i.id == candidate) & (i.status == "queued")).values(
                status="running", owner=owner, heartbeat_at=now, started_at=now, attempts=i.attempts + 1,
                request_id=str(uuid.uuid4())))
            return dict(conn.execute(select(batch_items).where(i.id == candidate)).mappings().one())

    def complete_item(self, item_id: int, owner: str, status: str, result: dict[str, Any]) -> bool:
        """Record the item's outcome if `owner` still holds it; False when its lease was lost (it runs elsewhere,
        and that run's outcome counts)."""
        now = utcnow()
        with write(self.engine) as conn:
            return conn.execute(update(batch_items).where(
                (i.id == item_id) & (i.status == "running") & (i.owner == owner)).values(
                status=status, result=result, finished_at=now, owner=None, heartbeat_at=None)).rowcount > 0

    def open_items(self, batch_id: int) -> int:
        """Items of the batch not finished yet (queued or running)."""
        with read(self.engine) as conn:
            return int(conn.execute(select(func.count()).where(
                (i.batch_id == batch_id) & i.status.in_(("queued", "running")))).scalar_one())

    def done_items(self, batch_id: int) -> int:
        with read(self.engine) as conn:
            return int(conn.execute(select(func.count()).where(
                (i.batch_id == batch_id) & i.status.in_(DONE))).scalar_one())

    def heartbeat(self, owner: str) -> int:
        return refresh_heartbeats(self.engine, batch_items, owner)

    def reclaim_abandoned(self, stale_after: timedelta, max_attempts: int,
                          recovered: Callable[[dict[str, Any]], Settled | None]) -> list[dict[str, Any]]:
        """Items whose runner stopped beating. One whose call ended before its runner died is settled with
        `recovered(item)` (the outcome its request-log row holds), so it is not called again; the others are
        queued again while attempts remain, else failed. Returns those, as they were, with their batch's
        `job_id` (their request id names the call cut short)."""
        if not any_abandoned(self.engine, batch_items, stale_after):
            return []
        with read(self.engine) as conn:
            lost = [dict(row) for row in conn.execute(select(batch_items, batches.c.job_id).select_from(
                batch_items.join(batches)).where(abandoned(batch_items, stale_after))).mappings()]
        settled = {item["id"]: recovered(item) for item in lost}
        now, cut_short = utcnow(), []
        with write(self.engine) as conn:
            for item in lost:
                held = (i.id == item["id"]) & (i.status == "running") & (i.owner == item["owner"])
                outcome = settled[item["id"]]
                if outcome is not None:
                    conn.execute(update(batch_items).where(held).values(
                        status=outcome[0], result=outcome[1], finished_at=now, owner=None, heartbeat_at=None))
                elif item["attempts"] < max_attempts:
                    if conn.execute(update(batch_items).where(held).values(
                            status="queued", owner=None, heartbeat_at=None)).rowcount:
                        cut_short.append(item)
                elif conn.execute(update(batch_items).where(held).values(
                        status="failed", owner=None, heartbeat_at=None, finished_at=now, result={"error": {
                            "code": "interrupted",
                            "message": f"the process running it stopped {max_attempts} times"}})).rowcount:
                    cut_short.append(item)
        return cut_short

    def cancel(self, batch_id: int) -> int:
        """Cancel the batch's queued items (running ones finish); returns how many were cancelled."""
        now = utcnow()
        with write(self.engine) as conn:
            conn.execute(update(batches).where((batches.c.id == batch_id) & batches.c.cancelled_at.is_(None))
                         .values(cancelled_at=now))
            return conn.execute(update(batch_items).where((i.batch_id == batch_id) & (i.status == "queued"))
                                .values(status="cancelled", finished_at=now)).rowcount

    def results(self, batch_id: int) -> Iterator[dict[str, Any]]:
        """Every item in position order, read a page at a time (a unit of work per page, none held between)."""
        after = -1
        while True:
            with read(self.engine) as conn:
                page = [dict(row) for row in conn.execute(
                    select(i.position, i.custom_id, i.status, i.request_id, i.result, i.finished_at)
                    .where((i.batch_id == batch_id) & (i.position > after))
                    .order_by(i.position).limit(RESULTS_PAGE)).mappings()]
            yield from page
            if len(page) < RESULTS_PAGE:
                return
            after = page[-1]["position"]
