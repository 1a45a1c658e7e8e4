"""Webhook delivery for alerts: JSON POSTs from a background thread, retried, never blocking a request."""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

ResultCallback = Callable[[int, str, int], None]  # (alert id, "delivered" | "failed", attempts)


class WebhookNotifier:
    """A queue drained by one daemon thread; each POST is tried `attempts` times with doubling backoff."""

    def __init__(
        self, *, attempts: int = 4, backoff: float = 0.5, timeout: float = 5.0,
        on_result: ResultCallback | None = None,
    ) -> None:
        self.attempts = attempts
        self.backoff = backoff
        self.timeout = timeout
        self.on_result = on_result
        self._queue: queue.Queue[tuple[str, dict[str, Any], int | None]] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def send(self, url: str, payload: dict[str, Any], alert_id: int | None = None) -> None:
        """Queue a delivery and return at once."""
        self._queue.put((url, payload, alert_id))
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="webhook-notifier", daemon=True)
                self._thread.start()

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until every queued delivery finished (delivered or given up); False on timeout."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def _run(self) -> None:
        while True:
            url, payload, alert_id = self._queue.get()
            try:
                status, attempts = self._deliver(url, payload)
                if alert_id is not None and self.on_result is not None:
                    self.on_result(alert_id, status, attempts)
            except Exception:  # the worker must survive anything a callback does
                log.exception("Webhook bookkeeping failed for %s", url)
            finally:
                self._queue.task_done()

    def _deliver(self, url: str, payload: dict[str, Any]) -> tuple[str, int]:
        body = json.dumps(payload).encode()
        for attempt in range(1, self.attempts + 1):
            request = urllib.request.Request(
                url, data=body, method="POST", headers={"Content-Type": "application/json"}
            )
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    if 200 <= response.status < 300:
                        return "delivered", attempt
            except (urllib.error.URLError, OSError, ValueError) as exc:
                log.warning("Webhook POST to %s failed (attempt %d/%d): %s", url, attempt, self.attempts, exc)
            if attempt < self.attempts:
                time.sleep(self.backoff * 2 ** (attempt - 1))
        return "failed", self.attempts
