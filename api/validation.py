"""Request validation errors: a JSON body must be a JSON object, and a 400 names each field and reason."""

from __future__ import annotations

from typing import NoReturn

from flask import request
from pydantic import ValidationError

from api.errors import ApiError


def require_json_object() -> None:
    """Refuse a body that is not JSON (415), not parseable (400 `invalid_json`) or not an object (400)."""
    if not request.is_json:
        raise ApiError(415, "unsupported_media_type", "Send a JSON body with Content-Type: application/json")
    payload = request.get_json(silent=True)
    if payload is None:
        raise ApiError(400, "invalid_json", "The request body is not valid JSON")
    if not isinstance(payload, dict):
        reason = "The JSON body must be an object"
        raise ApiError(400, "validation_error", reason, fields=[{"field": "(body)", "reason": reason}])


def raise_validation_error(exc: ValidationError) -> NoReturn:
    """The OpenAPI app's validation callback: raise, so the JSON error handler answers."""
    fields = [
        {"field": ".".join(str(part) for part in err["loc"]) or "(body)", "reason": err["msg"]}
        for err in exc.errors(include_url=False)
    ]
    summary = "; ".join(f"{f['field']}: {f['reason']}" for f in fields)
    raise ApiError(400, "validation_error", f"Invalid request: {summary}", fields=fields)
