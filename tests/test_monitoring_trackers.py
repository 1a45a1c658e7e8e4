"""The original MetricsTracker / CostTracker API, computed from the request log."""

from __future__ import annotations

from datetime import timedelta

import pytest

from models.model_registry import ModelRegistry
from models.pricing import ModelPricing
from models.request_log import RequestLogRepository, RequestRecord
from monitoring.cost_tracker import CostTracker
from monitoring.metrics_tracker import MetricsTracker
from storage.clock import utcnow
from tests.fakes import FakeModel

ORIGINAL_METRIC_KEYS = {"model_name", "total_requests", "avg_latency", "success_rate", "total_cost", "total_tokens",
                        "avg_cost"}


@pytest.fixture
def registry(engine, settings):
    registry = ModelRegistry(engine, settings=settings, register_defaults=False)
    registry.register_model(FakeModel())
    return registry


def test_managed_calls_are_counted_once_and_tracked_calls_are_external(engine, registry):
    model = registry.get_model("fake-model")
    model.generate("one two three")
    metrics, costs = MetricsTracker(engine), CostTracker(engine)
    before = metrics.get_model_metrics("fake-model")
    assert before["total_requests"] == 1 and ORIGINAL_METRIC_KEYS <= set(before)
    request_id = metrics.track_metric("outside-model", 0.4, success=False, tokens=12)
    costs.track_cost("outside-model", 0.5, tokens=8, user_id="carol", tags=["batch"])
    row = RequestLogRepository(engine).get(request_id)
    assert (row["provider"], row["source"], row["status"]) == ("external", "library", "error")
    assert metrics.get_model_metrics("fake-model") == before
    outside = metrics.get_model_metrics("outside-model")
    assert (outside["total_requests"], outside["success_rate"], outside["total_tokens"]) == (2, 50.0, 20)
    assert outside["avg_latency"] == pytest.approx(0.4)
    assert set(metrics.get_all_metrics()) == {"fake-model", "outside-model"}
    assert costs.get_model_costs("outside-model")["total_cost"] == 0.5
    assert costs.get_model_costs("outside-model")["avg_cost"] == 0.25
    assert costs.get_total_cost() == pytest.approx(0.5 + before["total_cost"])


def test_check_budget_alert_is_true_only_over_the_limit(engine):
    costs = CostTracker(engine)
    costs.track_cost("m", 1.0)
    assert costs.check_budget_alert(0.99) is True
    assert costs.check_budget_alert(1.0) is False


def test_a_price_change_never_reprices_history(engine, registry):
    model = registry.get_model("fake-model")
    first = model.generate("one two three")
    model.pricing = ModelPricing(input_per_million=100.0, output_per_million=200.0)
    second = model.generate("one two three")
    assert second.cost == pytest.approx(100 * first.cost)
    assert CostTracker(engine).get_model_costs("fake-model")["total_cost"] == pytest.approx(first.cost + second.cost)
    rows = RequestLogRepository(engine).list(model="fake-model")
    assert sorted(r["cost"] for r in rows) == pytest.approx(sorted([first.cost, second.cost]))


def test_windows_and_ranges_exclude_older_calls(engine):
    repo = RequestLogRepository(engine)
    now = utcnow()
    for days_ago, cost in ((0, 1.0), (3, 2.0), (40, 4.0)):
        repo.insert(RequestRecord(request_id=f"r{days_ago}", model="m", provider="fake", source="api",
                                  status="success", cost=cost, created_at=now - timedelta(days=days_ago)))
    costs = CostTracker(engine)
    assert [costs.get_total_cost(window=w) for w in ("24h", "7d", "30d", "all")] == [1.0, 3.0, 3.0, 7.0]
    assert costs.get_total_cost(since=now - timedelta(days=5), until=now - timedelta(days=1)) == 2.0
    assert MetricsTracker(engine).get_model_metrics("m", window="7d")["total_requests"] == 2
    with pytest.raises(ValueError, match="window"):
        costs.get_total_cost(window="5m")
