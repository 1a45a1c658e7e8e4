"""Batches on the in-process job pool: submission forms and their errors, results in order, one request-log row per
item linked by tag, priorities across batches, scheduled start, the per-model bound, cancellation, and items of a
dead worker run again without completing twice."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from api.app import create_app
from api.auth import create_key
from api.services import api_keys, services
from core.settings import Settings
from models.messages import GenerationRequest
from models.params import CallContext
from storage.clock import utcnow
from storage.database import read, write
from storage.jobs.tables import batch_items, jobs
from tests.fakes import FakeModel

APPS: list[Any] = []  # the apps of the running test, their threads stopped after it (see `_stop_apps`)


def _app(sqlite_url: str, model: FakeModel, **overrides: str):
    settings = Settings.from_env(environ={}, env_file=None, overrides={
        "DATABASE_URL": sqlite_url, "DEFAULT_MODEL": "fake-model", "JOBS_POLL_SECONDS": "0.05", **overrides})
    app = create_app(settings, {"TESTING": True})
    services(app).registry.register_model(model, aliases=("fake",))
    APPS.append(app)
    return app


@pytest.fixture(autouse=True)
def _stop_apps():
    """A stopped test's app must not poll its (dropped) database every 50 ms until it is garbage."""
    yield
    while APPS:
        services(APPS.pop()).stop_background()


@pytest.fixture
def model() -> FakeModel:
    return FakeModel()


@pytest.fixture
def client(sqlite_url, model):
    return _app(sqlite_url, model).test_client()


def _wait_done(client, batch_id: int, timeout: float = 20.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        batch = client.get(f"/api/batches/{batch_id}").get_json()
        if batch["status"] in ("completed", "cancelled", "failed"):
            return batch
        time.sleep(0.05)
    raise AssertionError(f"batch {batch_id} did not finish: {batch}")


def _wait_job(client, job_id: int, status: str) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while (job := client.get(f"/api/jobs/{job_id}").get_json())["status"] != status:
        assert time.monotonic() < deadline, job
        time.sleep(0.05)
    return job


def _results(client, batch_id: int) -> list[dict[str, Any]]:
    response = client.get(f"/api/batches/{batch_id}/results")
    assert response.status_code == 200 and response.mimetype == "application/x-ndjson"
    return [json.loads(line) for line in response.get_data(as_text=True).splitlines()]


def _log_rows(client, batch_id: int) -> list[dict[str, Any]]:
    log = services(client.application).request_log
    return [row for row in log.list(1000) if f"batch:{batch_id}" in (row["tags"] or [])]


def test_a_json_batch_runs_every_item_once_and_returns_results_in_order(client, model):
    requests = [{"prompt": f"question {n}", "max_tokens": 8, "tags": ["mine"]} for n in range(5)]
    requests.append({"model": "fake", "messages": [{"role": "user", "content": "chat please"}], "custom_id": "c"})
    response = client.post("/api/batches", json={"requests": requests}, headers={"X-Tags": "team-a"})
    assert response.status_code == 202
    batch_id = response.get_json()["id"]

    batch = _wait_done(client, batch_id)
    assert batch["status"] == "completed" and batch["progress"] == {"done": 6, "total": 6}
    lines = _results(client, batch_id)
    assert [line["position"] for line in lines] == list(range(6))
    assert [line["response"]["body"]["response"] for line in lines[:5]] == [f"echo: question {n}" for n in range(5)]
    chat = lines[5]
    assert chat["custom_id"] == "c" and chat["response"]["body"]["object"] == "chat.completion"
    assert chat["response"]["body"]["choices"][0]["message"]["content"] == "echo: chat please"

    rows = {row["request_id"]: row for row in _log_rows(client, batch_id)}
    assert set(rows) == {line["request_id"] for line in lines}  # one row per item, found by the batch tag
    assert len(model.calls) == 6
    first = rows[lines[0]["request_id"]]
    assert first["source"] == "api" and {"mine", "team-a", "batch"} <= set(first["tags"])
    job = _wait_job(client, batch["job_id"], "succeeded")
    assert (job["kind"], job["attempts"], job["progress"]) == ("batch", 1, {"done": 6, "total": 6})


def test_a_jsonl_batch_in_openai_format_keeps_custom_ids(client):
    lines = [{"custom_id": f"req-{n}", "method": "POST", "url": "/v1/chat/completions",
              "body": {"model": "fake", "messages": [{"role": "user", "content": f"hi {n}"}]}} for n in range(3)]
    body = "\n".join(json.dumps(line) for line in lines) + "\n"
    response = client.post("/api/batches?priority=3", data=body, content_type="application/x-ndjson")
    assert response.status_code == 202
    batch = _wait_done(client, response.get_json()["id"])
    assert batch["priority"] == 3 and batch["format"] == "openai"
    results = _results(client, batch["id"])
    assert [(r["custom_id"], r["response"]["body"]["choices"][0]["message"]["content"]) for r in results] == [
        (f"req-{n}", f"echo: hi {n}") for n in range(3)]


@pytest.mark.parametrize(("body", "field"), [
    ('{"prompt": "fine"}\n{"prompt": \n', "line 2"),
    ('{"prompt": "fine"}\n\n[1, 2]\n', "line 3"),
    ('{"prompt": "fine"}\n{"prompt": "x", "model": "nope"}\n', "line 2"),
    ('{"custom_id": "a", "method": "POST", "url": "/v1/embeddings", "body": {}}\n', "line 1.url"),
])
def test_a_bad_jsonl_line_is_a_400_naming_it(client, body, field):
    response = client.post("/api/batches", data=body, content_type="application/x-ndjson")
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["code"] == "validation_error" and error["details"]["fields"][0]["field"] == field


@pytest.mark.parametrize(("payload", "field"), [
    ({"requests": []}, "requests"),
    ({"requests": [{"prompt": "a"}, {"prompt": "b", "stream": True}]}, "requests.1.stream"),
    ({"requests": [{"prompt": "a"}], "priority": 1000}, "priority"),
    ({"requests": [{"model": "fake", "messages": [], "n": 2}]}, "requests.0.messages"),
])
def test_a_bad_json_batch_is_a_400_and_nothing_is_queued(client, model, payload, field):
    response = client.post("/api/batches", json=payload)
    assert response.status_code == 400
    assert field in [f["field"] for f in response.get_json()["error"]["details"]["fields"]]
    assert client.post("/api/batches", data="x", content_type="text/plain").status_code == 415
    assert not model.calls


def test_higher_priority_runs_first_and_a_scheduled_batch_waits(database_url, model):
    client = _app(database_url, model, BATCH_CONCURRENCY="1", BATCH_MODEL_CONCURRENCY="1").test_client()
    start = utcnow() + timedelta(seconds=1)
    ids = {}
    for priority in (-5, 0, 7):  # all due at once: only priority orders them
        response = client.post("/api/batches", json={"requests": [{"prompt": f"p{priority} {n}"} for n in range(4)],
                                                     "priority": priority, "scheduled_at": start.isoformat()})
        ids[priority] = response.get_json()["id"]
    assert client.get(f"/api/batches/{ids[7]}").get_json()["status"] == "scheduled"
    time.sleep(0.5)
    assert not model.calls  # nothing before its time

    for batch_id in ids.values():
        _wait_done(client, batch_id)
    assert utcnow() >= start
    order = [request.prompt.split()[0] for request in model.calls]
    assert order == ["p7"] * 4 + ["p0"] * 4 + ["p-5"] * 4


def test_items_of_one_model_never_exceed_the_bound(database_url):
    model = FakeModel(delay=0.05)
    client = _app(database_url, model, BATCH_CONCURRENCY="8", BATCH_MODEL_CONCURRENCY="2").test_client()
    batch_id = client.post("/api/batches", json={"requests": [{"prompt": f"q{n}"} for n in range(12)]}).get_json()["id"]
    _wait_done(client, batch_id)
    overlap = max(sum(1 for s, e in model.spans if s <= start < e) for start, _ in model.spans)
    assert overlap == 2  # bounded, and the bound is used


def test_cancelling_a_batch_stops_the_items_not_started(sqlite_url):
    model = FakeModel(delay=0.1)
    client = _app(sqlite_url, model, BATCH_CONCURRENCY="1", BATCH_MODEL_CONCURRENCY="1").test_client()
    batch_id = client.post("/api/batches", json={"requests": [{"prompt": f"q{n}"} for n in range(20)]}).get_json()["id"]
    deadline = time.monotonic() + 10
    while not model.calls and time.monotonic() < deadline:
        time.sleep(0.02)
    assert client.post(f"/api/batches/{batch_id}/cancel").get_json()["status"] == "cancelled"
    batch = _wait_done(client, batch_id)
    assert batch["counts"]["cancelled"] >= 15 and len(model.calls) <= 3
    _wait_job(client, batch["job_id"], "cancelled")


def test_items_a_dead_worker_held_run_again_and_complete_once(database_url, model):
    app = _app(database_url, model, RUN_HEARTBEAT_SECONDS="0.1", BATCH_CONCURRENCY="2")
    client, svc = app.test_client(), services(app)
    batch_id = client.post("/api/batches", json={"requests": [{"prompt": "first"}], "scheduled_at":
                                                 (utcnow() + timedelta(hours=1)).isoformat()}).get_json()["id"]
    with write(svc.engine) as conn:  # what a worker killed mid-call leaves: running, a request id, no heartbeat
        conn.execute(update(batch_items).where(batch_items.c.batch_id == batch_id).values(
            status="running", owner="dead-host:1:beef", heartbeat_at=utcnow() - timedelta(minutes=1), attempts=1,
            request_id="00000000-0000-4000-8000-000000000001", not_before=utcnow()))
    batch = client.get(f"/api/batches/{batch_id}").get_json()
    with write(svc.engine) as conn:  # its job: due now
        conn.execute(update(jobs).where(jobs.c.id == batch["job_id"]).values(scheduled_at=utcnow()))

    svc.jobs.runner.reclaim_abandoned()  # what the sweep of any live process does
    lost = svc.request_log.get("00000000-0000-4000-8000-000000000001")
    assert lost is not None and (lost["status"], lost["error_type"]) == ("error", "interrupted")
    svc.jobs.runner.dispatch(batch["job_id"])
    assert _wait_done(client, batch_id)["status"] == "completed"
    [line] = _results(client, batch_id)
    assert line["status"] == "succeeded" and line["request_id"] != lost["request_id"]
    with read(svc.engine) as conn:
        attempts = conn.execute(select(batch_items.c.attempts).where(batch_items.c.batch_id == batch_id)).scalar()
    assert attempts == 2 and len(model.calls) == 1
    rows = _log_rows(client, batch_id)
    assert sorted(row["status"] for row in rows) == ["error", "success"]  # the lost call and the one that completed
    # the dead worker's late completion cannot overwrite the outcome
    assert not svc.jobs.batches.complete_item(1, "dead-host:1:beef", "failed", {"error": "late"})


def test_items_run_as_the_submitting_key_and_other_tenants_cannot_see_the_batch(sqlite_url, model):
    app = _app(sqlite_url, model)
    store = api_keys(app)
    (alice_id, alice), (_, bob) = create_key(store, "alice"), create_key(store, "bob")
    _, admin = create_key(store, "ops", admin=True)
    client = app.test_client()
    as_alice = {"Authorization": f"Bearer {alice}"}
    batch_id = client.post("/api/batches", json={"requests": [{"prompt": "hello"}]}, headers=as_alice).get_json()["id"]
    assert client.get(f"/api/batches/{batch_id}", headers={"Authorization": f"Bearer {bob}"}).status_code == 404
    assert client.get(f"/api/batches/{batch_id}/results",
                      headers={"Authorization": f"Bearer {bob}"}).status_code == 404
    deadline = time.monotonic() + 10
    while client.get(f"/api/batches/{batch_id}", headers=as_alice).get_json()["status"] != "completed":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    [row] = [row for row in services(app).request_log.list(10) if f"batch:{batch_id}" in (row["tags"] or [])]
    assert row["api_key_id"] == alice_id
    assert client.get(f"/api/batches/{batch_id}", headers={"Authorization": f"Bearer {admin}"}).status_code == 200


def test_an_item_whose_call_ended_before_its_worker_died_is_settled_from_the_log_not_called_again(database_url, model):
    app = _app(database_url, model, RUN_HEARTBEAT_SECONDS="0.1")
    client, svc = app.test_client(), services(app)
    answered = svc.registry.require_model("fake-model").run(GenerationRequest.build("first"), CallContext(
        source="api", request_id="00000000-0000-4000-8000-000000000002")).result  # the dead worker's call
    batch_id = client.post("/api/batches", json={"requests": [{"prompt": "first"}], "scheduled_at":
                                                 (utcnow() + timedelta(hours=1)).isoformat()}).get_json()["id"]
    with write(svc.engine) as conn:  # it died before recording the item's outcome
        conn.execute(update(batch_items).where(batch_items.c.batch_id == batch_id).values(
            status="running", owner="dead-host:1:beef", heartbeat_at=utcnow() - timedelta(minutes=1), attempts=1,
            request_id=answered.request_id))

    svc.jobs.runner.reclaim_abandoned()
    batch = client.get(f"/api/batches/{batch_id}").get_json()
    assert batch["status"] == "completed" and len(model.calls) == 1  # the one call, not repeated
    [line] = _results(client, batch_id)
    assert line["request_id"] == answered.request_id and line["response"]["body"]["response"] == "echo: first"
