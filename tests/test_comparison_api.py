"""HTTP endpoints and CLI commands of the comparison service."""

from __future__ import annotations

import json
import time

import pytest

from tests.fakes import FakeModel


@pytest.fixture
def two_models(svc):
    for name in ("alpha", "beta"):
        svc.registry.register_model(FakeModel(name))
    return ["alpha", "beta"]


def test_compare_keeps_the_original_shape_and_is_in_history(client, two_models):
    response = client.post("/api/compare", json={
        "models": two_models, "prompt": "Capital of France?", "params": {"max_tokens": 5},
        "scorers": [{"type": "contains", "reference": "France"}], "weights": {"quality": 2, "latency": 1},
    })
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "success"
    comparison = body["comparison"]
    assert [r["model"] for r in comparison["results"]] == two_models
    assert comparison["winner_details"]["weights"] == {"quality": 2.0, "latency": 1.0, "cost": 0.0}
    assert comparison["params"] == {"max_tokens": 5}
    history = client.get("/api/comparisons").get_json()["comparisons"]
    assert [c["id"] for c in history] == [comparison["id"]]
    detail = client.get(f"/api/comparisons/{comparison['id']}").get_json()
    assert detail["winner"] == comparison["winner"] and detail["explanation"] == comparison["explanation"]
    board = client.get("/api/comparisons/leaderboard").get_json()["leaderboard"]
    assert {row["model"] for row in board} == set(two_models)
    assert all({"model", "win_rate", "rating", "comparisons"} <= set(row) for row in board)


BAD_COMPARE_BODIES = [
    ({"models": ["alpha", "nope"], "prompt": "x"}, 404, "unknown_model"),
    ({"models": [], "prompt": "x"}, 400, "validation_error"),
    ({"models": ["alpha"], "prompt": ""}, 400, "validation_error"),
    ({"models": ["alpha"], "prompt": "x", "repetitions": 0}, 400, "validation_error"),
    ({"models": ["alpha"], "prompt": "x", "weights": {"speed": 1}}, 400, "validation_error"),
    ({"models": ["alpha"], "prompt": "x", "weights": {"quality": 0}}, 400, "invalid_weights"),
    ({"models": ["alpha"], "prompt": "x", "scorers": [{"type": "magic"}]}, 400, "invalid_scorer"),
    ({"models": ["alpha"], "prompt": "x", "max_tokens": 3, "params": {"max_tokens": 4}}, 400, "validation_error"),
]


def test_compare_errors_are_json(client, two_models):
    """One app for the whole table: building an app per case costs more than the case."""
    for body, status, code in BAD_COMPARE_BODIES:
        response = client.post("/api/compare", json=body)
        assert (response.status_code, response.get_json()["error"]["code"]) == (status, code), body
    for path in ("/api/comparisons/999", "/api/benchmarks/999", "/api/benchmarks/999/report.md"):
        response = client.get(path)
        assert response.status_code == 404 and response.get_json()["error"]["code"].endswith("_not_found"), path


def _wait_done(client, run_id: int) -> dict:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        run = client.get(f"/api/benchmarks/{run_id}").get_json()
        if run["status"] in ("completed", "failed"):
            return run
        time.sleep(0.02)
    raise AssertionError("benchmark did not finish")


def test_benchmark_runs_in_background_with_progress_and_reports(client, svc, two_models):
    slow = FakeModel("slow", delay=0.05)
    svc.registry.register_model(slow)
    response = client.post("/api/benchmarks", json={"models": ["alpha", "slow"], "tasks": ["factual_qa"], "limit": 3})
    assert response.status_code == 202
    started = response.get_json()
    assert response.headers["Location"].endswith(f"/api/benchmarks/{started['id']}")
    assert started["progress"]["total"] == 6 and started["params"]["items"] == 3
    early = client.get(f"/api/benchmarks/{started['id']}/report.md")
    run = _wait_done(client, started["id"])
    assert early.status_code in (200, 409)
    assert run["status"] == "completed" and run["progress"]["completed"] == 6
    assert {m["model"] for m in run["report"]["models"]} == {"alpha", "slow"}
    markdown = client.get(f"/api/benchmarks/{started['id']}/report.md")
    assert markdown.mimetype == "text/markdown" and "| alpha |" in markdown.get_data(as_text=True)


def test_report_of_an_unfinished_run_is_409(client, svc):
    run_id = svc.comparison_store.create_benchmark(dataset="builtin", models=["alpha"], total=1, params={})
    response = client.get(f"/api/benchmarks/{run_id}/report.md")
    assert response.status_code == 409 and response.get_json()["error"]["code"] == "benchmark_not_finished"


def test_benchmark_with_inline_items_and_bad_bodies(client, two_models):
    items = [{"id": "a", "prompt": "Say yes", "reference": "yes"}]
    response = client.post("/api/benchmarks", json={"models": ["alpha"], "items": items})
    assert response.status_code == 202
    assert _wait_done(client, response.get_json()["id"])["report"]["items"] == 1
    bad_item = client.post("/api/benchmarks", json={"models": ["alpha"], "items": [{"id": "a"}]})
    assert bad_item.status_code == 400 and bad_item.get_json()["error"]["code"] == "invalid_dataset"
    assert client.post("/api/benchmarks", json={"models": ["nope"]}).status_code == 404
    no_task = client.post("/api/benchmarks", json={"models": ["alpha"], "tasks": ["poetry"]})
    assert no_task.status_code == 400 and no_task.get_json()["error"]["code"] == "invalid_dataset"
    assert client.post("/api/benchmarks", json={"models": ["alpha"], "dataset": "/etc/passwd"}).status_code == 400


def test_cli_compare(runner, svc, two_models):
    result = runner.invoke(args=["compare", "alpha", "beta", "-p", "hello", "--scorer", '{"type": "contains", '
                                 '"reference": "hello"}', "--repetitions", "2"])
    assert result.exit_code == 0, result.output
    assert "alpha:" in result.output and "beta:" in result.output and "Comparing" in result.output
    assert "comparison id" in result.output
    assert len(svc.comparison_store.list_comparisons()) == 1
    as_json = runner.invoke(args=["compare", "alpha", "-p", "hi", "--json"])
    assert json.loads(as_json.stdout)["winner"] == "alpha"
    unknown = runner.invoke(args=["compare", "ghost", "-p", "hi"])
    assert unknown.exit_code == 1 and "unknown_model" in unknown.output
    bad = runner.invoke(args=["compare", "alpha", "-p", "hi", "--scorer", "{oops"])
    assert bad.exit_code == 2 and "not valid JSON" in bad.output


def test_cli_benchmark(runner, svc, two_models, tmp_path):
    dataset = tmp_path / "mini.jsonl"
    dataset.write_text('{"id": "a", "prompt": "Say hi", "reference": "hi"}\n{"id": "b", "prompt": "Say yo"}\n')
    out = tmp_path / "report.json"
    result = runner.invoke(args=["benchmark", "alpha", "beta", "--dataset", str(dataset), "--json-report", str(out)])
    assert result.exit_code == 0, result.output
    assert "Benchmark 1" in result.output and "| alpha | 50.0% (1/2) |" in result.output
    assert json.loads(out.read_text())["items"] == 2
    assert svc.comparison_store.get_benchmark(1)["status"] == "completed"
