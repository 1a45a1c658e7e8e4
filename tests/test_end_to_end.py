"""The issues' end-to-end checks: workflows, comparisons and benchmarks over HTTP on Gemini (through the
wire-format test server and the real SDK) and on the embedded local model."""

from __future__ import annotations

import time

import pytest

from api.app import create_app
from api.services import services
from core.settings import Settings
from workflows.workflow_templates import WorkflowTemplates

ORIGINAL_TEMPLATES = ("content_generation", "translation", "analysis")


@pytest.fixture
def gemini_app(sqlite_url, gemini_server):
    settings = Settings.from_env(environ={}, env_file=None, overrides={
        "DATABASE_URL": sqlite_url, "GEMINI_API_KEY": "test-key", "GEMINI_BASE_URL": gemini_server.base_url})
    return create_app(settings)


def _short(steps: list[dict]) -> list[dict]:
    return [{**step, "max_tokens": 8, "temperature": 0} for step in steps]


@pytest.mark.parametrize("template", ORIGINAL_TEMPLATES)
def test_original_templates_run_on_gemini(gemini_app, gemini_server, template):
    client = gemini_app.test_client()
    response = client.post("/api/workflow", json={"template": template, "input": "solar power",
                                                  "model": "gemini-2.5-flash"})
    assert response.status_code == 200, response.get_json()
    workflow = response.get_json()["workflow"]
    assert workflow["status"] == "succeeded" and len(workflow["steps"]) == 3
    first, second, third = workflow["steps"]
    assert first["output"] in second["prompt"] and second["output"] in third["prompt"]
    sent = [r["json"]["contents"][0]["parts"][0]["text"] for r in gemini_server.requests_for("generateContent")]
    assert sent == [step["prompt"] for step in workflow["steps"]]  # what Gemini saw is what the run recorded
    rows = [services(gemini_app).request_log.get(step["request_id"]) for step in workflow["steps"]]
    assert workflow["total_cost"] == pytest.approx(sum(row["cost"] for row in rows)) and workflow["total_cost"] > 0
    assert workflow["total_tokens"] == sum(row["total_tokens"] for row in rows)


@pytest.mark.local_model
def test_original_templates_run_on_the_local_model(client):
    for template in ORIGINAL_TEMPLATES:
        steps = _short(getattr(WorkflowTemplates, f"{template}_workflow")("local"))
        response = client.post("/api/workflow", json={"steps": steps, "input": "tea", "name": template})
        assert response.status_code == 200, response.get_json()
        first, second, _ = response.get_json()["workflow"]["steps"]
        assert first["output"].strip() and first["output"] in second["prompt"]


@pytest.mark.local_model
def test_two_gemini_models_and_the_local_model_compared(gemini_app):
    client = gemini_app.test_client()
    models = ["gemini-2.5-flash", "gemini-2.0-flash", "local"]
    # The wire server only echoes ("gemini says: ..."); a scorer rejecting echoes makes quality decide, so the
    # result does not hang on latency or on the small model's exact wording.
    response = client.post("/api/compare", json={"models": models, "prompt": "Name a primary colour.",
                                                 "params": {"max_tokens": 8, "temperature": 0},
                                                 "scorers": [{"type": "regex", "pattern": "^(?!gemini says)"}]})
    assert response.status_code == 200, response.get_json()
    comparison = response.get_json()["comparison"]
    assert len(comparison["results"]) == 3 and all(r["response"] for r in comparison["results"])
    metrics = comparison["comparison_metrics"]
    assert metrics["wall_time"] <= metrics["sequential_latency"]  # the three ran at the same time
    assert comparison["winner"] == "smollm2-135m-instruct", comparison["explanation"]
    assert "quality" in comparison["explanation"]
    history = client.get("/api/comparisons").get_json()["comparisons"]
    assert len(history) == 1
    leaderboard = {row["model"]: row for row in client.get("/api/comparisons/leaderboard").get_json()["leaderboard"]}
    assert set(leaderboard) == {"gemini-2.5-flash", "gemini-2.0-flash", "smollm2-135m-instruct"}
    assert sum(row["win_rate"] for row in leaderboard.values()) == pytest.approx(1.0)


@pytest.mark.local_model
def test_builtin_benchmark_over_local_and_gemini_reports_accuracy_and_cost(gemini_app):
    client = gemini_app.test_client()
    started = client.post("/api/benchmarks", json={"models": ["local", "gemini-2.5-flash"], "limit": 4,
                                                   "max_tokens": 8})
    assert started.status_code == 202
    run_id = started.get_json()["id"]
    deadline = time.monotonic() + 120
    while (run := client.get(f"/api/benchmarks/{run_id}").get_json())["status"] in ("pending", "running"):
        assert time.monotonic() < deadline, run
        time.sleep(0.2)
    assert run["status"] == "completed", run
    per_model = {row["model"]: row for row in run["report"]["models"]}
    assert set(per_model) == {"smollm2-135m-instruct", "gemini-2.5-flash"}
    for row in per_model.values():
        assert 0 <= row["accuracy"] <= 1 and "cost_per_correct" in row
    assert per_model["gemini-2.5-flash"]["total_cost"] > 0 and per_model["smollm2-135m-instruct"]["total_cost"] == 0
    report = client.get(f"/api/benchmarks/{run_id}/report.md")
    assert report.status_code == 200 and "ccuracy" in report.get_data(as_text=True)
