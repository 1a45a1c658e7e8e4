"""Errors under `/v1` in OpenAI's shape, so the official SDKs raise their matching classes.

`{"error": {"message", "type", "param", "code"}}`: the status picks the SDK's class (400 BadRequestError,
401 AuthenticationError, 403 PermissionDeniedError, 404 NotFoundError, 429 RateLimitError, 5xx
InternalServerError); `code` keeps our stable code (e.g. `budget_exceeded`, answered as a 402, which the
SDK raises at once without retrying).
"""

from __future__ import annotations

from typing import Any

from core.errors import AppError

OPENAI_PREFIX = "/v1/"
TYPES = {400: "invalid_request_error", 401: "authentication_error", 402: "insufficient_quota",
         403: "permission_error", 404: "invalid_request_error", 409: "invalid_request_error",
         413: "invalid_request_error", 415: "invalid_request_error", 429: "rate_limit_error"}


def openai_error_body(error: AppError) -> dict[str, Any]:
    """The error as OpenAI words it; `param` is the first field a validation error names."""
    fields = error.details.get("fields") or []
    param = fields[0]["field"] if fields else error.details.get("param")
    status = error.http_status
    kind = TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    return {"error": {"message": error.message, "type": kind, "param": param, "code": error.code}}
