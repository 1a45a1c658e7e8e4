"""Slow clients for the server benchmark and tests: connections that send a request body a byte at a time.

Each client sends the headers of `POST /api/generate` with a Content-Length, then one byte of the body every
`interval` seconds, so a server that reads bodies in request threads keeps one thread per client waiting.
They run on one asyncio loop in a background thread; `connected` counts those the server has not dropped.
"""

from __future__ import annotations

import asyncio
import threading
from types import TracebackType

BODY_BYTES = 1000


class SlowClients:
    """`count` slow clients against 127.0.0.1:`port` for as long as the `with` block lasts."""

    def __init__(self, port: int, count: int, *, interval: float = 1.0) -> None:
        self.port = port
        self.count = count
        self.interval = interval
        self.connected = 0
        self._opened = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._loop.run_until_complete, args=(self._main(),), daemon=True)

    def __enter__(self) -> SlowClients:
        self._thread.start()
        if not self._opened.wait(60):
            raise RuntimeError("the slow clients could not connect within 60 s")
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        assert self._stop is not None, "set by the loop thread before it signalled `_opened`"
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)
        self._loop.close()

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        clients = [asyncio.create_task(self._client()) for _ in range(self.count)]
        while self.connected < self.count and not all(task.done() for task in clients):
            await asyncio.sleep(0.05)
        self._opened.set()
        await self._stop.wait()
        for task in clients:
            task.cancel()
        await asyncio.gather(*clients, return_exceptions=True)

    async def _client(self) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        headers = (f"POST /api/generate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                   f"Content-Length: {BODY_BYTES}\r\n\r\n")
        writer.write(headers.encode())
        self.connected += 1
        try:
            for _ in range(BODY_BYTES - 1):  # never the last byte: the request stays unfinished
                writer.write(b" ")
                await writer.drain()
                await asyncio.sleep(self.interval)
        except OSError:
            pass
        finally:
            self.connected -= 1
            writer.close()
