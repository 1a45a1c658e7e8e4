"""The retry policy of every provider: exponential backoff with jitter, a stream retried only before its first chunk.

The providers turn their SDKs' own retries off (they differ from the policy, and miss connection resets) and
run every call through `retrying` (or `retry_call`) here.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Generator
from contextlib import closing
from dataclasses import dataclass
from typing import TypeVar

from models.results import Usage

log = logging.getLogger(__name__)

T = TypeVar("T")
RETRYABLE_STATUS = (408, 429, 500, 502, 503, 504)
# Backoff: initial x base**(n-1) + uniform(0, jitter), capped; tests build policies with tiny values.
RETRY_INITIAL_DELAY = 1.0
RETRY_MAX_DELAY = 30.0
RETRY_EXP_BASE = 2.0
RETRY_JITTER = 1.0


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter on 408/429/500/502/503/504 and on timeouts; other 4xx never retried."""

    attempts: int = 4
    initial_delay: float = RETRY_INITIAL_DELAY
    max_delay: float = RETRY_MAX_DELAY
    exp_base: float = RETRY_EXP_BASE
    jitter: float = RETRY_JITTER
    status_codes: tuple[int, ...] = RETRYABLE_STATUS

    @classmethod
    def default(cls, attempts: int) -> RetryPolicy:
        """The policy with this module's current delays (read at call time, so tests can lower them)."""
        return cls(attempts=max(1, attempts), initial_delay=RETRY_INITIAL_DELAY, max_delay=RETRY_MAX_DELAY,
                   exp_base=RETRY_EXP_BASE, jitter=RETRY_JITTER)

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"attempts must be at least 1, not {self.attempts}")

    def retries_status(self, status: int | None) -> bool:
        return status in self.status_codes

    def delay(self, retry_number: int) -> float:
        """Seconds to wait before retry `retry_number` (1-based)."""
        base = self.initial_delay * self.exp_base ** (retry_number - 1)
        return min(base + random.uniform(0, self.jitter), self.max_delay)


def retrying(
    attempt: Callable[[], Generator[T, None, None]],
    policy: RetryPolicy,
    *,
    is_retryable: Callable[[BaseException], bool],
    map_error: Callable[[BaseException, int], BaseException],
    label: str,
    before_retry: Callable[[], None] | None = None,
) -> Generator[T, None, None]:
    """Yield from `attempt()`, starting it again on a retryable failure as long as nothing was yielded yet.

    Once a chunk has reached the caller a failure is final: a retry would repeat text. Every final
    failure is raised as `map_error(exc, attempts_made)`, unchained. `before_retry` forgets partial state (usage).
    """
    for number in range(1, policy.attempts + 1):
        yielded = False
        try:
            with closing(attempt()) as chunks:  # an abandoned attempt releases its connection now, not at GC
                for item in chunks:
                    yielded = True
                    yield item
            return
        except Exception as exc:
            if yielded or number == policy.attempts or not is_retryable(exc):
                # `from None`: an SDK error's own text may quote a request secret; the mapped one keeps what matters
                raise map_error(exc, number) from None
            wait = policy.delay(number)
            log.info("%s: attempt %d/%d failed (%s); retrying in %.2fs",
                     label, number, policy.attempts, type(exc).__name__, wait)
            if before_retry is not None:
                before_retry()
            time.sleep(wait)


def retry_call(
    call: Callable[[], T],
    policy: RetryPolicy,
    *,
    is_retryable: Callable[[BaseException], bool],
    map_error: Callable[[BaseException, int], BaseException],
    label: str,
) -> T:
    """`call()` under the policy: `retrying` for a call that returns one value instead of a stream."""
    def attempt() -> Generator[T, None, None]:
        yield call()

    with closing(retrying(attempt, policy, is_retryable=is_retryable, map_error=map_error, label=label)) as values:
        return next(values)


def forget_usage(usage: Usage) -> None:
    """Drop the counts of a failed attempt before the next one, so only the answered attempt is recorded."""
    usage.input_tokens = usage.output_tokens = usage.total_tokens = usage.finish_reason = usage.tool_calls = None
    usage.thinking_tokens = usage.cached_tokens = usage.cache_write_tokens = 0
