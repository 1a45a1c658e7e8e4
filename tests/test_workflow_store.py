"""Workflow persistence on SQLite and PostgreSQL, and the migration matching the table definitions."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from storage.database import metadata
from storage.workflow_store import WorkflowStore

TABLES = {"workflow_definitions", "workflow_runs", "workflow_run_steps"}


def _create(store: WorkflowStore, run_id: str, name: str = "wf") -> None:
    store.create_run(run_id, workflow_name=name, workflow_version=None, definition={"name": name, "steps": []},
                     input_text="in", variables={"k": "v"},
                     steps=[{"name": "a", "model": "m"}, {"name": "b", "model": "m", "step_group": "g"}])


def test_migration_matches_the_table_definitions(engine) -> None:
    with engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), metadata)
    ours = [d for d in diffs if any(table in repr(d) for table in TABLES)]
    assert ours == []


def test_saving_a_name_again_creates_the_next_version(engine) -> None:
    store = WorkflowStore(engine)
    assert store.save_definition("wf", {"v": 1}, "first") == 1
    assert store.save_definition("wf", {"v": 2}) == 2
    assert store.save_definition("other", {"v": 1}) == 1
    assert store.get_definition("wf")["definition"] == {"v": 2}
    assert store.get_definition("wf", 1)["description"] == "first"
    assert store.get_definition("wf", 3) is None
    assert [(d["name"], d["version"]) for d in store.list_definitions()] == [("other", 1), ("wf", 2)]


def test_run_totals_are_sums_of_the_steps_recorded_figures(engine) -> None:
    store = WorkflowStore(engine)
    _create(store, "r1")
    store.update_step("r1", 0, status="succeeded", tokens=10, cost=0.25, latency=1.5, request_id="req-a")
    store.update_step("r1", 1, status="succeeded", tokens=5, cost=None, latency=0.5, parsed={"x": [1]})
    store.finish_run("r1", "succeeded", final_output="done", wall_time=1.25)
    run = store.get_run("r1")
    assert (run["total_tokens"], run["total_cost"], run["total_latency"]) == (15, 0.25, 2.0)
    assert run["wall_time"] == 1.25 and run["finished_at"].endswith("Z")
    assert [s["name"] for s in run["steps"]] == ["a", "b"] and run["steps"][1]["parsed"] == {"x": [1]}
    assert run["steps"][1]["step_group"] == "g" and run["variables"] == {"k": "v"}


def test_interrupted_runs_and_resume_claims(engine) -> None:
    store = WorkflowStore(engine)
    _create(store, "left")
    _create(store, "done")
    store.update_step("left", 0, status="running")
    store.finish_run("done", "succeeded")
    assert store.mark_interrupted() == 1
    assert store.get_run("left")["status"] == "interrupted"
    assert store.get_run("left")["steps"][0]["status"] == "interrupted"
    assert store.claim_for_resume("left") is True
    assert store.claim_for_resume("left") is False  # already running again
    assert store.claim_for_resume("done") is False
    assert [r["run_id"] for r in store.list_runs(status="running")] == ["left"]
    assert "definition" not in store.list_runs()[0]
    assert store.get_run("nope") is None
