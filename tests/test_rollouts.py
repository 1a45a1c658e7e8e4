"""Rollouts: sticky traffic moves from control to candidate step by step, rolls back on a breached guardrail,
promotes after the last step, and lives in the database (any app instance advances it)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from api.app import create_app
from api.services import services
from storage.clock import utcnow
from tests.fakes import FakeModel

USERS = [f"user-{n}" for n in range(60)]
MAX_ROUNDS = 10
# A candidate four times faster: far enough apart that a scheduling hiccup on a busy machine cannot make its p95
# look slower than the control's.
SLOW, FAST = 0.02, 0.005  # rounds of calls from every user at one step, at most
SPEC = {"name": "faster model", "control": "control-m", "candidate": "candidate-m", "steps": [25, 50, 100],
        "min_calls_per_step": 8, "min_seconds_per_step": 0,
        "guardrails": {"error_rate_points": 5, "p95_latency_ratio": 1.2, "cost_per_call_ratio": 1.2}}


def _arms(app: Flask, control_delay: float, candidate_delay: float) -> None:
    registry = services(app).registry
    registry.register_model(FakeModel("control-m", delay=control_delay))
    registry.register_model(FakeModel("candidate-m", delay=candidate_delay))


def _start(client: FlaskClient, **overrides: Any) -> int:
    response = client.post("/api/rollouts", json={**SPEC, **overrides})
    assert response.status_code == 201, response.get_json()
    return response.get_json()["id"]


def _serve(client: FlaskClient, users: list[str] = USERS) -> dict[str, str]:
    """Each user's call naming the control: the model that served it."""
    served = {}
    for user in users:
        response = client.post("/api/generate", json={"prompt": "hello there", "model": "control-m", "user_id": user})
        assert response.status_code == 200, response.get_json()
        served[user] = response.get_json()["model"]
    return served


def _candidates(served: dict[str, str]) -> set[str]:
    return {user for user, model in served.items() if model == "candidate-m"}


def test_a_candidate_twice_as_slow_is_rolled_back_at_its_first_step(app, client):
    _arms(app, control_delay=0.01, candidate_delay=0.02)
    rollout_id = _start(client)
    assert _candidates(_serve(client))
    rollout = services(app).rollouts.advance(rollout_id, utcnow())
    assert rollout["status"] == "rolled_back" and rollout["step"] == 0 and rollout["percent"] == 0
    rolled_back = rollout["timeline"][-1]
    assert rolled_back["event"] == "rolled_back"
    breached = {check["guardrail"] for check in rolled_back["details"]["checks"] if check["verdict"] == "breach"}
    assert breached == {"p95_latency_ratio"}
    assert set(_serve(client).values()) == {"control-m"}  # every user is back on the control
    assert client.get(f"/api/rollouts/{rollout_id}").get_json()["status"] == "rolled_back"


def test_a_faster_candidate_is_promoted_through_every_step_and_users_stay_on_it(app, client):
    _arms(app, control_delay=SLOW, candidate_delay=FAST)
    rollout_id = _start(client)
    manager = services(app).rollouts
    previous: set[str] = set()
    for step, percent in enumerate(SPEC["steps"]):
        rollout = client.get(f"/api/rollouts/{rollout_id}").get_json()
        assert (rollout["status"], rollout["step"], rollout["percent"]) == ("running", step, percent)
        for _ in range(MAX_ROUNDS):  # the 50% step waits until the error rate is proven not worse by 5 points
            on_candidate = _candidates(_serve(client))
            assert previous <= on_candidate  # sticky: whoever had the candidate keeps it as the percentage grows
            assert 0 < len(on_candidate) <= len(USERS)
            previous = on_candidate
            rollout = manager.advance(rollout_id, utcnow())
            if (rollout["status"], rollout["step"]) != ("running", step):
                break
    assert previous == set(USERS)  # at 100% everyone is on the candidate
    rollout = client.get(f"/api/rollouts/{rollout_id}").get_json()
    assert rollout["status"] == "promoted" and rollout["percent"] == 100 and rollout["routing"]
    assert [event["event"] for event in rollout["timeline"]] == ["started", "step", "step", "promoted"]
    primary = [c for c in rollout["timeline"][-1]["details"]["checks"] if c["guardrail"] == "primary_error_rate"]
    assert primary == [{"guardrail": "primary_error_rate", "observed": 0.0, "limit": 5.0,
                        "p_value": primary[0]["p_value"], "verdict": "pass"}]
    assert set(_serve(client).values()) == {"candidate-m"}  # promoted: the candidate serves the control's calls
    anonymous = client.post("/api/generate", json={"prompt": "hi", "model": "control-m"}).get_json()
    assert anonymous["model"] == "candidate-m"
    assert client.post("/api/rollouts", json=SPEC).status_code == 409


def test_a_step_waits_for_its_minimum_calls_and_seconds(app, client):
    _arms(app, control_delay=SLOW, candidate_delay=FAST)
    rollout_id = _start(client, min_seconds_per_step=60)
    manager = services(app).rollouts
    assert manager.advance(rollout_id, utcnow())["step"] == 0  # no calls yet
    _serve(client)
    assert manager.advance(rollout_id, utcnow())["step"] == 0  # too soon
    assert manager.advance(rollout_id, utcnow() + timedelta(seconds=61))["step"] == 1


def test_calls_without_a_user_stay_on_the_control_and_the_gateway_routes_and_tags(app, client):
    _arms(app, control_delay=0, candidate_delay=0)
    rollout_id = _start(client, steps=[99, 100])
    assert client.post("/api/generate", json={"prompt": "hi", "model": "control-m"}).get_json()["model"] == "control-m"
    response = client.post("/v1/chat/completions", json={"model": "control-m", "user": "user-1",
                                                         "messages": [{"role": "user", "content": "hi"}]})
    assert response.status_code == 200
    arm = "candidate" if response.headers["X-Model"] == "candidate-m" else "control"
    [row] = services(app).request_log.list(1, user_id="user-1")
    assert f"rollout:{rollout_id}:{arm}" in row["tags"]


def test_advancing_survives_a_new_app_on_the_same_database(app, client, settings):
    _arms(app, control_delay=SLOW, candidate_delay=FAST)
    rollout_id = _start(client)
    _serve(client)
    restarted = create_app(settings, {"TESTING": True})
    _arms(restarted, control_delay=SLOW, candidate_delay=FAST)
    assert services(restarted).rollouts.advance(rollout_id, utcnow())["step"] == 1
    served = _serve(restarted.test_client())
    assert client.get(f"/api/rollouts/{rollout_id}").get_json()["percent"] == 50
    assert 0 < len(_candidates(served)) < len(USERS)


@pytest.mark.parametrize(("overrides", "field"), [
    ({"steps": [10, 50]}, "steps"),
    ({"steps": [50, 10, 100]}, "steps"),
    ({"steps": [0, 100]}, "steps"),
    ({"candidate": "control-m"}, "candidate"),
    ({"candidate": "no-such-model"}, "candidate"),
    ({"min_calls_per_step": 0}, "min_calls_per_step"),
    ({"guardrails": {"p95_latency_ratio": 0.5}}, "guardrails.p95_latency_ratio"),
    ({"surprise": 1}, "surprise"),
])
def test_an_invalid_rollout_is_a_400_naming_the_field(app, client, overrides, field):
    _arms(app, control_delay=0, candidate_delay=0)
    response = client.post("/api/rollouts", json={**SPEC, **overrides})
    assert response.status_code == 400
    assert field in {f["field"] for f in response.get_json()["error"]["details"]["fields"]}


def test_api_shapes_404_and_409(app, client):
    _arms(app, control_delay=0, candidate_delay=0)
    rollout_id = _start(client, control="fake")  # an alias: stored as the model it names
    rollout = client.get(f"/api/rollouts/{rollout_id}").get_json()
    assert rollout["control"] == "fake-model" and rollout["candidate"] == "candidate-m"
    assert (rollout["status"], rollout["step"], rollout["percent"]) == ("running", 0, 25)
    assert [event["event"] for event in rollout["timeline"]] == ["started"]
    assert client.get("/api/rollouts/999").status_code == 404
    conflict = client.post("/api/rollouts", json={**SPEC, "control": "fake-model"})
    assert conflict.status_code == 409 and conflict.get_json()["error"]["code"] == "conflict"


def test_cli_shows_and_advances(app, client, runner):
    _arms(app, control_delay=0, candidate_delay=0)
    rollout_id = _start(client)
    assert '"status": "running"' in runner.invoke(args=["rollouts", "show", str(rollout_id)]).output
    assert '"status": "running"' in runner.invoke(args=["rollouts", "advance", str(rollout_id)]).output
    missing = runner.invoke(args=["rollouts", "show", "999"])
    assert missing.exit_code != 0 and "No rollout" in missing.output


def _move(client: FlaskClient, rollout_id: int, action: str) -> Any:
    return client.post(f"/api/rollouts/{rollout_id}/{action}")


def _refused(response: Any) -> bool:
    return response.status_code == 409 and response.get_json()["error"]["code"] == "illegal_rollout_move"


def test_pause_sends_everyone_to_the_control_and_resume_restarts_the_step_with_the_same_arms(app, client):
    _arms(app, control_delay=SLOW, candidate_delay=FAST)
    rollout_id = _start(client, min_seconds_per_step=60)
    manager = services(app).rollouts
    before = _candidates(_serve(client))
    paused = _move(client, rollout_id, "pause").get_json()
    assert (paused["status"], paused["percent"], paused["step"], paused["routing"]) == ("paused", 0, 0, True)
    assert _candidates(_serve(client)) == set()
    assert not any(tag.startswith("rollout:") for row in services(app).request_log.list(len(USERS))
                   for tag in row["tags"] or ())  # paused calls belong to no arm
    assert manager.advance(rollout_id, utcnow() + timedelta(seconds=61))["status"] == "paused"  # no look
    assert _refused(_move(client, rollout_id, "pause"))
    resumed_at = utcnow()
    resumed = _move(client, rollout_id, "resume").get_json()
    assert (resumed["status"], resumed["step"], resumed["percent"]) == ("running", 0, 25)
    assert resumed["step_started_at"] >= resumed_at.isoformat()  # the step starts over
    assert _candidates(_serve(client)) == before  # sticky across the pause
    assert manager.advance(rollout_id, resumed_at + timedelta(seconds=30))["step"] == 0  # its clock restarted
    assert manager.advance(rollout_id, resumed_at + timedelta(seconds=61))["step"] == 1
    assert [e["event"] for e in client.get(f"/api/rollouts/{rollout_id}").get_json()["timeline"]] == [
        "started", "paused", "resumed", "step"]


def test_cancel_ends_a_running_or_paused_rollout_and_illegal_moves_are_409(app, client):
    _arms(app, control_delay=0, candidate_delay=0)
    running = _start(client)
    cancelled = _move(client, running, "cancel").get_json()
    assert (cancelled["status"], cancelled["percent"], cancelled["routing"]) == ("cancelled", 0, False)
    assert cancelled["ended_at"] is not None and cancelled["timeline"][-1]["event"] == "cancelled"
    assert set(_serve(client).values()) == {"control-m"}
    for action in ("pause", "resume", "cancel"):
        refusal = _move(client, running, action)
        assert _refused(refusal) and refusal.get_json()["error"]["details"]["allowed"] == []
    paused = _start(client)  # the control is free again
    _move(client, paused, "pause")
    assert _refused(_move(client, paused, "pause"))
    assert _move(client, paused, "cancel").get_json()["status"] == "cancelled"
    assert _move(client, 999, "pause").status_code == 404


def test_a_promoted_model_rollout_routes_until_cancelled(app, client):
    _arms(app, control_delay=0, candidate_delay=0)
    rollout_id = _start(client)
    manager = services(app).rollouts
    rollout = manager.store.get(rollout_id)
    assert manager.store.move({**rollout, "step": 2}, "promoted", utcnow(), {}) is False  # a stale read loses
    for event in ("step", "step"):
        assert manager.store.move(manager.store.get(rollout_id), event, utcnow(), {})
    assert manager.store.move(manager.store.get(rollout_id), "promoted", utcnow(), {})
    manager._routing.clear()
    assert set(_serve(client).values()) == {"candidate-m"}
    assert client.get(f"/api/rollouts/{rollout_id}").get_json()["routing"] is True
    ended = _move(client, rollout_id, "cancel").get_json()
    assert (ended["status"], ended["routing"]) == ("cancelled", False)
    assert [e["event"] for e in ended["timeline"]] == ["started", "step", "step", "promoted", "cancelled"]
    assert set(_serve(client).values()) == {"control-m"}


def test_list_is_newest_first_and_filters_by_status(app, client):
    _arms(app, control_delay=0, candidate_delay=0)
    services(app).registry.register_model(FakeModel("third-m"))
    first = _start(client)
    second = _start(client, control="third-m")
    _move(client, first, "cancel")
    listing = client.get("/api/rollouts").get_json()
    assert [r["id"] for r in listing["rollouts"]] == [second, first] and listing["count"] == 2
    assert "timeline" in listing["rollouts"][0]
    assert [r["id"] for r in client.get("/api/rollouts?status=cancelled").get_json()["rollouts"]] == [first]
    assert client.get("/api/rollouts?status=running&limit=1").get_json()["count"] == 1
    bad = client.get("/api/rollouts?status=finished")
    assert bad.status_code == 400 and bad.get_json()["error"]["details"]["fields"][0]["field"] == "status"


def test_cli_lists_pauses_resumes_and_cancels(app, client, runner):
    _arms(app, control_delay=0, candidate_delay=0)
    rollout_id = _start(client)
    assert '"status": "paused"' in runner.invoke(args=["rollouts", "pause", str(rollout_id)]).output
    assert '"status": "running"' in runner.invoke(args=["rollouts", "resume", str(rollout_id)]).output
    assert '"status": "cancelled"' in runner.invoke(args=["rollouts", "cancel", str(rollout_id)]).output
    listed = runner.invoke(args=["rollouts", "list", "--status", "cancelled"])
    assert listed.exit_code == 0 and f'"id": {rollout_id}' in listed.output
    again = runner.invoke(args=["rollouts", "resume", str(rollout_id)])
    assert again.exit_code != 0 and "cannot be resumed" in again.output


def test_the_periodic_chore_submits_a_step_job_only_while_a_rollout_runs(app, client):
    from sqlalchemy import func, select

    from storage.jobs.tables import jobs
    from wiring.services import _submit_rollout_step

    svc = services(app)
    store = svc.jobs.runner.store
    _submit_rollout_step(svc.jobs, svc.rollouts)
    assert not store.has_pending("rollout_step")  # idle: no job rows every interval
    _arms(app, control_delay=0.0, candidate_delay=0.0)
    _start(client)
    svc.jobs.runner.transport = None  # keep it queued, to see the chore hold one and only one
    _submit_rollout_step(svc.jobs, svc.rollouts)
    _submit_rollout_step(svc.jobs, svc.rollouts)
    assert store.has_pending("rollout_step")
    with svc.engine.connect() as conn:
        assert conn.execute(select(func.count()).where(jobs.c.kind == "rollout_step")).scalar_one() == 1
