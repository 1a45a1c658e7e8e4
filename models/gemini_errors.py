"""Gemini's error mapping and its view of the shared retry policy (`models.retry.RetryPolicy`).

The SDK's `HttpRetryOptions` are built from the policy; the one retry the SDK cannot do (a stream that
fails before its first chunk) runs through `models.retry.retrying`.
"""

from __future__ import annotations

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
from models.retry import RetryPolicy

TRANSIENT_TRANSPORT_ERRORS = (httpx2.TimeoutException, httpx2.ConnectError)


def sdk_retry_options(policy: RetryPolicy) -> types.HttpRetryOptions:
    """The policy as the SDK's options: it retries these codes and transport timeouts/connection errors itself."""
    return types.HttpRetryOptions(
        attempts=policy.attempts, initial_delay=policy.initial_delay, max_delay=policy.max_delay,
        exp_base=policy.exp_base, jitter=policy.jitter, http_status_codes=list(policy.status_codes),
    )


def is_retryable(policy: RetryPolicy, exc: BaseException) -> bool:
    if isinstance(exc, genai_errors.APIError):
        return policy.retries_status(exc.code)
    return isinstance(exc, TRANSIENT_TRANSPORT_ERRORS)


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
