"""Reclaims runs whose driving process died, from whichever process is alive: a periodic sweep.

A killed gunicorn worker is replaced by a fresh fork that constructs nothing, so the sweep at engine
construction alone would leave its runs `running` (and not resumable) until the whole service restarts. Every
process that serves requests therefore sweeps each heartbeat interval: a run is `interrupted` within
(STALE_BEATS + 1) intervals of its last heartbeat, 75 s with the default 15 s, whoever else is alive.

The thread starts on first use in each process (`ensure_started`, called per request), never in a pre-fork
master: a thread that held a lock (the SQLite writer lock, a pool's) at fork time would leave it held in every
worker forked then. It references the sweeper weakly and ends once the sweeper is gone.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Sequence

log = logging.getLogger(__name__)


class RunSweeper:
    """Calls every `reclaim` each `interval` seconds on one daemon thread per process, once started; other periodic
    chores of a serving process (the anomaly check, health probes) run on one of their own."""

    def __init__(self, reclaims: Sequence[Callable[[], object]], *, interval: float) -> None:
        self.reclaims = tuple(reclaims)
        self.interval = interval
        self._lock = threading.Lock()
        self._pid = 0  # the process whose thread is running; a forked child has none

    def ensure_started(self) -> None:
        """Start this process's sweep thread unless it runs already (cheap: one pid comparison)."""
        if self._pid == os.getpid():
            return
        with self._lock:
            if self._pid != os.getpid():
                self._pid = os.getpid()
                threading.Thread(target=_sweep_forever, args=(weakref.ref(self), self.interval),
                                 name="run-sweeper", daemon=True).start()

    def sweep(self) -> None:
        """One pass; a failing reclaim (a database hiccup) is logged and tried again next time."""
        for reclaim in self.reclaims:
            try:
                reclaim()
            except Exception:
                log.exception("Reclaiming abandoned runs failed (%r); retrying in %s s", reclaim, self.interval)


def _sweep_forever(sweeper: weakref.ref[RunSweeper], interval: float) -> None:
    while True:
        time.sleep(interval)
        current = sweeper()
        if current is None:
            return
        current.sweep()
        del current  # hold no reference while asleep
