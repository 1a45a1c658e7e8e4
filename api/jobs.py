"""Background jobs over HTTP and the worker command.

`GET /api/jobs/<id>` shows a job's status, attempts and progress; `POST /api/jobs/<id>/cancel` cancels it;
`POST /api/jobs` starts a maintenance job (an admin's task). `flask --app api.app worker` runs jobs: an RQ
worker on the Redis queues when JOBS_URL / REDIS_URL is set, else this database's jobs on an in-process pool.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Literal

import click
from flask import Response, jsonify
from pydantic import BaseModel, ConfigDict, Field

from api.openapi import ApiBlueprint, RowId, json_object
from api.services import services
from api.tenancy import caller_key, require_admin, tenant
from core.errors import NotFoundError
from storage.jobs.job_store import public_job
from storage.jobs.redis_queue import RedisQueue

bp = ApiBlueprint("jobs", __name__, url_prefix="/api", cli_group=None)
JOB = json_object("{id, kind, status (queued, running, succeeded, failed, cancelled), priority, scheduled_at, "
                  "attempts, max_attempts, progress: {done, total}, result, error, cancel_requested, timestamps}")
IDLE_POLL_SECONDS = 0.2


class JobPath(BaseModel):
    job_id: RowId


class MaintenanceJob(BaseModel):
    """A maintenance job: rebuild the hourly rollups (from `since`, default all), or advance running rollouts."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["rollup_rebuild", "rollout_step"]
    since: datetime | None = Field(default=None, description="rollup_rebuild: only hours from this UTC time on")
    priority: int = Field(default=0, ge=-100, le=100)


@bp.get("/jobs/<int:job_id>", responses={200: JOB})
def get_job(path: JobPath) -> Response:
    """A job's status, attempts and progress."""
    return jsonify(public_job(_job(path.job_id)))


@bp.post("/jobs/<int:job_id>/cancel", responses={200: JOB})
def cancel_job(path: JobPath) -> Response:
    """Cancel a queued job; a running one is asked to stop at its next step."""
    _job(path.job_id)
    services().jobs.runner.store.cancel(path.job_id)
    return jsonify(public_job(_job(path.job_id)))


@bp.post("/jobs", responses={202: JOB})
def start_job(body: MaintenanceJob) -> tuple[Response, int]:
    """Queue a maintenance job."""
    require_admin("start maintenance jobs: they touch every tenant's data")
    payload = {"since": body.since.isoformat()} if body.since else None
    job_id = services().jobs.runner.submit(body.kind, payload, priority=body.priority, api_key_id=caller_key())
    return jsonify(public_job(_job(job_id))), 202


def _job(job_id: int) -> dict:
    """The job, or 404 when absent or another tenant's."""
    job = services().jobs.runner.store.get(job_id)
    owner = tenant()
    if job is None or (owner is not None and job["api_key_id"] != owner):
        raise NotFoundError(f"No job {job_id}", details={"id": job_id})
    return job


def perform(job_id: int) -> bool:
    """What an RQ worker calls with a job id: run it on this worker's app (a no-op if another runner has it)."""
    return services().jobs.runner.run(job_id)


@bp.cli.command("worker")
@click.option("--burst", is_flag=True, help="Stop once no job is due instead of waiting for more.")
def worker(burst: bool) -> None:
    """Run background jobs until stopped: on the Redis queues (JOBS_URL / REDIS_URL), else this database's."""
    svc = services()
    for chore in svc.periodic_chores():  # reclaims runs and jobs of dead processes, sends scheduled jobs when due
        chore.ensure_started()
    queue = svc.jobs.queue
    if isinstance(queue, RedisQueue):
        svc.jobs.watch.sweep()  # what is due now is on the queues before the worker looks
        queue.worker().work(burst=burst, logging_level=svc.settings.log_level)
        return
    queue.wake()
    while not (burst and queue.idle() and not svc.jobs.runner.store.next_due(1)):
        time.sleep(IDLE_POLL_SECONDS)
