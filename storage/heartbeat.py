"""Heartbeats of the runs a process drives: a run whose heartbeat stops belongs to a dead process.

Workflow runs and benchmark runs record an `owner` (host, process, runner) and a `heartbeat_at` that the
owner refreshes every heartbeat interval (RUN_HEARTBEAT_SECONDS) while the run is in flight; a run left
`running` without a heartbeat for STALE_BEATS intervals has no live driver, and is marked `interrupted` by the
next runner that starts or by the sweep of any live process (`storage.run_sweeper`).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta

from sqlalchemy import ColumnElement, Engine, Table, select, update

from storage.clock import utcnow
from storage.database import read, write

log = logging.getLogger(__name__)

# A runner refreshes `heartbeat_at` of the runs it drives this often (the default of RUN_HEARTBEAT_SECONDS);
# a run silent for STALE_BEATS heartbeats has no live driver.
HEARTBEAT_SECONDS = 15.0
STALE_BEATS = 4
# What a run marked `interrupted` records as its error.
INTERRUPTED_ERROR = "the process stopped while the run was in progress"


def stale_after(interval: float) -> timedelta:
    """How long a run may go without a heartbeat, beating every `interval` seconds, before it counts as abandoned."""
    return timedelta(seconds=STALE_BEATS * interval)


STALE_AFTER = stale_after(HEARTBEAT_SECONDS)


def refresh_heartbeats(engine: Engine, runs: Table, owner: str) -> int:
    """Stamp `heartbeat_at` on `owner`'s running rows of `runs` (a table with status, owner, heartbeat_at)."""
    with write(engine) as conn:
        return conn.execute(update(runs).where((runs.c.status == "running") & (runs.c.owner == owner))
                            .values(heartbeat_at=utcnow())).rowcount


def abandoned(runs: Table, stale_after: timedelta) -> ColumnElement[bool]:
    """Running rows of `runs` with no heartbeat for `stale_after`, or none at all (from before heartbeats)."""
    return (runs.c.status == "running") & (runs.c.heartbeat_at.is_(None)
                                           | (runs.c.heartbeat_at < utcnow() - stale_after))


def any_abandoned(engine: Engine, runs: Table, stale_after: timedelta) -> bool:
    """Whether `runs` has an abandoned run: a read first, so that a sweep finding none takes no write lock."""
    with read(engine) as conn:
        return conn.execute(select(runs.c.status).where(abandoned(runs, stale_after)).limit(1)).first() is not None


class RunHeartbeat:
    """Calls `beat(owner)` every `interval` seconds while runs are in flight, so no other process takes them for
    abandoned; `beat` refreshes `heartbeat_at` of the owner's running runs.

    One daemon thread per runner and process, alive only while runs are in flight (it never outlives the work
    or keeps the process alive). The owner id is per process: a worker forked from a preloaded app derives
    its own on first use instead of beating, or recording runs, under its parent's id.
    """

    def __init__(self, beat: Callable[[str], object], *, name: str = "run-heartbeat",
                 interval: float = HEARTBEAT_SECONDS) -> None:
        self.beat = beat
        self.name = name
        self.interval = interval
        self._lock = threading.Lock()
        self._pid = 0
        self._owner = ""
        self._active = 0
        self._thread: threading.Thread | None = None

    @property
    def owner(self) -> str:
        with self._lock:
            return self._current_owner()

    @contextmanager
    def driving(self) -> Iterator[str]:
        """Beat for the owner (yielded, to record on the run) until the run is no longer driven here."""
        with self._lock:
            owner = self._current_owner()
            self._active += 1
            if self._thread is None:
                self._thread = threading.Thread(target=self._beat, name=self.name, daemon=True)
                self._thread.start()
        try:
            yield owner
        finally:
            with self._lock:
                self._active -= 1

    def _current_owner(self) -> str:
        """The owner id of this process; after a fork the parent's id, count and thread are not ours."""
        if self._pid != os.getpid():
            self._pid, self._owner = os.getpid(), _new_owner()
            self._active, self._thread = 0, None
        return self._owner

    def _beat(self) -> None:
        while True:
            time.sleep(self.interval)
            with self._lock:
                if self._active == 0:
                    self._thread = None
                    return
                owner = self._owner
            try:
                self.beat(owner)
            except Exception:  # a database hiccup must not end the heartbeat of runs still in flight
                log.exception("%s for %s failed; retrying in %s s", self.name, owner, self.interval)


def _new_owner() -> str:
    """host:pid:random, at most 64 characters (the column); the random part tells runners of one process apart."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
