"""A gunicorn worker killed with SIGKILL in the middle of a workflow and a benchmark: the service, without a restart,
marks both runs `interrupted` within the heartbeat window, records the workflow call that was in flight, and resumes
both without asking again for what they had finished.

The heartbeat is shortened to 0.25 s (RUN_HEARTBEAT_SECONDS), so a run is stale after 1 s and the test takes seconds.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from benchmarks.server_harness import ROOT, Service, free_port, process_tree
from models.request_log import RequestLogRepository
from storage.database import create_db_engine
from tests.openai_wire_server import OpenAIWireServer, WireReply
from tests.waiting import wait_for

HEARTBEAT = 0.25
STALE_WINDOW = 5 * HEARTBEAT  # stale after 4 beats, found by the next sweep


def _request(port: int, method: str, path: str, body: dict | None = None) -> tuple[int, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request(method, path, json.dumps(body) if body else None, {"Content-Type": "application/json"})
    response = conn.getresponse()
    data = response.read().decode()
    conn.close()
    return response.status, json.loads(data) if data else None


@pytest.fixture
def upstreams() -> Iterator[tuple[OpenAIWireServer, OpenAIWireServer]]:
    with OpenAIWireServer() as workflow_upstream, OpenAIWireServer() as benchmark_upstream:
        yield workflow_upstream, benchmark_upstream


@pytest.fixture
def server(upstreams: tuple[OpenAIWireServer, OpenAIWireServer], tmp_path: Path) -> Iterator[tuple[Service, int, str]]:
    """gunicorn with one worker, so the worker to kill is the one running everything."""
    models = [{"name": name, "provider": "openai_compatible", "base_url": upstream.base_url, "model": "fake-gpt"}
              for name, upstream in zip(("wf-upstream", "bench-upstream"), upstreams, strict=True)]
    (tmp_path / "models.yaml").write_text(json.dumps({"models": models}))
    port, url = free_port(), f"sqlite:///{tmp_path / 'server.db'}"
    env = {"HOST": "127.0.0.1", "FLASK_PORT": str(port), "DATABASE_URL": url,
           "MODELS_FILE": str(tmp_path / "models.yaml"), "WEB_CONCURRENCY": "1", "WEB_THREADS": "8",
           "WEB_GRACEFUL_TIMEOUT": "5", "LOG_LEVEL": "WARNING", "RUN_HEARTBEAT_SECONDS": str(HEARTBEAT)}
    service = Service("gunicorn", [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "gunicorn.conf.py"),
                                   "api.app:create_app()"], env=env, log=tmp_path / "gunicorn.log")
    try:
        service.wait_http(f"http://127.0.0.1:{port}/health", 60)
        yield service, port, url
    finally:
        service.stop()


def test_runs_of_a_killed_worker_are_interrupted_then_resumed_without_a_restart(server, upstreams) -> None:
    service, port, url = server
    workflow_upstream, benchmark_upstream = upstreams
    workflow_upstream.enqueue(WireReply(text="Tea is popular."), WireReply(text="never sent", delay=60))
    benchmark_upstream.enqueue(WireReply(text="Paris"), WireReply(text="never sent", delay=60))
    steps = [{"name": "summary", "model": "wf-upstream", "prompt_template": "Summarize: {input}"},
             {"name": "title", "model": "wf-upstream", "prompt_template": "Title for: {{ steps.summary.output }}"}]
    threading.Thread(target=_ignore_disconnect, daemon=True, args=(
        lambda: _request(port, "POST", "/api/workflow", {"steps": steps, "input": "why tea is popular"}),)).start()
    status, started = _request(port, "POST", "/api/benchmarks", {"models": ["bench-upstream"], "items": [
        {"id": "q1", "prompt": "Capital of France?", "reference": "Paris"},
        {"id": "q2", "prompt": "Largest planet?", "reference": "Jupiter"}]})
    assert status == 202
    wait_for(lambda: len(workflow_upstream.completions()) == 2 and len(benchmark_upstream.completions()) == 2,
              10, "the second workflow step and the second benchmark item to be in flight")

    [worker] = [pid for pid in process_tree(service.proc.pid) if pid != service.proc.pid]
    os.kill(worker, signal.SIGKILL)
    killed_at = time.monotonic()
    run = wait_for(lambda: _interrupted_workflow(port), 30, "the workflow run to be interrupted")
    wait_for(lambda: _request(port, "GET", f"/api/benchmarks/{started['id']}")[1]["status"] == "interrupted",
              30, "the benchmark run to be interrupted")
    assert time.monotonic() - killed_at < 90  # in practice about a second plus the 1.25 s window here

    summary, title = _request(port, "GET", f"/api/workflow/runs/{run['run_id']}")[1]["run"]["steps"]
    assert (summary["status"], title["status"]) == ("succeeded", "interrupted")
    lost = RequestLogRepository(create_db_engine(url)).get(title["request_id"])  # the call the worker had in flight
    assert lost is not None
    assert (lost["status"], lost["error_type"], lost["model"]) == ("error", "interrupted", "wf-upstream")
    assert lost["prompt"] == "Title for: Tea is popular."

    workflow_upstream.enqueue(WireReply(text="Why the World Drinks Tea"))
    benchmark_upstream.enqueue(WireReply(text="Jupiter"))
    status, resumed = _request(port, "POST", f"/api/workflow/runs/{run['run_id']}/resume")
    assert status == 200 and resumed["workflow"]["final_output"] == "Why the World Drinks Tea"
    assert _request(port, "POST", f"/api/benchmarks/{started['id']}/resume")[0] == 202
    finished = wait_for(lambda: _completed_benchmark(port, started["id"]), 10, "the benchmark to finish")
    assert finished["report"]["models"][0]["correct"] == 2

    prompts = [body["messages"][-1]["content"] for body in workflow_upstream.completions()]
    assert prompts == ["Summarize: why tea is popular", *["Title for: Tea is popular."] * 2]  # summary not repeated
    questions = [body["messages"][-1]["content"] for body in benchmark_upstream.completions()]
    assert questions == ["Capital of France?", "Largest planet?", "Largest planet?"]  # q1 not asked again
    assert service.proc.poll() is None and worker not in process_tree(service.proc.pid)  # same master, new worker


def _ignore_disconnect(call: Callable[[], object]) -> None:
    """The request dies with the worker that served it."""
    try:
        call()
    except (ConnectionError, http.client.HTTPException):
        pass


def _interrupted_workflow(port: int) -> dict[str, Any] | None:
    runs = _request(port, "GET", "/api/workflow/runs?status=interrupted")[1]["runs"]
    return runs[0] if runs else None


def _completed_benchmark(port: int, run_id: int) -> dict[str, Any] | None:
    run = _request(port, "GET", f"/api/benchmarks/{run_id}")[1]
    return run if run["status"] == "completed" else None
