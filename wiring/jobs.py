"""Background jobs, wired: the runner and its transport (RQ over Redis when JOBS_URL / REDIS_URL is set, else an
in-process pool), the batch store, and the job kinds of the domain services."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

from sqlalchemy import Engine

from ab_testing.rollouts import RolloutManager
from comparison.benchmark import BenchmarkRunner
from core.settings import Settings
from models.params import CallContext
from monitoring.rollup_rebuild import rebuild_rollups
from storage.jobs.batch_store import BatchStore
from storage.jobs.in_process import InProcessQueue
from storage.jobs.job_store import JobStore
from storage.jobs.redis_queue import RedisQueue
from storage.jobs.runner import JobContext, JobKind, JobRunner
from storage.run_sweeper import RunSweeper
from workflows.workflow_engine import WorkflowEngine

# The function an RQ worker calls with a job id: it runs the job on the worker's own app (`flask worker`).
PERFORM = "api.jobs.perform"


@dataclass
class Jobs:
    """The job runner of one database, where it sends jobs, and the batches it runs."""

    runner: JobRunner
    queue: InProcessQueue | RedisQueue
    batches: BatchStore
    watch: RunSweeper  # queues again the jobs of dead processes; sends due jobs to Redis or wakes the pool


def build_jobs(settings: Settings, engine: Engine) -> Jobs:
    store = JobStore(engine)
    runner = JobRunner(store, heartbeat_interval=settings.run_heartbeat_seconds)
    queue: InProcessQueue | RedisQueue
    if settings.jobs_redis_url:
        queue = RedisQueue(settings.jobs_redis_url, store, prefix=settings.jobs_queue, perform=PERFORM)
    else:
        queue = InProcessQueue(runner, concurrency=settings.jobs_concurrency, poll_seconds=settings.jobs_poll_seconds)
    runner.transport = queue
    batches = BatchStore(engine, store)
    runner.also_beat(batches.heartbeat)
    watch = RunSweeper((partial(_look, runner, queue),), interval=settings.jobs_poll_seconds)
    return Jobs(runner=runner, queue=queue, batches=batches, watch=watch)


def _look(runner: JobRunner, queue: InProcessQueue | RedisQueue) -> None:
    """One look of the watch: reclaim the jobs of dead processes, then send (Redis) or start (in-process) what
    is due."""
    runner.reclaim_abandoned()
    if isinstance(queue, RedisQueue):
        queue.send_due()
    else:
        queue.wake()


def register_domain_jobs(jobs: Jobs, engine: Engine, benchmarks: BenchmarkRunner, rollouts: RolloutManager,
                         workflows: WorkflowEngine) -> None:
    """The kinds the domain services run as jobs: benchmark runs, workflow runs, rollup rebuilds and rollout
    steps."""
    runner = jobs.runner
    # Like a benchmark, a workflow run whose process died is `interrupted` and resumed on request, not re-run.
    runner.register("workflow_run", JobKind(partial(_run_workflow, workflows), max_attempts=1))
    # A benchmark is not re-run by the job system: a run whose process died is `interrupted`, and resumed on request.
    runner.register("benchmark", JobKind(benchmarks.run_job, max_attempts=1))
    runner.register("rollup_rebuild", JobKind(lambda context: _rebuild_rollups(engine, context)))
    runner.register("rollout_step", JobKind(lambda _context: rollouts.advance_running(), max_attempts=1))
    benchmarks.launch = runner.submit


def _run_workflow(workflows: WorkflowEngine, context: JobContext) -> dict[str, Any]:
    """A run started with `async`: validated when submitted, run under the id it was given, as its key and user."""
    payload = context.payload
    caller = CallContext(source="workflow", user_id=payload.get("user_id"), api_key_id=context.api_key_id,
                         tags=tuple(payload["tags"]) if payload.get("tags") else None)
    run = workflows.run(payload["definition"], payload["input"], variables=payload.get("variables"),
                        version=payload.get("version"), caller=caller, run_id=payload["run_id"])
    return {"run_id": run["run_id"], "status": run["status"]}


def _rebuild_rollups(engine: Engine, context: JobContext) -> dict[str, Any]:
    since = context.payload.get("since")
    return {"rows": rebuild_rollups(engine, datetime.fromisoformat(since) if since else None)}
