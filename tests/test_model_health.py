"""Health scores and anomaly rules, from request-log rows placed in time (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from models.request_log import RequestLogRepository, RequestRecord
from models.routing.breaker_store import SqlBreakerStore
from models.routing.breakers import CircuitBreakers
from monitoring.model_health import ModelHealthService

NOW = datetime(2026, 11, 29, 12, 30)


def calls(log: RequestLogRepository, model: str, at: datetime, count: int, *, latency: float,
          errors: int = 0, error_type: str = "provider_unavailable") -> None:
    for index in range(count):
        failed = index < errors
        log.insert(RequestRecord(request_id=f"{model}-{at.isoformat()}-{index}", model=model, provider="fake",
                                 source="api", status="error" if failed else "success", created_at=at,
                                 latency=latency, error_type=error_type if failed else None))


@pytest.fixture
def health(engine) -> tuple[ModelHealthService, RequestLogRepository, CircuitBreakers]:
    breakers = CircuitBreakers(SqlBreakerStore(engine, snapshot_ttl_s=0))
    return ModelHealthService(engine, breakers, clock=lambda: NOW), RequestLogRepository(engine), breakers


def test_a_model_behaving_as_usual_scores_100(health):
    service, log, _ = health
    calls(log, "steady", NOW - timedelta(hours=3), 576, latency=0.1, errors=6)  # 2 calls per 5 minutes
    calls(log, "steady", NOW - timedelta(minutes=1), 2, latency=0.1)
    [report] = service.report(["steady"])
    assert report.score == 100 and report.anomalies == [] and report.breaker == "closed"
    assert report.baseline.calls == pytest.approx(2.0) and report.baseline.latency == pytest.approx(0.1)


def test_slow_failing_busy_model_fires_every_rule_and_loses_the_documented_points(health):
    service, log, _ = health
    calls(log, "strained", NOW - timedelta(hours=3), 576, latency=0.1, errors=6)
    calls(log, "strained", NOW - timedelta(minutes=2), 40, latency=0.3, errors=8)  # 20% errors, 3x latency
    [report] = service.report(["strained"])
    assert report.anomalies == ["latency", "error_rate", "traffic"]
    assert report.recent.error_rate == pytest.approx(0.2)
    # 100 - 50 x 0.2 (errors) - 25 (latency at >= 2x baseline) - 3 x 10 (anomalies)
    assert report.score == pytest.approx(35.0)


def test_few_recent_calls_raise_no_anomaly_and_an_open_breaker_scores_zero(health):
    service, log, breakers = health
    calls(log, "quiet", NOW - timedelta(hours=3), 576, latency=0.1)
    calls(log, "quiet", NOW - timedelta(minutes=1), 5, latency=1.0, errors=5)
    [report] = service.report(["quiet"])
    assert report.anomalies == [] and report.score == pytest.approx(100 - 50 - 25)
    for _ in range(5):
        breakers.record("quiet", failed=True)
    [report] = service.report(["quiet"])
    assert (report.breaker, report.score) == ("open", 0.0)


def test_a_clients_mistakes_do_not_lower_the_score(health):
    service, log, _ = health
    calls(log, "misused", NOW - timedelta(hours=3), 576, latency=0.1)
    calls(log, "misused", NOW - timedelta(minutes=1), 30, latency=0.1, errors=30, error_type="context_length_exceeded")
    [report] = service.report(["misused"])
    assert report.recent.error_rate == 0 and "error_rate" not in report.anomalies
