"""The workflow engine on FakeModel: chains, parallel groups, conditions, error policies, persistence, resume."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime, timedelta

import pytest
from sqlalchemy import Engine, select, update

from models.errors import ProviderUnavailableError
from storage.clock import utcnow
from storage.heartbeat import STALE_AFTER
from tests.fakes import FakeModel
from tests.waiting import wait_for
from workflows.errors import RunNotResumableError, WorkflowStepFailedError, WorkflowValidationError
from workflows.store import WorkflowStore, workflow_runs
from workflows.workflow_engine import WorkflowEngine
from workflows.workflow_templates import WorkflowTemplates


@pytest.fixture
def wf(svc) -> WorkflowEngine:
    return svc.workflows


def _chain(*names: str, model: str = "fake") -> list[dict]:
    return [{"name": name, "model": model, "prompt_template": f"{name}: {{input}}"} for name in names]


def test_chain_feeds_each_output_to_the_next_step_and_links_request_log_rows(wf, svc, fake_model) -> None:
    fake_model.enqueue("first answer", "second answer")
    result = wf.execute_workflow("chain", _chain("a", "b"), "topic")

    assert result["status"] == "succeeded" and result["final_output"] == "second answer"
    assert [c.prompt for c in fake_model.calls] == ["a: topic", "b: first answer"]
    for step in result["steps"]:
        row = svc.request_log.get(step["request_id"])
        assert row["source"] == "workflow" and row["response"] == step["output"]
        assert (row["total_tokens"], row["cost"], row["latency"]) == (step["tokens"], step["cost"], step["latency"])
        assert row["tags"] == [f"workflow_run:{result['run_id']}"]
    assert result["total_tokens"] == sum(s["tokens"] for s in result["steps"])
    assert result["total_cost"] == pytest.approx(sum(s["cost"] for s in result["steps"]))
    assert result["total_latency"] == pytest.approx(sum(s["latency"] for s in result["steps"]))
    assert wf.get_run(result["run_id"])["total_cost"] == result["total_cost"]


def test_step_defaults_to_the_workflow_model_then_the_registry_default(wf, svc) -> None:
    other = FakeModel("other-model")
    svc.registry.register_model(other)
    result = wf.run({"name": "m", "model": "other-model", "steps": [{"prompt": "x"}]}, "in")
    assert result["steps"][0]["model"] == "other-model" and len(other.calls) == 1
    assert wf.execute_workflow("d", [{"prompt_template": "y"}], "in")["steps"][0]["model"] == "fake-model"


def test_missing_variable_fails_before_any_model_call(wf, fake_model) -> None:
    steps = [*_chain("a"), {"prompt_template": "In {tone}: {input}"}]
    with pytest.raises(WorkflowValidationError, match="missing variable 'tone'"):
        wf.execute_workflow("vars", steps, "x")
    assert fake_model.calls == []
    result = wf.execute_workflow("vars", steps, "x", variables={"tone": "verse"})
    assert fake_model.calls[1].prompt.startswith("In verse: ")
    assert result["variables"] == {"tone": "verse"}


def test_unknown_model_is_a_validation_error_before_any_call(wf, fake_model) -> None:
    with pytest.raises(WorkflowValidationError) as info:
        wf.execute_workflow("x", [*_chain("a"), {"model": "nope", "prompt": "y"}], "in")
    assert info.value.fields[0]["field"] == "steps.1.model"
    assert fake_model.calls == []


def test_parallel_group_takes_about_the_slowest_step(wf, svc) -> None:
    slow = FakeModel("slow-model", delay=0.5)
    svc.registry.register_model(slow)
    steps = [{"name": n, "group": "g", "model": "slow-model", "prompt": f"{n} of {{input}}"} for n in ("x", "y")]
    steps.append({"name": "join", "model": "fake", "prompt": "{{ steps.x.output }} + {{ steps.y.output }}"})
    result = wf.execute_workflow("par", steps, "t")

    (first_start, first_end), (second_start, second_end) = sorted(slow.spans)
    assert second_start < first_end, "the two 0.5 s steps did not run at the same time"
    group_wall = max(first_end, second_end) - first_start
    assert group_wall < 0.9, f"two 0.5 s steps in parallel took {group_wall:.2f} s"
    assert len(slow.calls) == 2
    assert result["final_output"] == "echo: echo: x of t + echo: y of t"
    assert all(s["latency"] >= 0.5 for s in result["steps"][:2])


def test_group_output_is_the_joined_outputs_for_the_next_input(wf, fake_model) -> None:
    steps = [{"name": n, "group": "g", "prompt": n} for n in ("p", "q")] + [{"prompt": "next: {input}"}]
    fake_model.enqueue("P", "Q")
    result = wf.execute_workflow("join", steps, "t")
    assert {c.prompt for c in fake_model.calls[:2]} == {"p", "q"}
    assert fake_model.calls[2].prompt in ("next: P\n\nQ", "next: Q\n\nP")
    assert result["steps"][2]["prompt"] == f"next: {result['steps'][0]['output']}\n\n{result['steps'][1]['output']}"


def test_when_skips_a_step_and_its_input_passes_on(wf, fake_model) -> None:
    fake_model.enqueue('{"urgent": false}', "final")
    steps = [
        {"name": "classify", "prompt": "c", "parser": "json"},
        {"name": "escalate", "prompt": "esc", "when": "steps.classify.parsed.urgent"},
        {"name": "reply", "prompt": "reply to {input}"},
    ]
    result = wf.execute_workflow("cond", steps, "t")
    assert [s["status"] for s in result["steps"]] == ["succeeded", "skipped", "succeeded"]
    assert [c.prompt for c in fake_model.calls] == ["c", 'reply to {"urgent": false}']
    assert result["steps"][1]["request_id"] is None and result["final_output"] == "final"


def test_retry_policy_retries_and_counts_every_attempt(wf, svc, fake_model) -> None:
    fake_model.enqueue("not json at all", '{"ok": true}')
    steps = [{"name": "j", "prompt": "give json", "parser": "json", "on_error": {"action": "retry", "retries": 2}}]
    result = wf.execute_workflow("retry", steps, "t")
    step = result["steps"][0]
    assert step["parsed"] == {"ok": True} and len(step["attempts"]) == 2 and len(fake_model.calls) == 2
    rows = [svc.request_log.get(rid) for rid in step["attempts"]]
    assert step["tokens"] == sum(r["total_tokens"] for r in rows)
    assert step["cost"] == pytest.approx(sum(r["cost"] for r in rows))


def test_fallback_policy_uses_the_other_model(wf, svc, fake_model) -> None:
    backup = FakeModel("backup-model").enqueue("from backup")
    svc.registry.register_model(backup)
    fake_model.enqueue(ProviderUnavailableError("primary down"))
    steps = [{"prompt": "x", "on_error": {"action": "fallback", "fallback_model": "backup-model"}}]
    step = wf.execute_workflow("fb", steps, "t")["steps"][0]
    assert step["output"] == "from backup" and step["model"] == "backup-model"
    assert svc.request_log.get(step["attempts"][0])["status"] == "error"


def test_continue_policy_uses_the_default_and_records_the_error(wf, fake_model) -> None:
    fake_model.enqueue(ProviderUnavailableError("down"))
    steps = [{"name": "a", "prompt": "x", "on_error": {"action": "continue", "default": "n/a"}},
             {"name": "b", "prompt": "got {input}"}]
    result = wf.execute_workflow("cont", steps, "t")
    assert result["status"] == "succeeded"
    assert result["steps"][0]["status"] == "defaulted" and "down" in result["steps"][0]["error"]
    assert fake_model.calls[1].prompt == "got n/a"


def test_failed_step_fails_the_run_and_resume_skips_completed_steps(wf, fake_model) -> None:
    fake_model.enqueue("one", ProviderUnavailableError("provider down"))
    with pytest.raises(WorkflowStepFailedError) as info:
        wf.execute_workflow("resumable", _chain("a", "b", "c"), "t")
    error = info.value
    assert error.step == "b" and error.http_status == 502 and "provider down" in error.reason
    run = wf.get_run(error.run_id)
    assert run["status"] == "failed" and run["error_step"] == "b"
    assert [s["status"] for s in run["steps"]] == ["succeeded", "failed", "pending"]
    assert run["steps"][0]["output"] == "one"
    assert len(fake_model.calls) == 2

    result = wf.resume(error.run_id)
    assert result["status"] == "succeeded" and result["run_id"] == error.run_id
    assert [c.prompt for c in fake_model.calls[2:]] == ["b: one", "c: echo: b: one"]
    assert len(result["steps"][1]["attempts"]) == 2  # the failed attempt stays on the step's record
    assert result["total_tokens"] == sum(s["tokens"] for s in result["steps"])
    with pytest.raises(RunNotResumableError):
        wf.resume(error.run_id)


def test_parse_failure_is_a_step_error(wf, fake_model) -> None:
    fake_model.enqueue("no json here")
    with pytest.raises(WorkflowStepFailedError) as info:
        wf.execute_workflow("parse", [{"name": "j", "prompt": "x", "parser": "json"}], "t")
    assert info.value.details["cause"] == "parse_error"
    assert wf.get_run(info.value.run_id)["steps"][0]["response"] == "no json here"


def test_construction_marks_runs_left_running_as_interrupted_and_they_resume(svc, fake_model) -> None:
    store = WorkflowStore(svc.engine)
    definition = {"name": "crashed", "steps": _chain("a", "b")}
    store.create_run("run-left-running", workflow_name="crashed", workflow_version=None, definition=definition,
                     input_text="t", variables={}, steps=[{"name": "a", "model": "fake-model"},
                                                           {"name": "b", "model": "fake-model"}])
    store.update_step("run-left-running", 0, status="succeeded", output="kept", tokens=3, cost=0.5, latency=0.1)
    store.update_step("run-left-running", 1, status="running")

    engine = WorkflowEngine(svc.registry, svc.engine)
    assert engine.interrupted_at_start == 1
    run = engine.get_run("run-left-running")
    assert run["status"] == "interrupted" and run["steps"][1]["status"] == "interrupted"

    result = engine.resume("run-left-running")
    assert [c.prompt for c in fake_model.calls] == ["b: kept"]
    assert result["total_tokens"] == 3 + result["steps"][1]["tokens"]


def test_templates_listing_and_original_functions() -> None:
    templates = WorkflowTemplates.get_all_templates()
    assert {"content_generation", "translation", "analysis"} <= set(templates) and len(templates) >= 5
    for build in (WorkflowTemplates.content_generation_workflow, WorkflowTemplates.translation_workflow,
                  WorkflowTemplates.analysis_workflow):
        steps = build("m")
        assert len(steps) == 3 and all(s["model"] == "m" and "{input}" in s["prompt_template"] for s in steps)


def test_ticket_triage_template_parses_json_and_escalates_on_negative(wf, fake_model) -> None:
    fake_model.enqueue('Here: {"sentiment": "negative", "urgent": false, "topic": "billing"}', "note", "reply")
    result = wf.run(WorkflowTemplates.get_template("ticket_triage", "fake"), "I was charged twice")
    assert [s["status"] for s in result["steps"]] == ["succeeded", "succeeded", "succeeded"]
    assert result["steps"][0]["parsed"]["topic"] == "billing"
    assert "billing ticket" in fake_model.calls[2].prompt


def test_saved_definitions_get_new_versions_and_runs_record_the_version(wf, fake_model) -> None:
    first = wf.save_workflow({"name": "saved", "steps": _chain("a")})
    second = wf.save_workflow({"name": "saved", "description": "two steps", "steps": _chain("a", "b")})
    assert (first["version"], second["version"]) == (1, 2)
    assert [v["version"] for v in wf.list_versions("saved")] == [1, 2]
    result = wf.run_saved("saved", "t", version=1)
    assert result["workflow_version"] == 1 and len(result["steps"]) == 1
    assert wf.run_saved("saved", "t")["workflow_version"] == 2


def test_perspectives_template_runs_its_group_then_reads_every_member(wf, fake_model) -> None:
    result = wf.run(WorkflowTemplates.get_template("perspectives", "fake"), "a four-day week")
    pros, cons, risks, synthesis = result["steps"]
    assert {pros["group"], cons["group"], risks["group"]} == {"perspectives"} and synthesis["group"] is None
    assert all(step["output"] in synthesis["prompt"] for step in (pros, cons, risks))
    assert "a four-day week" in synthesis["prompt"] and len(fake_model.calls) == 4


def test_workflow_max_tokens_applies_to_steps_that_set_none(wf, fake_model) -> None:
    steps = [{"name": "a", "prompt": "one {input}"}, {"name": "b", "prompt": "two {input}", "max_tokens": 3}]
    wf.run({"name": "capped", "max_tokens": 7, "steps": steps}, "x")
    assert [call.max_tokens for call in fake_model.calls] == [7, 3]


def _in_background(work: Callable[[], object]) -> threading.Thread:
    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return thread


def _left_running(store: WorkflowStore, run_id: str, owner: str | None) -> None:
    """A run with its first step in flight, as the process driving it would have left it."""
    store.create_run(run_id, workflow_name="wf", workflow_version=None, definition={"name": "wf", "steps": _chain("a")},
                     input_text="t", variables={}, steps=[{"name": "a", "model": "fake-model"}], owner=owner)
    store.update_step(run_id, 0, status="running")


def _set_heartbeat(engine: Engine, run_id: str, at: datetime) -> None:
    with engine.begin() as conn:
        conn.execute(update(workflow_runs).where(workflow_runs.c.run_id == run_id).values(heartbeat_at=at))


def _heartbeat_at(engine: Engine, run_id: str) -> datetime | None:
    with engine.connect() as conn:
        return conn.execute(select(workflow_runs.c.heartbeat_at).where(workflow_runs.c.run_id == run_id)).scalar_one()


def _states(store: WorkflowStore, run_id: str) -> tuple[str, str]:
    run = store.get_run(run_id)
    assert run is not None, run_id
    return run["status"], run["steps"][0]["status"]


def test_a_new_engine_leaves_alone_the_runs_another_live_engine_drives(wf, svc) -> None:
    slow = FakeModel("slow-model", delay=0.3)
    svc.registry.register_model(slow)
    results = []
    thread = _in_background(lambda: results.append(wf.execute_workflow("busy", _chain("a", model="slow-model"), "t")))
    wait_for(lambda: slow.calls)

    other = WorkflowEngine(svc.registry, svc.engine)  # e.g. a gunicorn worker or CLI command starting meanwhile
    assert other.interrupted_at_start == 0
    (run,) = wf.list_runs(status="running")
    assert _states(wf.store, run["run_id"]) == ("running", "running")
    assert run["owner"] == wf.owner != other.owner
    thread.join(5)
    assert results[0]["status"] == "succeeded"


def test_a_new_engine_marks_runs_whose_heartbeat_went_stale(svc) -> None:
    store = WorkflowStore(svc.engine)
    _left_running(store, "died", owner="gone-host:1:dead")
    _set_heartbeat(svc.engine, "died", utcnow() - STALE_AFTER - timedelta(seconds=1))
    _left_running(store, "alive", owner="other-host:2:beef")

    engine = WorkflowEngine(svc.registry, svc.engine)
    assert engine.interrupted_at_start == 1
    assert _states(store, "died") == ("interrupted", "interrupted")
    assert _states(store, "alive") == ("running", "running")


def test_heartbeat_advances_while_a_run_is_in_flight_and_only_for_its_owner(wf, svc, monkeypatch) -> None:
    monkeypatch.setattr(wf.heartbeat, "interval", 0.05)
    slow = FakeModel("slow-model", delay=0.3)
    svc.registry.register_model(slow)
    past = datetime(2020, 1, 1)
    _left_running(wf.store, "foreign", owner="other-host:2:beef")
    _set_heartbeat(svc.engine, "foreign", past)

    thread = _in_background(lambda: wf.execute_workflow("beating", _chain("a", model="slow-model"), "t"))
    wait_for(lambda: slow.calls)
    (run_id,) = [r["run_id"] for r in wf.list_runs(status="running") if r["owner"] == wf.owner]
    first = _heartbeat_at(svc.engine, run_id)
    assert first is not None

    def advanced() -> bool:
        beat = _heartbeat_at(svc.engine, run_id)
        return beat is not None and beat > first

    wait_for(advanced)
    assert not slow.spans, "the heartbeat moved only once the step was saved, not while the model call ran"
    thread.join(5)

    assert _heartbeat_at(svc.engine, "foreign") == past
    wait_for(lambda: wf.heartbeat._thread is None)  # no run in flight: the thread ends


def test_each_call_is_saved_on_its_step_before_it_is_made(wf, svc) -> None:
    slow = FakeModel("slow-model", delay=0.3)
    svc.registry.register_model(slow)
    results = []
    thread = _in_background(lambda: results.append(wf.execute_workflow("saved", _chain("a", model="slow-model"), "t")))
    wait_for(lambda: slow.calls)
    (run,) = wf.list_runs(status="running")
    step = wf.store.get_run(run["run_id"])["steps"][0]
    assert (step["status"], step["prompt"], step["model"]) == ("running", "a: t", "slow-model")
    assert step["attempts"] == [step["request_id"]] and svc.request_log.get(step["request_id"]) is None
    thread.join(5)
    (done,) = results[0]["steps"]
    assert done["attempts"] == [step["request_id"]] == [done["request_id"]]  # the same call, listed once
    assert svc.request_log.get(step["request_id"])["status"] == "success"


def test_a_sweep_marks_a_dead_drivers_run_records_its_call_in_flight_and_the_run_resumes(wf, svc, fake_model) -> None:
    store = wf.store
    store.create_run("died", workflow_name="wf", workflow_version=None,
                     definition={"name": "wf", "steps": _chain("a", "b")}, input_text="t", variables={},
                     steps=[{"name": "a", "model": "fake-model"}, {"name": "b", "model": "fake-model"}],
                     owner="gone-host:1:dead")
    store.update_step("died", 0, status="succeeded", output="kept", tokens=3, cost=0.5, latency=0.1)
    store.update_step("died", 1, status="running", prompt="b: kept", model="fake-model", request_id="in-flight",
                      attempts=["in-flight"])  # as the dead process saved it before calling
    _set_heartbeat(svc.engine, "died", utcnow() - STALE_AFTER - timedelta(seconds=1))

    assert wf.reclaim_interrupted() == 1 and wf.reclaim_interrupted() == 0
    assert _states(store, "died") == ("interrupted", "succeeded")
    row = svc.request_log.get("in-flight")
    assert (row["status"], row["error_type"], row["source"], row["model"], row["provider"]) == (
        "error", "interrupted", "workflow", "fake-model", "fake")
    assert (row["prompt"], row["tags"], row["latency"], row["cost"]) == ("b: kept", ["workflow_run:died"], None, None)
    assert "process stopped" in row["error_message"] and svc.request_log.count(request_id="in-flight") == 1

    result = wf.resume("died")
    assert [c.prompt for c in fake_model.calls] == ["b: kept"]  # step a is not repeated
    assert result["status"] == "succeeded" and result["steps"][1]["attempts"][0] == "in-flight"
    assert len(result["steps"][1]["attempts"]) == 2


def test_resume_reclaims_a_run_whose_driver_died_since_the_last_sweep(wf, svc, fake_model) -> None:
    _left_running(wf.store, "died", owner="gone-host:1:dead")
    _set_heartbeat(svc.engine, "died", utcnow() - STALE_AFTER - timedelta(seconds=1))
    _left_running(wf.store, "alive", owner="other-host:2:beef")
    assert wf.resume("died")["status"] == "succeeded"
    with pytest.raises(RunNotResumableError, match="is running"):
        wf.resume("alive")
