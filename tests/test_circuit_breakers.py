"""Circuit breakers per deployment, on a fake clock, over every store: SQLite, PostgreSQL and Redis.

Each store factory hands out stores on one shared backend, each with its own engine or client, as separate
worker processes would have; PostgreSQL and Redis tests skip without TEST_POSTGRES_URL / TEST_REDIS_URL.
Their snapshots are not cached here (`snapshot_ttl_s=0`); `test_other_hosts_see_a_change_within_the_snapshot_ttl`
covers the cache.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator

import pytest
from pydantic import ValidationError

from models.errors import CallRefusedError
from models.routing.breaker_store import BreakerState, BreakerStore, RedisBreakerStore, SqlBreakerStore
from models.routing.breakers import BreakerPolicy, CircuitBreakers, CircuitOpenError
from storage.database import create_db_engine, upgrade_schema
from tests.conftest import redis_client

StoreFactory = Callable[[], BreakerStore]
POLICY = BreakerPolicy(failures=3, window_s=30, cooldown_s=10)


class FakeClock:
    """Epoch seconds that move only when a test advances them."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class CountingStore:
    """A store that counts its writes."""

    def __init__(self, inner: BreakerStore) -> None:
        self.inner = inner
        self.updates = 0

    def snapshot(self):
        return self.inner.snapshot()

    def update(self, name, change):
        self.updates += 1
        return self.inner.update(name, change)


def _sql_stores(url: str) -> Iterator[StoreFactory]:
    engines = []

    def new_store() -> BreakerStore:
        engine = create_db_engine(url)
        upgrade_schema(engine)
        engines.append(engine)
        return SqlBreakerStore(engine, snapshot_ttl_s=0)  # tests see other processes' writes at once

    yield new_store
    for engine in engines:
        engine.dispose()


def _redis_stores() -> Iterator[StoreFactory]:
    import redis

    admin = redis_client()
    key = f"aimm:test-breakers:{uuid.uuid4().hex}"  # this test's own hash
    clients = [admin]

    def new_store() -> BreakerStore:  # a client of its own, as another process would have
        clients.append(redis.Redis(connection_pool=redis.ConnectionPool(**admin.connection_pool.connection_kwargs)))
        return RedisBreakerStore(clients[-1], key, snapshot_ttl_s=0)

    try:
        yield new_store
    finally:
        admin.delete(key)
        for client in clients:
            client.close()


@pytest.fixture(params=["sqlite", "postgres", "redis"])
def new_store(request: pytest.FixtureRequest) -> Iterator[StoreFactory]:
    if request.param == "redis":
        yield from _redis_stores()
    else:
        yield from _sql_stores(request.getfixturevalue(f"{request.param}_url"))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def _breakers(new_store: StoreFactory, clock: FakeClock, policy: BreakerPolicy = POLICY) -> CircuitBreakers:
    return CircuitBreakers(new_store(), default_policy=policy, clock=clock)


def _open(breakers: CircuitBreakers, name: str = "m") -> None:
    for _ in range(breakers.policy(name).failures):
        breakers.record(name, failed=True)
    assert breakers.state(name).state == "open"


def _admitted(breakers: CircuitBreakers, name: str = "m") -> bool:
    try:
        breakers.admit(name)
    except CircuitOpenError:
        return False
    return True


def test_failures_within_the_window_open_the_breaker(new_store, clock):
    breakers = _breakers(new_store, clock)
    breakers.record("m", failed=True)
    clock.advance(10)
    breakers.record("m", failed=True)
    assert breakers.state("m") == BreakerState("closed", 2, clock.now - 10, None, None)
    breakers.admit("m")  # still closed
    clock.advance(19)
    breakers.record("m", failed=True)
    assert breakers.state("m") == BreakerState("open", 3, clock.now - 29, clock.now, None)
    assert not _admitted(breakers)
    assert breakers.state("other").state == "closed" and _admitted(breakers, "other")


def test_failures_spread_over_more_than_the_window_do_not_open_it(new_store, clock):
    breakers = _breakers(new_store, clock)
    for _ in range(2):
        breakers.record("m", failed=True)
        clock.advance(20)
    breakers.record("m", failed=True)  # 40 s after the window began: a new window, counting 1
    assert breakers.state("m") == BreakerState("closed", 1, clock.now, None, None)
    clock.advance(29)
    breakers.record("m", failed=True)
    assert breakers.state("m").state == "closed" and _admitted(breakers)
    breakers.record("m", failed=True)  # the third within 30 s of the new window
    assert breakers.state("m").state == "open"


def test_an_open_breaker_refuses_with_circuit_open_and_when_to_retry(new_store, clock):
    breakers = _breakers(new_store, clock)
    _open(breakers, "gpt-x")
    clock.advance(2.5)
    with pytest.raises(CircuitOpenError) as refused:
        breakers.admit("gpt-x")
    error = refused.value
    assert isinstance(error, CallRefusedError)
    assert (error.code, error.http_status) == ("circuit_open", 503)
    assert error.details == {"model": "gpt-x", "state": "open", "retry_after": 8}  # 7.5 s left, rounded up
    assert "gpt-x" in error.message and "8 s" in error.message
    clock.advance(7.4)  # 0.1 s left: still at least 1
    with pytest.raises(CircuitOpenError) as refused:
        breakers.admit("gpt-x")
    assert refused.value.details["retry_after"] == 1
    assert breakers.state("gpt-x").state == "open"  # refusing changes nothing


def test_after_the_cooldown_exactly_one_concurrent_caller_takes_the_probe(new_store, clock):
    fleet = [_breakers(new_store, clock) for _ in range(2)]  # two processes
    _open(fleet[0])
    clock.advance(10)
    start = threading.Barrier(10)
    passed: list[bool] = []

    def call(breakers: CircuitBreakers) -> None:
        start.wait()
        passed.append(_admitted(breakers))

    threads = [threading.Thread(target=call, args=(fleet[i % 2],)) for i in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(passed) == [False] * 9 + [True]
    assert fleet[1].state("m") == BreakerState("half_open", 3, clock.now - 10, clock.now - 10, clock.now)
    with pytest.raises(CircuitOpenError) as refused:
        fleet[1].admit("m")
    assert refused.value.details == {"model": "m", "state": "half_open", "retry_after": 1}


def test_a_successful_probe_closes_the_breaker(new_store, clock):
    fleet = [_breakers(new_store, clock) for _ in range(2)]
    _open(fleet[0])
    clock.advance(10)
    fleet[0].admit("m")
    fleet[0].record("m", failed=False)
    assert fleet[1].state("m") == BreakerState("closed", 0, clock.now, None, None)
    assert all(_admitted(fleet[i % 2]) for i in range(4))
    fleet[1].record("m", failed=True)  # counting starts afresh
    assert fleet[0].state("m").failures == 1


def test_a_failed_probe_reopens_with_a_fresh_cooldown(new_store, clock):
    breakers = _breakers(new_store, clock)
    _open(breakers)
    clock.advance(10)
    breakers.admit("m")
    clock.advance(3)
    breakers.record("m", failed=True)
    assert breakers.state("m") == BreakerState("open", 3, clock.now - 13, clock.now, None)
    with pytest.raises(CircuitOpenError) as refused:
        breakers.admit("m")
    assert refused.value.details["retry_after"] == 10
    clock.advance(9.5)
    assert not _admitted(breakers)
    clock.advance(0.5)
    assert _admitted(breakers)


def test_a_probe_whose_process_died_can_be_taken_again(new_store, clock):
    fleet = [_breakers(new_store, clock) for _ in range(3)]
    _open(fleet[0])
    clock.advance(10)
    fleet[0].admit("m")  # ... and its process dies
    clock.advance(59)  # a probe may run max(cooldown, 60) s
    assert not _admitted(fleet[1])
    clock.advance(1)
    assert _admitted(fleet[1])
    assert not _admitted(fleet[2]) and not _admitted(fleet[0])  # taken again by one caller only
    assert fleet[2].state("m").probe_at == clock.now


def test_a_long_cooldown_gives_probes_as_long(new_store, clock):
    breakers = _breakers(new_store, clock, BreakerPolicy(failures=1, cooldown_s=120))
    _open(breakers)
    clock.advance(120)
    breakers.admit("m")
    clock.advance(119)
    assert not _admitted(breakers)
    clock.advance(1)
    assert _admitted(breakers)


def test_blocks_agrees_with_admit_and_changes_nothing(new_store, clock):
    breakers = _breakers(new_store, clock)
    assert not breakers.blocks("m") and _admitted(breakers)
    _open(breakers)
    assert breakers.blocks("m") and not _admitted(breakers)
    clock.advance(10)
    opened = breakers.state("m")
    assert not any(breakers.blocks("m") for _ in range(3))
    assert breakers.state("m") == opened  # no probe taken
    assert _admitted(breakers)
    assert breakers.blocks("m") and not _admitted(breakers)  # its probe is in flight
    clock.advance(60)
    assert not breakers.blocks("m") and _admitted(breakers)


def test_a_success_while_closed_writes_nothing(new_store, clock):
    store = CountingStore(new_store())
    breakers = CircuitBreakers(store, default_policy=POLICY, clock=clock)
    for _ in range(5):
        breakers.admit("m")
        breakers.record("m", failed=False)
        assert not breakers.blocks("m")
    assert store.updates == 0 and breakers.states() == {}
    breakers.record("m", failed=True)
    breakers.record("m", failed=False)
    assert store.updates == 1 and breakers.state("m").failures == 1  # a closed count runs out with its window


def test_two_processes_see_each_others_transitions(new_store, clock):
    first, second = _breakers(new_store, clock), _breakers(new_store, clock)
    assert _admitted(second)  # the second one has read (and may cache) the closed state
    _open(first)
    assert second.blocks("m") and not _admitted(second)
    assert second.states() == {"m": first.state("m")}
    clock.advance(10)
    assert _admitted(second)
    assert first.state("m").state == "half_open" and not _admitted(first)
    second.record("m", failed=False)
    assert first.state("m").state == "closed" and _admitted(first)


def test_policies_are_per_deployment(new_store, clock):
    breakers = _breakers(new_store, clock)
    strict = BreakerPolicy(failures=1, cooldown_s=5)
    breakers.set_policy("fragile", strict)
    assert breakers.policy("fragile") == strict and breakers.policy("m") == POLICY
    breakers.record("fragile", failed=True)
    breakers.record("m", failed=True)
    assert breakers.blocks("fragile") and not breakers.blocks("m")
    clock.advance(5)
    assert _admitted(breakers, "fragile")


def test_concurrent_failures_lose_no_count(new_store, clock):
    fleet = [_breakers(new_store, clock, BreakerPolicy(failures=10_000)) for _ in range(2)]
    start = threading.Barrier(20)

    def fail(breakers: CircuitBreakers) -> None:
        start.wait()
        for _ in range(5):
            breakers.record("m", failed=True)

    threads = [threading.Thread(target=fail, args=(fleet[i % 2],)) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert fleet[0].state("m").failures == 100


def test_store_update_returns_what_it_wrote_and_writes_nothing_for_none(new_store):
    store = new_store()
    assert store.update("m", lambda current: None) is None
    assert store.snapshot() == {}  # not even a placeholder row
    written = BreakerState("open", 2, 1.5, 3.25, None)
    assert store.update("m", lambda current: written) == written
    seen: list[BreakerState | None] = []
    assert store.update("m", lambda current: seen.append(current)) is None
    assert seen == [written] and new_store().snapshot() == {"m": written}


def test_policy_bounds():
    assert BreakerPolicy() == BreakerPolicy(failures=5, window_s=30, cooldown_s=30)
    for bad in ({"failures": 0}, {"window_s": 0}, {"cooldown_s": 86_401}, {"cooldown": 5}):
        with pytest.raises(ValidationError):
            BreakerPolicy.model_validate(bad)


def test_other_hosts_see_a_change_within_the_snapshot_ttl(postgres_url, clock):
    """PostgreSQL (no change stamp) caches its snapshot for SNAPSHOT_TTL_S; the writer itself sees its change."""
    import time

    from models.routing.breaker_store import SNAPSHOT_TTL_S

    engines = [create_db_engine(postgres_url) for _ in range(2)]
    upgrade_schema(engines[0])
    writer, reader = (CircuitBreakers(SqlBreakerStore(engine), default_policy=POLICY, clock=clock)
                      for engine in engines)
    try:
        assert reader.state("m").state == "closed"  # cached now
        _open(writer)  # the writer's own view is fresh at once
        assert writer.blocks("m")
        time.sleep(SNAPSHOT_TTL_S + 0.05)
        assert reader.blocks("m") and reader.state("m").state == "open"
    finally:
        for engine in engines:
            engine.dispose()


def test_an_unreachable_store_fails_open(clock):
    class Unreachable:
        def snapshot(self):
            raise ConnectionError("redis is down")

        def update(self, name, change):
            raise ConnectionError("redis is down")

    breakers = CircuitBreakers(Unreachable(), clock=clock)
    breakers.admit("m")  # no exception: calls go on as if there were no breakers
    assert not breakers.blocks("m")


def test_reset_closes_an_open_breaker(new_store, clock):
    breakers = _breakers(new_store, clock)
    _open(breakers)
    breakers.reset("m")
    assert _admitted(breakers) and breakers.state("m").failures == 0
