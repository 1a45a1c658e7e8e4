"""Group commit: concurrent writers in one process share a transaction instead of queueing for the lock.

Each caller still returns only after its own item is committed, so nothing is acknowledged before it
is durable. A lone caller writes straight away (no hand-off to another thread, no added latency);
under load, whoever holds the lock writes everything that queued up meanwhile in one transaction. On
SQLite that turns N lock acquisitions, commits and fsyncs into one; on PostgreSQL, N round-trip
commits into one.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

Item = TypeVar("Item")


class _Entry(Generic[Item]):
    __slots__ = ("item", "done", "error")

    def __init__(self, item: Item) -> None:
        self.item = item
        self.done = False
        self.error: BaseException | None = None


class GroupCommit(Generic[Item]):
    """Runs `write_batch(items)` for whatever is pending; `submit` returns once its item was written.

    When a batch fails with an error one item can cause (`item_error`, e.g. a constraint violation),
    its items are retried one by one, so a bad item fails only its own caller. Other errors (a lost
    connection) fail the whole batch at once rather than being retried item by item.
    """

    def __init__(self, write_batch: Callable[[Sequence[Item]], None], *,
                 item_error: Callable[[Exception], bool] = lambda exc: True) -> None:
        self._write_batch = write_batch
        self._item_error = item_error
        self._writer = threading.Lock()  # held while a batch is written
        self._queue_lock = threading.Lock()
        self._queue: list[_Entry[Item]] = []

    def submit(self, item: Item) -> None:
        entry = _Entry(item)
        with self._queue_lock:
            self._queue.append(entry)
        with self._writer:
            if not entry.done:  # nobody took it while we waited: write it and everything queued behind it
                self._write_queued()
        if entry.error is not None:
            raise entry.error

    def _write_queued(self) -> None:
        batch: list[_Entry[Item]] = []
        try:
            with self._queue_lock:
                batch, self._queue = self._queue, []
            self._write_batch([entry.item for entry in batch])
        except BaseException as exc:
            if len(batch) == 1 or not isinstance(exc, Exception) or not self._item_error(exc):
                for entry in batch:
                    entry.error = exc
            else:
                for entry in batch:
                    try:
                        self._write_batch([entry.item])
                    except BaseException as single:  # handed to that item's own caller
                        entry.error = single
        finally:
            for entry in batch:
                entry.done = True
