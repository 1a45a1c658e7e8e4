"""Every error leaves the service as JSON: {"error": {"code": "<stable_snake_case>", "message": "..."}}."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, jsonify, request
from pydantic import ValidationError
from werkzeug.exceptions import HTTPException

from api.openai_errors import OPENAI_PREFIX, openai_error_body
from core.errors import AppError, InvalidInputError, validation_fields

log = logging.getLogger(__name__)

HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "unprocessable_entity",
    429: "rate_limited",
    500: "internal_error",
    503: "service_unavailable",
}


class ApiError(AppError):
    """An error a view raises on purpose: a status, a stable code, a message and optional details."""

    def __init__(self, status_code: int, code: str, message: str, **details: Any) -> None:
        super().__init__(message, details=details, code=code, http_status=status_code)


def error_response(error: AppError, headers: dict[str, str] | None = None) -> Response:
    """Our JSON error, or OpenAI's shape under `/v1`."""
    openai_client = request.path.startswith(OPENAI_PREFIX)
    response = jsonify(openai_error_body(error) if openai_client else error.to_dict())
    response.status_code = error.http_status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(AppError)
    def _app_error(error: AppError) -> Response:
        retry_after = error.details.get("retry_after")  # a limit that frees up later says when
        return error_response(error, {"Retry-After": str(retry_after)} if isinstance(retry_after, int) else None)

    @app.errorhandler(ValidationError)
    def _invalid_value(error: ValidationError) -> Response:  # a value built from input failed a model's rule
        return error_response(InvalidInputError(validation_fields(error)))

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException) -> Response:
        status = error.code or 500
        code = HTTP_CODES.get(status, "http_error")
        headers = dict(error.get_headers()) if status == 405 else {}
        headers.pop("Content-Type", None)
        return error_response(ApiError(status, code, error.description or code), headers)

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> Response:
        log.exception("Unhandled error")
        return error_response(ApiError(500, "internal_error", "An internal error occurred"))
