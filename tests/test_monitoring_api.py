"""HTTP: metrics and costs agree with the request log; budgets CRUD; 402 before the provider; /metrics."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from api.app import create_app
from models.errors import ProviderUnavailableError, RateLimitedError
from models.request_log import request_log
from storage.database import read


def _log_sums(engine, **where) -> dict:
    c = request_log.c
    query = select(func.count().label("n"), func.sum(c.cost).label("cost"), func.sum(c.total_tokens).label("tokens"),
                   func.sum(c.input_tokens).label("input"), func.sum(c.output_tokens).label("output"))
    for name, value in where.items():
        query = query.where(c[name] == value)
    with read(engine) as conn:
        return conn.execute(query).one()._asdict()


def _generate_mix(client, fake_model) -> None:
    fake_model.enqueue("one two three", ProviderUnavailableError("down"), "four five",
                       RateLimitedError("slow down"), "six", ProviderUnavailableError("down again"))
    statuses = [client.post("/api/generate", json={"prompt": f"prompt number {i}", "user_id": f"u{i % 2}",
                                                   "tags": ["t"] if i % 3 == 0 else None}).status_code
                for i in range(6)]
    assert statuses == [200, 502, 200, 429, 200, 502]


def test_metrics_and_costs_agree_exactly_with_the_request_log(client, fake_model, svc):
    _generate_mix(client, fake_model)
    raw = _log_sums(svc.engine)
    successes = _log_sums(svc.engine, status="success")["n"]
    metrics = client.get("/api/metrics").get_json()
    overall = metrics["overall"]
    assert overall["total_requests"] == raw["n"] == 6
    assert overall["successful"] == successes and overall["failed"] == raw["n"] - successes
    assert overall["success_rate"] == pytest.approx(100.0 * successes / raw["n"])
    assert (overall["input_tokens"], overall["output_tokens"], overall["total_tokens"]) == (
        raw["input"], raw["output"], raw["tokens"])
    assert overall["total_cost"] == pytest.approx(raw["cost"], rel=1e-12)
    assert overall["errors"] == {"provider_unavailable": 2, "rate_limited": 1}
    assert metrics["models"]["fake-model"]["total_requests"] == 6
    costs = client.get("/api/costs").get_json()
    assert costs["total_cost"] == pytest.approx(raw["cost"], rel=1e-12)
    assert costs["costs"][0]["model_name"] == "fake-model" and costs["costs"][0]["total_tokens"] == raw["tokens"]
    by_user = {row["user_id"]: row for row in costs["by_user"]}
    assert by_user["u0"]["cost"] == pytest.approx(_log_sums(svc.engine, user_id="u0")["cost"], rel=1e-12)
    assert [row["tag"] for row in costs["by_tag"]] == ["t"] and costs["by_tag"][0]["requests"] == 2
    assert sum(day["cost"] for day in costs["by_day"]) == pytest.approx(raw["cost"], rel=1e-12)


def test_metrics_filters_by_model_alias_and_window(client, fake_model):
    client.post("/api/generate", json={"prompt": "hi"})
    one = client.get("/api/metrics?model=fake&window=1h").get_json()
    assert list(one["models"]) == ["fake-model"] and one["overall"]["total_requests"] == 1
    assert client.get("/api/metrics?model=unknown-model").get_json()["overall"]["total_requests"] == 0
    future = client.get("/api/metrics?since=2999-01-01T00:00:00Z").get_json()
    assert future["overall"]["total_requests"] == 0 and future["since"] == "2999-01-01T00:00:00Z"


BAD_RANGES = {"window=2h": "window", "bucket=week": "bucket", "since=yesterday": "since",
              "window=1h&since=2026-01-01": "(body)", "since=2026-02-01&until=2026-01-01": "(body)",
              "nonsense=1": "nonsense"}


def test_bad_ranges_are_400_naming_the_field(client):
    for query, field in BAD_RANGES.items():  # one app for all cases: building one runs every migration
        response = client.get(f"/api/metrics/history?{query}")
        assert response.status_code == 400, query
        error = response.get_json()["error"]
        assert error["code"] == "validation_error" and error["details"]["fields"][0]["field"] == field, query


def test_history_buckets_by_hour_and_day(client, fake_model):
    for _ in range(3):
        client.post("/api/generate", json={"prompt": "hi"})
    hourly = client.get("/api/metrics/history?bucket=hour").get_json()
    daily = client.get("/api/metrics/history?bucket=day&window=7d").get_json()
    assert sum(p["total_requests"] for p in hourly["history"]) == 3
    assert daily["bucket"] == "day" and daily["history"][0]["start"].endswith("T00:00:00Z")
    assert daily["history"][0]["total_requests"] == 3


def test_budget_crud_and_validation(client):
    created = client.post("/api/budgets", json={"name": "team", "scope": "model", "target": "fake",
                                                "period": "monthly", "limit_usd": 5})
    assert created.status_code == 201
    budget = created.get_json()
    assert (budget["target"], budget["alert_thresholds"]) == ("fake-model", [0.5, 0.8, 1.0])
    assert budget["hard_limit"] is False
    assert budget["current"]["spend"] == 0 and budget["current"]["resets_at"].endswith("T00:00:00Z")
    url = f"/api/budgets/{budget['id']}"
    assert client.patch(url, json={"limit_usd": 7.5}).get_json()["limit_usd"] == 7.5
    bad = client.patch(url, json={"target": None}).get_json()["error"]
    assert bad["code"] == "validation_error" and bad["details"]["fields"][0]["field"] == "target"
    assert client.post("/api/budgets", json={**budget, "id": None}).status_code == 400  # unknown fields
    duplicate = client.post("/api/budgets", json={"name": "team", "scope": "global", "period": "daily",
                                                  "limit_usd": 1})
    assert duplicate.status_code == 409 and duplicate.get_json()["error"]["code"] == "budget_name_taken"
    assert client.get("/api/budgets").get_json()["count"] == 1
    assert client.delete(url).status_code == 204
    for method in (client.get, client.delete):
        missing = method(url)
        assert missing.status_code == 404 and missing.get_json()["error"]["code"] == "budget_not_found"
    assert client.patch(url, json={"limit_usd": 1}).status_code == 404


INVALID_BUDGETS = [
    ({"scope": "global", "period": "daily", "limit_usd": 1}, "name"),
    ({"name": "x", "scope": "user", "period": "daily", "limit_usd": 1}, "target"),
    ({"name": "x", "scope": "global", "target": "y", "period": "daily", "limit_usd": 1}, "target"),
    ({"name": "x", "scope": "global", "period": "hourly", "limit_usd": 1}, "period"),
    ({"name": "x", "scope": "global", "period": "daily", "limit_usd": -1}, "limit_usd"),
    ({"name": "x", "scope": "global", "period": "daily", "limit_usd": 1, "alert_thresholds": [0]},
     "alert_thresholds.0"),
    ({"name": "x", "scope": "global", "period": "daily", "limit_usd": 1, "webhook_url": "ftp://x"}, "webhook_url"),
]


def test_invalid_budget_body_names_the_field(client):
    for body, field in INVALID_BUDGETS:
        response = client.post("/api/budgets", json=body)
        assert response.status_code == 400, body
        assert [f["field"] for f in response.get_json()["error"]["details"]["fields"]] == [field]
    assert client.get("/api/budgets").get_json()["count"] == 0


def test_hard_budget_answers_402_before_the_provider(client, fake_model):
    client.post("/api/budgets", json={"name": "tiny", "scope": "global", "period": "daily", "limit_usd": 0.0001,
                                      "hard_limit": True})
    response = client.post("/api/generate", json={"prompt": "hi", "max_tokens": 1000})
    assert response.status_code == 402
    error = response.get_json()["error"]
    assert error["code"] == "budget_exceeded"
    assert error["details"]["budget"]["name"] == "tiny" and error["details"]["limit"] == 0.0001
    assert error["details"]["spend"] == 0 and error["details"]["resets_at"].endswith("T00:00:00Z")
    assert fake_model.calls == []
    assert client.post("/api/generate", json={"prompt": "hi", "max_tokens": 10}).status_code == 200


def test_alerts_are_listed(client, fake_model):
    client.post("/api/budgets", json={"name": "soft", "scope": "global", "period": "weekly", "limit_usd": 0.000001,
                                      "alert_thresholds": [1.0, 0.5]})
    client.post("/api/generate", json={"prompt": "hi"})
    client.post("/api/generate", json={"prompt": "hi"})
    alerts = client.get("/api/alerts").get_json()
    assert sorted(a["threshold"] for a in alerts["alerts"]) == [0.5, 1.0]
    assert all(a["budget_name"] == "soft" for a in alerts["alerts"])


def test_prometheus_exposition(client, fake_model, settings):
    fake_model.enqueue("a b c", ProviderUnavailableError("down"))
    client.post("/api/generate", json={"prompt": "one two"})
    client.post("/api/generate", json={"prompt": "one two"})
    budget = client.post("/api/budgets", json={"name": "ops", "scope": "global", "period": "total",
                                               "limit_usd": 1}).get_json()
    response = client.get("/metrics")
    assert response.status_code == 200 and response.content_type.startswith("text/plain")
    body = response.get_data(as_text=True)
    assert 'ai_model_requests_total{model="fake-model",status="success"} 1.0' in body
    assert 'ai_model_requests_total{model="fake-model",status="error"} 1.0' in body
    assert 'ai_model_tokens_total{model="fake-model",type="input"} 2.0' in body
    assert 'ai_model_tokens_total{model="fake-model",type="output"} 3.0' in body
    assert re.search(r'ai_model_cost_total\{model="fake-model"\} 8(\.0+)?e-06', body)
    assert 'ai_model_request_duration_seconds_count{model="fake-model"} 2.0' in body
    assert re.search(r'ai_model_request_duration_seconds_bucket\{le="\+Inf",model="fake-model"\} 2\.0', body)
    remaining = re.search(rf'ai_budget_remaining\{{budget="{budget["id"]}"\}} (\S+)', body)
    assert remaining and float(remaining.group(1)) == pytest.approx(1 - 8e-06)
    assert "ops" not in body  # a public scrape names no budget
    other_worker = create_app(settings, {"TESTING": True}).test_client()  # no in-process counters
    assert 'ai_model_requests_total{model="fake-model",status="success"} 1.0' in other_worker.get("/metrics").text


def test_purge_and_rebuild_commands_keep_the_figures(runner, client, fake_model, svc):
    from datetime import timedelta

    from models.request_log import RequestRecord
    from storage.clock import utcnow

    svc.request_log.insert(RequestRecord(request_id="old", model="fake-model", provider="fake", source="api",
                                         status="success", cost=0.5, created_at=utcnow() - timedelta(days=10)))
    client.post("/api/generate", json={"prompt": "hi"})
    before = client.get("/api/costs").get_json()
    purged = runner.invoke(args=["monitoring", "purge", "--days", "7"])
    assert purged.exit_code == 0 and "Deleted 1 request-log rows" in purged.output
    assert svc.request_log.get("old") is None
    assert client.get("/api/costs").get_json() == before  # rollups keep the purged row's figures
    rebuilt = runner.invoke(args=["monitoring", "rebuild-rollups", "--since", utcnow().strftime("%Y-%m-%d")])
    assert rebuilt.exit_code == 0 and "from 1 request-log rows" in rebuilt.output
    assert client.get("/api/costs").get_json() == before
    assert runner.invoke(args=["monitoring", "purge"]).exit_code != 0  # no RETENTION_DAYS, no --days
