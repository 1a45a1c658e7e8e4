"""One composition root: a plain Python program, the HTTP API and a standalone model are wired alike, so a hard
budget created through the API holds for all of them, and a budgeted Gemini call is one provider request."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from api.app import create_app
from api.services import services
from core.settings import Settings
from models.model_registry import ModelRegistry
from storage.database import get_engine
from tests.fakes import FakeModel
from tests.gemini_wire_server import GeminiWireServer

ROOT = Path(__file__).resolve().parent.parent
PLAIN_PROGRAM = """
import json
from models.gemini_model import GeminiModel
from models.model_registry import ModelRegistry

outcomes = []
for model in (ModelRegistry().get_model("gemini-2.5-flash"), GeminiModel("gemini-2.5-flash")):
    try:
        model.generate("Say hi", max_tokens=50)
        outcomes.append({"allowed": True})
    except Exception as exc:
        outcomes.append({"type": type(exc).__name__, "code": exc.code, "status": exc.http_status})
print(json.dumps(outcomes))
"""
TINY_BUDGET = {"name": "tiny", "scope": "global", "period": "daily", "limit_usd": 0.00001, "hard_limit": True}


@pytest.fixture
def gemini():
    with GeminiWireServer() as server:
        yield server


def _settings(tmp_path: Path, gemini: GeminiWireServer, **extra: str) -> Settings:
    return Settings.from_env(environ={}, env_file=None, overrides={
        "DATABASE_URL": f"sqlite:///{tmp_path / 'shared.db'}", "GEMINI_API_KEY": "k",
        "GEMINI_BASE_URL": gemini.base_url, **extra})


def test_a_plain_python_process_is_refused_like_the_api(tmp_path, gemini):
    settings = _settings(tmp_path, gemini)
    client = create_app(settings, {"TESTING": True}).test_client()
    assert client.post("/api/budgets", json=TINY_BUDGET).status_code == 201
    over_http = client.post("/api/generate", json={"model": "gemini-2.5-flash", "prompt": "Say hi", "max_tokens": 50})
    http_error = over_http.get_json()["error"]
    assert over_http.status_code == 402 and http_error["code"] == "budget_exceeded"

    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT), "DATABASE_URL": settings.database_url,
           "GEMINI_API_KEY": "k", "GEMINI_BASE_URL": gemini.base_url}
    finished = subprocess.run([sys.executable, "-c", PLAIN_PROGRAM], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=120)
    assert finished.returncode == 0, finished.stderr
    registry_call, standalone_call = json.loads(finished.stdout.strip().splitlines()[-1])
    for outcome in (registry_call, standalone_call):
        assert outcome == {"type": "BudgetExceededError", "code": "budget_exceeded", "status": 402}
    assert gemini.requests_for("generateContent") == []  # nobody reached the provider
    rows = services(client.application).request_log.list()
    assert [(r["status"], r["error_type"], r["source"]) for r in rows] == [
        ("rejected", "budget_exceeded", "library"), ("rejected", "budget_exceeded", "library"),
        ("rejected", "budget_exceeded", "api")]


def test_a_budgeted_gemini_call_is_exactly_one_provider_request(tmp_path, gemini):
    client = create_app(_settings(tmp_path, gemini), {"TESTING": True}).test_client()
    client.post("/api/budgets", json={**TINY_BUDGET, "limit_usd": 1.0})
    response = client.post("/api/generate", json={"model": "gemini-2.5-flash", "prompt": "Say hi", "max_tokens": 50})
    assert response.status_code == 200
    assert [r["action"] for r in gemini.requests] == ["generateContent"]


def test_the_input_is_counted_exactly_only_when_the_free_bound_would_refuse(tmp_path, gemini):
    """Near its limit, the bound (bytes + 16 per message) refuses; one countTokens request then decides."""
    client = create_app(_settings(tmp_path, gemini), {"TESTING": True}).test_client()
    prompt = "word " * 200  # 1,000 bytes, 200 tokens by the wire server's count
    price = services(client.application).registry.get_model("gemini-2.5-flash").pricing
    exact = price.cost(200, 10)
    bound = price.cost(1000 + 16, 10)
    client.post("/api/budgets", json={**TINY_BUDGET, "limit_usd": (exact + bound) / 2})
    response = client.post("/api/generate", json={"model": "gemini-2.5-flash", "prompt": prompt, "max_tokens": 10,
                                                   "thinking_budget": 0})
    assert response.status_code == 200, response.get_json()
    assert [r["action"] for r in gemini.requests] == ["countTokens", "generateContent"]


def test_a_model_registered_in_a_second_registry_keeps_serving_the_first(settings, tmp_path):
    first = ModelRegistry(settings=settings, register_defaults=False)
    other = settings.model_copy(update={"database_url": f"sqlite:///{tmp_path / 'other.db'}"})
    second = ModelRegistry(settings=other, register_defaults=False)
    model = FakeModel()
    first.register_model(model)
    second.register_model(model)
    first.get_model("fake-model").generate("for the first")
    second.get_model("fake-model").generate("for the second")
    assert [r["prompt"] for r in services_log(first)] == ["for the first"]
    assert [r["prompt"] for r in services_log(second)] == ["for the second"]


def services_log(registry: ModelRegistry) -> list[dict]:
    return registry.call_path.request_log.list()


def test_the_default_constructors_share_one_wiring(process_env):
    """`ModelRegistry()` and a standalone model built in the same process record through the same guard."""
    registry = ModelRegistry(register_defaults=False)
    standalone = FakeModel("standalone")
    standalone.generate("x")
    assert registry.call_path.hooks == standalone.call_path.hooks != ()
    assert registry.engine is get_engine(process_env)


def test_settings_passed_in_size_the_postgresql_pool(postgres_url):
    settings = Settings.from_env(environ={}, env_file=None, overrides={
        "DATABASE_URL": postgres_url, "DB_POOL_SIZE": "3", "DB_MAX_OVERFLOW": "2"})
    app = create_app(settings)
    pool = services(app).engine.pool
    assert (pool.size(), pool._max_overflow) == (3, 2)
