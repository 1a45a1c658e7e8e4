"""Reclaims runs whose driving process died, from whichever process is alive: a periodic sweep.

A killed gunicorn worker is replaced by a fresh fork that constructs nothing, so the sweep at engine
construction alone would leave its runs `running` (and not resumable) until the whole service restarts. Every
process that serves requests therefore sweeps each heartbeat interval: a run is `interrupted` within
(STALE_BEATS + 1) intervals of its last heartbeat, 75 s with the default 15 s, whoever else is alive.

The thread starts on first use in each process (`ensure_started`, called per request), never in a pre-fork
master: a thread that held a lock (the SQLite writer lock, a pool's) at fork time would leave it held in every
worker forked then. It references the sweeper weakly and ends once the sweeper is gone, or at once on `stop()`.
A reclaim that keeps failing logs its traceback once, then one line per failure until it succeeds again.
"""

from __future__ import annotations

import logging
import os
import threading
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
        self._stopped = threading.Event()
        self._failing: set[int] = set()  # indexes of the reclaims whose last try failed

    def ensure_started(self) -> None:
        """Start this process's sweep thread unless it runs already (cheap: one pid comparison)."""
        if self._pid == os.getpid():
            return
        with self._lock:
            if self._pid != os.getpid():
                self._pid = os.getpid()
                threading.Thread(target=_sweep_forever, args=(weakref.ref(self), self.interval, self._stopped),
                                 name="run-sweeper", daemon=True).start()

    def stop(self) -> None:
        """End the sweep thread now (an app being disposed of); it is not started again."""
        self._stopped.set()

    def sweep(self) -> None:
        """One pass; a failing reclaim (a database hiccup) is logged and tried again next time."""
        for index, reclaim in enumerate(self.reclaims):
            try:
                reclaim()
            except Exception as exc:
                first = index not in self._failing
                self._failing.add(index)
                log.error("Reclaiming abandoned runs failed (%r): %s; retrying in %s s", reclaim, exc, self.interval,
                          exc_info=first)
            else:
                self._failing.discard(index)


def _sweep_forever(sweeper: weakref.ref[RunSweeper], interval: float, stopped: threading.Event) -> None:
    while not stopped.wait(interval):
        current = sweeper()
        if current is None:
            return
        current.sweep()
        del current  # hold no reference while asleep
