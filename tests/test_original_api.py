"""The original system's public names, used the way its README and `main.py` use them.

Each test is a plain program of the original's: a SQLite path as `db_path`, `GeminiModel()` with GEMINI_API_KEY
set, the original's step dicts, model ids from `register_model`, and tracking by hand after each call. Gemini is
the local wire-format server, so everything runs offline.
"""

from __future__ import annotations

import json
import sqlite3

import pytest

from ab_testing.experiment_manager import ExperimentManager
from ab_testing.traffic_router import TrafficRouter
from api.app import create_app
from comparison.comparison_store import ComparisonStore
from comparison.model_comparator import ModelComparator
from core.settings import Settings, get_settings
from models.base_model import BaseModel
from models.gemini_model import GeminiModel
from models.model_registry import ModelRegistry
from monitoring.cost_tracker import CostTracker
from monitoring.metrics_tracker import MetricsTracker
from storage.database import get_connection, init_database
from storage.request_logger import RequestLogger
from workflows.workflow_engine import WorkflowEngine
from workflows.workflow_templates import WorkflowTemplates

GEMINI = "gemini-2.0-flash-exp"  # the original's default model
PRICED = "gemini-2.0-flash"  # a Gemini model with a price, so costs are not all zero
RESULT_KEYS = {"response", "tokens", "latency", "cost"}


@pytest.fixture
def db_path(process_env, gemini_server, monkeypatch) -> str:
    """The original's set-up: a key in the environment, a database file initialised by path."""
    monkeypatch.setenv("GEMINI_API_KEY", "test-key")
    monkeypatch.setenv("GEMINI_BASE_URL", gemini_server.base_url)
    get_settings.cache_clear()
    init_database("original.db")
    return "original.db"


@pytest.fixture
def registry(db_path) -> ModelRegistry:
    registry = ModelRegistry(db_path)
    registry.register_model(GeminiModel())
    return registry


class EchoModel(BaseModel):
    """A model written for the original base class: its own generate and generate_stream."""

    def __init__(self) -> None:
        super().__init__(name="echo-model", provider="EchoCorp", cost_per_token=0.00001)

    def generate(self, prompt, temperature=1.0, max_tokens=1000, **kwargs):
        tokens = self.count_tokens(prompt) + 2
        return {"response": f"echo {prompt}", "tokens": tokens, "latency": 0.0, "cost": self.calculate_cost(tokens)}

    def generate_stream(self, prompt, **kwargs):
        yield from ("echo ", prompt)


class LoudEchoModel(EchoModel):
    """A subclass of an original-style model that wraps its parent, and streams through its own generate."""

    def generate(self, prompt, **kwargs):
        answer = super().generate(prompt, **kwargs)
        return {**answer, "response": answer["response"].upper()}

    def generate_stream(self, prompt, **kwargs):
        yield self.generate(prompt)["response"]


def test_an_original_style_model_that_calls_its_parent_is_one_recorded_call(registry, db_path):
    loud = LoudEchoModel()
    registry.register_model(loud)
    assert loud.generate("hi")["response"] == "ECHO HI"
    assert list(loud.generate_stream("there")) == ["ECHO THERE"]
    history = RequestLogger(db_path).get_request_history(limit=5)
    assert [(row["response"], row["stream"]) for row in history] == [("ECHO THERE", True), ("ECHO HI", False)]


def test_database_set_up_and_raw_connection(db_path):
    connection = get_connection(db_path)
    try:
        tables = {row["name"] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    finally:
        connection.close()
    assert isinstance(connection, sqlite3.Connection)
    assert {"request_log", "registered_models", "metric_samples", "tracked_costs"} <= tables


def test_gemini_model_generates_and_streams(db_path, gemini_server):
    gemini = GeminiModel()
    assert gemini.model_name == GEMINI and gemini.client is not None
    result = gemini.generate("Explain AI in one sentence.", max_tokens=100)
    assert RESULT_KEYS <= set(result) and result["response"].startswith("gemini says")
    assert result["tokens"] > 0 and result["cost"] == 0.0  # the experimental model is free
    assert "".join(gemini.generate_stream("Write a haiku about AI", max_tokens=50)).startswith("gemini says")
    assert gemini.get_info() == {"name": GEMINI, "provider": "gemini", "cost_per_token": 0.0}
    assert [r["action"] for r in gemini_server.requests] == ["generateContent", "streamGenerateContent"]


def test_gemini_model_without_a_key_is_a_value_error(process_env):
    with pytest.raises(ValueError, match="GEMINI_API_KEY"):
        GeminiModel()


def test_registry_by_path(db_path):
    registry = ModelRegistry(db_path)
    model_id = registry.register_model(GeminiModel())
    assert registry.get_model(GEMINI).name == GEMINI and GEMINI in registry.list_models()
    assert registry.get_model("no-such-model") is None and registry.get_model_info("no-such-model") is None
    assert registry.get_model_id(GEMINI) == model_id and registry.get_model_id("no-such-model") is None
    assert registry.get_model_info(GEMINI)["name"] == GEMINI
    assert ModelRegistry(db_path).get_model_id(GEMINI) == model_id  # the id is the database's


def test_a_subclass_of_the_original_base_model_runs_on_the_managed_path(registry, db_path):
    echo = EchoModel()
    model_id = registry.register_model(echo)
    assert echo.get_info() == {"name": "echo-model", "provider": "EchoCorp", "cost_per_token": 0.00001}
    assert echo.count_tokens("12345678") == 2 and echo.calculate_cost(1000) == pytest.approx(0.01)
    result = echo.generate("hello there", max_tokens=5)
    assert (result["response"], result["tokens"]) == ("echo hello there", 4)
    assert result["cost"] == pytest.approx(0.00004)
    assert "".join(echo.generate_stream("streamed")) == "echo streamed"
    CostTracker(db_path).track_cost(model_id, result["cost"], result["tokens"])  # as the original's programs do
    history = RequestLogger(db_path).get_request_history(limit=5)
    assert [(row["model"], row["provider"], row["tokens"]) for row in history] == [
        ("echo-model", "EchoCorp", None), ("echo-model", "EchoCorp", 4)]
    assert CostTracker(db_path).get_model_costs("echo-model")["total_requests"] == 2


def test_request_logger(registry, db_path):
    logger = RequestLogger(db_path)
    request_id = logger.log_request(registry.get_model_id(GEMINI), "Test prompt")
    assert logger.log_response(request_id, "Test response", 10, 0.5, 0.0001) is not None
    (row,) = logger.get_request_history(limit=5)
    assert (row["prompt"], row["response"], row["tokens"], row["latency"], row["cost"], row["model"]) == (
        "Test prompt", "Test response", 10, 0.5, 0.0001, GEMINI)
    assert row["timestamp"] and logger.get_total_requests() == 1


def test_workflow_with_the_original_templates_and_step_dicts(registry, db_path):
    engine = WorkflowEngine(registry, db_path)
    steps = WorkflowTemplates.content_generation_workflow(GEMINI)
    assert [set(step) >= {"model", "prompt_template"} for step in steps] == [True] * 3
    result = engine.execute_workflow("content_generation", steps, "Python programming")
    assert len(result["steps"]) == 3 and result["final_output"].startswith("gemini says")
    for step in result["steps"]:
        assert {"step", "model", "prompt", "response", "tokens", "latency", "cost"} <= set(step)
    assert result["total_tokens"] == sum(step["tokens"] for step in result["steps"])
    assert result["total_latency"] >= 0 and result["total_cost"] == 0.0
    two_steps = [{"model": GEMINI, "prompt_template": "Write one word about: {input}"},
                 {"model": GEMINI, "prompt_template": "Make this word uppercase: {input}"}]
    assert len(engine.execute_workflow("test_workflow", two_steps, "AI")["steps"]) == 2
    (latest, first) = engine.get_workflow_history(limit=10)
    assert (latest["name"], first["name"]) == ("test_workflow", "content_generation")
    stored_steps = json.loads(first["steps"])  # as defined, with the defaults the definition filled in
    assert [{key: stored[key] for key in step} for stored, step in zip(stored_steps, steps, strict=True)] == steps
    assert [result["step"] for result in json.loads(first["result"])] == [1, 2, 3]
    assert latest["id"] and latest["timestamp"]
    assert set(WorkflowTemplates.get_all_templates()) >= {"content_generation", "translation", "analysis"}
    for template in (WorkflowTemplates.translation_workflow, WorkflowTemplates.analysis_workflow):
        assert [step["model"] for step in template(GEMINI)] == [GEMINI] * 3


def test_comparing_the_same_model_twice_and_the_history(registry, db_path):
    comparator = ModelComparator(registry, db_path)
    assert comparator.model_registry is registry and comparator.comparison_store.engine is registry.engine
    result = comparator.compare_models([GEMINI, GEMINI], "Say hi")
    assert len(result["results"]) == 2 and result["winner"] == GEMINI
    assert [r["label"] for r in result["results"]] == [f"{GEMINI}#1", f"{GEMINI}#2"]
    assert all(RESULT_KEYS | {"model"} <= set(r) for r in result["results"])
    assert {"avg_latency", "avg_tokens", "avg_cost", "fastest_model", "cheapest_model"} <= set(
        result["comparison_metrics"])
    (row,) = comparator.get_comparison_history(limit=10)
    assert (row["model1_name"], row["model2_name"], row["winner"]) == (GEMINI, GEMINI, GEMINI)
    store = ComparisonStore(db_path)
    assert store.get_model_win_rate(GEMINI) == 100.0  # one comparison entered, won


def test_comparison_store_as_originally_called(db_path):
    store = ComparisonStore(db_path)
    first = {"model": "model-x", "response": "a", "latency": 0.5, "tokens": 10}
    second = {"model": "model-y", "response": "b", "latency": 0.9, "tokens": 12}
    assert store.store_comparison("q", [first], "model-x") is None  # fewer than two results
    assert store.store_comparison("q", [first, second], "model-x") is not None
    assert (store.get_model_win_rate("model-x"), store.get_model_win_rate("model-y")) == (100.0, 0.0)
    assert store.get_model_win_rate("never-compared") == 0.0
    (row,) = store.get_comparison_history()
    assert (row["prompt"], row["winner"], row["model1_latency"], row["model2_tokens"]) == ("q", "model-x", 0.5, 12)


def test_ab_experiment_and_traffic_router(registry, db_path):
    manager = ExperimentManager(db_path)
    experiment_id = manager.create_experiment(name="Model Performance Test", variant_a=GEMINI, variant_b=PRICED)
    for i in range(10):
        manager.record_result(experiment_id, "A", i % 3 != 0, rating=4)
        manager.record_result(experiment_id, "B", i % 4 != 0, rating=5)
    stats = manager.get_experiment_stats(experiment_id)
    assert (stats["variant_a"]["model"], stats["variant_a"]["total"], stats["variant_a"]["successes"]) == (
        GEMINI, 10, 6)
    assert stats["variant_b"]["conversion_rate"] == pytest.approx(70.0) and stats["variant_b"]["avg_rating"] == 5.0
    assert "winner" in stats and manager.get_experiment_stats(999) is None
    (listed,) = manager.list_experiments()
    assert (listed["name"], listed["variant_a"], listed["variant_b"]) == ("Model Performance Test", GEMINI, PRICED)
    manager.stop_experiment(experiment_id)
    assert manager.stop_experiment(experiment_id)["status"] == "completed"  # stopping twice is harmless

    router = TrafficRouter(registry)
    variant, model = router.route_request("user123", GEMINI, PRICED)
    assert router.route_request("user123", GEMINI, PRICED) == (variant, model)
    assert model.name == (GEMINI if variant == "A" else PRICED)
    assert router.route_request("user123", "nope-a", "nope-b")[1] is None
    routed = router.generate_with_routing("user123", "Say hi", GEMINI, PRICED)
    assert routed["variant"] == variant and {"model"} | RESULT_KEYS <= set(routed)
    with pytest.raises(ValueError):
        router.generate_with_routing("user123", "Say hi", "nope-a", "nope-b")


def test_metrics_tracked_by_hand_never_add_requests(registry, db_path):
    gemini = registry.get_model(GEMINI)
    tracker = MetricsTracker(db_path)
    model_id = registry.get_model_id(GEMINI)
    for i in range(3):
        result = gemini.generate(f"Test prompt {i + 1}", max_tokens=50)
        tracker.track_metric(model_id, "latency", result["latency"])
        tracker.track_metric(model_id, "tokens", result["tokens"])
    tracker.track_metric(model_id, "latency", 1.5)
    metrics = tracker.get_model_metrics(GEMINI)
    assert {"model_name", "total_requests", "avg_latency", "success_rate", "avg_tokens"} <= set(metrics)
    assert (metrics["total_requests"], metrics["success_rate"]) == (3, 100.0)
    assert [h["metric_value"] for h in tracker.get_metric_history(GEMINI, "latency")][0] == 1.5
    assert len(tracker.get_metric_history(GEMINI, "tokens", limit=2)) == 2
    assert [m["model_name"] for m in tracker.get_all_metrics()] == [GEMINI]
    assert tracker.get_model_metrics("never-seen") is None


def test_costs_tracked_by_hand_after_managed_calls_count_once(db_path):
    registry = ModelRegistry(db_path)
    priced = GeminiModel(PRICED)
    model_id = registry.register_model(priced)
    tracker = CostTracker(db_path)
    results = [priced.generate(f"Cost test {i + 1}", max_tokens=50) for i in range(5)]
    for result in results:
        tracker.track_cost(model_id, result["cost"], result["tokens"])
    costs = tracker.get_model_costs(PRICED)
    assert {"model_name", "total_requests", "total_cost", "avg_cost", "total_tokens"} <= set(costs)
    assert costs["total_requests"] == 5 and costs["total_cost"] == pytest.approx(sum(r["cost"] for r in results))
    tracker.track_cost(model_id, 0.001, 100)  # a call made elsewhere: counted once, as an external call
    assert tracker.get_model_costs(PRICED)["total_requests"] == 6
    assert tracker.get_total_cost() == pytest.approx(sum(r["cost"] for r in results) + 0.001)
    assert [c["model_name"] for c in tracker.get_all_costs()] == [PRICED]
    (today,) = tracker.get_daily_costs(days=7)
    assert (today["requests"], today["total_cost"]) == (6, pytest.approx(tracker.get_total_cost()))
    assert tracker.check_budget_alert(0.0001) is True and tracker.check_budget_alert(1.0) is False
    assert tracker.get_model_costs("never-seen") is None


def test_the_original_http_calls_answer_with_the_original_envelopes(tmp_path, gemini_server):
    settings = Settings.from_env(environ={}, env_file=None, overrides={
        "DATABASE_URL": f"sqlite:///{tmp_path / 'api.db'}", "GEMINI_API_KEY": "k",
        "GEMINI_BASE_URL": gemini_server.base_url})
    client = create_app(settings, {"TESTING": True}).test_client()
    assert {"message", "version", "features", "endpoints"} <= set(client.get("/").get_json())
    assert client.get("/health").get_json()["status"] == "healthy"
    models = client.get("/api/models").get_json()
    assert GEMINI in models["models"] and models["count"] == len(models["models"])

    generated = client.post("/api/generate", json={"prompt": "Hello, AI!", "model": GEMINI}).get_json()
    assert {"status", "model", "response", "tokens", "latency", "cost"} <= set(generated)
    workflow = client.post("/api/workflow", json={"template": "content_generation", "input": "Python",
                                                  "model": GEMINI})
    assert workflow.status_code == 200 and workflow.get_json()["status"] == "success"
    assert {"workflow_name", "steps", "final_output", "total_tokens", "total_cost"} <= set(
        workflow.get_json()["workflow"])
    assert client.post("/api/workflow", json={"template": "nope", "input": "x"}).status_code == 400
    compared = client.post("/api/compare", json={"models": [GEMINI, GEMINI], "prompt": "Explain AI"})
    assert compared.status_code == 200 and compared.get_json()["status"] == "success"
    comparison = compared.get_json()["comparison"]
    assert len(comparison["results"]) == 2 and comparison["winner"] == GEMINI

    created = client.post("/api/experiment", json={"name": "t", "variant_a": GEMINI, "variant_b": PRICED})
    assert created.status_code == 201 and created.get_json()["status"] == "success"
    experiment_id = created.get_json()["experiment_id"]
    tested = client.post(f"/api/experiment/{experiment_id}/test", json={"user_id": "u1", "prompt": "Hi"}).get_json()
    assert {"status", "experiment_id", "variant", "response"} <= set(tested)
    recorded = client.post(f"/api/experiment/{experiment_id}/record",
                           json={"variant": "A", "success": True, "rating": 5}).get_json()
    assert recorded["status"] == "success" and recorded["result_id"]
    stats = client.get(f"/api/experiment/{experiment_id}/stats").get_json()
    assert stats["status"] == "success" and stats["stats"]["variant_a"]["total"] == 1

    metrics = client.get("/api/metrics").get_json()
    assert metrics["status"] == "success" and isinstance(metrics["metrics"], list)
    assert {"model_name", "total_requests", "avg_latency", "success_rate", "avg_tokens"} <= set(metrics["metrics"][0])
    costs = client.get("/api/costs").get_json()
    assert costs["status"] == "success" and isinstance(costs["costs"], list) and "total_cost" in costs
    assert sum(c["total_requests"] for c in costs["costs"]) == 1 + 3 + 2 + 1  # generate, workflow, compare, test
