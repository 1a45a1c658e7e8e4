"""An overall deadline for streamed answers, which the SDKs lack: their timeouts bound each read, so an upstream
that keeps dripping bytes would hold a call (and its worker thread) forever. Silence is still the read timeout's job.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx2

from models.errors import ProviderTimeoutError
from models.streams import EVENT_STREAM


class StreamDeadline:
    """An httpx `response` event hook: every event stream must end within `seconds` of its headers."""

    def __init__(self, seconds: float, *, label: str, provider: str) -> None:
        self.seconds = seconds
        self.label = label
        self.provider = provider

    def __call__(self, response: httpx2.Response) -> None:
        if response.headers.get("content-type", "").startswith(EVENT_STREAM):
            response.stream = _Bounded(response.stream, self)

    def expired(self) -> ProviderTimeoutError:
        return ProviderTimeoutError(
            f"The {self.label} stream did not end within {self.seconds:g}s (STREAM_TIMEOUT)",
            details={"provider": self.provider, "stream_timeout": self.seconds},
        )


class _Bounded(httpx2.SyncByteStream):
    """One event stream's body; past the deadline it closes the connection and raises ProviderTimeoutError."""

    def __init__(self, stream: httpx2.SyncByteStream | httpx2.AsyncByteStream, deadline: StreamDeadline) -> None:
        assert isinstance(stream, httpx2.SyncByteStream), "the providers use synchronous clients"
        self._stream = stream
        self._deadline = deadline
        self._ends_at = time.monotonic() + deadline.seconds

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._stream:
            if time.monotonic() > self._ends_at:
                self._stream.close()
                raise self._deadline.expired()
            yield chunk

    def close(self) -> None:
        self._stream.close()
