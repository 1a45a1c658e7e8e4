"""Redis clients for state that is shared but optional (cache, routing statistics): short timeouts and no retries,
so an unreachable Redis costs a call a fraction of a second and the caller's fallback takes over."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import redis

TIMEOUT_S = 0.2


def optional_redis(url: str, timeout_s: float = TIMEOUT_S) -> redis.Redis:
    """A client of `url` whose every command fails fast (connect and read within `timeout_s`, never retried)."""
    import redis  # only where configured: the client costs import time
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s,
                                retry=Retry(NoBackoff(), 0))
