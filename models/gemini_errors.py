"""Gemini's retry policy and error mapping, kept apart from the model so both stay small.

The policy lives in one place, `RetryPolicy`: the SDK's `HttpRetryOptions` are built from it, and so
is the one retry the SDK cannot do (a stream that fails before its first chunk).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import httpx2
from google.genai import errors as genai_errors
from google.genai import types

from models.errors import (
    InvalidRequestError,
    ModelError,
    ProviderAuthError,
    ProviderError,
    ProviderTimeoutError,
    ProviderUnavailableError,
    RateLimitedError,
)

RETRYABLE_STATUS = (408, 429, 500, 502, 503, 504)
# Backoff: initial x 2**n + uniform(0, jitter), capped; tests lower these module values.
RETRY_INITIAL_DELAY = 1.0
RETRY_MAX_DELAY = 30.0
RETRY_EXP_BASE = 2.0
RETRY_JITTER = 1.0
TRANSIENT_TRANSPORT_ERRORS = (httpx2.TimeoutException, httpx2.ConnectError)


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter on 408/429/5xx and on timeouts; other 4xx are never retried."""

    attempts: int = 4
    initial_delay: float = RETRY_INITIAL_DELAY
    max_delay: float = RETRY_MAX_DELAY
    exp_base: float = RETRY_EXP_BASE
    jitter: float = RETRY_JITTER
    status_codes: tuple[int, ...] = RETRYABLE_STATUS

    @classmethod
    def default(cls, attempts: int) -> RetryPolicy:
        """The policy with the module's current delays (read at call time, so tests can lower them)."""
        return cls(attempts=max(1, attempts), initial_delay=RETRY_INITIAL_DELAY, max_delay=RETRY_MAX_DELAY,
                   exp_base=RETRY_EXP_BASE, jitter=RETRY_JITTER)

    def sdk_options(self) -> types.HttpRetryOptions:
        """For the SDK, which retries these codes and transport timeouts/connection errors itself."""
        return types.HttpRetryOptions(
            attempts=self.attempts, initial_delay=self.initial_delay, max_delay=self.max_delay,
            exp_base=self.exp_base, jitter=self.jitter, http_status_codes=list(self.status_codes),
        )

    def is_retryable(self, exc: BaseException) -> bool:
        if isinstance(exc, genai_errors.APIError):
            return exc.code in self.status_codes
        return isinstance(exc, TRANSIENT_TRANSPORT_ERRORS)

    def delay(self, retry_number: int) -> float:
        """Seconds to wait before retry `retry_number` (1-based), as the SDK's tenacity wait computes it."""
        base = self.initial_delay * self.exp_base ** (retry_number - 1)
        return min(base + random.uniform(0, self.jitter), self.max_delay)


NO_SDK_RETRY = types.HttpOptions(retry_options=types.HttpRetryOptions(attempts=1))


def map_error(exc: BaseException, *, attempts: int, timeout: float) -> BaseException:
    """The project's error for an SDK or transport failure, keeping Gemini's message and code.

    `attempts` is how many HTTP attempts were made, for the message.
    """
    if isinstance(exc, ModelError):
        return exc
    if isinstance(exc, genai_errors.APIError):
        return _api_error(exc, attempts)
    if isinstance(exc, httpx2.TimeoutException):
        return ProviderTimeoutError(
            f"Gemini did not answer within {timeout:g}s ({_attempts(attempts)}): {type(exc).__name__}",
            details={"provider": "gemini", "timeout": timeout},
        )
    if isinstance(exc, httpx2.TransportError):
        return ProviderUnavailableError(
            f"Cannot reach Gemini ({_attempts(attempts)}): {type(exc).__name__}: {exc}",
            details={"provider": "gemini"},
        )
    if isinstance(exc, (ValueError, TypeError)):  # the SDK validates the request before sending it
        return InvalidRequestError(f"Gemini request rejected by the SDK: {exc}", details={"provider": "gemini"})
    return exc


def _api_error(exc: genai_errors.APIError, attempts: int) -> ProviderError:
    code = int(exc.code) if exc.code else None
    message = f"Gemini {code} {exc.status or ''}: {exc.message or 'no message'}".replace("  ", " ")
    if attempts > 1:
        message += f" ({_attempts(attempts)})"
    details: dict[str, Any] = {"provider": "gemini", "provider_code": exc.status}
    cls: type[ProviderError]
    if code in (401, 403) or _reason(exc) == "API_KEY_INVALID":
        cls = ProviderAuthError
    elif code == 429:
        cls = RateLimitedError
    elif code == 408:
        cls = ProviderTimeoutError
    elif code is not None and 400 <= code < 500:
        cls = InvalidRequestError
    else:
        cls = ProviderUnavailableError
    return cls(message, provider_status=code, details=details)


def _reason(exc: genai_errors.APIError) -> str | None:
    """The `ErrorInfo.reason` Gemini attaches, e.g. API_KEY_INVALID on a 400 for a bad key."""
    body = exc.details if isinstance(exc.details, dict) else {}
    for item in (body.get("error") or {}).get("details") or []:
        if isinstance(item, dict) and item.get("reason"):
            return str(item["reason"])
    return None


def _attempts(attempts: int) -> str:
    return "1 attempt" if attempts == 1 else f"gave up after {attempts} attempts"
