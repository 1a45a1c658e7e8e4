"""Where circuit breaker states live, so every thread, worker and process (and host) sees the same ones.

The database by default; one Redis hash when REDIS_URL is set. Both give cheap snapshots for the hot path and
an atomic read-modify-write (`update`) for transitions, so concurrent recorders never lose a count and only one
caller anywhere takes a half-open probe.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import cache
from typing import TYPE_CHECKING, Any, Literal, Protocol

from sqlalchemy import (
    Column,
    Connection,
    DateTime,
    Engine,
    Float,
    Integer,
    Row,
    String,
    Table,
    bindparam,
    delete,
    select,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from storage.change_stamp import ChangeStamp, StampedCache
from storage.clock import utcnow
from storage.database import is_sqlite, metadata, read, write
from storage.ttl_cache import TtlCache

if TYPE_CHECKING:
    import redis
    from redis.client import Pipeline

circuit_breakers = Table(
    "circuit_breakers",
    metadata,
    Column("name", String(200), primary_key=True),  # the deployment (model) name
    Column("state", String(10), nullable=False),  # closed, open or half_open
    Column("failures", Integer, nullable=False),  # retryable failures in the current window
    Column("window_start", Float, nullable=False),  # clock seconds (epoch) the window began at
    Column("opened_at", Float),  # when it last opened
    Column("probe_at", Float),  # when the half-open probe was taken
    Column("updated_at", DateTime, nullable=False),
)

# How stale a snapshot of another host's (PostgreSQL, Redis) breakers may be: a read per call would cost more
# than the call path's own work (about 1 ms on PostgreSQL, 0.2 ms on Redis, per call).
SNAPSHOT_TTL_S = 0.5
SNAPSHOT = "all"
_SELECT_ALL = select(circuit_breakers)
_SELECT_ONE = select(circuit_breakers).where(circuit_breakers.c.name == bindparam("name"))
_LOCK_ONE = _SELECT_ONE.with_for_update()
_DELETE_ONE = delete(circuit_breakers).where(circuit_breakers.c.name == bindparam("name"))


@dataclass(frozen=True)
class BreakerState:
    """What is stored per deployment; times are seconds of the breakers' clock (epoch time by default)."""

    state: Literal["closed", "open", "half_open"]
    failures: int
    window_start: float
    opened_at: float | None = None
    probe_at: float | None = None


Change = Callable[[BreakerState | None], BreakerState | None]


class BreakerStore(Protocol):
    """States by deployment name; `snapshot()` is shared and must not be mutated."""

    def snapshot(self) -> dict[str, BreakerState]: ...

    def update(self, name: str, change: Change) -> BreakerState | None:
        """Atomically store `change(current)` (None: nothing stored); returns what was written, or None when
        `change` returned None. `change` may run more than once (optimistic retries), so it must be pure."""
        ...


class SqlBreakerStore:
    """The `circuit_breakers` table. On SQLite the snapshot is reloaded only when a writer touched its stamp, so
    every process sees a change at once; elsewhere (PostgreSQL: other hosts) it is read at most every
    `SNAPSHOT_TTL_S`, and at once after this process's own writes."""

    def __init__(self, engine: Engine, *, snapshot_ttl_s: float = SNAPSHOT_TTL_S) -> None:
        self.engine = engine
        self._stamp = ChangeStamp(engine, "breakers")
        self._cache = StampedCache(self._stamp, self._load)
        self._recent = TtlCache[dict[str, BreakerState]](snapshot_ttl_s, max_entries=1)

    def snapshot(self) -> dict[str, BreakerState]:
        if self._stamp.path is not None:
            return self._cache.get()
        return self._recent.get(SNAPSHOT, self._load)

    def update(self, name: str, change: Change) -> BreakerState | None:
        with write(self.engine) as conn:
            row, created = _lock_row(conn, name)
            new = change(None if row is None else _from_row(row))
            if new is None:
                if created:  # only there to be locked: leave nothing behind
                    conn.execute(_DELETE_ONE, {"name": name})
                return None
            conn.execute(_upsert_statement(self.engine.dialect.name),
                         {"name": name, **asdict(new), "updated_at": utcnow()})
        self._stamp.touch()  # after the commit: a reader that sees the stamp sees the row
        self._recent.clear()
        return new

    def _load(self) -> dict[str, BreakerState]:
        with read(self.engine) as conn:
            return {row.name: _from_row(row) for row in conn.execute(_SELECT_ALL)}


class RedisBreakerStore:
    """One hash, a JSON state per field; updates are WATCH/MULTI transactions retried when another client wrote.
    The snapshot is read at most every `SNAPSHOT_TTL_S`, and at once after this process's own writes."""

    def __init__(self, client: redis.Redis, key: str = "aimm:breakers", *,
                 snapshot_ttl_s: float = SNAPSHOT_TTL_S) -> None:
        self.client = client
        self.key = key
        self._recent = TtlCache[dict[str, BreakerState]](snapshot_ttl_s, max_entries=1)

    def snapshot(self) -> dict[str, BreakerState]:
        return self._recent.get(SNAPSHOT, self._load)

    def _load(self) -> dict[str, BreakerState]:
        stored: dict[Any, Any] = self.client.hgetall(self.key)
        return {_text(name): _decode(value) for name, value in stored.items()}

    def update(self, name: str, change: Change) -> BreakerState | None:
        written: list[BreakerState | None] = []

        def apply(pipe: Pipeline) -> None:  # runs again when another client wrote the hash meanwhile
            value = pipe.hget(self.key, name)  # immediate: the pipeline is watching, not yet buffering
            new = change(None if value is None else _decode(value))
            written.append(new)
            if new is not None:
                pipe.multi()
                pipe.hset(self.key, name, json.dumps(asdict(new)))

        self.client.transaction(apply, self.key)
        self._recent.clear()
        return written[-1]


def breaker_store_for(engine: Engine, redis_url: str | None) -> BreakerStore:
    """Redis when a URL is configured (state shared across hosts without the database), else the database."""
    if redis_url:
        import redis  # only where configured: the client costs import time

        return RedisBreakerStore(redis.Redis.from_url(redis_url))
    return SqlBreakerStore(engine)


def _lock_row(conn: Connection, name: str) -> tuple[Row[Any] | None, bool]:
    """The stored row of `name` (None: none), safe from other writers until the commit; True when a placeholder
    row had to be inserted so that PostgreSQL had something to lock."""
    if is_sqlite(conn):  # write() already runs one writer at a time
        return conn.execute(_SELECT_ONE, {"name": name}).first(), False
    created = conn.execute(_ensure_row_statement(), {"name": name, **_placeholder()}).first() is not None
    row = conn.execute(_LOCK_ONE, {"name": name}).one()
    return (None if created else row), created


def _from_row(row: Row[Any]) -> BreakerState:
    return BreakerState(row.state, row.failures, row.window_start, row.opened_at, row.probe_at)


def _decode(value: bytes | str) -> BreakerState:
    return BreakerState(**json.loads(value))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _placeholder() -> dict[str, Any]:
    """The row PostgreSQL inserts for a name never stored, so that there is a row to lock."""
    return {"state": "closed", "failures": 0, "window_start": 0.0, "opened_at": None, "probe_at": None,
            "updated_at": utcnow()}


@cache
def _ensure_row_statement() -> Any:
    """Returns the name only when it inserted the row."""
    return (pg_insert(circuit_breakers).on_conflict_do_nothing(index_elements=[circuit_breakers.c.name])
            .returning(circuit_breakers.c.name))


@cache
def _upsert_statement(dialect: str) -> Any:
    """Built once per dialect, so SQLAlchemy compiles it once."""
    stmt = (sqlite_insert if dialect == "sqlite" else pg_insert)(circuit_breakers)
    columns = ("state", "failures", "window_start", "opened_at", "probe_at", "updated_at")
    return stmt.on_conflict_do_update(index_elements=[circuit_breakers.c.name],
                                      set_={column: stmt.excluded[column] for column in columns})
