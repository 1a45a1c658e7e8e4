"""A cross-process "this changed" signal for a SQLite database, as cheap as one `stat` call.

A writer commits, then touches `<db>-<topic>.stamp`; a reader compares the file's modification time with
the one it last loaded at, and reloads only when it moved. Touching after the commit means a reader that
sees the new stamp also sees the new rows; a reader that looks between the two acts as if the change came a
moment later (the writer has not answered its caller yet). Every process on one SQLite file shares one
filesystem, so this reaches all of them. Other databases (PostgreSQL: several hosts) have no stamp: their
readers simply read every time.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

from sqlalchemy import Engine

from storage.database import sqlite_file

T = TypeVar("T")
_MISSING = -1


class ChangeStamp:
    """The signal for one topic of one database; `version()` is None where there is no stamp file."""

    def __init__(self, engine: Engine, topic: str) -> None:
        database = sqlite_file(engine)
        self.path = f"{database}-{topic}.stamp" if database else None

    def version(self) -> int | None:
        if self.path is None:
            return None
        try:
            return os.stat(self.path).st_mtime_ns
        except FileNotFoundError:
            return _MISSING  # nothing changed since the database was created

    def touch(self) -> None:
        """Call after committing a change; a new nanosecond stamp even when the clock is coarse."""
        if self.path is None:
            return
        now = time.time_ns()
        current = self.version() or 0
        stamp = max(now, current + 1)
        with open(self.path, "a"):
            os.utime(self.path, ns=(stamp, stamp))


class StampedCache(Generic[T]):
    """A value loaded once per change of a stamp: reloaded when the stamp moves, and every time without one."""

    def __init__(self, stamp: ChangeStamp, load: Callable[[], T]) -> None:
        self.stamp = stamp
        self._load = load
        self._lock = threading.Lock()
        self._version: int | None = None
        self._value: T | None = None

    def get(self) -> T:
        version = self.stamp.version()  # read before loading: a change meanwhile moves it again
        if version is None:
            return self._load()
        with self._lock:
            if self._version == version and self._value is not None:
                return self._value
        value = self._load()
        with self._lock:
            self._version, self._value = version, value
        return value
