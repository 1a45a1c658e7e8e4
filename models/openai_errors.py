"""Error mapping for OpenAI-compatible upstreams: SDK exceptions -> the project's provider errors.

Keeps the upstream's own message and HTTP status; the API key is scrubbed from what the upstream says, since
some servers echo the key they were given (OpenAI itself echoes a masked one on a 401).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from models.errors import (
    ConnectionLostError,
    MalformedResponseError,
    ModelError,
    ProviderTimeoutError,
    ProviderUnavailableError,
    error_for_status,
)
from models.retry import RetryPolicy

if TYPE_CHECKING:
    import openai

REDACTED = "[redacted]"
MIN_SECRET_LENGTH = 8


def upstream_status(exc: BaseException) -> int | None:
    """The HTTP status of a failure: the response's, or the numeric `code` of an in-stream error event."""
    import openai  # already loaded by the client that failed

    if isinstance(exc, openai.APIStatusError):
        return exc.status_code
    if isinstance(exc, openai.APIError) and isinstance(exc.body, dict):
        code = exc.body.get("code")
        if isinstance(code, int) or (isinstance(code, str) and code.isdigit()):
            return int(code)
    return None


def is_retryable(policy: RetryPolicy, exc: BaseException) -> bool:
    """Timeouts, connection failures (a reset or cut body included) and the policy's status codes; never other 4xx."""
    import openai  # already loaded by the client that failed

    if isinstance(exc, (openai.APIConnectionError, ConnectionLostError)):  # APITimeoutError included
        return True
    return policy.retries_status(upstream_status(exc))


def map_error(exc: BaseException, *, attempts: int, label: str, timeout: float, secret: str) -> BaseException:
    """The project's error for an SDK failure after `attempts` HTTP attempts; unknown errors pass through."""
    import openai  # already loaded by the client that failed

    if isinstance(exc, ModelError):
        return exc
    if isinstance(exc, json.JSONDecodeError):  # a 200 (or a stream event) whose body is not JSON
        return malformed_response(label, exc.doc, secret)
    suffix = "" if attempts == 1 else f" (gave up after {attempts} attempts)"
    details: dict[str, Any] = {"provider": "openai_compatible"}
    if isinstance(exc, openai.APITimeoutError):
        return ProviderTimeoutError(f"The {label} did not answer within {timeout:g}s{suffix}",
                                    details={**details, "timeout": timeout})
    if isinstance(exc, openai.APIConnectionError):
        cause = exc.__cause__ or exc
        message = f"The {label} is unreachable: {type(cause).__name__}: {_scrub(str(cause), secret)}{suffix}"
        return ProviderUnavailableError(message, details=details)
    if isinstance(exc, openai.APIError):
        status = upstream_status(exc)
        kind = _scrub(f" {exc.type}", secret) if exc.type else ""
        upstream = _scrub(_message(exc), secret)
        message = f"The {label} answered {status or 'a stream error'}{kind}: {upstream}{suffix}"
        if exc.code:
            details["provider_code"] = _scrub(str(exc.code), secret)
        return error_for_status(status)(message, provider_status=status, details=details)
    return exc


def malformed_response(label: str, body: str, secret: str) -> MalformedResponseError:
    """The error for a 200 whose body is not a chat completion (or not an event stream), quoting its start."""
    return MalformedResponseError.quoting(f"The {label}", _scrub(body, secret), "openai_compatible")


def _message(exc: openai.APIError) -> str:
    """The upstream's own message: `error.message` of the body, else what the SDK made of it."""
    body = exc.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and isinstance(inner.get("message"), str):
            return inner["message"]
    if isinstance(body, str) and body:
        return body[:500]
    return exc.message


def _scrub(text: str, secret: str) -> str:
    """The upstream's text without the key (keys shorter than 8 characters would only mangle words)."""
    return text.replace(secret, REDACTED) if len(secret) >= MIN_SECRET_LENGTH else text
