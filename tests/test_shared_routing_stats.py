"""Routing statistics shared through Redis: two instances (two stats objects on one Redis) see each other's calls
in flight and latencies, a dead process's calls stop counting, and a Redis outage falls back to the local view."""

from __future__ import annotations

import time
import uuid

import pytest

from core.settings import Settings
from models.results import GenerationResult
from models.routing import shared_stats
from models.routing.shared_stats import RedisDeploymentStats, deployment_stats_for
from models.routing.strategies import Deployment, DeploymentStats, Orderer
from tests.conftest import redis_client
from tests.fakes import FakeModel


@pytest.fixture
def two_hosts():
    client = redis_client()
    prefix = f"test:routing:{uuid.uuid4().hex}:"
    yield RedisDeploymentStats(client, prefix), RedisDeploymentStats(client, prefix)
    for key in client.scan_iter(match=prefix + "*"):
        client.delete(key)
    client.close()


def _answered(latency: float, ttft: float | None = None) -> GenerationResult:
    return GenerationResult(response="ok", model="a", provider="fake", request_id="r", latency=latency, ttft=ttft)


def test_calls_in_flight_on_one_host_count_on_the_other(two_hosts):
    first, second = two_hosts
    first.started("a")
    first.started("a")
    second.started("b")
    assert (second.busy("a"), second.busy("b"), first.busy("b")) == (2, 1, 1)
    first.ended("a")
    second.ended("b")
    assert (second.busy("a"), first.busy("b")) == (1, 0)


def test_least_busy_avoids_the_deployment_another_host_keeps_busy(two_hosts):
    first, second = two_hosts
    a, b = FakeModel("a"), FakeModel("b")
    for _ in range(3):
        first.started("a")
    picks = {next(Orderer("least_busy", [Deployment(a), Deployment(b)], second).order()).name for _ in range(20)}
    assert picks == {"b"}


def test_latency_averages_fold_across_hosts(two_hosts):
    first, second = two_hosts
    first.observe("a", _answered(1.0, ttft=0.2))
    second.observe("a", _answered(2.0))
    expected = 0.3 * 2.0 + 0.7 * 1.0  # EWMA: the newest weighs 0.3, whichever host saw it
    assert first.latency("a", stream=False) == pytest.approx(expected)
    time.sleep(shared_stats.AVERAGE_CACHE_S)
    assert second.latency("a", stream=True) == pytest.approx(0.2)  # a stream ranks by time to first token
    assert second.latency("never-called", stream=False) is None


def test_a_dead_processs_calls_stop_counting(two_hosts, monkeypatch):
    first, second = two_hosts
    monkeypatch.setattr(shared_stats, "IN_FLIGHT_TTL_S", 0.05)
    first.started("a")  # and the process dies before `ended`
    assert second.busy("a") == 1
    time.sleep(0.1)
    assert second.busy("a") == 0


def test_redis_down_falls_back_to_this_processs_view(caplog):
    stats = deployment_stats_for("redis://127.0.0.1:1/0")  # nothing listens there
    assert isinstance(stats, RedisDeploymentStats)
    started = time.monotonic()
    stats.started("a")
    stats.observe("a", _answered(0.5))
    assert stats.busy("a") == 1 and stats.latency("a", stream=False) == pytest.approx(0.5)
    stats.ended("a")
    assert stats.busy("a") == 0
    assert sum("Redis unavailable" in record.message for record in caplog.records) == 1  # once per outage
    assert time.monotonic() - started < 1.0  # one failed connection, then Redis is left alone for a while


def test_redis_url_chooses_shared_stats_cache_and_limits():
    assert type(deployment_stats_for(None)) is DeploymentStats
    assert isinstance(deployment_stats_for("redis://127.0.0.1:1/0"), RedisDeploymentStats)
    shared = Settings(redis_url="redis://r:6379/0")
    assert (shared.cache_store_url, shared.rate_limit_store_url) == ("redis://r:6379/0", "redis://r:6379/0")
    own = Settings(redis_url="redis://r:6379/0", cache_url="redis://c:6379/1", rate_limit_storage_url="memory://")
    assert (own.cache_store_url, own.rate_limit_store_url) == ("redis://c:6379/1", "memory://")
    assert (Settings().cache_store_url, Settings().rate_limit_store_url) == (None, None)
