"""Error mapping for Anthropic's Messages API: SDK exceptions -> the project's provider errors.

Mirrors `models.openai_errors`: the upstream's own message, type and HTTP status are kept, the key is scrubbed
from anything quoted. Anthropic adds a 529 (`overloaded_error`, retried like a 503) and sends failures after a
stream began as an `error` event, whose `error.type` stands in for the status the stream's 200 cannot carry.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

import httpx2

from models.errors import (
    ConnectionLostError,
    ContextLengthExceededError,
    MalformedResponseError,
    ModelError,
    ProviderError,
    ProviderTimeoutError,
    ProviderUnavailableError,
    error_for_status,
)
from models.openai_errors import _scrub as scrub  # one scrubbing rule for every provider's quoted text
from models.retry import RetryPolicy

if TYPE_CHECKING:
    import anthropic

PROVIDER = "anthropic"
OVERLOADED = 529
# Anthropic's documented error types and their HTTP statuses: an in-stream `error` event has only the type.
ERROR_TYPE_STATUS = {
    "invalid_request_error": 400, "authentication_error": 401, "billing_error": 402, "permission_error": 403,
    "not_found_error": 404, "request_too_large": 413, "rate_limit_error": 429, "api_error": 500,
    "timeout_error": 504, "overloaded_error": OVERLOADED,
}
# How Anthropic words a 400 for a conversation past the context window.
CONTEXT_LENGTH_MESSAGE = re.compile(r"prompt is too long|exceed context limit|context window", re.IGNORECASE)


def upstream_status(exc: BaseException) -> int | None:
    """The HTTP status of a failure: the response's, or the one an in-stream error event's type stands for."""
    import anthropic  # already loaded by the client that failed

    if isinstance(exc, anthropic.APIStatusError) and exc.status_code >= 400:
        return exc.status_code
    if isinstance(exc, anthropic.APIError):
        return ERROR_TYPE_STATUS.get(str(_error_field(exc, "type")))
    return None


def is_retryable(policy: RetryPolicy, exc: BaseException) -> bool:
    """Timeouts, connection failures (a reset or a cut body included), 529 overloaded and the policy's status codes."""
    import anthropic  # already loaded by the client that failed

    if isinstance(exc, (anthropic.APIConnectionError, httpx2.TransportError, ConnectionLostError)):
        return True
    status = upstream_status(exc)
    return status == OVERLOADED or policy.retries_status(status)


def map_error(exc: BaseException, *, attempts: int, label: str, timeout: float, secret: str) -> BaseException:
    """The project's error for an SDK or transport failure after `attempts` HTTP attempts; others pass through."""
    import anthropic  # already loaded by the client that failed

    if isinstance(exc, ModelError):
        return exc
    if isinstance(exc, json.JSONDecodeError):  # a 200 (or a stream event) whose body is not JSON
        return malformed_response(label, exc.doc, secret)
    suffix = "" if attempts == 1 else f" (gave up after {attempts} attempts)"
    details: dict[str, Any] = {"provider": PROVIDER}
    if isinstance(exc, (anthropic.APITimeoutError, httpx2.TimeoutException)):
        return ProviderTimeoutError(f"The {label} did not answer within {timeout:g}s{suffix}",
                                    details={**details, "timeout": timeout})
    if isinstance(exc, (anthropic.APIConnectionError, httpx2.TransportError)):
        cause = exc.__cause__ or exc
        message = f"The {label} is unreachable: {type(cause).__name__}: {scrub(str(cause), secret)}{suffix}"
        return ProviderUnavailableError(message, details=details)
    if isinstance(exc, anthropic.APIError):
        return _api_error(exc, label, suffix, secret)
    return exc


def malformed_response(label: str, body: str, secret: str) -> MalformedResponseError:
    """The error for a 200 whose body is not a message (or not an event stream), quoting its start."""
    return MalformedResponseError.quoting(f"The {label}", scrub(body, secret), PROVIDER)


def _api_error(exc: anthropic.APIError, label: str, suffix: str, secret: str) -> ProviderError:
    """An answered failure: an HTTP error status, or an `error` event in a stream."""
    status = upstream_status(exc)
    kind = _error_field(exc, "type")
    upstream = scrub(str(_error_field(exc, "message") or exc.message), secret)
    message = f"The {label} answered {status or 'a stream error'}{f' {kind}' if kind else ''}: {upstream}{suffix}"
    details = {"provider": PROVIDER, **({"provider_code": scrub(str(kind), secret)} if kind else {})}
    error_class = error_for_status(status)
    if status == 400 and CONTEXT_LENGTH_MESSAGE.search(upstream):
        error_class = ContextLengthExceededError
    return error_class(message, provider_status=status, details=details)


def _error_field(exc: anthropic.APIError, name: str) -> object:
    """`error.<name>` of the body Anthropic answered (`{"type": "error", "error": {"type", "message"}}`)."""
    body = exc.body
    inner = body.get("error") if isinstance(body, dict) else None
    return inner.get(name) if isinstance(inner, dict) else None
