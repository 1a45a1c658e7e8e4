"""Generation endpoints: list models, generate (plain or server-sent events), read the request log."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Literal

from flask import Blueprint, Response, g, jsonify, stream_with_context
from pydantic import BaseModel, ConfigDict, Field

from api.validation import parse_body, parse_query
from api.wiring import services
from models.base_model import StreamResponse
from models.errors import ModelError

bp = Blueprint("generate", __name__, url_prefix="/api")


class GenerateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(min_length=1)
    model: str | None = None
    system: str | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    max_tokens: int | None = Field(default=None, ge=1, le=1_000_000)
    stream: bool = False
    user_id: str | None = Field(default=None, max_length=200)
    tags: list[str] | None = Field(default=None, max_length=50)


class RequestsQuery(BaseModel):
    limit: int = Field(default=100, ge=1, le=1000)
    model: str | None = None
    status: Literal["success", "error", "rejected", "cancelled", "pending"] | None = None
    source: str | None = None
    user_id: str | None = None


@bp.get("/models")
def list_models():  # noqa: ANN201
    registry = services().registry
    details = registry.describe()
    return jsonify({
        "models": [d["name"] for d in details], "count": len(details),
        "default": registry.default_model_name, "details": details,
    })


@bp.post("/generate")
def generate():  # noqa: ANN201
    body = parse_body(GenerateRequest)
    model = services().registry.get_model(body.model)
    kwargs = dict(
        system=body.system, temperature=body.temperature, max_tokens=body.max_tokens,
        user_id=body.user_id, tags=body.tags, source="api", api_key_id=g.get("api_key_id"),
    )
    if body.stream:
        stream = model.generate_stream(body.prompt, **kwargs)
        return Response(stream_with_context(_sse(stream)), mimetype="text/event-stream",
                        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
    result = model.generate(body.prompt, **kwargs)
    return jsonify({"status": "success", **result.to_dict()})


def _sse(stream: StreamResponse) -> Iterator[str]:
    """One `data: {"delta"}` event per chunk, then `{"done": true, ...result}` or `{"error": ...}`."""
    try:
        for chunk in stream:
            yield _event({"delta": chunk})
        yield _event({"done": True, "status": "success", **stream.result.to_dict()})
    except ModelError as exc:
        yield _event({"done": True, "status": "error",
                      "error": {"code": exc.code, "message": exc.message}})
    finally:
        stream.close()


def _event(payload: dict) -> str:
    return f"data: {json.dumps(payload)}\n\n"


@bp.get("/requests")
def list_requests():  # noqa: ANN201
    query = parse_query(RequestsQuery)
    rows = services().request_log.list(
        query.limit, model=query.model, status=query.status, source=query.source, user_id=query.user_id
    )
    return jsonify({"requests": rows, "count": len(rows)})
