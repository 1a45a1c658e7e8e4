"""The OpenAI-compatible gateway: `/v1/chat/completions` and `/v1/models` on the managed call path.

Any OpenAI SDK pointed at `<service>/v1` gets our recording, budgets, keys and experiments unchanged.
Response headers: `X-Request-ID` (the call's request id unless the client sent its own), `X-Model` (the
model that answered; for a group, the deployment, with `X-Group`, `X-Attempts` and `X-Degraded`), `X-Cache`
(`hit` when the response cache answered, else `miss`; `Cache-Control: no-cache` / `no-store` on the request skip
reading / writing it),
`X-Cost-USD` (the call's cost, when known) and `X-Gateway-Overhead-Ms` (time spent here outside the call:
parsing, auth, validation, recording, serialization). Streams carry `X-Model` and `X-Cache` only:
their cost and timing are known at the end, in the usage chunk and the request log.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

from flask import Response, g, jsonify, request, stream_with_context
from pydantic import BaseModel, Field

from ab_testing.traffic_router import ServedCall
from api.chat_schema import ChatCompletionRequest, ChunkWriter, completion, finish_reason
from api.openai_errors import openai_error_body
from api.openapi import ApiBlueprint, json_object
from api.request_tags import request_tags
from api.rollouts import routed_model
from api.services import services
from api.tenancy import tenant
from core.errors import AppError, InvalidInputError
from models.call_path import new_request_id
from models.messages import GenerationRequest
from models.params import CacheMode, CallContext
from models.results import GenerationResult

bp = ApiBlueprint("gateway", __name__, url_prefix="/v1")


class ModelList(BaseModel):
    object: str = "list"
    data: list[dict[str, Any]] = Field(description="{id, object: model, created, owned_by}")


@bp.get("/models", responses={200: ModelList})
def list_models() -> Response:
    """Every registered model, in OpenAI's list format."""
    registry = services().registry
    data = [{"id": name, "object": "model", "created": 0, "owned_by": registry.require_model(name).provider}
            for name in registry.list_models()]
    return jsonify({"object": "list", "data": data})


@bp.post("/chat/completions", responses={200: json_object("A chat.completion object, or chat.completion.chunk "
                                                          "server-sent events with `stream: true`")})
def chat_completions(body: ChatCompletionRequest) -> Response:
    """Chat completions in OpenAI's schema; `model` may be a model, an alias or `experiment:<name>`.

    `prompt_ref` (our extension, `extra_body` in the OpenAI SDK) names a registry prompt instead of `messages`.
    """
    context = _context(body)
    call = _start(body, GenerationRequest(tuple(body.messages or ()), body.only_generation(), body.stream), context)
    if body.stream:
        include_usage = body.stream_options is not None and body.stream_options.include_usage
        return _stream_response(call, include_usage=include_usage)
    result = call.finish()
    response = jsonify(completion(result, int(time.time())))
    _headers(response, result)
    return response


def _context(body: ChatCompletionRequest) -> CallContext:
    """Whom the call is for: the key, `user`, and the tags of `metadata.tags`, `X-Tags` and the key; and what it may
    do with the response cache, from `Cache-Control`."""
    request_id = g.request_id if g.get("request_id_ours") else new_request_id()
    return CallContext(source="api", user_id=body.user, api_key_id=g.get("api_key_id"),
                       tags=request_tags(body.metadata_tags()), request_id=request_id,
                       cache=cache_mode(request.headers.get("Cache-Control", "")))


def cache_mode(cache_control: str) -> CacheMode | None:
    """`no-cache`: don't answer from the cache; `no-store`: don't keep the answer; both: neither."""
    directives = {part.strip().lower() for part in cache_control.split(",")}
    no_read, no_write = "no-cache" in directives, "no-store" in directives
    if no_read and no_write:
        return "off"
    return "write" if no_read else "read" if no_write else None


def _start(body: ChatCompletionRequest, request: GenerationRequest, context: CallContext) -> ServedCall:
    """The call on its model, or on the user's variant of `experiment:<name>` (which renders `prompt_ref`)."""
    if body.experiment is None:
        model, context = routed_model(body.model, context)
        if body.prompt_ref is not None:
            request, context = services().prompts.apply(body.prompt_ref, request, context)
        model.check_context(request)  # a 400 now: once events flow, the status is 200
        return ServedCall.plain(model.name, context.request_id or "", model.run(request, context))
    router = services().traffic_router
    experiment_id = router.find_running(body.experiment, owner=tenant())
    user = context.user_id or context.api_key_id
    if user is None:
        raise InvalidInputError.single("user", "an experiment assigns by `user` (or by API key): give `user`")
    return router.start(experiment_id, user, request, context, body.prompt_ref)


def _stream_response(call: ServedCall, *, include_usage: bool) -> Response:
    """Server-sent chunks; the first text is awaited before answering, so a refusal (budget, key limits, a
    provider failing at once) is still an HTTP error rather than an event after a 200."""
    try:
        texts = call.stream.start()
    except AppError as error:
        call.record_failure(error)
        raise
    model = call.stream.served_by or call.model  # a group's deployment is known once the stream has started
    writer = ChunkWriter(call.request_id, model)
    response = Response(stream_with_context(_events(call, texts, writer, include_usage)),
                        mimetype="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
    response.headers["X-Model"] = model
    response.headers["X-Cache"] = "hit" if call.stream.from_cache else "miss"
    return response


def _events(call: ServedCall, texts: Iterator[str], writer: ChunkWriter, include_usage: bool) -> Iterator[str]:
    """The role, each text delta, the tool calls, the finish reason, the usage if asked, then [DONE].

    A failure after the first event ends the stream with an in-band error event, never a clean [DONE].
    """
    try:
        yield _event(writer.delta({"role": "assistant", "content": ""}))
        for text in texts:
            yield _event(writer.delta({"content": text}))
        result = call.finish()
        if result.tool_calls:
            calls = [{"index": index, **tool_call} for index, tool_call in enumerate(result.tool_calls)]
            yield _event(writer.delta({"tool_calls": calls}))
        yield _event(writer.delta({}, finish_reason(result)))
        if include_usage:
            yield _event(writer.usage(result))
        yield "data: [DONE]\n\n"
    except AppError as error:
        call.record_failure(error)
        yield _event(openai_error_body(error))
    finally:
        call.stream.close()


def _event(payload: dict[str, Any]) -> str:
    return f"data: {json.dumps(payload)}\n\n"


def _headers(response: Response, result: GenerationResult) -> None:
    response.headers["X-Model"] = result.model
    response.headers["X-Cache"] = "hit" if result.cache else "miss"
    if result.group is not None:
        response.headers["X-Group"] = result.group
        response.headers["X-Attempts"] = str(result.attempts)
        response.headers["X-Degraded"] = "true" if result.degraded else "false"
    if result.cost is not None:
        response.headers["X-Cost-USD"] = f"{result.cost:.10f}"
    elapsed_ms = (time.perf_counter() - g.started) * 1000
    response.headers["X-Gateway-Overhead-Ms"] = f"{max(elapsed_ms - result.latency * 1000, 0.0):.3f}"
