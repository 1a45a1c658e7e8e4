"""Turn request JSON and query strings into pydantic models, or a 400 that names the field and reason."""

from __future__ import annotations

from typing import Any, TypeVar

from flask import request
from pydantic import BaseModel, ValidationError

from api.errors import ApiError

M = TypeVar("M", bound=BaseModel)


def parse_body(schema: type[M]) -> M:
    """Validate the JSON body against `schema`."""
    if not request.is_json:
        raise ApiError(415, "unsupported_media_type", "Send a JSON body with Content-Type: application/json")
    payload = request.get_json(silent=True)
    if payload is None:
        raise ApiError(400, "invalid_json", "The request body is not valid JSON")
    return _validate(schema, payload)


def parse_query(schema: type[M]) -> M:
    """Validate the query string against `schema`."""
    return _validate(schema, request.args.to_dict())


def _validate(schema: type[M], payload: Any) -> M:
    if not isinstance(payload, dict):
        raise ApiError(400, "validation_error", "The JSON body must be an object")
    try:
        return schema.model_validate(payload)
    except ValidationError as exc:
        fields = [
            {"field": ".".join(str(part) for part in err["loc"]) or "(body)", "reason": err["msg"]}
            for err in exc.errors()
        ]
        summary = "; ".join(f"{f['field']}: {f['reason']}" for f in fields)
        raise ApiError(400, "validation_error", f"Invalid request: {summary}", fields=fields) from None
