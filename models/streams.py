"""A stream cut before its first chunk must not pass for an empty answer.

An upstream that closes a stream early without breaking its framing (an HTTP/1.0 close-delimited body) looks
like one that finished. Every provider ends a stream with a finish reason, so one that ends with neither text
nor a finish reason was cut: `require_start` raises ConnectionLostError, which the retry policy treats like a
503. A cut after the first chunk cannot be retried anyway; chunked or HTTP/2 framing reveals it as an error.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from models.errors import ConnectionLostError
from models.results import Usage

EVENT_STREAM = "text/event-stream"


def require_start(chunks: Iterable[str], usage: Usage, *, label: str, provider: str) -> Iterator[str]:
    """`chunks`; ConnectionLostError when the stream ends with neither a chunk nor a finish reason."""
    empty = True
    for chunk in chunks:
        empty = False
        yield chunk
    if empty and usage.finish_reason is None:
        raise ConnectionLostError(f"The {label} closed the stream before it began",
                                  details={"provider": provider})
