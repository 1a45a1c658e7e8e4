"""Every error leaves the service as JSON: {"error": {"code": "<stable_snake_case>", "message": "..."}}."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException

from models.errors import ModelError

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


class ApiError(Exception):
    """An error a view raises on purpose: a status, a stable code, a message and optional details."""

    def __init__(self, status_code: int, code: str, message: str, **details: Any) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = code
        self.message = message
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            error["details"] = self.details
        return {"error": error}


def error_response(error: ApiError, headers: dict[str, str] | None = None):  # noqa: ANN201
    response = jsonify(error.to_dict())
    response.status_code = error.status_code
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(error: ApiError):  # noqa: ANN202
        return error_response(error)

    @app.errorhandler(ModelError)
    def _model_error(error: ModelError):  # noqa: ANN202
        return error_response(ApiError(error.http_status, error.code, error.message, **error.details))

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException):  # noqa: ANN202
        status = error.code or 500
        code = HTTP_CODES.get(status, "http_error")
        headers = dict(error.get_headers()) if status == 405 else {}
        headers.pop("Content-Type", None)
        return error_response(ApiError(status, code, error.description or code), headers)

    @app.errorhandler(Exception)
    def _unexpected(error: Exception):  # noqa: ANN202
        log.exception("Unhandled error")
        return error_response(ApiError(500, "internal_error", "An internal error occurred"))
