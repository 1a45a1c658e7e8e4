"""Reads and writes benchmark runs and their per-answer results; progress is the count of results stored."""

from __future__ import annotations

import builtins
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, select, update

from comparison.tables import benchmark_results, benchmark_runs
from storage.clock import utcnow
from storage.database import inserted_id, read, write
from storage.heartbeat import INTERRUPTED_ERROR, STALE_AFTER, abandoned, any_abandoned, refresh_heartbeats

RESULT_FIELDS = ("item_id", "task", "model", "request_id", "status", "response", "score", "correct",
                 "latency", "cost", "tokens", "scores", "error")


class BenchmarkRepository:
    """One row per run, one row per (item, model) answer; each method is its own unit of work."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create(self, *, dataset: str, models: list[str], total: int, params: dict[str, Any],
               api_key_id: str | None = None) -> int:
        now = utcnow()
        with write(self.engine) as conn:
            return inserted_id(conn.execute(benchmark_runs.insert().values(
                created_at=now, updated_at=now, status="pending", dataset=dataset, models=models,
                params=params, total=total, completed=0, api_key_id=api_key_id,
            )))

    def claim(self, run_id: int, owner: str, statuses: tuple[str, ...] = ("pending",)) -> bool:
        """Atomically move a run in one of `statuses` to `running` for `owner` (with a first heartbeat); False if
        it is in none of them (another caller took it)."""
        runs = benchmark_runs.c
        now = utcnow()
        with write(self.engine) as conn:
            return conn.execute(update(benchmark_runs).where((runs.id == run_id) & runs.status.in_(statuses)).values(
                status="running", owner=owner, heartbeat_at=now, updated_at=now, error=None, finished_at=None,
            )).rowcount > 0

    def set_status(self, run_id: int, status: str, *, report: dict[str, Any] | None = None,
                   error: str | None = None) -> None:
        now = utcnow()
        values: dict[str, Any] = {"status": status, "updated_at": now}
        if status in ("completed", "failed"):
            values["finished_at"] = now
        if report is not None:
            values["report"] = report
        if error is not None:
            values["error"] = error
        with write(self.engine) as conn:
            conn.execute(update(benchmark_runs).where(benchmark_runs.c.id == run_id).values(**values))

    def heartbeat(self, owner: str) -> int:
        """Tell other processes that `owner` is still executing its running runs; returns how many."""
        return refresh_heartbeats(self.engine, benchmark_runs, owner)

    def mark_interrupted(self, stale_after: timedelta = STALE_AFTER) -> int:
        """Runs left `running` without a heartbeat for `stale_after` become `interrupted`; returns how many.

        Their runner died. Runs another live process executes keep beating and are left alone; runs without a
        heartbeat (from before heartbeats) count as abandoned; `pending` runs are not touched.
        """
        if not any_abandoned(self.engine, benchmark_runs, stale_after):
            return 0
        with write(self.engine) as conn:
            return conn.execute(update(benchmark_runs).where(abandoned(benchmark_runs, stale_after)).values(
                status="interrupted", error=INTERRUPTED_ERROR, updated_at=utcnow(),
            )).rowcount

    def add_result(self, run_id: int, result: dict[str, Any]) -> int:
        """Store one answer and advance the run's progress in the same transaction; returns `completed`."""
        row = {key: result.get(key) for key in RESULT_FIELDS}
        with write(self.engine) as conn:
            conn.execute(benchmark_results.insert().values(run_id=run_id, created_at=utcnow(), **row))
            conn.execute(update(benchmark_runs).where(benchmark_runs.c.id == run_id).values(
                completed=benchmark_runs.c.completed + 1, updated_at=utcnow()))
            return int(conn.execute(
                select(benchmark_runs.c.completed).where(benchmark_runs.c.id == run_id)).scalar_one())

    def get(self, run_id: int) -> dict[str, Any] | None:
        with read(self.engine) as conn:
            row = conn.execute(select(benchmark_runs).where(benchmark_runs.c.id == run_id)).mappings().first()
        return _iso(dict(row)) if row else None

    def list(self, limit: int = 50, api_key_id: str | None = None) -> list[dict[str, Any]]:
        query = select(benchmark_runs).order_by(benchmark_runs.c.id.desc()).limit(limit)
        if api_key_id is not None:
            query = query.where(benchmark_runs.c.api_key_id == api_key_id)
        with read(self.engine) as conn:
            return [_iso(dict(row)) for row in conn.execute(query).mappings()]

    def results(self, run_id: int) -> builtins.list[dict[str, Any]]:
        query = select(*(benchmark_results.c[k] for k in RESULT_FIELDS)).where(benchmark_results.c.run_id == run_id)
        with read(self.engine) as conn:
            return [dict(row) for row in conn.execute(query.order_by(benchmark_results.c.id)).mappings()]


def _iso(data: dict[str, Any]) -> dict[str, Any]:
    for key in ("created_at", "updated_at", "finished_at", "heartbeat_at"):
        if isinstance(data.get(key), datetime):
            data[key] = data[key].isoformat() + "Z"
    data["id"] = int(data["id"])
    return data
