"""The job core on the in-process pool: priority order, retries under the kind's policy, cancellation, progress,
jobs of a dead process queued again, maintenance jobs over HTTP, and `flask worker --burst`."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import update

from api.app import create_app
from api.services import services
from core.settings import Settings
from storage.clock import utcnow
from storage.database import write
from storage.jobs.runner import JobContext, JobKind
from storage.jobs.tables import jobs


@pytest.fixture
def app(sqlite_url):
    settings = Settings.from_env(environ={}, env_file=None, overrides={
        "DATABASE_URL": sqlite_url, "JOBS_POLL_SECONDS": "0.05", "JOBS_CONCURRENCY": "1",
        "RUN_HEARTBEAT_SECONDS": "0.1"})
    app = create_app(settings, {"TESTING": True})
    yield app
    services(app).stop_background()


def _wait(app, job_id: int, status: str, timeout: float = 10.0) -> dict[str, Any]:
    store = services(app).jobs.runner.store
    deadline = time.monotonic() + timeout
    while True:
        job = store.get(job_id)
        assert job is not None
        if job["status"] == status:
            return job
        assert time.monotonic() < deadline, job
        time.sleep(0.02)


def test_due_jobs_run_highest_priority_first_and_report_progress(app):
    runner, ran = services(app).jobs.runner, []

    def record(context: JobContext) -> dict[str, Any]:
        ran.append(context.payload["name"])
        context.progress(1, 1)
        return {"name": context.payload["name"]}

    runner.register("record", JobKind(record))
    start = utcnow() + timedelta(seconds=0.3)  # all due together: only priority orders them
    ids = [runner.submit("record", {"name": name}, priority=priority, scheduled_at=start)
           for name, priority in (("low", -1), ("high", 9), ("normal", 0))]
    for job_id in ids:
        _wait(app, job_id, "succeeded")
    assert ran == ["high", "normal", "low"]
    job = services(app).jobs.runner.store.get(ids[1])
    assert job["result"] == {"name": "high"} and (job["progress_done"], job["progress_total"]) == (1, 1)
    assert job["started_at"] >= start


def test_a_failing_job_is_retried_with_backoff_then_fails_for_good(app):
    runner, attempts = services(app).jobs.runner, []

    def flaky(context: JobContext) -> str:
        attempts.append(time.monotonic())
        if len(attempts) < 2:
            raise RuntimeError("upstream hiccup")
        return "ok"

    runner.register("flaky", JobKind(flaky, max_attempts=3, backoff=0.2))
    runner.register("broken", JobKind(lambda context: 1 / 0, max_attempts=2, backoff=0.05))
    flaky_id, broken_id = runner.submit("flaky"), runner.submit("broken")
    assert _wait(app, flaky_id, "succeeded")["attempts"] == 2
    assert attempts[1] - attempts[0] >= 0.2
    broken = _wait(app, broken_id, "failed")
    assert broken["attempts"] == 2 and broken["error"] == "ZeroDivisionError: division by zero"


def test_cancelling_stops_a_queued_job_and_asks_a_running_one(app):
    runner, client = services(app).jobs.runner, app.test_client()
    started = []

    def patient(context: JobContext) -> None:
        started.append(True)
        while True:
            context.check_cancelled()
            time.sleep(0.02)

    runner.register("patient", JobKind(patient))
    queued = runner.submit("patient", scheduled_at=utcnow() + timedelta(hours=1))
    assert client.post(f"/api/jobs/{queued}/cancel").get_json()["status"] == "cancelled"
    running = runner.submit("patient")
    _wait(app, running, "running")
    assert client.post(f"/api/jobs/{running}/cancel").get_json()["cancel_requested"] is True
    assert _wait(app, running, "cancelled")["attempts"] == 1
    assert len(started) == 1  # the queued one never started
    assert client.get("/api/jobs/999").status_code == 404


def test_the_job_of_a_dead_process_runs_again_while_attempts_remain(app):
    runner, ran = services(app).jobs.runner, []
    runner.register("once", JobKind(lambda context: ran.append(context.job_id), max_attempts=2))
    retried = runner.store.create("once", None, max_attempts=2, scheduled_at=utcnow() + timedelta(hours=1))
    spent = runner.store.create("once", None, max_attempts=1, scheduled_at=utcnow() + timedelta(hours=1))
    with write(services(app).engine) as conn:  # what a killed worker leaves: running, silent
        conn.execute(update(jobs).where(jobs.c.id.in_((retried, spent))).values(
            status="running", attempts=1, owner="dead-host:1:beef", heartbeat_at=utcnow() - timedelta(minutes=1),
            scheduled_at=utcnow()))
    assert runner.reclaim_abandoned() == 1
    assert _wait(app, retried, "succeeded")["attempts"] == 2 and ran == [retried]
    assert runner.store.get(spent)["status"] == "failed"


def test_maintenance_jobs_over_http(app):
    client = app.test_client()
    response = client.post("/api/jobs", json={"kind": "rollup_rebuild"})
    assert response.status_code == 202
    job = _wait(app, response.get_json()["id"], "succeeded")
    assert job["result"] == {"rows": 0}
    assert client.post("/api/jobs", json={"kind": "nope"}).status_code == 400


def test_flask_worker_burst_runs_due_jobs_then_returns(sqlite_url):
    settings = Settings.from_env(environ={}, env_file=None, overrides={"DATABASE_URL": sqlite_url,
                                                                        "JOBS_POLL_SECONDS": "0.05"})
    app = create_app(settings, {"TESTING": True})
    job_id = services(app).jobs.runner.store.create("rollup_rebuild", None)  # recorded, not handed on
    result = app.test_cli_runner().invoke(args=["worker", "--burst"])
    assert result.exit_code == 0, result.output
    assert services(app).jobs.runner.store.get(job_id)["status"] == "succeeded"


def test_purge_deletes_old_finished_jobs_but_keeps_recent_pending_and_batch_jobs(app):
    from storage.jobs.tables import batches

    store = services(app).jobs.runner.store
    later = utcnow() + timedelta(hours=1)  # nothing runs them during the test
    old, recent, pending, batch_job = (store.create("rollup_rebuild", None, scheduled_at=later) for _ in range(4))
    long_ago = utcnow() - timedelta(days=10)
    with write(services(app).engine) as conn:
        conn.execute(update(jobs).where(jobs.c.id.in_((old, batch_job))).values(status="succeeded",
                                                                                 finished_at=long_ago))
        conn.execute(update(jobs).where(jobs.c.id == recent).values(status="failed", finished_at=utcnow()))
        conn.execute(batches.insert().values(job_id=batch_job, format="ours", priority=0, scheduled_at=long_ago,
                                             total=0, created_at=long_ago))
    outcome = app.test_cli_runner().invoke(args=["monitoring", "purge", "--days", "7"])
    assert outcome.exit_code == 0 and "and 1 finished jobs older than 7 days" in outcome.output, outcome.output
    assert store.get(old) is None
    assert all(store.get(job_id) is not None for job_id in (recent, pending, batch_job))
