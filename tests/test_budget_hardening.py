"""Budgets that hold from the first millisecond: across gunicorn workers, when the log write fails, for thinking
models, and against a `max_tokens` the model cannot honour."""

from __future__ import annotations

import http.client
import json
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import func, select

from benchmarks.server_harness import ROOT, Service, free_port
from models.errors import CallRefusedError
from models.request_log import request_log
from monitoring.budget_guard import BudgetExceededError
from monitoring.budget_store import budget_reservations
from storage.database import create_db_engine, read
from tests.conftest import POSTGRES_AVAILABLE
from tests.gemini_wire_server import GeminiWireServer, WireReply
from tests.openai_wire_server import OpenAIWireServer

MODEL = "priced-upstream"
# Worst case of one call: (4 bytes + 16) input + 10 output tokens = $0.01002; actual: 1 + 3 tokens = $0.003001.
PRICING = {"input_per_million": 1.0, "output_per_million": 1000.0}
WARM_UP = 16 * 0.003001  # spent before the budget exists; a `total` budget counts it too
LIMIT = WARM_UP + 0.05


def _post(port: int, path: str, body: dict) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
    response = conn.getresponse()
    data = json.loads(response.read() or b"{}")
    conn.close()
    return response.status, data


@pytest.fixture(scope="module")
def upstream() -> Iterator[OpenAIWireServer]:
    with OpenAIWireServer() as server:
        yield server


def _serve(tmp: Path, database_url: str, workers: int, upstream: OpenAIWireServer) -> tuple[Service, int]:
    (tmp / "models.yaml").write_text(json.dumps({"models": [
        {"name": MODEL, "provider": "openai_compatible", "base_url": upstream.base_url, "pricing": PRICING}]}))
    port = free_port()
    env = {"HOST": "127.0.0.1", "FLASK_PORT": str(port), "DATABASE_URL": database_url, "LOG_LEVEL": "WARNING",
           "MODELS_FILE": str(tmp / "models.yaml"), "WEB_CONCURRENCY": str(workers), "WEB_THREADS": "32"}
    service = Service("gunicorn", [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "gunicorn.conf.py"),
                                   "api.app:create_app()"], env=env, log=tmp / "gunicorn.log")
    service.wait_http(f"http://127.0.0.1:{port}/health", 120)
    return service, port


@pytest.mark.parametrize("backend", [
    pytest.param(("sqlite", 2), id="sqlite-2-workers"),
    pytest.param(("postgres", 4), id="postgres-4-workers", marks=pytest.mark.skipif(
        not POSTGRES_AVAILABLE, reason="PostgreSQL not available (set TEST_POSTGRES_URL)")),
])
def test_fifty_calls_fired_right_after_a_budget_is_created_never_overshoot(backend, upstream, tmp_path, request):
    kind, workers = backend
    url = f"sqlite:///{tmp_path / 'budget.db'}" if kind == "sqlite" else request.getfixturevalue("postgres_url")
    service, port = _serve(tmp_path, url, workers, upstream)
    try:
        call = {"model": MODEL, "prompt": "ping", "max_tokens": 10}
        with ThreadPoolExecutor(8) as pool:  # every worker has served calls (and would have cached "no budgets")
            assert set(pool.map(lambda _: _post(port, "/api/generate", call)[0], range(16))) == {200}
        status, _ = _post(port, "/api/budgets", {"name": "cap", "scope": "global", "period": "total",
                                                 "limit_usd": LIMIT, "hard_limit": True})
        assert status == 201
        with ThreadPoolExecutor(50) as pool:
            statuses = list(pool.map(lambda _: _post(port, "/api/generate", call)[0], range(50)))
    finally:
        service.stop()
    engine = create_db_engine(url)
    with read(engine) as conn:
        spent = conn.execute(select(func.sum(request_log.c.cost))).scalar()
        left = conn.execute(select(func.count()).select_from(budget_reservations)).scalar()
    engine.dispose()
    assert statuses.count(200) >= 1 and set(statuses) <= {200, 402}
    assert WARM_UP + 0.003 <= spent <= LIMIT + 1e-9
    assert left == 0  # no reservation outlives its call


def test_the_reservation_is_released_when_the_log_write_fails(svc, fake_model, monkeypatch):
    svc.budgets.create(_hard_budget(1.0))
    monkeypatch.setattr(svc.request_log, "insert", _failing_insert)
    with pytest.raises(RuntimeError, match="disk full"):
        svc.registry.get_model("fake").generate("hello", max_tokens=5)
    assert fake_model.calls  # the provider answered; only the record failed
    with read(svc.engine) as conn:
        assert conn.execute(select(func.count()).select_from(budget_reservations)).scalar() == 0


def _failing_insert(record):
    raise RuntimeError("disk full")


def _hard_budget(limit: float, **fields):
    from monitoring.budgets import BudgetSpec

    return BudgetSpec(**{"name": "hard", "scope": "global", "period": "total", "limit_usd": limit,
                         "hard_limit": True, **fields})


@pytest.fixture
def gemini_registry(tmp_path):
    from api.app import create_app
    from api.services import services
    from core.settings import Settings

    with GeminiWireServer() as server:
        settings = Settings.from_env(environ={}, env_file=None, overrides={
            "DATABASE_URL": f"sqlite:///{tmp_path / 'thinking.db'}", "GEMINI_API_KEY": "k",
            "GEMINI_BASE_URL": server.base_url})
        yield services(create_app(settings)), server


def test_a_thinking_model_reserves_its_thinking_allowance(gemini_registry):
    """Gemini bills thoughts beyond `max_tokens`: a budget that fits only the answer must refuse."""
    svc, server = gemini_registry
    model = svc.registry.get_model("gemini-2.5-flash")
    answer_only = model.pricing.cost(100, 100)
    svc.budgets.create(_hard_budget(answer_only * 2))
    with pytest.raises(BudgetExceededError) as refused:
        model.generate("hi", max_tokens=100)
    assert refused.value.details["requested"] >= model.pricing.cost(0, 100 + 24_576)
    server.enqueue(WireReply(text="ok", candidates_tokens=1, thoughts_tokens=50))
    assert model.generate("hi", max_tokens=100, thinking_budget=60).success  # a bounded budget fits
    assert [r["action"] for r in server.requests].count("generateContent") == 1


def test_max_tokens_beyond_the_model_limit_is_refused_not_clamped(client, svc, fake_model):
    fake_model.max_output_tokens = 100
    response = client.post("/api/generate", json={"prompt": "x", "max_tokens": 101})
    error = response.get_json()["error"]
    assert response.status_code == 400 and error["details"]["fields"][0]["field"] == "max_tokens"
    assert "at most 100" in error["message"] and fake_model.calls == []
    assert client.post("/api/generate", json={"prompt": "x", "max_tokens": 100}).status_code == 200


def test_a_refusal_is_still_a_call_refused_error(svc, fake_model):
    svc.budgets.create(_hard_budget(1e-9))
    with pytest.raises(CallRefusedError):
        svc.registry.get_model("fake").generate("hello", max_tokens=5)
