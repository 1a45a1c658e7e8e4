"""Anomaly alerts: raised once per episode across processes, closed when the rule stops firing, POSTed once."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from models.request_log import RequestLogRepository
from models.routing.breaker_store import SqlBreakerStore
from models.routing.breakers import CircuitBreakers
from monitoring.anomaly_alerts import AnomalyAlerts
from monitoring.model_health import ModelHealthService
from monitoring.webhook_policy import WebhookPolicy
from monitoring.webhooks import WebhookNotifier
from tests.test_model_health import NOW, calls
from tests.test_webhooks import receiver  # noqa: F401  (a fixture)


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self):
        return self.now


def watcher(engine, clock: Clock, url: str | None = None) -> AnomalyAlerts:
    health = ModelHealthService(engine, CircuitBreakers(SqlBreakerStore(engine)), clock=clock)
    alerts = AnomalyAlerts(engine, health, lambda: ["strained", "steady"], webhook_url=url, clock=clock)
    alerts.notifier = WebhookNotifier(WebhookPolicy(allow_private=True), backoff=0.01,
                                      on_result=alerts.set_webhook_status)
    return alerts


def test_an_episode_raises_one_alert_across_processes_and_a_new_episode_another(engine, receiver):  # noqa: F811
    log = RequestLogRepository(engine)
    calls(log, "strained", NOW - timedelta(hours=3), 576, latency=0.1, errors=6)
    calls(log, "steady", NOW - timedelta(hours=3), 576, latency=0.1)
    calls(log, "strained", NOW - timedelta(minutes=2), 40, latency=0.3, errors=8)
    clock = Clock()
    url = f"http://127.0.0.1:{receiver['port']}/hook"
    first, second = watcher(engine, clock, url), watcher(engine, clock, url)  # two processes

    raised = first.check()
    assert sorted(alert["rule"] for alert in raised) == ["error_rate", "latency", "traffic"]
    assert second.check() == [] and first.check() == []  # the same episode: raised once
    assert first.notifier is not None and first.notifier.wait_idle()
    posts = [json.loads(body) for _, _, body in receiver["posts"]]
    assert sorted((p["event"], p["model"], p["rule"]) for p in posts) == [
        ("model_anomaly", "strained", "error_rate"), ("model_anomaly", "strained", "latency"),
        ("model_anomaly", "strained", "traffic")]
    listed = first.list(open_only=True)
    assert len(listed) == 3 and all(a["open"] and a["webhook_status"] == "delivered" for a in listed)
    latency = next(a for a in listed if a["rule"] == "latency")
    assert latency["recent"] == pytest.approx(0.3) and latency["baseline"] == pytest.approx(0.1)

    clock.now = NOW + timedelta(minutes=10)  # the strained calls are no longer recent: the episode ends
    assert second.check() == []
    assert first.list(open_only=True) == [] and all(a["ended_at"] for a in first.list())

    calls(log, "strained", clock.now - timedelta(minutes=1), 40, latency=0.3)
    assert {alert["rule"] for alert in second.check()} == {"latency", "traffic"}  # a new episode, a new alert
    assert len(first.list()) == 5


def test_the_api_lists_anomalies(client, svc):
    response = client.get("/api/health/anomalies?open=true")
    assert response.status_code == 200 and response.json == {"alerts": [], "count": 0}
    assert client.get("/api/health/anomalies?limit=0").status_code == 400
