"""The experiment endpoints: bodies, status codes and JSON errors."""

from __future__ import annotations

import pytest

from tests.fakes import FakeModel


@pytest.fixture
def second_model(svc):
    model = FakeModel("fake-b")
    svc.registry.register_model(model)
    return model


def create(client, body: dict) -> int:
    response = client.post("/api/experiment", json=body)
    assert response.status_code == 201, response.json
    assert response.json["status"] == "success"
    return response.json["experiment_id"]


GENERAL = {"name": "prompt test", "variants": [
    {"name": "terse", "model": "fake-model", "weight": 1, "params": {"system": "Be terse."}},
    {"name": "chatty", "model": "fake-b", "weight": 1, "params": {"temperature": 0.9}},
], "control": "terse"}


def test_original_flow(client, second_model):
    experiment_id = create(client, {"name": "orig", "variant_a": "fake-model", "variant_b": "fake-b"})
    tested = client.post(f"/api/experiment/{experiment_id}/test", json={"user_id": "u1", "prompt": "hello"})
    assert tested.status_code == 200
    body = tested.json
    assert body["variant"] in ("A", "B") and body["model"] in ("fake-model", "fake-b")
    assert body["response"] == "echo: hello" and body["experiment_id"] == experiment_id
    recorded = client.post(f"/api/experiment/{experiment_id}/record", json={"variant": "A", "success": True,
                                                                            "rating": 5})
    assert recorded.status_code == 200 and recorded.json["status"] == "success" and recorded.json["result_id"]
    stats = client.get(f"/api/experiment/{experiment_id}/stats").json
    assert stats["status"] == "success"
    assert stats["stats"]["variant_a"]["avg_rating"] == 5.0 and stats["stats"]["variant_a"]["total"] == 1
    assert stats["stats"]["winner"] is None and stats["stats"]["status"] == "running"


def test_general_flow_with_lifecycle(client, second_model):
    experiment_id = create(client, GENERAL)
    detail = client.get(f"/api/experiment/{experiment_id}").json["experiment"]
    assert detail["status"] == "draft" and [v["name"] for v in detail["variants"]] == ["terse", "chatty"]
    refused = client.post(f"/api/experiment/{experiment_id}/test", json={"user_id": "u1", "prompt": "hi"})
    assert refused.status_code == 409 and refused.json["error"]["code"] == "experiment_not_running"
    assert client.post(f"/api/experiment/{experiment_id}/start").json["experiment"]["status"] == "running"
    served = client.post(f"/api/experiment/{experiment_id}/test", json={"user_id": "u1", "prompt": "hi"}).json
    assert served["variant"] in ("terse", "chatty") and served["in_experiment"] is True
    assert client.post(f"/api/experiment/{experiment_id}/pause").json["experiment"]["status"] == "paused"
    assert client.post(f"/api/experiment/{experiment_id}/start").status_code == 200
    assert client.post(f"/api/experiment/{experiment_id}/complete").status_code == 200
    again = client.post(f"/api/experiment/{experiment_id}/complete")
    assert again.status_code == 409 and again.json["error"]["code"] == "invalid_transition"
    late = client.post(f"/api/experiment/{experiment_id}/record", json={"variant": "terse", "success": True})
    assert late.status_code == 409 and late.json["error"]["code"] == "experiment_not_running"
    listed = client.get("/api/experiments").json
    assert listed["count"] == 1 and listed["experiments"][0]["status"] == "completed"


def test_batch_recording_with_idempotent_retries(client, second_model):
    experiment_id = create(client, {**GENERAL, "start": True})
    batch = {"outcomes": [
        {"variant": "terse", "success": True, "rating": 4, "outcome_id": "r1"},
        {"variant": "chatty", "success": False, "metrics": {"latency": 1.5}, "outcome_id": "r2"},
        {"variant": "chatty", "success": True},
    ]}
    first = client.post(f"/api/experiment/{experiment_id}/record", json=batch).json
    assert first["count"] == 3 and first["recorded"] == 3
    retry = client.post(f"/api/experiment/{experiment_id}/record", json=batch).json
    assert retry["recorded"] == 1 and [r["duplicate"] for r in retry["results"]] == [True, True, False]
    variants = client.get(f"/api/experiment/{experiment_id}/stats").json["stats"]["variants"]
    assert [v["n"] for v in variants] == [1, 3]
    assert variants[1]["latency"]["n"] == 1


def test_reweighting_through_the_api(client, second_model):
    experiment_id = create(client, {**GENERAL, "start": True})
    response = client.put(f"/api/experiment/{experiment_id}/weights", json={"weights": {"chatty": 3}})
    assert response.status_code == 200
    assert [v["weight"] for v in response.json["experiment"]["variants"]] == [1.0, 3.0]
    unknown = client.put(f"/api/experiment/{experiment_id}/weights", json={"weights": {"nope": 1}})
    assert unknown.status_code == 404 and unknown.json["error"]["code"] == "unknown_variant"


@pytest.mark.parametrize(("method", "path", "body"), [
    ("get", "/api/experiment/999", None),
    ("get", "/api/experiment/999/stats", None),
    ("post", "/api/experiment/999/start", None),
    ("post", "/api/experiment/999/test", {"user_id": "u", "prompt": "p"}),
    ("post", "/api/experiment/999/record", {"variant": "A", "success": True}),
])
def test_unknown_experiment_is_404(client, method, path, body):
    response = getattr(client, method)(path, json=body) if body else getattr(client, method)(path)
    assert response.status_code == 404 and response.json["error"]["code"] == "experiment_not_found"


def test_unknown_variant_is_404(client, second_model):
    experiment_id = create(client, {"name": "x", "variant_a": "fake-model", "variant_b": "fake-b"})
    response = client.post(f"/api/experiment/{experiment_id}/record", json={"variant": "Z", "success": True})
    assert response.status_code == 404 and response.json["error"]["code"] == "unknown_variant"


@pytest.mark.parametrize(("path", "body", "field"), [
    ("/api/experiment", {"name": "x", "variant_a": "m"}, "variant_b"),
    ("/api/experiment", {**GENERAL, "control": "missing"}, "control"),
    ("/api/experiment", {**GENERAL, "variants": GENERAL["variants"][:1]}, "variants"),
    ("/api/experiment", {**GENERAL, "alpha": 2}, "alpha"),
    ("/api/experiment/1/test", {"user_id": "u"}, "prompt"),
    ("/api/experiment/1/record", {"variant": "A"}, "success"),
    ("/api/experiment/1/record", {"variant": "A", "success": True, "rating": "good"}, "rating"),
    ("/api/experiment/1/record", {"variant": "A", "success": True, "metrics": {"Bad Name": 1}}, "metrics"),
    ("/api/experiment/1/record", {"outcomes": []}, "outcomes"),
])
def test_bad_bodies_are_400_naming_the_field(client, second_model, path, body, field):
    create(client, {"name": "x", "variant_a": "fake-model", "variant_b": "fake-b"})
    response = client.post(path, json=body)
    assert response.status_code == 400, response.json
    assert response.json["error"]["code"] == "validation_error"
    assert field in response.json["error"]["message"]


def test_unknown_model_at_test_time_is_a_json_404(client):
    experiment_id = create(client, {"name": "x", "variant_a": "no-such-model", "variant_b": "other"})
    response = client.post(f"/api/experiment/{experiment_id}/test", json={"user_id": "u", "prompt": "p"})
    assert response.status_code == 404 and response.json["error"]["code"] == "unknown_model"


def test_non_finite_and_negative_numbers_are_refused(client, second_model):
    experiment_id = create(client, {"name": "x", "variant_a": "fake-model", "variant_b": "fake-b"})
    nan_rating = client.post(f"/api/experiment/{experiment_id}/record",
                             data='{"variant": "A", "success": true, "rating": NaN}', content_type="application/json")
    assert nan_rating.status_code == 400 and "rating" in nan_rating.json["error"]["message"]
    negative = client.put(f"/api/experiment/{experiment_id}/weights", json={"weights": {"A": -1}})
    assert negative.status_code == 400 and "weights" in negative.json["error"]["message"]
