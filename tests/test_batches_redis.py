"""Batches on real `flask --app api.app worker` processes over Redis: a 1,000-item batch of mixed priorities runs
highest priority first, a scheduled batch waits for its time, and killing the worker (SIGKILL) mid-batch then
starting another loses no item and completes none twice.

The heartbeat is shortened to 0.25 s (RUN_HEARTBEAT_SECONDS): a dead worker's items are taken back after 1 s.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sys
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from api.app import create_app
from api.services import services
from benchmarks.server_harness import ROOT, Service
from core.settings import Settings
from storage.clock import utcnow
from storage.database import read
from storage.jobs.tables import batch_items
from tests.conftest import redis_client
from tests.openai_wire_server import OpenAIWireServer
from tests.waiting import wait_for

ITEMS = 1000
PRIORITIES = (3, 2, 1, 0)


@pytest.fixture
def env(tmp_path: Path, sqlite_url: str) -> Iterator[dict[str, str]]:
    """What the test's app and its workers share: the database, the model, the Redis queues (a fresh prefix)."""
    client = redis_client()
    prefix = f"test-jobs-{uuid.uuid4().hex[:8]}"
    with OpenAIWireServer() as upstream:
        models = {"models": [{"name": "wire", "provider": "openai_compatible", "base_url": upstream.base_url,
                              "model": "fake-gpt"}]}
        (tmp_path / "models.yaml").write_text(json.dumps(models))
        yield {"DATABASE_URL": sqlite_url, "MODELS_FILE": str(tmp_path / "models.yaml"), "DEFAULT_MODEL": "wire",
               "JOBS_URL": os.environ["TEST_REDIS_URL"], "JOBS_QUEUE": prefix, "JOBS_POLL_SECONDS": "0.2",
               "RUN_HEARTBEAT_SECONDS": "0.25", "BATCH_CONCURRENCY": "8", "BATCH_MODEL_CONCURRENCY": "8",
               "LOG_LEVEL": "WARNING"}
    for key in client.scan_iter(f"rq:*{prefix}*"):
        client.delete(key)
    client.close()


def _worker(env: dict[str, str], log: Path) -> Service:
    return Service("worker", [sys.executable, "-m", "flask", "--app", "api.app", "worker"], env=env, log=log,
                   cwd=ROOT)


def test_a_thousand_item_batch_survives_a_killed_worker_in_priority_order(env, tmp_path):
    app = create_app(Settings.from_env(environ={}, env_file=None, overrides=env), {"TESTING": True})
    client, svc = app.test_client(), services(app)
    priorities = [PRIORITIES[n % len(PRIORITIES)] for n in range(ITEMS)]
    random.Random(7).shuffle(priorities)
    requests = [{"model": "wire", "messages": [{"role": "user", "content": f"item {n}"}], "priority": p}
                for n, p in enumerate(priorities)]
    response = client.post("/api/batches", json={"requests": requests})
    assert response.status_code == 202
    batch_id = response.get_json()["id"]
    later = utcnow() + timedelta(seconds=4)
    scheduled = client.post("/api/batches", json={"requests": [{"prompt": "scheduled"}], "priority": 100,
                                                  "scheduled_at": later.isoformat()}).get_json()["id"]

    first = _worker(env, tmp_path / "worker-1.log")
    try:
        wait_for(lambda: _done(svc.engine, batch_id) >= 300, 40, "300 items done by the first worker")
    finally:
        os.killpg(first.proc.pid, signal.SIGKILL)  # mid-batch, items in flight
        first.stop()
    killed_at_done = _done(svc.engine, batch_id)
    assert killed_at_done < ITEMS

    second = _worker(env, tmp_path / "worker-2.log")
    try:
        wait_for(lambda: client.get(f"/api/batches/{batch_id}").get_json()["status"] == "completed", 60,
                  "the batch to complete on the second worker")
        wait_for(lambda: client.get(f"/api/batches/{scheduled}").get_json()["status"] == "completed", 20,
                  "the scheduled batch")
    finally:
        second.stop()

    items = _items(svc.engine, batch_id)
    assert all(item["status"] == "succeeded" for item in items) and len(items) == ITEMS
    success = [row for row in svc.request_log.list(5000, status="success") if f"batch:{batch_id}" in row["tags"]]
    assert len(success) == ITEMS  # every item completed exactly once...
    assert {row["request_id"] for row in success} == {item["request_id"] for item in items}  # ...by its own call
    assert len({row["prompt"] for row in success}) == ITEMS
    lost = [row for row in svc.request_log.list(5000, status="error") if f"batch:{batch_id}" in row["tags"]]
    assert all(row["error_type"] == "interrupted" for row in lost)
    assert len(lost) == sum(item["attempts"] - 1 for item in items)  # each cut-short call recorded once
    assert lost, "the kill should have cut calls short"

    finished = {p: sorted(i["finished_at"] for i in items if i["priority"] == p) for p in PRIORITIES}
    medians = [finished[p][len(finished[p]) // 2] for p in PRIORITIES]
    assert medians == sorted(medians)  # higher priority finished earlier
    for higher, lower in zip(PRIORITIES, PRIORITIES[2:], strict=False):  # and two levels apart, entirely
        assert finished[higher][-1] < finished[lower][0]

    [waited] = _items(svc.engine, scheduled)
    assert waited["started_at"] >= later  # priority 100, yet not before its time


def _done(engine, batch_id: int) -> int:
    with read(engine) as conn:
        return int(conn.execute(select(func.count()).where(
            (batch_items.c.batch_id == batch_id) & (batch_items.c.status == "succeeded"))).scalar_one())


def _items(engine, batch_id: int) -> list[dict[str, Any]]:
    with read(engine) as conn:
        return [dict(row) for row in conn.execute(select(batch_items).where(batch_items.c.batch_id == batch_id)
                                                  .order_by(batch_items.c.position)).mappings()]
