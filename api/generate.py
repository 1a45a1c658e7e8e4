"""Generation endpoints: list models, generate (plain or server-sent events), read the request log."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, Literal

from flask import Response, g, jsonify, stream_with_context
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from api.openapi import ApiBlueprint, OpenApiConfigDict, event_stream
from api.request_tags import request_tags
from api.rollouts import routed_model
from api.services import services
from api.tenancy import tenant
from core.errors import AppError
from models.base_model import StreamResponse
from models.messages import MAX_MESSAGES, GenerationRequest, Message
from models.params import MAX_TAGS, CacheMode, CallContext, GenerationParams, Tag, UserId
from models.prompts.spec import PromptRef

bp = ApiBlueprint("generate", __name__, url_prefix="/api")


class GenerateRequest(GenerationParams):
    """A `prompt` (with an optional `system`), a `messages` conversation or a registry `prompt_ref`, plus any
    generation parameter."""

    model_config = OpenApiConfigDict(extra="forbid", openapi_extra={
        "example": {"prompt": "Say hello in French.", "max_tokens": 32, "temperature": 0.2},
    })

    messages: list[Message] | None = Field(default=None, min_length=1, max_length=MAX_MESSAGES)
    prompt_ref: PromptRef | None = Field(default=None, description="A registry prompt version and its variables")
    prompt: str | None = Field(default=None, min_length=1, validate_default=True)
    model: str | None = Field(default=None, max_length=200)
    system: str | None = None
    stream: bool = False
    user_id: UserId | None = None
    tags: list[Tag] | None = Field(default=None, max_length=MAX_TAGS)
    cache: CacheMode | None = Field(default=None, description="on (the model's cache policy), off, read or write")
    cache_ttl: int | None = Field(default=None, ge=1, le=365 * 86_400, description="Seconds to keep this answer")

    @field_validator("prompt")
    @classmethod
    def _prompt_or_messages(cls, prompt: str | None, info: ValidationInfo) -> str | None:
        if [prompt, info.data.get("messages"), info.data.get("prompt_ref")].count(None) != 2:
            raise ValueError("give exactly one of `prompt`, `messages` or `prompt_ref`")
        return prompt


class StreamEvent(BaseModel):
    """The `data` of one server-sent event: a `delta`, or last `done: true` with the result or an `error`."""

    model_config = ConfigDict(extra="allow")

    delta: str | None = None
    done: bool | None = None
    status: Literal["success", "error"] | None = None
    error: dict[str, str] | None = Field(default=None, description="code and message")


class GenerateResponse(BaseModel):
    """One recorded call; with `stream: true` the answer is server-sent events instead."""

    model_config = OpenApiConfigDict(openapi_extra={"content": event_stream(StreamEvent)})

    status: str
    response: str
    model: str
    provider: str
    request_id: str
    source: str
    input_tokens: int | None
    output_tokens: int | None
    thinking_tokens: int
    cached_tokens: int
    tokens: int | None
    latency: float
    ttft: float | None
    cost: float | None
    finish_reason: str | None
    error_type: str | None
    error_message: str | None
    cache: str | None = Field(description="exact when the response cache answered")
    cost_saved: float | None = Field(description="A cache hit: what the original call cost (the hit costs 0)")


class ModelsResponse(BaseModel):
    models: list[str]
    count: int
    default: str | None
    details: list[dict[str, Any]] = Field(description="Provider, capabilities, context window, pricing, aliases")


class RequestsResponse(BaseModel):
    requests: list[dict[str, Any]]
    count: int


class RequestsQuery(BaseModel):
    limit: int = Field(default=100, ge=1, le=1000)
    model: str | None = None
    status: Literal["success", "error", "rejected", "cancelled", "pending"] | None = None
    source: str | None = None
    user_id: str | None = None
    client_request_id: str | None = Field(default=None, max_length=36,
                                          description="A group's attempts for one client request")


@bp.get("/models", responses={200: ModelsResponse})
def list_models() -> Response:
    """Registered models with their aliases, capabilities and prices."""
    registry = services().registry
    details = registry.describe()
    return jsonify({
        "models": [d["name"] for d in details], "count": len(details),
        "default": registry.default_model_name, "details": details,
    })


@bp.post("/generate", responses={200: GenerateResponse})
def generate(body: GenerateRequest) -> Response:
    """Generate with one model (the default when `model` is omitted); `stream: true` answers server-sent events.

    The call's tags are the body's `tags`, the `X-Tags` header's (comma-separated) and the key's `metadata.tags`.
    """
    user = body.user_id or g.get("api_key_id")  # whom a prompt rollout splits by
    rendered = services().prompts.render(body.prompt_ref, user=user) if body.prompt_ref is not None else None
    request = GenerationRequest.build(body.prompt, messages=rendered.messages if rendered else body.messages,
                                      system=body.system, params=body.only_generation(), stream=body.stream)
    model, context = routed_model(body.model, CallContext(
        source="api", user_id=body.user_id, tags=request_tags(body.tags), api_key_id=g.get("api_key_id"),
        cache=body.cache, cache_ttl=body.cache_ttl))
    if rendered is not None:
        context = rendered.on(context)
    if body.stream:
        model.check_context(request)  # a 400 now: once events flow, the status is 200
        stream = model.run(request, context)
        texts = stream.start()  # a refusal is an HTTP error, not an event after a 200
        return Response(stream_with_context(_sse(stream, texts)), mimetype="text/event-stream",
                        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
    result = model.run(request, context).result
    return jsonify({"status": "success", **result.to_dict()})


def _sse(stream: StreamResponse, texts: Iterator[str]) -> Iterator[str]:
    """One `data: {"delta"}` event per chunk, then `{"done": true, ...result}` or `{"error": ...}`."""
    try:
        for chunk in texts:
            yield _event({"delta": chunk})
        yield _event({"done": True, "status": "success", **stream.result.to_dict()})
    except AppError as exc:
        yield _event({"done": True, "status": "error",
                      "error": {"code": exc.code, "message": exc.message}})
    finally:
        stream.close()


def _event(payload: dict) -> str:
    return f"data: {json.dumps(payload)}\n\n"


@bp.get("/requests", responses={200: RequestsResponse})
def list_requests(query: RequestsQuery) -> Response:
    """The newest request-log rows, filtered by model, status, source, user or client request id (a group's
    attempts); a managed key sees only its own."""
    rows = services().request_log.list(
        query.limit, model=query.model, status=query.status, source=query.source, user_id=query.user_id,
        api_key_id=tenant(), client_request_id=query.client_request_id,
    )
    return jsonify({"requests": rows, "count": len(rows)})
