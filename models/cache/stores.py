"""Where cached answers live: a bounded in-process level in front of the database (SQLite or PostgreSQL, the
default) or Redis (`CACHE_URL`). Values are the JSON of a `CachedAnswer`; every level honours its expiry."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Protocol

from cachetools import LRUCache
from sqlalchemy import Column, DateTime, Engine, Integer, String, Table, Text, delete, func, select

from storage.clock import utcnow
from storage.database import metadata, read, upsert_into, write
from storage.redis_client import optional_redis

if TYPE_CHECKING:
    import redis

response_cache = Table(
    "response_cache",
    metadata,
    Column("key", String(64), primary_key=True),  # sha256 of model, conversation, parameters and tenant
    Column("model", String(200), nullable=False),  # the model or group asked, for clearing by model
    Column("value", Text, nullable=False),
    Column("bytes", Integer, nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("expires_at", DateTime, nullable=False),
)


class CacheBackend(Protocol):
    """The shared level: every process and host reads what any of them stored."""

    def get(self, key: str) -> str | None: ...

    def put(self, key: str, model: str, value: str, ttl_s: int) -> None: ...

    def delete(self, *, model: str | None = None, key: str | None = None) -> int:
        """Entries removed: those of `model`, the one `key`, or (neither given) all."""
        ...

    def totals(self) -> tuple[int, int]:
        """Live entries and their bytes."""
        ...


class SqlCacheBackend:
    """The `response_cache` table; expired rows are skipped on read and removed whenever totals are taken."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def get(self, key: str) -> str | None:
        query = select(response_cache.c.value).where(response_cache.c.key == key,
                                                     response_cache.c.expires_at > utcnow())
        with read(self.engine) as conn:
            return conn.execute(query).scalar()

    def put(self, key: str, model: str, value: str, ttl_s: int) -> None:
        now = utcnow()
        row = {"key": key, "model": model, "value": value, "bytes": len(value.encode()), "created_at": now,
               "expires_at": now + timedelta(seconds=ttl_s)}
        with write(self.engine) as conn:
            statement = upsert_into(conn, response_cache).values(**row)
            conn.execute(statement.on_conflict_do_update(index_elements=["key"], set_={
                name: statement.excluded[name] for name in row if name != "key"}))

    def delete(self, *, model: str | None = None, key: str | None = None) -> int:
        statement = delete(response_cache)
        if model is not None:
            statement = statement.where(response_cache.c.model == model)
        if key is not None:
            statement = statement.where(response_cache.c.key == key)
        with write(self.engine) as conn:
            return conn.execute(statement).rowcount

    def totals(self) -> tuple[int, int]:
        with write(self.engine) as conn:
            conn.execute(delete(response_cache).where(response_cache.c.expires_at <= utcnow()))
            entries, size = conn.execute(select(func.count(), func.coalesce(func.sum(response_cache.c.bytes), 0))
                                         .select_from(response_cache)).one()
        return int(entries), int(size)


class RedisCacheBackend:
    """A string per entry (expiring by itself) and a set of keys per model, for clearing by model."""

    def __init__(self, client: redis.Redis, prefix: str = "aimm:cache:") -> None:
        self.client = client
        self.prefix = prefix

    def get(self, key: str) -> str | None:
        value = self.client.get(self.prefix + key)
        return value.decode() if isinstance(value, bytes) else value

    def put(self, key: str, model: str, value: str, ttl_s: int) -> None:
        pipe = self.client.pipeline()
        pipe.set(self.prefix + key, value, ex=ttl_s)
        pipe.sadd(self._model_set(model), key)
        pipe.sadd(self.prefix + "models", model)
        pipe.execute()

    def delete(self, *, model: str | None = None, key: str | None = None) -> int:
        if key is not None:
            return int(self.client.delete(self.prefix + key))
        models = [model] if model is not None else [_text(m) for m in self.client.smembers(self.prefix + "models")]
        removed = 0
        for name in models:
            keys = [self.prefix + _text(k) for k in self.client.smembers(self._model_set(name))]
            removed += int(self.client.delete(*keys)) if keys else 0
            self.client.delete(self._model_set(name))
        return removed

    def totals(self) -> tuple[int, int]:
        entries = size = 0
        for name in self.client.scan_iter(match=self.prefix + "*", count=1000):
            text = _text(name)
            if text == self.prefix + "models" or text.startswith(self.prefix + "model:"):
                continue
            length = int(self.client.strlen(name))
            entries, size = entries + 1, size + length
        return entries, size

    def _model_set(self, model: str) -> str:
        return f"{self.prefix}model:{model}"


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def backend_for(engine: Engine, cache_url: str | None) -> CacheBackend:
    """Redis when CACHE_URL is set, else the database."""
    if cache_url:
        return RedisCacheBackend(optional_redis(cache_url))
    return SqlCacheBackend(engine)


class MemoryLevel:
    """This process's most recently used answers, bounded by bytes. An entry is trusted for `fresh_s` only, so
    that a clearing done by another process reaches this one within that time (expiry is the caller's check)."""

    def __init__(self, max_bytes: int, fresh_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._entries: LRUCache[str, tuple[float, str]] = LRUCache(maxsize=max_bytes,
                                                                   getsizeof=lambda entry: len(entry[1]))
        self._lock = threading.Lock()
        self.fresh_s = fresh_s
        self.clock = clock

    def get(self, key: str) -> str | None:
        with self._lock:
            entry = self._entries.get(key)
        if entry is None or self.clock() - entry[0] > self.fresh_s:
            return None
        return entry[1]

    def put(self, key: str, value: str) -> None:
        if len(value) > self._entries.maxsize:
            return  # larger than the whole level: the shared level keeps it
        with self._lock:
            self._entries[key] = (self.clock(), value)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
