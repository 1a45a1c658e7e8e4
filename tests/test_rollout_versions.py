"""Rollouts between versions: a model version run on a copy of the model while the ramp runs, promoted to production
at the end; a prompt version rendered for the calls naming the production label, which moves to it at the end."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient

from ab_testing.rollouts import RolloutManager
from models.prompts.spec import PromptSpec
from models.versions import Configuration
from storage.clock import utcnow
from tests.fakes import FakeModel

USERS = [f"user-{n}" for n in range(60)]
MAX_ROUNDS = 10  # rounds of calls from every user at one step, at most
STEPS = [25, 50, 100]
LENIENT = {"error_rate_points": 5, "p95_latency_ratio": 5, "cost_per_call_ratio": 1.2}
VERSION_SPEC = {"name": "cooler summaries", "control": "fake-model", "candidate": "fake-model@1.1.0",
                "steps": STEPS, "min_calls_per_step": 8, "min_seconds_per_step": 0, "guardrails": LENIENT}
PROMPT_SPEC = {**VERSION_SPEC, "name": "warmer greeting", "control": "prompt:greeting",
               "candidate": "prompt:greeting@4"}
GREETING = {"name": "greeting", "variables": {"name": "Ann"}}


@pytest.fixture
def candidate_version(client, fake_model) -> str:
    """fake-model 1.1.0 in development: a lower temperature and half the price (so the cost guardrail passes)."""
    fake_model.delay = 0.005  # latencies well above the noise, for the latency guardrail
    response = client.patch("/api/models/fake-model", json={
        "defaults": {"temperature": 0.2}, "pricing": {"input_per_million": 0.5, "output_per_million": 1.0}})
    assert response.status_code == 201
    return response.get_json()["version"]["version"]


@pytest.fixture
def greeting(svc) -> None:
    """Prompt `greeting` with versions 1-4 of equal length, `production` on version 1."""
    for word in ("one", "two", "three", "four"):
        svc.prompts.push(PromptSpec(name="greeting", template=f"Hello {{{{ name }}}} {word}", variables=["name"]))
    svc.prompts.set_label("greeting", "production", 1)


def _start(client: FlaskClient, spec: dict[str, Any]) -> int:
    response = client.post("/api/rollouts", json=spec)
    assert response.status_code == 201, response.get_json()
    return response.get_json()["id"]


def _logged(svc: Any, user: str) -> dict[str, Any]:
    return svc.request_log.list(1, user_id=user)[0]


def _ramp(manager: RolloutManager, rollout_id: int, serve: Callable[[], set[str]]) -> set[str]:
    """Serve every user at each step until the rollout moves; users on the candidate stay there. Returns them."""
    on_candidate: set[str] = set()
    for step in range(len(STEPS)):
        for _ in range(MAX_ROUNDS):
            now_on_candidate = serve()
            assert on_candidate <= now_on_candidate  # sticky through every step
            on_candidate = now_on_candidate
            rollout = manager.advance(rollout_id, utcnow())
            if (rollout["status"], rollout["step"]) != ("running", step):
                break
    return on_candidate


def _serve_model(client: FlaskClient, svc: Any, rollout_id: int | None, candidate: str = "1.1.0") -> set[str]:
    """Each user's call naming fake-model (prompts of 2 to 5 words, so costs vary); the users the candidate version
    served, each call checked against its log row: version, the arm's tag and the price it was billed at."""
    on_candidate = set()
    for n, user in enumerate(USERS):
        prompt = "hello" + " there" * (1 + n % 4)
        response = client.post("/api/generate", json={"prompt": prompt, "model": "fake-model", "user_id": user})
        assert response.status_code == 200 and response.get_json()["model"] == "fake-model"
        row = _logged(svc, user)
        arm = "candidate" if row["model_version"] == candidate else "control"
        if rollout_id is not None:
            assert f"rollout:{rollout_id}:{arm}" in row["tags"]
        else:
            assert not any(tag.startswith("rollout:") for tag in row["tags"] or ())
        pricing = svc.registry.versions.store.get("fake-model", row["model_version"]).configuration.pricing
        assert row["cost"] == pytest.approx((row["input_tokens"] * pricing["input_per_million"]
                                             + row["output_tokens"] * pricing["output_per_million"]) / 1e6)
        if arm == "candidate":
            on_candidate.add(user)
    return on_candidate


def _stages(client: FlaskClient) -> dict[str, str]:
    return {v["version"]: v["stage"] for v in client.get("/api/models/fake-model/versions").get_json()["versions"]}


def test_a_model_version_runs_on_a_copy_and_is_promoted_to_production(client, svc, fake_model, candidate_version):
    assert candidate_version == "1.1.0"
    rollout_id = _start(client, VERSION_SPEC)
    on_candidate = _serve_model(client, svc, rollout_id)
    assert 0 < len(on_candidate) < len(USERS)
    temperatures = {request.params.temperature for request in fake_model.calls}
    assert temperatures == {None, 0.2}  # the candidate's defaults reached its calls, and only its calls
    assert (fake_model.version, fake_model.defaults) == ("1.0.0", None)  # the served model was never changed

    assert _ramp(svc.rollouts, rollout_id, lambda: _serve_model(client, svc, rollout_id)) == set(USERS)
    rollout = client.get(f"/api/rollouts/{rollout_id}").get_json()
    assert (rollout["status"], rollout["routing"], rollout["timeline"][-1]["event"]) == ("promoted", False, "promoted")
    assert _stages(client) == {"1.0.0": "deprecated", "1.1.0": "production"}
    assert fake_model.version == "1.1.0" and fake_model.defaults.temperature == 0.2  # serves by itself now
    assert _serve_model(client, svc, None) == set(USERS)
    cancel = client.post(f"/api/rollouts/{rollout_id}/cancel")  # the promotion is final: undone by versions
    assert cancel.status_code == 409 and cancel.get_json()["error"]["code"] == "illegal_rollout_move"


def test_a_costlier_version_is_rolled_back_and_no_version_changes(client, svc, fake_model):
    fake_model.delay = 0.005
    created = client.patch("/api/models/fake-model", json={"pricing": {"input_per_million": 3.0,
                                                                      "output_per_million": 6.0}})
    version = created.get_json()["version"]["version"]
    assert version == "1.0.1"  # prices are a patch
    stages = _stages(client)
    rollout_id = _start(client, {**VERSION_SPEC, "candidate": f"fake-model@{version}"})
    assert _serve_model(client, svc, rollout_id, candidate=version)
    rollout = svc.rollouts.advance(rollout_id, utcnow())
    assert (rollout["status"], rollout["routing"]) == ("rolled_back", False)
    checks = rollout["timeline"][-1]["details"]["checks"]
    assert {check["guardrail"] for check in checks if check["verdict"] == "breach"} == {"cost_per_call_ratio"}
    assert _stages(client) == stages and fake_model.version == "1.0.0"
    assert _serve_model(client, svc, None, candidate=version) == set()  # everyone back on the production version


def _serve_prompt(client: FlaskClient, svc: Any, rollout_id: int | None, path: str = "/api/generate") -> set[str]:
    """Each user's call rendering `greeting` by its production label; the users version 4 was rendered for."""
    on_candidate = set()
    for user in USERS:
        body = ({"prompt_ref": GREETING, "user_id": user} if path == "/api/generate" else
                {"model": "fake-model", "prompt_ref": GREETING, "user": user})
        response = client.post(path, json=body)
        assert response.status_code == 200, response.get_json()
        row = _logged(svc, user)
        assert row["prompt_name"] == "greeting" and row["prompt_version"] in (1, 4)
        arm = "candidate" if row["prompt_version"] == 4 else "control"
        if rollout_id is not None:
            assert f"rollout:{rollout_id}:{arm}" in row["tags"]
        if arm == "candidate":
            on_candidate.add(user)
    return on_candidate


def test_a_prompt_version_is_split_stickily_and_gets_the_production_label(client, svc, greeting):
    rollout_id = _start(client, PROMPT_SPEC)
    on_candidate = _serve_prompt(client, svc, rollout_id)
    assert 0 < len(on_candidate) < len(USERS)
    assert _serve_prompt(client, svc, rollout_id, "/v1/chat/completions") == on_candidate  # same users, other door
    pinned = client.post("/api/generate", json={"prompt_ref": {**GREETING, "version": 2}, "user_id": "user-3"})
    assert pinned.status_code == 200  # a call naming a version is not split
    assert _logged(svc, "user-3")["prompt_version"] == 2 and not _logged(svc, "user-3")["tags"]

    assert _ramp(svc.rollouts, rollout_id, lambda: _serve_prompt(client, svc, rollout_id)) == set(USERS)
    rollout = client.get(f"/api/rollouts/{rollout_id}").get_json()
    assert (rollout["status"], rollout["routing"]) == ("promoted", False)
    assert svc.prompts.describe("greeting")["labels"] == {"production": 4}
    assert _serve_prompt(client, svc, None) == set(USERS)  # version 4 for everybody, by its label now


def test_paused_and_cancelled_prompt_rollouts_render_the_production_version(client, svc, greeting):
    rollout_id = _start(client, {**PROMPT_SPEC, "steps": [99, 100]})
    assert _serve_prompt(client, svc, rollout_id)
    assert client.post(f"/api/rollouts/{rollout_id}/pause").status_code == 200
    assert _serve_prompt(client, svc, None) == set()
    assert all(not _logged(svc, user)["tags"] for user in USERS)  # paused: no arm recorded
    assert client.post(f"/api/rollouts/{rollout_id}/cancel").get_json()["status"] == "cancelled"
    assert _serve_prompt(client, svc, None) == set()
    assert svc.prompts.describe("greeting")["labels"] == {"production": 1}


@pytest.mark.parametrize(("control", "candidate", "field"), [
    ("fake-model@1.0.0", "fake-model@1.1.0", "control"),  # a control is what calls name: no version
    ("fake-model", "fake-model@9.9.9", "candidate"),  # no such version
    ("fake-model", "fake-model@1.0.0", "candidate"),  # serves already
    ("fake-model", "other-model@1.1.0", "candidate"),  # a version of another model
    ("fake-model", "prompt:greeting@4", "candidate"),  # a model is not replaced by a prompt
    ("fake", "fake-model", "candidate"),  # an alias of the control
    ("prompt:greeting", "prompt:greeting", "candidate"),
    ("prompt:greeting", "prompt:other@2", "candidate"),
    ("prompt:greeting", "fake-model", "candidate"),
    ("prompt:greeting", "prompt:greeting@99", "candidate"),
    ("prompt:greeting", "prompt:greeting@1", "candidate"),  # has the production label already
    ("prompt:greeting", "prompt:greeting@0", "candidate"),
    ("prompt:nothing", "prompt:nothing@2", "control"),
    ("prompt:bad name", "prompt:greeting@2", "control"),
    ("prompt:unlabelled", "prompt:unlabelled@2", "control"),  # no production label to move traffic from
])
def test_a_bad_reference_is_a_400_naming_its_field(client, svc, candidate_version, greeting, control, candidate,
                                                   field):
    svc.registry.register_model(FakeModel("other-model"))
    for _ in range(2):
        svc.prompts.push(PromptSpec(name="unlabelled", template="Hi"))
    response = client.post("/api/rollouts", json={**VERSION_SPEC, "control": control, "candidate": candidate})
    assert response.status_code == 400, response.get_json()
    assert [f["field"] for f in response.get_json()["error"]["details"]["fields"]] == [field]


def test_a_version_another_provider_needs_or_an_archived_one_is_refused(client, svc, fake_model, candidate_version):
    other = Configuration(**{**Configuration.of(fake_model).to_dict(), "provider": "elsewhere"})
    row = svc.registry.versions.store.record("fake-model", other, stage="development", created_by="api")
    assert row is not None and row.version == "2.0.0"
    assert client.post("/api/models/fake-model/versions/1.1.0/promote", json={"stage": "archived"}).status_code == 200
    for version, reason in (("2.0.0", "change the models file"), ("1.1.0", "archived")):
        response = client.post("/api/rollouts", json={**VERSION_SPEC, "candidate": f"fake-model@{version}"})
        assert response.status_code == 400
        [problem] = response.get_json()["error"]["details"]["fields"]
        assert problem["field"] == "candidate" and reason in problem["reason"]
