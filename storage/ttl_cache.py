"""A small thread-safe cache whose entries expire: hot-path lookups hit the database at most once per TTL."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

Value = TypeVar("Value")


class TtlCache(Generic[Value]):
    """Values loaded on a miss and kept for `seconds`; other processes' changes show within that time.

    Holds at most `max_entries` keys (all dropped when full: the working set is small, e.g. a
    deployment's API keys). `clear()` makes this process's own writes visible at once.
    """

    def __init__(self, seconds: float, max_entries: int = 10_000) -> None:
        self.seconds = seconds
        self.max_entries = max_entries
        self._lock = threading.Lock()
        self._entries: dict[Hashable, tuple[float, Value]] = {}
        self._generation = 0  # bumped by clear(): a load that started before it must not be stored

    def get(self, key: Hashable, load: Callable[[], Value]) -> Value:
        now = time.monotonic()
        with self._lock:
            entry = self._entries.get(key)
            generation = self._generation
        if entry is not None and now - entry[0] < self.seconds:
            return entry[1]
        value = load()
        with self._lock:
            if generation == self._generation:  # else a write cleared the cache while we read: maybe stale
                if len(self._entries) >= self.max_entries:
                    self._entries.clear()
                self._entries[key] = (now, value)
        return value

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._generation += 1
