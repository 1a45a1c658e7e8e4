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
    _arms(app, control_delay=0.01, candidate_delay=0.005)
    rollout_id = _start(client)
    previous: set[str] = set()
    for step, percent in enumerate(SPEC["steps"]):
        rollout = client.get(f"/api/rollouts/{rollout_id}").get_json()
        assert (rollout["status"], rollout["step"], rollout["percent"]) == ("running", step, percent)
        on_candidate = _candidates(_serve(client))
        assert previous <= on_candidate  # sticky: whoever had the candidate keeps it as the percentage grows
        assert 0 < len(on_candidate) <= len(USERS)
        previous = on_candidate
        services(app).rollouts.advance(rollout_id, utcnow())
    assert previous == set(USERS)  # at 100% everyone is on the candidate
    rollout = client.get(f"/api/rollouts/{rollout_id}").get_json()
    assert rollout["status"] == "promoted" and rollout["percent"] == 100
    assert [event["event"] for event in rollout["timeline"]] == ["started", "step", "step", "promoted"]
    assert set(_serve(client).values()) == {"candidate-m"}  # promoted: the candidate serves the control's calls
    anonymous = client.post("/api/generate", json={"prompt": "hi", "model": "control-m"}).get_json()
    assert anonymous["model"] == "candidate-m"
    assert client.post("/api/rollouts", json=SPEC).status_code == 409


def test_a_step_waits_for_its_minimum_calls_and_seconds(app, client):
    _arms(app, control_delay=0.01, candidate_delay=0.005)
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
    _arms(app, control_delay=0.01, candidate_delay=0.005)
    rollout_id = _start(client)
    _serve(client)
    restarted = create_app(settings, {"TESTING": True})
    _arms(restarted, control_delay=0.01, candidate_delay=0.005)
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
