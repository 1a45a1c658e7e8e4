"""Where the semantic cache keeps its vectors: the `semantic_cache` table (SQLite or PostgreSQL), searched from
an in-process copy of each partition.

Neither database here offers a vector index (the interpreter's sqlite3 cannot load sqlite-vec; the PostgreSQL has
no pgvector), so a lookup is exact, brute-force cosine: one matrix-vector product over the partition's vectors.
Its cost grows linearly with the entries of one partition (one model, system prompt, parameters and tenant), not
with the whole table; `python -m benchmarks.bench_cache` measures it at 10k and 100k entries.

Each process keeps the partitions it has searched as a matrix (1.5 KB an entry at 384 dimensions) and, on every
lookup, reads only the rows added since (by id), so an entry stored by any process is found by every other at
once. A partition is reloaded whole once it is `fresh_s` old, which drops the entries other processes deleted
(and, on PostgreSQL, picks up a row whose id was taken before, but committed after, a later one's).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from cachetools import LRUCache
from sqlalchemy import Column, DateTime, Engine, Index, Integer, LargeBinary, String, Table, Text, delete, func, select

from storage.clock import utcnow
from storage.database import metadata, read, write

MAX_PARTITIONS = 1024  # searched partitions kept in memory per process; the least recently used goes first
MAX_CANDIDATES = 5  # the most similar entries a lookup returns for the caller's own check


@dataclass(frozen=True)
class Candidate:
    """A stored question similar enough to a lookup's: the key of its answer, its cosine, and its text."""

    key: str
    similarity: float
    question: str

semantic_cache = Table(
    "semantic_cache",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("partition", String(64), nullable=False),  # sha256 of what must match exactly (`SemanticQuery`)
    Column("key", String(64), nullable=False),  # the exact cache's key of the answer this vector leads to
    Column("model", String(200), nullable=False),  # the model or group asked, for clearing by model
    Column("vector", LargeBinary, nullable=False),  # float32, unit length
    Column("question", Text, nullable=False),  # the text embedded, for `question_guard` to check a candidate
    Column("expires_at", DateTime, nullable=False),
    Index("ix_semantic_cache_partition_id", "partition", "id"),
)


class _Partition:
    """One partition's live vectors as a growable float32 matrix, with their keys and expiry times."""

    def __init__(self, loaded_at: float) -> None:
        self.vectors = np.empty((0, 0), dtype=np.float32)
        self.expires = np.empty(0, dtype=np.float64)
        self.keys: list[str] = []
        self.questions: list[str] = []
        self.last_id = 0
        self.loaded_at = loaded_at

    def extend(self, rows: Sequence[Any]) -> None:
        if not rows:
            return
        new = np.frombuffer(b"".join(row.vector for row in rows), dtype=np.float32).reshape(len(rows), -1)
        size, needed = len(self.keys), len(self.keys) + len(rows)
        if needed > len(self.vectors):
            capacity = max(needed, 2 * len(self.vectors), 16)
            grown = np.empty((capacity, new.shape[1]), dtype=np.float32)  # one width: the partition's model's
            if size:
                grown[:size] = self.vectors[:size]
            expires = np.empty(capacity, dtype=np.float64)
            expires[:size] = self.expires[:size]
            self.vectors, self.expires = grown, expires
        self.vectors[size:needed] = new
        self.expires[size:needed] = [_epoch(row.expires_at) for row in rows]
        self.keys.extend(row.key for row in rows)
        self.questions.extend(row.question for row in rows)
        self.last_id = rows[-1].id

    def closest(self, vector: np.ndarray, threshold: float, now: float) -> list[Candidate]:
        """The live entries at least `threshold` similar, most similar first (at most MAX_CANDIDATES)."""
        size = len(self.keys)
        if size == 0:
            return []
        scores = self.vectors[:size] @ vector
        scores[self.expires[:size] <= now] = -np.inf
        above = np.flatnonzero(scores >= threshold)
        best = above[np.argsort(-scores[above], kind="stable")[:MAX_CANDIDATES]]
        return [Candidate(self.keys[i], float(scores[i]), self.questions[i]) for i in best]


class SemanticIndex:
    """Nearest stored vector per partition. `clock` gives epoch seconds (expiry), `monotonic` the reload age."""

    def __init__(self, engine: Engine, *, fresh_s: float = 60.0, clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.engine = engine
        self.fresh_s = fresh_s
        self.clock = clock
        self.monotonic = monotonic
        self._partitions: LRUCache[str, _Partition] = LRUCache(maxsize=MAX_PARTITIONS)
        self._lock = threading.Lock()

    def closest(self, partition: str, vector: Sequence[float], threshold: float) -> list[Candidate]:
        """The live entries of `partition` whose cosine with `vector` is at least `threshold`, most similar
        first."""
        query = _unit(vector)
        with self._lock:
            return self._synced(partition).closest(query, threshold, self.clock())

    def add(self, partition: str, key: str, model: str, question: str, vector: Sequence[float],
            ttl_s: int) -> None:
        """Store a question's vector; every process's next lookup in the partition reads it."""
        row = {"partition": partition, "key": key, "model": model, "vector": _unit(vector).tobytes(),
               "question": question, "expires_at": utcnow() + timedelta(seconds=ttl_s)}
        with write(self.engine) as conn:
            conn.execute(semantic_cache.insert().values(**row))

    def delete(self, *, model: str | None = None, key: str | None = None) -> int:
        """Remove the vectors of a model, of one answer, or all; this process forgets what it had loaded."""
        statement = delete(semantic_cache)
        if model is not None:
            statement = statement.where(semantic_cache.c.model == model)
        if key is not None:
            statement = statement.where(semantic_cache.c.key == key)
        with write(self.engine) as conn:
            removed = conn.execute(statement).rowcount
        self.forget()
        return removed

    def forget(self) -> None:
        """Drop every loaded partition (the next lookup reloads from the table)."""
        with self._lock:
            self._partitions.clear()

    def entries(self) -> int:
        """Live vectors in the table; expired ones are removed first."""
        with write(self.engine) as conn:
            conn.execute(delete(semantic_cache).where(semantic_cache.c.expires_at <= utcnow()))
            return int(conn.execute(select(func.count()).select_from(semantic_cache)).scalar_one())

    def _synced(self, partition: str) -> _Partition:
        """The partition with every row stored since it was last read; reloaded whole when it is stale."""
        now = self.monotonic()
        found = self._partitions.get(partition)
        if found is None or now - found.loaded_at > self.fresh_s:
            found = self._partitions[partition] = _Partition(now)
        columns = (semantic_cache.c.id, semantic_cache.c.key, semantic_cache.c.vector, semantic_cache.c.question,
                   semantic_cache.c.expires_at)
        query = (select(*columns)
                 .where(semantic_cache.c.partition == partition, semantic_cache.c.id > found.last_id,
                        semantic_cache.c.expires_at > utcnow())
                 .order_by(semantic_cache.c.id))
        with read(self.engine) as conn:
            found.extend(conn.execute(query).all())
        return found


def _unit(vector: Sequence[float]) -> np.ndarray:
    """As float32 and unit length, so a dot product is the cosine whatever the provider returned."""
    array = np.asarray(vector, dtype=np.float32)
    norm = float(np.linalg.norm(array))
    return array / norm if norm else array


def _epoch(moment: datetime) -> float:
    """A stored naive-UTC time as epoch seconds."""
    return moment.replace(tzinfo=UTC).timestamp()
