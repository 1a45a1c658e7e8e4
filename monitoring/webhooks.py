"""Webhook delivery for alerts: JSON POSTs from a background thread, retried, never blocking a request.

Every attempt checks the URL against the `WebhookPolicy` and connects to the address it checked (through the
environment's proxy, if one is configured); a refused URL is never sent to, and its alert is marked failed with
the reason. Redirects are not followed: a public URL must not bounce the POST to an internal one.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx2

from monitoring.webhook_policy import Destination, WebhookPolicy, WebhookRefusedError

log = logging.getLogger(__name__)

# (alert id, "delivered" | "failed", HTTP attempts made, the last error or refusal)
ResultCallback = Callable[[int, str, int, str | None], None]


class WebhookNotifier:
    """A queue drained by one daemon thread; each POST is tried `attempts` times with doubling backoff."""

    def __init__(
        self, policy: WebhookPolicy | None = None, *, attempts: int = 4, backoff: float = 0.5, timeout: float = 5.0,
        on_result: ResultCallback | None = None,
    ) -> None:
        self.policy = policy or WebhookPolicy()
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
                status, attempts, error = self._deliver(url, payload)
                if alert_id is not None and self.on_result is not None:
                    self.on_result(alert_id, status, attempts, error)
            except Exception:  # the worker must survive anything a callback does
                log.exception("Webhook bookkeeping failed for %s", url)
            finally:
                self._queue.task_done()

    def _deliver(self, url: str, payload: dict[str, Any]) -> tuple[str, int, str | None]:
        """(status, HTTP attempts made, last error); a refused URL is given up at once, before any request."""
        body = json.dumps(payload).encode()
        error = None
        for attempt in range(1, self.attempts + 1):
            try:
                status = self._post(self.policy.destination(url), body)
                if 200 <= status < 300:
                    return "delivered", attempt, None
                error = f"answered HTTP {status}"
            except WebhookRefusedError as exc:
                log.warning("Webhook to %s refused: %s", url, exc)
                return "failed", attempt - 1, f"refused: {exc}"
            except (httpx2.HTTPError, OSError) as exc:  # OSError: the host does not resolve
                error = f"{type(exc).__name__}: {exc}"
            log.warning("Webhook POST to %s failed (attempt %d/%d): %s", url, attempt, self.attempts, error)
            if attempt < self.attempts:
                time.sleep(self.backoff * 2 ** (attempt - 1))
        return "failed", self.attempts, error

    def _post(self, destination: Destination, body: bytes) -> int:
        """POST to the checked address, under the original host name (Host header, TLS name and certificate)."""
        with httpx2.Client(timeout=self.timeout, follow_redirects=False) as client:
            response = client.post(destination.url, content=body, extensions={"sni_hostname": destination.host},
                                   headers={"Content-Type": "application/json", "Host": destination.host_header})
        return response.status_code
