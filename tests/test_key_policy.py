"""A key's allow-list, RPM and TPM hold for every call made with it, across workers; tags and budgets per key."""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

import pytest
from flask import Flask
from pydantic import SecretStr

from api.app import create_app
from api.key_policy import KeyPolicyGuard
from api.services import services
from core.settings import Settings
from tests.fakes import FakeModel

ADMIN = "bootstrap-admin-key"
T = datetime(2030, 1, 1, 12, 0, 30)  # half a minute into a window


def _guard(app: Flask) -> KeyPolicyGuard:
    return next(hook for hook in services(app).registry.call_path.hooks if isinstance(hook, KeyPolicyGuard))


def _keyed_app(settings: Settings, *models: FakeModel) -> Flask:
    app = create_app(settings.model_copy(update={"api_keys": SecretStr(ADMIN)}), {"TESTING": True})
    for model in models:
        services(app).registry.register_model(model)
    _guard(app).clock = lambda: T
    return app


def _new_key(app: Flask, **spec) -> tuple[str, dict[str, str]]:
    created = app.test_client().post("/api/keys", json={"name": "k", **spec}, headers={"X-API-Key": ADMIN})
    assert created.status_code == 201, created.get_json()
    return created.get_json()["id"], {"X-API-Key": created.get_json()["key"]}


@pytest.fixture
def alpha() -> FakeModel:
    return FakeModel("alpha")


@pytest.fixture
def beta() -> FakeModel:
    return FakeModel("beta")


@pytest.fixture
def app(settings, alpha, beta) -> Flask:
    return _keyed_app(settings, alpha, beta)


def test_a_model_off_the_allow_list_is_refused_before_the_provider_whatever_the_entry_point(app, alpha, beta):
    key_id, headers = _new_key(app, models=["alpha"])
    client = app.test_client()
    assert client.post("/api/generate", json={"model": "alpha", "prompt": "hi"}, headers=headers).status_code == 200
    refused = client.post("/api/generate", json={"model": "beta", "prompt": "hi"}, headers=headers)
    assert refused.status_code == 403
    assert refused.get_json()["error"]["code"] == "model_not_allowed"
    assert refused.get_json()["error"]["details"] == {"model": "beta", "allowed": ["alpha"]}
    steps = [{"prompt": "{input}", "model": "beta"}]
    client.post("/api/workflow", headers=headers, json={"input": "x", "steps": steps})
    client.post("/api/compare", headers=headers, json={"models": ["alpha", "beta"], "prompt": "q",
                                                        "scorers": [{"type": "judge", "model": "beta"}]})
    experiment = client.post("/api/experiment", headers=headers,
                             json={"name": "e", "variant_a": "beta", "variant_b": "beta"}).get_json()["experiment_id"]
    tested = client.post(f"/api/experiment/{experiment}/test", headers=headers, json={"user_id": "u", "prompt": "p"})
    assert tested.status_code == 403
    assert not beta.calls and alpha.calls
    rows = services(app).request_log.list(100, api_key_id=key_id, status="rejected")
    assert {row["error_type"] for row in rows} == {"model_not_allowed"} and {row["model"] for row in rows} == {"beta"}
    assert Counter(row["source"] for row in rows) == {"api": 1, "workflow": 1, "comparison": 2, "experiment": 1}


@pytest.fixture
def two_workers(database_url) -> list[Flask]:
    """Two apps on one database, each with an engine of its own, as two gunicorn workers have."""
    apps = []
    for pool_size in (10, 11):  # a setting of its own gives each app its own engine (the process's are shared)
        settings = Settings.from_env(environ={}, env_file=None, overrides={
            "DATABASE_URL": database_url, "DEFAULT_MODEL": "fake-model", "DB_POOL_SIZE": str(pool_size)})
        apps.append(_keyed_app(settings, FakeModel(delay=0.05)))
    assert services(apps[0]).engine is not services(apps[1]).engine
    return apps


def test_twenty_concurrent_calls_on_two_workers_admit_exactly_the_rpm(two_workers):
    first, second = two_workers
    key_id, headers = _new_key(first, rpm=5)
    barrier = threading.Barrier(20)

    def call(worker: Flask):
        client = worker.test_client()
        barrier.wait()
        return client.post("/api/generate", json={"prompt": "hi"}, headers=headers)

    with ThreadPoolExecutor(20) as pool:
        responses = list(pool.map(call, [first, second] * 10))
    assert Counter(r.status_code for r in responses) == {200: 5, 429: 15}
    for refused in (r for r in responses if r.status_code == 429):
        error = refused.get_json()["error"]
        assert error["code"] == "rate_limited" and refused.headers["Retry-After"] == "30"
        assert error["details"] == {"limit": "rpm", "limit_value": 5, "used": 5, "window_start": "2030-01-01T12:00:00Z",
                                    "retry_after": 30}
    assert services(first).request_log.count(status="rejected") == 15

    for worker in two_workers:  # the next minute has room again
        _guard(worker).clock = lambda: T + timedelta(minutes=1)
    assert first.test_client().post("/api/generate", json={"prompt": "hi"}, headers=headers).status_code == 200


def test_tokens_count_against_the_tpm_until_the_minute_ends(app):
    _, headers = _new_key(app, tpm=10)
    client = app.test_client()
    call = {"model": "alpha", "prompt": "one two three four five"}  # 5 tokens in, 6 out
    assert client.post("/api/generate", json=call, headers=headers).get_json()["tokens"] == 11
    _guard(app).clock = lambda: T.replace(second=45, microsecond=500_000)
    refused = client.post("/api/generate", json=call, headers=headers)
    assert refused.status_code == 429 and refused.headers["Retry-After"] == "15"
    assert refused.get_json()["error"]["details"]["limit"] == "tpm"
    assert refused.get_json()["error"]["details"]["used"] == 11
    _guard(app).clock = lambda: T + timedelta(minutes=1)
    assert client.post("/api/generate", json=call, headers=headers).status_code == 200


def test_keys_without_limits_and_calls_without_keys_pass(app):
    _, headers = _new_key(app)
    client = app.test_client()
    for key in (headers, {"X-API-Key": ADMIN}):
        for _ in range(3):
            assert client.post("/api/generate", json={"model": "beta", "prompt": "hi"}, headers=key).status_code == 200


def test_header_and_key_tags_are_recorded_with_the_body_tags(app):
    key_id, headers = _new_key(app, metadata={"tags": ["team-a", "shared"], "owner": "ana"})
    client = app.test_client()
    answered = client.post("/api/generate", json={"model": "alpha", "prompt": "hi", "tags": ["body", "shared"]},
                           headers={**headers, "X-Tags": "cli, shared ,nightly"})
    row = services(app).request_log.get(answered.get_json()["request_id"])
    assert row["tags"] == ["body", "shared", "cli", "nightly", "team-a"] and row["api_key_id"] == key_id


@pytest.mark.parametrize(("header", "field"), [
    ("a,,b", "X-Tags.1"),
    ("x" * 201, "X-Tags.0"),
    (",".join(f"t{i}" for i in range(51)), "X-Tags"),
])
def test_invalid_header_tags_are_refused_naming_them(app, alpha, header, field):
    response = app.test_client().post("/api/generate", json={"model": "alpha", "prompt": "hi"},
                                      headers={"X-API-Key": ADMIN, "X-Tags": header})
    assert response.status_code == 400
    assert [f["field"] for f in response.get_json()["error"]["details"]["fields"]] == [field]
    assert not alpha.calls


def test_too_many_tags_in_all_are_refused(app):
    response = app.test_client().post("/api/generate", headers={"X-API-Key": ADMIN, "X-Tags": "h1,h2"},
                                      json={"model": "alpha", "prompt": "hi", "tags": [f"b{i}" for i in range(49)]})
    assert response.status_code == 400 and response.get_json()["error"]["details"]["fields"][0]["field"] == "tags"


def test_a_hard_budget_on_one_key_refuses_that_key_only(app):
    capped_id, capped = _new_key(app)
    _, other = _new_key(app)
    budget = {"name": "cap", "scope": "api_key", "target": capped_id, "period": "daily", "limit_usd": 0.000001,
              "hard_limit": True}
    assert app.test_client().post("/api/budgets", json=budget, headers={"X-API-Key": ADMIN}).status_code == 201
    client = app.test_client()
    refused = client.post("/api/generate", json={"model": "alpha", "prompt": "hi"}, headers=capped)
    assert refused.status_code == 402 and refused.get_json()["error"]["code"] == "budget_exceeded"
    assert client.post("/api/generate", json={"model": "alpha", "prompt": "hi"}, headers=other).status_code == 200


def test_a_key_allowed_a_group_reaches_its_deployments_and_a_failover_counts_as_one_request(settings):
    from models.errors import ProviderUnavailableError
    from models.routing.group_config import DeploymentEntry, GroupEntry, register_groups

    first, second = FakeModel("first"), FakeModel("second")
    app = _keyed_app(settings, first, second)
    register_groups(services(app).registry, [GroupEntry(name="chat", strategy="priority", deployments=[
        DeploymentEntry(model="first"), DeploymentEntry(model="second", priority=1)])])
    _, headers = _new_key(app, models=["chat"], rpm=1)
    first.enqueue(ProviderUnavailableError("503"))
    client = app.test_client()
    answered = client.post("/api/generate", json={"model": "chat", "prompt": "hi"}, headers=headers)
    assert answered.status_code == 200 and answered.get_json()["attempts"] == 2  # admitted once under rpm 1
    refused = client.post("/api/generate", json={"model": "first", "prompt": "hi"}, headers=headers)
    assert refused.get_json()["error"]["code"] == "model_not_allowed"
