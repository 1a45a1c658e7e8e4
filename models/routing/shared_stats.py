"""Routing statistics every host shares through Redis: calls in flight and latency averages per deployment.

With one process, `DeploymentStats` sees all the traffic; with several instances, `least_busy` and `least_latency`
would each steer by a fraction of it. Here:

- each call in flight is a member of a sorted set per deployment, scored by when it stops counting
  (`IN_FLIGHT_TTL_S`), so a process that dies mid-call cannot leave its calls counted for ever;
- the moving averages are folded in Redis by one script (read, fold, write atomically), on Redis's clock;
- reads of averages are cached for `AVERAGE_CACHE_S` per process, since a pick needs a trend, not the last call.

Redis failing never fails a call: the stats fall back to this process's own view, log once per outage, and try
Redis again after `OUTAGE_BACKOFF_S` (no retries in between, so a dead Redis costs a pick nothing).
"""

from __future__ import annotations

import collections
import itertools
import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from models.results import GenerationResult
from models.routing.strategies import EWMA_ALPHA, LATENCY_MEMORY_S, DeploymentStats
from storage.redis_client import optional_redis
from storage.ttl_cache import TtlCache

if TYPE_CHECKING:
    import redis

log = logging.getLogger(__name__)
Value = TypeVar("Value")

IN_FLIGHT_TTL_S = 600.0  # longer than any call's deadline
AVERAGE_CACHE_S = 0.25
OUTAGE_BACKOFF_S = 5.0
# KEYS[1]: the average's hash; ARGV: the new value, the weight of the newest, how long an average is remembered.
_FOLD = """
local now = redis.call('TIME')
local at = tonumber(now[1]) + tonumber(now[2]) / 1e6
local value = tonumber(ARGV[1])
local previous = redis.call('HMGET', KEYS[1], 'average', 'at')
if previous[1] and at - tonumber(previous[2]) <= tonumber(ARGV[3]) then
  value = tonumber(ARGV[2]) * value + (1 - tonumber(ARGV[2])) * tonumber(previous[1])
end
redis.call('HSET', KEYS[1], 'average', tostring(value), 'at', tostring(at))
redis.call('EXPIRE', KEYS[1], math.ceil(tonumber(ARGV[3])) + 1)
return tostring(value)
"""


class RedisDeploymentStats(DeploymentStats):
    """`DeploymentStats` over every instance sharing `client` (and `prefix`)."""

    def __init__(self, client: redis.Redis, prefix: str = "aimm:routing:") -> None:
        import redis  # only where configured: the client costs import time

        super().__init__()
        self._redis_error = redis.RedisError
        self.client = client
        self.prefix = prefix
        self._fold = client.register_script(_FOLD)
        self._process = uuid.uuid4().hex
        self._calls = itertools.count()
        self._mine: dict[str, collections.deque[str]] = collections.defaultdict(collections.deque)
        self._mine_lock = threading.Lock()
        self._averages: TtlCache[tuple[float | None, float | None]] = TtlCache(AVERAGE_CACHE_S)
        self._failing = False
        self._retry_at = 0.0  # time.monotonic() before which Redis is not asked, after a failure

    def started(self, name: str) -> None:
        super().started(name)
        member = f"{self._process}:{next(self._calls)}"
        with self._mine_lock:
            self._mine[name].append(member)
        self._shared(lambda: self._add_in_flight(name, member))

    def ended(self, name: str) -> None:
        super().ended(name)
        with self._mine_lock:
            member = self._mine[name].popleft() if self._mine[name] else None
        if member is not None:
            self._shared(lambda: self.client.zrem(self._busy_key(name), member))

    def busy(self, name: str) -> int:
        shared = self._shared(lambda: self.client.zcount(self._busy_key(name), time.time(), "+inf"))
        return super().busy(name) if shared is None else int(shared)

    def observe(self, name: str, result: GenerationResult) -> None:
        super().observe(name, result)
        self._shared(lambda: self._fold_both(name, result))
        self._averages.clear()  # this process's own call shows in its next pick

    def latency(self, name: str, *, stream: bool) -> float | None:
        shared = self._shared(lambda: self._averages.get(name, lambda: self._read_averages(name)))
        if shared is None:
            return super().latency(name, stream=stream)
        latency, ttft = shared
        return (ttft if stream else None) or latency

    def _add_in_flight(self, name: str, member: str) -> None:
        """Count `member` until it ends or IN_FLIGHT_TTL_S passes; drop members whose time is up on the way."""
        now = time.time()
        pipe = self.client.pipeline(transaction=False)
        pipe.zremrangebyscore(self._busy_key(name), "-inf", now)
        pipe.zadd(self._busy_key(name), {member: now + IN_FLIGHT_TTL_S})
        pipe.execute()

    def _fold_both(self, name: str, result: GenerationResult) -> None:
        args = [EWMA_ALPHA, LATENCY_MEMORY_S]
        self._fold(keys=[self._average_key(name, "latency")], args=[result.latency, *args])
        if result.ttft is not None:
            self._fold(keys=[self._average_key(name, "ttft")], args=[result.ttft, *args])

    def _read_averages(self, name: str) -> tuple[float | None, float | None]:
        """(latency, ttft) averages, None where none is remembered (expired with its key)."""
        pipe = self.client.pipeline(transaction=False)
        for kind in ("latency", "ttft"):
            pipe.hget(self._average_key(name, kind), "average")
        latency, ttft = pipe.execute()
        return (float(latency) if latency is not None else None, float(ttft) if ttft is not None else None)

    def _shared(self, action: Callable[[], Value]) -> Value | None:
        """`action()` against Redis, or None when Redis fails or failed within OUTAGE_BACKOFF_S (logged once per
        outage)."""
        if self._failing and time.monotonic() < self._retry_at:
            return None
        try:
            value = action()
        except self._redis_error as exc:
            if not self._failing:
                log.warning("Routing statistics: Redis unavailable (%s); using this process's own view", exc)
            self._failing, self._retry_at = True, time.monotonic() + OUTAGE_BACKOFF_S
            return None
        self._failing = False
        return value

    def _busy_key(self, name: str) -> str:
        return f"{self.prefix}busy:{name}"

    def _average_key(self, name: str, kind: str) -> str:
        return f"{self.prefix}{kind}:{name}"


def deployment_stats_for(redis_url: str | None) -> DeploymentStats:
    """Shared through Redis when REDIS_URL is set, else this process's own."""
    if not redis_url:
        return DeploymentStats()
    return RedisDeploymentStats(optional_redis(redis_url))
