"""Names of the original AI Model Manager's public API that no other test calls directly: each still works."""

from __future__ import annotations

import pytest

from monitoring.cost_tracker import CostTracker


def test_workflow_engine_get_workflow_history_lists_the_latest_runs_newest_first(svc) -> None:
    wf = svc.workflows
    first = wf.execute_workflow("one", [{"model": "fake", "prompt_template": "a: {input}"}], "x")
    second = wf.execute_workflow("two", [{"model": "fake", "prompt_template": "b: {input}"}], "y")
    history = wf.get_workflow_history()
    assert [run["run_id"] for run in history] == [second["run_id"], first["run_id"]]
    assert [run["run_id"] for run in wf.get_workflow_history(limit=1)] == [second["run_id"]]


def test_experiment_manager_list_experiments_and_stop_experiment(ab_sqlite) -> None:
    manager = ab_sqlite[0]
    experiment_id = manager.create_experiment("checkout", "model-a", "model-b")
    listed = manager.list_experiments()
    assert [(e["id"], e["name"], e["status"]) for e in listed] == [(experiment_id, "checkout", "running")]
    stopped = manager.stop_experiment(experiment_id)
    assert stopped["id"] == experiment_id and stopped["status"] == "completed"
    assert manager.list_experiments()[0]["status"] == "completed"


def test_cost_tracker_get_all_costs_keys_every_model_with_calls(svc) -> None:
    costs = CostTracker(svc.engine)
    assert costs.get_all_costs() == {}
    costs.track_cost("outside-model", 0.25)
    costs.track_cost("outside-model", 0.5)
    all_costs = costs.get_all_costs()
    assert list(all_costs) == ["outside-model"]
    entry = all_costs["outside-model"]
    assert entry["total_requests"] == 2
    assert (entry["total_cost"], entry["avg_cost"]) == (pytest.approx(0.75), pytest.approx(0.375))
