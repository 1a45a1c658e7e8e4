"""Tables of background jobs and batches: the database, not the queue, says what is done.

A job or batch item in flight has an `owner` (host, process, runner) and a `heartbeat_at` its runner refreshes;
one silent for 4 heartbeats belongs to a dead process and is queued again (`storage.heartbeat`).
"""

from __future__ import annotations

from sqlalchemy import JSON, Boolean, Column, DateTime, ForeignKey, Index, Integer, String, Table, Text, false

from storage.database import ID_TYPE, metadata

jobs = Table(
    "jobs",
    metadata,
    Column("id", ID_TYPE, primary_key=True, autoincrement=True),
    Column("kind", String(50), nullable=False),
    Column("status", String(20), nullable=False),  # queued, running, succeeded, failed, cancelled
    Column("priority", Integer, nullable=False),  # higher runs first
    Column("scheduled_at", DateTime, nullable=False),  # not run before
    Column("payload", JSON),
    Column("result", JSON),
    Column("error", Text),
    Column("attempts", Integer, nullable=False),
    Column("max_attempts", Integer, nullable=False),
    Column("progress_done", Integer),
    Column("progress_total", Integer),
    Column("cancel_requested", Boolean, nullable=False, default=False, server_default=false()),
    Column("api_key_id", String(64)),  # the managed key that started it; NULL: an admin's, or no keys
    Column("owner", String(64)),
    Column("heartbeat_at", DateTime),
    Column("dispatched_at", DateTime),  # last handed to the Redis queue (a queued job not handed on is sent again)
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
    Column("started_at", DateTime),
    Column("finished_at", DateTime),
    Index("ix_jobs_status_priority", "status", "priority", "scheduled_at"),
)

batches = Table(
    "batches",
    metadata,
    Column("id", ID_TYPE, primary_key=True, autoincrement=True),
    Column("job_id", ID_TYPE, ForeignKey("jobs.id"), nullable=False),
    Column("format", String(20), nullable=False),  # ours (generate/chat bodies) or openai (batch file lines)
    Column("priority", Integer, nullable=False),
    Column("scheduled_at", DateTime, nullable=False),
    Column("total", Integer, nullable=False),
    Column("api_key_id", String(64)),
    Column("created_at", DateTime, nullable=False),
    Column("cancelled_at", DateTime),
)

batch_items = Table(
    "batch_items",
    metadata,
    Column("id", ID_TYPE, primary_key=True, autoincrement=True),
    Column("batch_id", ID_TYPE, ForeignKey("batches.id"), nullable=False),
    Column("position", Integer, nullable=False),
    Column("custom_id", String(200)),
    Column("kind", String(20), nullable=False),  # generate or chat
    Column("model", String(200), nullable=False),  # what the per-model concurrency bound counts
    Column("priority", Integer, nullable=False),
    Column("not_before", DateTime, nullable=False),
    Column("request", JSON, nullable=False),
    Column("context", JSON),  # user and tags fixed at submission
    Column("status", String(20), nullable=False),  # queued, running, succeeded, failed, cancelled
    Column("attempts", Integer, nullable=False),
    Column("request_id", String(36)),  # the request-log row of the item's current (last) call
    Column("result", JSON),
    Column("owner", String(64)),
    Column("heartbeat_at", DateTime),
    Column("started_at", DateTime),
    Column("finished_at", DateTime),
    Index("ix_batch_items_batch_position", "batch_id", "position", unique=True),
    Index("ix_batch_items_status_priority", "status", "priority"),
)
