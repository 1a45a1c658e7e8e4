"""The lifecycle both provider wire-format test servers share: a threaded HTTP server on 127.0.0.1
(random port), a queue of scripted replies, a record of every request received, and the transport faults
a real upstream can commit (see `WireHandler`)."""

from __future__ import annotations

import json
import socket
import struct
import threading
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Generic, Literal, Self, TypeVar

Reply = TypeVar("Reply")
# What a scripted reply can do instead of answering properly (see `WireHandler`).
Fault = Literal["not_json", "reset", "close", "eof", "drip"]
NOT_JSON_BODY = b"<html><body><h1>502 Bad Gateway</h1></body></html>"
DRIP_TEXT = " more"
DRIP_INTERVAL = 0.05


class LocalHttpServer:
    """A threaded HTTP server on 127.0.0.1 (random port), started and stopped with the test (`with`). Subclasses
    set `handler` and `name`; each request's handler finds this server as `self.wire`."""

    handler: type[BaseHTTPRequestHandler]
    name = "local-http"
    _httpd: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    @property
    def root_url(self) -> str:
        assert self._httpd is not None, f"{self.name} not started"
        host, port = self._httpd.server_address[:2]
        assert isinstance(host, str)
        return f"http://{host}:{port}"

    def start(self) -> Self:
        handler = type("Handler", (self.handler,), {"wire": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), name=self.name, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class ScriptedServer(LocalHttpServer, Generic[Reply]):
    """Subclasses set `handler` (a request handler class that reads `self.wire`) and `name`."""

    name = "wire"
    path_prefix = ""

    def __init__(self, api_key: str | None = None) -> None:
        self.api_key = api_key
        self.requests: list[dict[str, Any]] = []
        self.hangups = 0  # streams the client abandoned while the server was still sending
        self._queue: list[Reply] = []
        self._standing: Reply | None = None  # answers every request once the queue is empty
        self._lock = threading.Lock()
        self._hangup = threading.Condition(self._lock)
        self._stopping = threading.Event()

    @property
    def base_url(self) -> str:
        return f"{self.root_url}{self.path_prefix}"

    def enqueue(self, *replies: Reply) -> Self:
        with self._lock:
            self._queue.extend(replies)
        return self

    def always(self, reply: Reply | None) -> Self:
        """Answer `reply` to every request the queue does not script (None: the default answer again)."""
        with self._lock:
            self._standing = reply
        return self

    def reset(self) -> None:
        """Forget recorded requests, queued and standing replies (for a server shared by several tests)."""
        with self._lock:
            self.requests.clear()
            self._queue.clear()
            self._standing = None
            self.hangups = 0

    def wait_for_hangup(self, timeout: float = 5.0) -> bool:
        """True once a client has closed a stream the server was still sending."""
        with self._hangup:
            return self._hangup.wait_for(lambda: self.hangups > 0, timeout)

    def stop(self) -> None:
        self._stopping.set()  # wakes handlers sleeping in a `delay` or a drip
        super().stop()

    def _record(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self.requests.append(entry)

    def _record_hangup(self) -> None:
        with self._hangup:
            self.hangups += 1
            self._hangup.notify_all()

    def _next_reply(self) -> Reply | None:
        with self._lock:
            return self._queue.pop(0) if self._queue else self._standing

    def _sleep(self, seconds: float) -> None:
        if seconds > 0:
            self._stopping.wait(seconds)


class WireHandler(BaseHTTPRequestHandler):
    """HTTP/1.0 answers (one request per connection), plus the faults a scripted reply may ask for:

    - `not_json`: 200 with an HTML body, streamed or not (a proxy's error page);
    - `reset`: a TCP reset: before any answer for a plain call, after the headers and the reply's chunks
      for a stream;
    - `close`: the connection closes part-way: after half of a plain body (whose Content-Length says more),
      or after a stream's headers and chunks;
    - `eof`: like `close` for a stream, but with HTTP/1.0 framing, under which the cut looks like the end;
    - `drip`: a stream that never ends: its chunks, then one more every `chunk_delay` until the client hangs up.

    Other streams with a fault are sent chunked (HTTP/1.1), as real upstreams send them, so that a cut shows.
    """

    wire: ScriptedServer[Any]  # set on the per-server subclass
    protocol_version = "HTTP/1.0"  # one request per connection; streams end when the socket closes

    def log_message(self, format: str, *args: Any) -> None:  # silence the default stderr log
        pass

    def answer_fault_first(self, fault: Fault | None, *, streaming: bool) -> bool:
        """Commit the faults that strike before the provider's own answer; True when the request is done."""
        if fault == "not_json":
            self._send(200, "text/html", NOT_JSON_BODY)
            return True
        if fault == "reset" and not streaming:
            self._reset()
            return True
        return False

    def send_json(self, status: int, payload: dict[str, Any], content_type: str = "application/json",
                  fault: Fault | None = None) -> None:
        """The payload as a JSON body; with the `close` fault only its first half is sent."""
        data = json.dumps(payload).encode()
        self._send(status, content_type, data, cut=fault == "close")

    def send_stream(self, events: Sequence[bytes], ending: Sequence[bytes] = (), *, fault: Fault | None = None,
                    delay: float = 0.0, drip_event: Callable[[str], bytes] | None = None,
                    preamble: Sequence[bytes] = ()) -> None:
        """Server-sent events: `preamble`, `events` (`delay` apart), then `ending` unless a fault cuts it short."""
        chunked = fault not in (None, "eof")
        if chunked:
            self.protocol_version = "HTTP/1.1"
            self.close_connection = True
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            for event in preamble:
                self._write(event, chunked)
            for index, event in enumerate(events):
                if index:
                    self.wire._sleep(delay)
                self._write(event, chunked)
            if fault == "reset":
                return self._reset()
            if fault in ("close", "eof"):
                return
            if fault == "drip":
                assert drip_event is not None, "a drip needs the provider's event for a text"
                return self._drip(drip_event, delay or DRIP_INTERVAL)
            for event in ending:
                self._write(event, chunked)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout or cancel)

    def _drip(self, drip_event: Callable[[str], bytes], interval: float) -> None:
        try:
            while not self.wire._stopping.is_set():
                self.wire._sleep(interval)
                self._write(drip_event(DRIP_TEXT), chunked=True)
        except (BrokenPipeError, ConnectionResetError):
            self.wire._record_hangup()

    def _write(self, event: bytes, chunked: bool) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(event), event) if chunked else event)
        self.wfile.flush()

    def _send(self, status: int, content_type: str, data: bytes, *, cut: bool = False) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2] if cut else data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client timed out before we answered

    def _reset(self) -> None:
        """Abort the connection with a TCP RST (SO_LINGER 0), as a crashed upstream or a load balancer does."""
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()
        self.close_connection = True


def words(text: str) -> int:
    return len(text.split())
