"""The lifecycle both provider wire-format test servers share: a threaded HTTP server on 127.0.0.1
(random port), a queue of scripted replies, and a record of every request received."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Generic, Self, TypeVar

Reply = TypeVar("Reply")


class ScriptedServer(Generic[Reply]):
    """Subclasses set `handler` (a request handler class that reads `self.wire`) and `name`."""

    handler: type[BaseHTTPRequestHandler]
    name = "wire"
    path_prefix = ""

    def __init__(self, api_key: str | None = None) -> None:
        self.api_key = api_key
        self.requests: list[dict[str, Any]] = []
        self._queue: list[Reply] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        assert self._httpd is not None, "server not started"
        host, port = self._httpd.server_address[:2]
        assert isinstance(host, str)
        return f"http://{host}:{port}{self.path_prefix}"

    def enqueue(self, *replies: Reply) -> Self:
        with self._lock:
            self._queue.extend(replies)
        return self

    def reset(self) -> None:
        """Forget recorded requests and queued replies (for a server shared by several tests)."""
        with self._lock:
            self.requests.clear()
            self._queue.clear()

    def start(self) -> Self:
        handler = type("Handler", (self.handler,), {"wire": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), name=self.name, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes handlers sleeping in a `delay`
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _record(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self.requests.append(entry)

    def _next_reply(self) -> Reply | None:
        with self._lock:
            return self._queue.pop(0) if self._queue else None

    def _sleep(self, seconds: float) -> None:
        if seconds > 0:
            self._stopping.wait(seconds)


def words(text: str) -> int:
    return len(text.split())
