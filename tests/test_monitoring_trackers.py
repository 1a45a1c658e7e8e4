"""MetricsTracker / CostTracker: figures from the request log, and hand-tracked samples that never count twice."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from sqlalchemy import select

from models.errors import UnknownModelError
from models.model_registry import ModelRegistry
from models.pricing import ModelPricing
from models.request_log import RequestLogRepository, RequestRecord
from monitoring import tracked_costs as tracked_costs_module
from monitoring.cost_tracker import CostTracker
from monitoring.metrics_tracker import MetricsTracker
from monitoring.tracked_costs import CLAIM_WINDOW, tracked_costs
from monitoring.windows import time_range
from storage.clock import utcnow
from storage.database import read
from tests.fakes import FakeModel

ORIGINAL_METRIC_KEYS = {"model_name", "total_requests", "avg_latency", "success_rate", "avg_tokens"}


@pytest.fixture
def registry(engine, settings):
    registry = ModelRegistry(engine, settings=settings, register_defaults=False)
    registry.register_model(FakeModel())
    return registry


def test_tracking_a_managed_call_by_hand_counts_it_once(engine, registry):
    """The original's programs track every call's metrics and cost after making it: nothing is counted twice."""
    model = registry.get_model("fake-model")
    result = model.generate("one two three")
    metrics, costs = MetricsTracker(engine), CostTracker(engine)
    before = metrics.get_model_metrics("fake-model")
    assert before["total_requests"] == 1 and ORIGINAL_METRIC_KEYS <= set(before)
    model_id = registry.get_model_id("fake-model")
    metrics.track_metric(model_id, "latency", result["latency"])
    metrics.track_metric(model_id, "tokens", result["tokens"])
    tracked_id = costs.track_cost(model_id, result["cost"], result["tokens"])
    assert metrics.get_model_metrics("fake-model") == before
    assert costs.get_model_costs("fake-model")["total_requests"] == 1
    assert costs.get_total_cost() == pytest.approx(result["cost"])
    assert _tracked(engine, tracked_id) == (result["request_id"], True)
    history = metrics.get_metric_history("fake-model", "latency")
    assert [h["metric_value"] for h in history] == [result["latency"]] and history[0]["timestamp"].endswith("Z")


def test_a_tracked_cost_without_a_managed_call_is_an_external_call(engine, registry):
    model = registry.get_model("fake-model")
    result = model.generate("one two three")
    costs = CostTracker(engine)
    costs.track_cost("fake-model", result["cost"], result["tokens"])  # claims the managed call
    again = costs.track_cost("fake-model", result["cost"], result["tokens"])  # nothing left to claim
    other_tokens = costs.track_cost("fake-model", result["cost"], result["tokens"] + 1)
    elsewhere = costs.track_cost("outside-model", 0.5, 8, user_id="carol", tags=["batch"])
    for tracked_id in (again, other_tokens, elsewhere):
        request_id, linked = _tracked(engine, tracked_id)
        row = RequestLogRepository(engine).get(request_id)
        assert not linked and (row["provider"], row["source"], row["status"]) == ("external", "library", "success")
    assert costs.get_model_costs("fake-model")["total_requests"] == 3
    outside = costs.get_model_costs("outside-model")
    assert (outside["total_requests"], outside["total_cost"], outside["total_tokens"]) == (1, 0.5, 8)
    assert CostTracker(engine).report(time_range("all"))["by_user"][0]["user_id"] == "carol"


def test_a_managed_call_older_than_the_claim_window_is_not_claimed(engine, registry, monkeypatch):
    result = registry.get_model("fake-model").generate("one two three")
    later = utcnow() + CLAIM_WINDOW + timedelta(seconds=1)
    monkeypatch.setattr(tracked_costs_module, "utcnow", lambda: later)
    tracked_id = CostTracker(engine).track_cost("fake-model", result["cost"], result["tokens"])
    assert _tracked(engine, tracked_id)[1] is False


def test_concurrent_trackers_claim_each_managed_call_once(engine, registry):
    """Four identical managed calls, eight trackers at once: four link, four are external, never one call twice."""
    model = registry.get_model("fake-model")
    results = [model.generate("same words") for _ in range(4)]
    costs = CostTracker(engine)
    barrier = threading.Barrier(8)

    def track() -> int:
        barrier.wait()
        return costs.track_cost("fake-model", results[0]["cost"], results[0]["tokens"])

    with ThreadPoolExecutor(max_workers=8) as pool:
        tracked = [_tracked(engine, tracked_id) for tracked_id in pool.map(lambda _: track(), range(8))]
    linked = [request_id for request_id, is_linked in tracked if is_linked]
    assert sorted(linked) == sorted(r["request_id"] for r in results)
    assert costs.get_model_costs("fake-model")["total_requests"] == 8


def test_a_claim_lost_to_a_concurrent_tracker_is_retried(engine, registry, monkeypatch):
    """A race as PostgreSQL sees it: the call looked unclaimed, but another tracker committed its claim first."""
    model = registry.get_model("fake-model")
    first, second = model.generate("same words"), model.generate("same words")
    costs = CostTracker(engine)
    costs.track_cost("fake-model", first["cost"], first["tokens"])  # claims the first call
    find = tracked_costs_module._unclaimed_call
    stale = iter([first["request_id"]])
    monkeypatch.setattr(tracked_costs_module, "_unclaimed_call", lambda *args: next(stale, None) or find(*args))
    tracked_id = costs.track_cost("fake-model", first["cost"], first["tokens"])
    assert _tracked(engine, tracked_id) == (second["request_id"], True)
    assert costs.get_model_costs("fake-model")["total_requests"] == 2


def test_original_reads_and_their_none_for_unknown_models(engine, registry):
    registry.get_model("fake-model").generate("one two three")
    metrics, costs = MetricsTracker(engine), CostTracker(engine)
    assert metrics.get_model_metrics("never-seen") is None and costs.get_model_costs("never-seen") is None
    registry.register_model(FakeModel("registered-only"))
    assert costs.get_model_costs("registered-only")["total_requests"] == 0
    assert [m["model_name"] for m in metrics.get_all_metrics()] == ["fake-model"]
    assert [c["model_name"] for c in costs.get_all_costs()] == ["fake-model"]
    (today,) = costs.get_daily_costs()
    assert set(today) == {"date", "total_cost", "total_tokens", "requests"} and today["requests"] == 1
    with pytest.raises(UnknownModelError):
        metrics.track_metric(999, "latency", 1.0)
    with pytest.raises(ValueError, match="metric_value"):
        metrics.track_metric("fake-model", "latency", "fast")


def _tracked(engine, tracked_id: int) -> tuple[str, bool]:
    with read(engine) as conn:
        row = conn.execute(select(tracked_costs.c.request_id, tracked_costs.c.linked)
                           .where(tracked_costs.c.id == tracked_id)).one()
    return row.request_id, bool(row.linked)


def test_check_budget_alert_is_true_only_over_the_limit(engine):
    costs = CostTracker(engine)
    costs.track_cost("m", 1.0)
    assert costs.check_budget_alert(0.99) is True
    assert costs.check_budget_alert(budget_limit=1.0) is False


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
