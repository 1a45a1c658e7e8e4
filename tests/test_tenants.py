"""Tenants: a managed key sees and changes only its own requests and budgets; admin keys see everything."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from api.app import create_app
from api.auth import create_key
from api.services import api_keys, services
from tests.fakes import FakeModel

ADMIN = "bootstrap-admin-key"


@pytest.fixture
def tenants(settings):
    app = create_app(settings.model_copy(update={"api_keys": SecretStr(ADMIN)}),
                     {"TESTING": True})
    services(app).registry.register_model(FakeModel(), aliases=("fake",))
    store = api_keys(app)
    (a_id, a_key), (b_id, b_key) = create_key(store, "team-a"), create_key(store, "team-b")
    _, ops_key = create_key(store, "ops", admin=True)
    client = app.test_client()

    def as_key(key: str):
        headers = {"Authorization": f"Bearer {key}"}
        return lambda method, path, **kw: client.open(path, method=method, headers=headers, **kw)

    return {"a": as_key(a_key), "b": as_key(b_key), "admin": as_key(ADMIN), "ops": as_key(ops_key),
            "a_id": a_id, "b_id": b_id}


def test_a_key_sees_only_its_own_requests(tenants):
    a, b = tenants["a"], tenants["b"]
    assert a("POST", "/api/generate", json={"prompt": "secret of team a"}).status_code == 200
    assert b("POST", "/api/generate", json={"prompt": "team b asks"}).status_code == 200
    seen_by_b = b("GET", "/api/requests").get_json()["requests"]
    assert [r["prompt"] for r in seen_by_b] == ["team b asks"]
    for admin in ("admin", "ops"):  # the bootstrap key and a key created as admin see both
        prompts = {r["prompt"] for r in tenants[admin]("GET", "/api/requests").get_json()["requests"]}
        assert prompts == {"secret of team a", "team b asks"}


def test_a_key_cannot_see_change_or_delete_another_keys_budget(tenants):
    a, b = tenants["a"], tenants["b"]
    spec = {"name": "a-cap", "scope": "api_key", "target": tenants["a_id"], "period": "daily", "limit_usd": 1}
    created = a("POST", "/api/budgets", json=spec)
    assert created.status_code == 201
    budget_id = created.get_json()["id"]
    assert b("GET", "/api/budgets").get_json()["budgets"] == []
    for method, body in (("GET", None), ("PATCH", {"limit_usd": 1000}), ("DELETE", None)):
        response = b(method, f"/api/budgets/{budget_id}", json=body)
        assert response.status_code == 404 and response.get_json()["error"]["code"] == "budget_not_found"
    assert a("GET", f"/api/budgets/{budget_id}").get_json()["limit_usd"] == 1
    assert [x["id"] for x in tenants["admin"]("GET", "/api/budgets").get_json()["budgets"]] == [budget_id]


def test_a_managed_key_can_only_budget_its_own_calls(tenants):
    b = tenants["b"]
    for spec in ({"scope": "global"}, {"scope": "model", "target": "fake-model"},
                 {"scope": "api_key", "target": tenants["a_id"]}):
        response = b("POST", "/api/budgets", json={"name": "x", "period": "daily", "limit_usd": 1, **spec})
        assert response.status_code == 403 and response.get_json()["error"]["code"] == "forbidden"


def test_a_keys_hard_budget_refuses_only_that_keys_calls(tenants):
    a, b = tenants["a"], tenants["b"]
    a("POST", "/api/budgets", json={"name": "a-zero", "scope": "api_key", "target": tenants["a_id"],
                                    "period": "daily", "limit_usd": 1e-9, "hard_limit": True})
    assert a("POST", "/api/generate", json={"prompt": "x y z"}).status_code == 402
    assert b("POST", "/api/generate", json={"prompt": "x y z"}).status_code == 200


def test_docs_forbid_framing_and_foreign_scripts(client):
    response = client.get("/docs")
    policy = response.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in policy and "script-src 'self' 'nonce-" in policy
    nonce = policy.split("'nonce-")[1].split("'")[0]
    assert f'<script nonce="{nonce}">' in response.get_data(as_text=True)
    assert response.headers["X-Frame-Options"] == "DENY"
    assert client.get("/docs").headers["Content-Security-Policy"] != policy  # a fresh nonce per page


def test_a_key_sees_and_changes_only_its_own_experiments(tenants):
    a, b = tenants["a"], tenants["b"]
    created = a("POST", "/api/experiment", json={"name": "tone", "variant_a": "fake", "variant_b": "fake"})
    experiment_id = created.get_json()["experiment_id"]
    assert b("GET", "/api/experiments").get_json()["experiments"] == []
    for method, path, body in (("GET", "", None), ("GET", "/stats", None), ("POST", "/complete", None),
                               ("POST", "/test", {"user_id": "u", "prompt": "hi"}),
                               ("POST", "/record", {"variant": "A", "success": True})):
        response = b(method, f"/api/experiment/{experiment_id}{path}", json=body)
        assert response.status_code == 404, (method, path)
    assert a("GET", f"/api/experiment/{experiment_id}/stats").status_code == 200
    assert len(tenants["ops"]("GET", "/api/experiments").get_json()["experiments"]) == 1


def test_a_key_sees_and_resumes_only_its_own_runs(tenants):
    a, b = tenants["a"], tenants["b"]
    workflow = {"steps": [{"name": "s", "prompt_template": "Say {input}"}], "input": "x"}
    run_id = a("POST", "/api/workflow", json=workflow).get_json()["workflow"]["run_id"]
    assert b("GET", "/api/workflow/runs").get_json()["runs"] == []
    assert b("GET", f"/api/workflow/runs/{run_id}").status_code == 404
    assert b("POST", f"/api/workflow/runs/{run_id}/resume").status_code == 404
    assert a("GET", f"/api/workflow/runs/{run_id}").status_code == 200
    benchmark = a("POST", "/api/benchmarks", json={"models": ["fake"], "limit": 1}).get_json()
    assert b("GET", f"/api/benchmarks/{benchmark['id']}").status_code == 404
    assert b("GET", "/api/benchmarks").get_json()["benchmarks"] == []
    assert [r["id"] for r in a("GET", "/api/benchmarks").get_json()["benchmarks"]] == [benchmark["id"]]
