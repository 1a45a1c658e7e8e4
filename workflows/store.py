"""Workflow persistence: versioned definitions, runs and their steps; each method is one unit of work."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Engine,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from storage.clock import utcnow
from storage.database import ID_TYPE, metadata, read, write
from storage.heartbeat import INTERRUPTED_ERROR, STALE_AFTER, abandoned, any_abandoned, refresh_heartbeats

RESUMABLE = ("failed", "interrupted")

workflow_definitions = Table(
    "workflow_definitions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(100), nullable=False),
    Column("version", Integer, nullable=False),
    Column("description", Text),
    Column("definition", JSON, nullable=False),
    Column("created_at", DateTime, nullable=False),
    UniqueConstraint("name", "version", name="uq_workflow_definitions_name_version"),
)

workflow_runs = Table(
    "workflow_runs",
    metadata,
    Column("run_id", String(36), primary_key=True),
    Column("workflow_name", String(100), nullable=False),
    Column("workflow_version", Integer),
    Column("status", String(20), nullable=False),
    Column("definition", JSON, nullable=False),
    Column("input", Text, nullable=False),
    Column("variables", JSON),
    Column("final_output", Text),
    Column("total_tokens", Integer),
    Column("total_cost", Float),
    Column("total_latency", Float),
    Column("wall_time", Float),
    Column("error", Text),
    Column("error_step", String(64)),
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
    Column("finished_at", DateTime),
    Column("owner", String(64)),  # the engine (host, process) driving the run
    Column("heartbeat_at", DateTime),  # NULL: no driver vouches for the run (ownerless or pre-heartbeat rows)
    Index("ix_workflow_runs_status", "status"),
    Index("ix_workflow_runs_created_at", "created_at"),
    Column("api_key_id", String(64)),  # the managed key that owns it; NULL: an admin's, or no keys
)

workflow_run_steps = Table(
    "workflow_run_steps",
    metadata,
    Column("id", ID_TYPE, primary_key=True, autoincrement=True),
    Column("run_id", String(36), ForeignKey("workflow_runs.run_id", ondelete="CASCADE"), nullable=False),
    Column("position", Integer, nullable=False),
    Column("name", String(64), nullable=False),
    Column("step_group", String(64)),
    Column("model", String(200)),
    Column("status", String(20), nullable=False),
    Column("prompt", Text),
    Column("output", Text),
    Column("parsed", JSON),
    Column("response", Text),
    Column("tokens", Integer),
    Column("cost", Float),
    Column("latency", Float),
    Column("error", Text),
    Column("request_id", String(36)),
    Column("attempts", JSON),
    Column("started_at", DateTime),
    Column("finished_at", DateTime),
    UniqueConstraint("run_id", "position", name="uq_workflow_run_steps_run_position"),
    Index("ix_workflow_run_steps_request_id", "request_id"),
)


@dataclass(frozen=True)
class Interrupted:
    """What `mark_interrupted` marked: the runs, and the steps that were running in them (their last call's id,
    model and prompt, as saved when the call started)."""

    run_ids: list[str] = field(default_factory=list)
    steps: list[dict[str, Any]] = field(default_factory=list)


class WorkflowStore:
    """Reads and writes the workflow tables; never holds a connection between calls."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- definitions ---------------------------------------------------------------------------

    def save_definition(self, name: str, definition: dict[str, Any], description: str = "") -> int:
        """Store `definition` as the next version of `name` (1 for a new name) and return that version."""
        for attempt in range(5):
            try:
                with write(self.engine) as conn:
                    current = conn.execute(
                        select(func.max(workflow_definitions.c.version)).where(workflow_definitions.c.name == name)
                    ).scalar()
                    version = int(current or 0) + 1
                    conn.execute(workflow_definitions.insert().values(
                        name=name, version=version, description=description, definition=definition,
                        created_at=utcnow(),
                    ))
                    return version
            except IntegrityError:  # a concurrent save took this version number (PostgreSQL)
                if attempt == 4:
                    raise
        raise AssertionError("unreachable")

    def get_definition(self, name: str, version: int | None = None) -> dict[str, Any] | None:
        """One version of `name` (default: the latest)."""
        query = select(workflow_definitions).where(workflow_definitions.c.name == name)
        if version is None:
            query = query.order_by(workflow_definitions.c.version.desc()).limit(1)
        else:
            query = query.where(workflow_definitions.c.version == version)
        with read(self.engine) as conn:
            row = conn.execute(query).mappings().first()
        return _dates(dict(row)) if row else None

    def list_versions(self, name: str) -> list[dict[str, Any]]:
        with read(self.engine) as conn:
            rows = conn.execute(
                select(workflow_definitions).where(workflow_definitions.c.name == name)
                .order_by(workflow_definitions.c.version)
            ).mappings().all()
        return [_dates(dict(row)) for row in rows]

    def list_definitions(self) -> list[dict[str, Any]]:
        """The latest version of every saved workflow, by name."""
        latest = (select(workflow_definitions.c.name, func.max(workflow_definitions.c.version).label("version"))
                  .group_by(workflow_definitions.c.name).subquery())
        query = select(workflow_definitions).join(
            latest, (workflow_definitions.c.name == latest.c.name)
            & (workflow_definitions.c.version == latest.c.version)
        ).order_by(workflow_definitions.c.name)
        with read(self.engine) as conn:
            return [_dates(dict(row)) for row in conn.execute(query).mappings()]

    # -- runs ----------------------------------------------------------------------------------

    def create_run(self, run_id: str, *, workflow_name: str, workflow_version: int | None,
                   definition: dict[str, Any], input_text: str, variables: dict[str, Any],
                   steps: Sequence[dict[str, Any]], owner: str | None = None,
                   api_key_id: str | None = None) -> None:
        """Insert a `running` run and one `pending` row per step (`name`, `step_group`, `model`).

        An `owner` gets a first heartbeat; without one the run is fair game for `mark_interrupted`.
        """
        now = utcnow()
        with write(self.engine) as conn:
            conn.execute(workflow_runs.insert().values(
                run_id=run_id, workflow_name=workflow_name, workflow_version=workflow_version, status="running",
                definition=definition, input=input_text, variables=variables, wall_time=0.0,
                created_at=now, updated_at=now, api_key_id=api_key_id, **_ownership(owner, now),
            ))
            conn.execute(workflow_run_steps.insert(), [  # same keys in every row: executemany uses the first's
                {"run_id": run_id, "position": position, "status": "pending", "name": step["name"],
                 "step_group": step.get("step_group"), "model": step.get("model")}
                for position, step in enumerate(steps)
            ])

    def update_step(self, run_id: str, position: int, **values: Any) -> None:
        """Save a step's new values; a step saved is also a sign of life of an owned run."""
        runs = workflow_runs.c
        with write(self.engine) as conn:
            conn.execute(update(workflow_run_steps).where(
                (workflow_run_steps.c.run_id == run_id) & (workflow_run_steps.c.position == position)
            ).values(**values))
            conn.execute(update(workflow_runs).where(
                (runs.run_id == run_id) & (runs.status == "running") & runs.owner.is_not(None)
            ).values(heartbeat_at=utcnow()))

    def finish_run(self, run_id: str, status: str, *, final_output: str | None = None, error: str | None = None,
                   error_step: str | None = None, wall_time: float = 0.0) -> None:
        """Close a run; its totals are the sums of its steps' recorded figures."""
        steps = workflow_run_steps.c
        with write(self.engine) as conn:
            tokens, cost, latency = conn.execute(
                select(func.sum(steps.tokens), func.sum(steps.cost), func.coalesce(func.sum(steps.latency), 0.0))
                .where(steps.run_id == run_id)
            ).one()
            now = utcnow()
            conn.execute(update(workflow_runs).where(workflow_runs.c.run_id == run_id).values(
                status=status, final_output=final_output, error=error, error_step=error_step,
                total_tokens=tokens, total_cost=cost, total_latency=latency,
                wall_time=workflow_runs.c.wall_time + wall_time, updated_at=now,
                finished_at=now if status == "succeeded" else None,
            ))

    def claim_for_resume(self, run_id: str, owner: str | None = None) -> bool:
        """Atomically move a failed or interrupted run back to `running` (for `owner`); False if another caller won."""
        now = utcnow()
        with write(self.engine) as conn:
            result = conn.execute(update(workflow_runs).where(
                (workflow_runs.c.run_id == run_id) & workflow_runs.c.status.in_(RESUMABLE)
            ).values(status="running", error=None, error_step=None, updated_at=now, **_ownership(owner, now)))
            return result.rowcount > 0

    def heartbeat(self, owner: str) -> int:
        """Tell other processes that `owner` is still driving its running runs; returns how many."""
        return refresh_heartbeats(self.engine, workflow_runs, owner)

    def mark_interrupted(self, stale_after: timedelta = STALE_AFTER) -> Interrupted:
        """Runs left `running` without a heartbeat for `stale_after` become `interrupted`, with their running steps.

        Their driver died. Runs another live process drives (a worker, a CLI command, another host) keep beating
        and are left alone; runs without a heartbeat (ownerless, or from before heartbeats) count as abandoned.
        The update is atomic, so of several processes sweeping at once exactly one gets each run.
        """
        steps = workflow_run_steps.c
        if not any_abandoned(self.engine, workflow_runs, stale_after):
            return Interrupted()
        with write(self.engine) as conn:
            marked = conn.execute(update(workflow_runs).where(abandoned(workflow_runs, stale_after)).values(
                status="interrupted", error=INTERRUPTED_ERROR, updated_at=utcnow(),
            ).returning(workflow_runs.c.run_id)).scalars().all()
            if not marked:
                return Interrupted()
            # exactly the runs marked: a run whose heartbeat came in meanwhile keeps its steps
            in_flight = steps.run_id.in_(marked) & (steps.status == "running")
            running = conn.execute(select(steps.run_id, steps.position, steps.request_id, steps.model, steps.prompt)
                                   .where(in_flight)).mappings().all()
            conn.execute(update(workflow_run_steps).where(in_flight).values(status="interrupted"))
        return Interrupted(list(marked), [dict(step) for step in running])

    def get_run(self, run_id: str) -> dict[str, Any] | None:
        """The run with its steps in order."""
        with read(self.engine) as conn:
            run = conn.execute(select(workflow_runs).where(workflow_runs.c.run_id == run_id)).mappings().first()
            if run is None:
                return None
            steps = conn.execute(select(workflow_run_steps).where(workflow_run_steps.c.run_id == run_id)
                                 .order_by(workflow_run_steps.c.position)).mappings().all()
        data = _dates(dict(run))
        data["steps"] = [_dates(dict(step)) for step in steps]
        return data

    def list_runs(self, limit: int = 50, *, status: str | None = None, workflow_name: str | None = None,
                  api_key_id: str | None = None) -> list[dict[str, Any]]:
        """Newest first, without steps or the definition snapshot; one tenant's when `api_key_id` is given."""
        columns = [c for c in workflow_runs.c if c.name != "definition"]
        query = select(*columns).order_by(workflow_runs.c.created_at.desc(), workflow_runs.c.run_id).limit(limit)
        if status is not None:
            query = query.where(workflow_runs.c.status == status)
        if workflow_name is not None:
            query = query.where(workflow_runs.c.workflow_name == workflow_name)
        if api_key_id is not None:
            query = query.where(workflow_runs.c.api_key_id == api_key_id)
        with read(self.engine) as conn:
            return [_dates(dict(row)) for row in conn.execute(query).mappings()]


def _ownership(owner: str | None, now: datetime) -> dict[str, Any]:
    """The columns that say who drives a run; no owner, no heartbeat."""
    return {"owner": owner, "heartbeat_at": now if owner is not None else None}


def _dates(data: dict[str, Any]) -> dict[str, Any]:
    for key, value in data.items():
        if isinstance(value, datetime):
            data[key] = value.isoformat() + "Z"
    return data
