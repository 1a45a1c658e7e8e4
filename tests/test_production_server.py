"""The production server: gunicorn.conf.py with several workers; Prometheus totals across workers; SIGTERM drains;
slow clients cannot take every request thread.

Each test starts real gunicorn processes against a local OpenAI-wire upstream, so they are kept small.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from benchmarks.bench_load_postgres import prometheus_total, run_load, throwaway_schema
from benchmarks.server_harness import ROOT, Service, free_port, process_tree
from benchmarks.slow_clients import SlowClients
from tests.conftest import POSTGRES_AVAILABLE, POSTGRES_URL
from tests.openai_wire_server import OpenAIWireServer, WireReply

MODEL = "wire-upstream"


def _request(port: int, method: str, path: str, body: dict | None = None) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request(method, path, json.dumps(body) if body else None, {"Content-Type": "application/json"})
    response = conn.getresponse()
    data = response.read().decode()
    conn.close()
    return response.status, data


@pytest.fixture(scope="module")
def upstream() -> Iterator[OpenAIWireServer]:
    with OpenAIWireServer() as server:
        yield server


@contextmanager
def _gunicorn(tmp: Path, upstream: OpenAIWireServer, **env: str) -> Iterator[tuple[Service, int]]:
    """gunicorn with 2 workers on a fresh SQLite file and one models.yaml model pointing at the wire server."""
    (tmp / "models.yaml").write_text(json.dumps({"models": [
        {"name": MODEL, "provider": "openai_compatible", "base_url": upstream.base_url, "model": "fake-gpt",
         "max_attempts": 1, "pricing": {"input_per_million": 1.0, "output_per_million": 2.0}}]}))
    port = free_port()
    env = {"HOST": "127.0.0.1", "FLASK_PORT": str(port), "DATABASE_URL": f"sqlite:///{tmp / 'server.db'}",
           "MODELS_FILE": str(tmp / "models.yaml"), "WEB_CONCURRENCY": "2", "LOG_LEVEL": "WARNING", **env}
    service = Service("gunicorn", [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "gunicorn.conf.py"),
                                   "api.app:create_app()"], env=env, log=tmp / "gunicorn.log")
    try:
        service.wait_http(f"http://127.0.0.1:{port}/health", 60)
        yield service, port
    finally:
        service.stop()


@pytest.fixture(scope="module")
def server(upstream: OpenAIWireServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Service, int]]:
    tmp = tmp_path_factory.mktemp("gunicorn")
    with _gunicorn(tmp, upstream, WEB_THREADS="8", WEB_GRACEFUL_TIMEOUT="15") as started:
        yield started


def test_prometheus_totals_agree_across_workers(server: tuple[Service, int]) -> None:
    service, port = server
    sent = 30
    for index in range(sent):  # a new connection each time, so both workers serve some
        status, _ = _request(port, "POST", "/api/generate", {"prompt": f"hello {index}", "model": MODEL})
        assert status == 200
    assert len(process_tree(service.proc.pid)) == 3  # the master and 2 workers, each with its own memory
    scrapes = [prometheus_total(_request(port, "GET", "/metrics")[1], MODEL) for _ in range(6)]
    assert scrapes == [sent] * 6
    status, body = _request(port, "GET", "/api/metrics?window=all")
    assert status == 200 and json.loads(body)["models"][MODEL]["total_requests"] == sent


def test_a_chunked_body_past_the_limit_is_413(server: tuple[Service, int]) -> None:
    _, port = server
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    body = iter([b'{"prompt": "', b"a" * 2_000_000, b'"}'])  # no Content-Length: Transfer-Encoding: chunked
    try:
        try:
            conn.request("POST", "/api/generate", body=body, headers={"Content-Type": "application/json"},
                         encode_chunked=True)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed before the whole body was sent: its answer is still there
        response = conn.getresponse()
        assert response.status == 413 and json.loads(response.read())["error"]["code"] == "payload_too_large"
    finally:
        conn.close()


def test_sigterm_lets_in_flight_requests_finish(server: tuple[Service, int], upstream: OpenAIWireServer) -> None:
    service, port = server
    upstream.enqueue(WireReply(text="finished after SIGTERM", delay=2.0))
    before = len(upstream.completions())
    answer: dict[str, tuple[int, str]] = {}
    client = threading.Thread(target=lambda: answer.setdefault(
        "reply", _request(port, "POST", "/api/generate", {"prompt": "slow one", "model": MODEL})))
    client.start()
    deadline = time.monotonic() + 10
    while len(upstream.completions()) == before and time.monotonic() < deadline:
        time.sleep(0.01)  # wait until the call is in flight at the upstream
    assert len(upstream.completions()) > before
    os.kill(service.proc.pid, signal.SIGTERM)
    client.join(15)
    status, body = answer["reply"]
    assert status == 200, body
    assert json.loads(body)["response"] == "finished after SIGTERM"
    assert service.proc.wait(15) == 0
    with pytest.raises(OSError):
        _request(port, "GET", "/health")


def test_health_answers_while_450_slow_clients_trickle_their_bodies(upstream: OpenAIWireServer, tmp_path: Path) -> None:
    with _gunicorn(tmp_path, upstream) as (_, port), SlowClients(port, 450) as slow:  # the default threads
        started = time.monotonic()
        status, body = _request(port, "GET", "/health")
        assert status == 200 and json.loads(body)["status"] == "healthy"
        assert time.monotonic() - started < 2.0
        status, _ = _request(port, "POST", "/api/generate", {"prompt": "still served", "model": MODEL})
        assert status == 200
        assert slow.connected == 450  # every slow client still holds its connection (and, in gthread, a thread)


@pytest.mark.postgres
@pytest.mark.skipif(not POSTGRES_AVAILABLE, reason="PostgreSQL not available (set TEST_POSTGRES_URL)")
def test_postgres_four_workers_count_every_request_once_and_hold_the_budget() -> None:
    assert POSTGRES_URL is not None
    with throwaway_schema(POSTGRES_URL) as url:
        figures = run_load(url, requests=200, concurrency=16, workers=4, limit_usd=0.1)
    assert all(figures["checks"].values()), figures


def test_a_breaker_opened_by_failures_in_either_worker_refuses_in_every_worker(tmp_path, upstream):
    upstream.reset()
    upstream.always(WireReply(status=503))
    try:
        with _gunicorn(tmp_path, upstream) as (_, port):
            body = {"prompt": "hi", "model": MODEL}
            failed = [_request(port, "POST", "/api/generate", body)[0] for _ in range(5)]  # new connections: both
            reached = len(upstream.requests)
            refused = [_request(port, "POST", "/api/generate", body) for _ in range(20)]
            reached_after = len(upstream.requests)
    finally:
        upstream.reset()
    assert failed == [502] * 5 and reached == 5
    assert all(status == 503 and json.loads(text)["error"]["code"] == "circuit_open" for status, text in refused)
    assert reached_after == reached  # no worker let a call through to the provider
