"""Errors of the model layer. Each carries a stable `code` and the HTTP status the API answers with."""

from __future__ import annotations

from typing import Any

from core.errors import AppError, InvalidInputError


class ModelError(AppError):
    """Base class of the model layer's errors."""

    code = "model_error"


class UnsupportedParameterError(InvalidInputError):
    """A generation parameter the chosen model's provider cannot honour; it is refused, never dropped."""

    code = "unsupported_parameter"


class UnsupportedOperationError(InvalidInputError):
    """The model cannot do what was asked (a chat model to embed, an embedding model to chat): refused before any
    provider call, with the code `<operation>_not_supported` (`embeddings_not_supported`, `chat_not_supported`)."""

    code = "operation_not_supported"

    @classmethod
    def refusing(cls, model: str, provider: str, operation: str) -> UnsupportedOperationError:
        return cls([{"field": "model", "reason": f"{model} ({provider}) does not support {operation}"}],
                   prefix="Unsupported operation", code=f"{operation}_not_supported")


class UnknownModelError(ModelError, KeyError, ValueError):
    """No model is registered under that name or alias; a ValueError too, as the original raised for it."""

    code = "unknown_model"
    http_status = 404

    def __str__(self) -> str:  # KeyError would otherwise add quotes
        return self.message


class MissingAPIKeyError(ModelError, ValueError):
    """A provider needs a key that is not configured; the message names the variables to set.

    A ValueError too, as the original `GeminiModel()` raised without a key.
    """

    code = "missing_api_key"
    http_status = 503


class LocalModelError(ModelError):
    """The embedded llama.cpp model cannot run: no GGUF file where LOCAL_MODEL_PATH points, or no chat template."""

    code = "local_model_error"
    http_status = 500


class CallRefusedError(ModelError):
    """A guard refused the call before the provider was contacted (budget, rate, circuit)."""

    code = "call_refused"
    http_status = 403


class ProviderError(ModelError):
    """The provider failed; keeps the provider's own message and status code."""

    code = "provider_error"
    http_status = 502

    def __init__(self, message: str, *, provider_status: int | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.provider_status = provider_status


class MalformedResponseError(ProviderError):
    """The provider answered 200 with a body that does not parse: not JSON, or not an event stream."""

    EXCERPT_CHARS = 200  # of the body, quoted in the message

    @classmethod
    def quoting(cls, who: str, body: str, provider: str) -> MalformedResponseError:
        """The error for `who` answering `body`, whose start the message quotes."""
        return cls(f"{who} answered with a body that does not parse: {body[:cls.EXCERPT_CHARS]!r}",
                   details={"provider": provider})


class ProviderAuthError(ProviderError):
    code = "provider_auth_error"
    http_status = 502


class RateLimitedError(ProviderError):
    code = "rate_limited"
    http_status = 429


class InvalidRequestError(ProviderError):
    code = "invalid_request"
    http_status = 400


class ContextLengthExceededError(InvalidRequestError):
    """The prompt does not fit the model's context window; refused before (or by) the provider."""

    code = "context_length_exceeded"


class ProviderUnavailableError(ProviderError):
    code = "provider_unavailable"
    http_status = 502


class ConnectionLostError(ProviderUnavailableError):
    """The connection broke before the answer was complete (a reset, or a close mid-body): retried like a 503."""


def error_for_status(status: int | None) -> type[ProviderError]:
    """The error class for an upstream HTTP status, shared by every provider: 401/403 auth, 429 rate limit,
    408 timeout, other 4xx the request, and 5xx (or no status: an in-stream error event) unavailable."""
    if status in (401, 403):
        return ProviderAuthError
    if status == 429:
        return RateLimitedError
    if status == 408:
        return ProviderTimeoutError
    if status is not None and 400 <= status < 500:
        return InvalidRequestError
    return ProviderUnavailableError


class ProviderTimeoutError(ProviderError):
    code = "provider_timeout"
    http_status = 504


def is_retryable(error: BaseException) -> bool:
    """A failure of the provider rather than of the request: a 429, a 5xx, a timeout, a lost connection or an
    unparseable answer. Another deployment may succeed, and it counts against the deployment's circuit breaker."""
    return isinstance(error, (RateLimitedError, ProviderUnavailableError, ProviderTimeoutError,
                              MalformedResponseError))


# The codes a request-log row records for an `is_retryable` failure: what health scores count as errors (a client's
# mistake, such as a prompt past the context window, says nothing of the provider's health).
PROVIDER_FAILURE_CODES = frozenset({RateLimitedError.code, ProviderUnavailableError.code, ProviderTimeoutError.code,
                                    MalformedResponseError.code})
