"""Gemini's error mapping and its view of the shared retry policy (`models.retry.RetryPolicy`).

The SDK's own retries cover neither a connection reset nor a body cut short, so they are off and every call
runs through `models.retry`; `is_retryable` says which failures it retries.
"""

from __future__ import annotations

import json
from typing import Any

import httpx2
from google.genai import errors as genai_errors

from models.errors import (
    ConnectionLostError,
    InvalidRequestError,
    MalformedResponseError,
    ModelError,
    ProviderAuthError,
    ProviderError,
    ProviderTimeoutError,
    ProviderUnavailableError,
    error_for_status,
)
from models.retry import RetryPolicy

# Timeouts, refused connections, resets (ReadError, WriteError) and bodies cut short (RemoteProtocolError).
TRANSIENT_TRANSPORT_ERRORS = (httpx2.TimeoutException, httpx2.NetworkError, httpx2.RemoteProtocolError)
# What the SDK raises for a 200 whose body is not JSON.
UNPARSABLE_BODY_ERRORS = (json.JSONDecodeError, genai_errors.UnknownApiResponseError)


def is_retryable(policy: RetryPolicy, exc: BaseException) -> bool:
    """The policy's status codes, and transport failures a new connection may not repeat."""
    if isinstance(exc, genai_errors.APIError):
        return policy.retries_status(exc.code)
    return isinstance(exc, (*TRANSIENT_TRANSPORT_ERRORS, ConnectionLostError))


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
        what = "Cannot reach Gemini" if isinstance(exc, httpx2.ConnectError) else "The connection to Gemini broke"
        return ProviderUnavailableError(
            f"{what} ({_attempts(attempts)}): {type(exc).__name__}: {exc}",
            details={"provider": "gemini"},
        )
    if isinstance(exc, UNPARSABLE_BODY_ERRORS):  # before ValueError: these are answers, not refused requests
        body = exc.doc if isinstance(exc, json.JSONDecodeError) else getattr(exc.__cause__, "doc", str(exc))
        return MalformedResponseError.quoting("Gemini", body, "gemini")
    if isinstance(exc, (ValueError, TypeError)):  # the SDK validates the request before sending it
        return InvalidRequestError(f"Gemini request rejected by the SDK: {exc}", details={"provider": "gemini"})
    return exc


def _api_error(exc: genai_errors.APIError, attempts: int) -> ProviderError:
    code = int(exc.code) if exc.code else None
    message = f"Gemini {code} {exc.status or ''}: {exc.message or 'no message'}".replace("  ", " ")
    if attempts > 1:
        message += f" ({_attempts(attempts)})"
    details: dict[str, Any] = {"provider": "gemini", "provider_code": exc.status}
    cls = ProviderAuthError if _reason(exc) == "API_KEY_INVALID" else error_for_status(code)  # a bad key is a 400
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
