"""Workflow persistence on SQLite and PostgreSQL; tests/test_storage.py compares its migrations with the tables."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, select, update

from storage.clock import utcnow
from workflows.store import STALE_AFTER, WorkflowStore, workflow_runs


def _create(store: WorkflowStore, run_id: str, name: str = "wf", owner: str | None = None) -> None:
    store.create_run(run_id, workflow_name=name, workflow_version=None, definition={"name": name, "steps": []},
                     input_text="in", variables={"k": "v"}, owner=owner,
                     steps=[{"name": "a", "model": "m"}, {"name": "b", "model": "m", "step_group": "g"}])


def _set_heartbeat(engine: Engine, run_id: str, at: datetime) -> None:
    with engine.begin() as conn:
        conn.execute(update(workflow_runs).where(workflow_runs.c.run_id == run_id).values(heartbeat_at=at))


def _heartbeat_at(engine: Engine, run_id: str) -> datetime | None:
    with engine.connect() as conn:
        return conn.execute(select(workflow_runs.c.heartbeat_at).where(workflow_runs.c.run_id == run_id)).scalar_one()



def _beat(engine: Engine, run_id: str) -> datetime:
    beat = _heartbeat_at(engine, run_id)
    assert beat is not None, run_id
    return beat


def _run(store: WorkflowStore, run_id: str) -> dict[str, Any]:
    run = store.get_run(run_id)
    assert run is not None, run_id
    return run


def _definition(store: WorkflowStore, name: str, version: int | None = None) -> dict[str, Any]:
    definition = store.get_definition(name, version)
    assert definition is not None, (name, version)
    return definition

def test_saving_a_name_again_creates_the_next_version(engine) -> None:
    store = WorkflowStore(engine)
    assert store.save_definition("wf", {"v": 1}, "first") == 1
    assert store.save_definition("wf", {"v": 2}) == 2
    assert store.save_definition("other", {"v": 1}) == 1
    assert _definition(store, "wf")["definition"] == {"v": 2}
    assert _definition(store, "wf", 1)["description"] == "first"
    assert store.get_definition("wf", 3) is None
    assert [(d["name"], d["version"]) for d in store.list_definitions()] == [("other", 1), ("wf", 2)]


def test_run_totals_are_sums_of_the_steps_recorded_figures(engine) -> None:
    store = WorkflowStore(engine)
    _create(store, "r1")
    store.update_step("r1", 0, status="succeeded", tokens=10, cost=0.25, latency=1.5, request_id="req-a")
    store.update_step("r1", 1, status="succeeded", tokens=5, cost=None, latency=0.5, parsed={"x": [1]})
    store.finish_run("r1", "succeeded", final_output="done", wall_time=1.25)
    run = _run(store, "r1")
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
    assert store.mark_interrupted().run_ids == ["left"]
    assert _run(store, "left")["status"] == "interrupted"
    assert _run(store, "left")["steps"][0]["status"] == "interrupted"
    assert store.claim_for_resume("left") is True
    assert store.claim_for_resume("left") is False  # already running again
    assert store.claim_for_resume("done") is False
    assert [r["run_id"] for r in store.list_runs(status="running")] == ["left"]
    assert "definition" not in store.list_runs()[0]
    assert store.get_run("nope") is None


def test_only_runs_without_a_recent_heartbeat_are_marked_interrupted(engine) -> None:
    store = WorkflowStore(engine)
    for run_id in ("live", "stale", "legacy"):
        _create(store, run_id, owner=None if run_id == "legacy" else f"host:1:{run_id}")
        store.update_step(run_id, 0, status="running")
    _set_heartbeat(engine, "stale", utcnow() - timedelta(seconds=61))
    assert _heartbeat_at(engine, "legacy") is None  # no owner, no heartbeat: like rows from before heartbeats

    assert sorted(store.mark_interrupted(timedelta(seconds=60)).run_ids) == ["legacy", "stale"]
    runs = {run_id: _run(store, run_id) for run_id in ("live", "stale", "legacy")}
    states = {run_id: (run["status"], run["steps"][0]["status"]) for run_id, run in runs.items()}
    assert states == {"live": ("running", "running"), "stale": ("interrupted", "interrupted"),
                      "legacy": ("interrupted", "interrupted")}

    assert store.mark_interrupted().run_ids == []  # the default allows STALE_AFTER of silence
    _set_heartbeat(engine, "live", utcnow() - STALE_AFTER - timedelta(seconds=1))
    assert store.mark_interrupted().run_ids == ["live"] and _run(store, "live")["steps"][0]["status"] == "interrupted"


def test_claims_heartbeats_and_step_saves_refresh_only_the_owners_runs(engine) -> None:
    past = datetime(2020, 1, 1)
    store = WorkflowStore(engine)
    _create(store, "mine", owner="a")
    _create(store, "theirs", owner="b")
    _create(store, "legacy")
    store.finish_run("mine", "failed", error="boom")
    assert store.claim_for_resume("mine", "c") is True
    assert _run(store, "mine")["owner"] == "c" and _heartbeat_at(engine, "mine") is not None

    for run_id in ("mine", "theirs"):
        _set_heartbeat(engine, run_id, past)
    assert store.heartbeat("c") == 1
    assert _beat(engine, "mine") > past and _heartbeat_at(engine, "theirs") == past

    store.update_step("theirs", 0, status="running")
    store.update_step("legacy", 0, status="running")
    assert _beat(engine, "theirs") > past and _heartbeat_at(engine, "legacy") is None
