"""The playground: try a model, or several side by side, on a system prompt and a message.

The page sends one POST per model, all at once, and each answer streams into its own column. A try runs on the
managed call path with source `api`, so it is budgeted, keyed (the signed-in admin key) and recorded in the request
log like any call; its tag `playground` tells it apart.

The stream is server-sent events: `chunk` {text} per text delta, then either `done` {request_id, model, tokens,
cost, latency, finish_reason} or, when the provider fails mid-answer, `error` {code, message}. A refusal before the
first chunk (an unknown model, an invalid parameter, a budget) is a JSON error with its HTTP status instead.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from flask import Response, render_template, request, session, stream_with_context
from pydantic import BaseModel, ConfigDict, Field

from api.dashboard import bp, page
from api.services import services
from core.errors import AppError
from models.base_model import StreamResponse
from models.messages import MAX_CONTENT, GenerationRequest
from models.params import CallContext, GenerationParams, MaxTokens, Temperature

PLAYGROUND_TAG = "playground"

page("playground", "Playground")


class PlaygroundRequest(BaseModel):
    """One column's call: the page's form, for one of the models picked."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1, max_length=200)
    system: str = Field(default="", max_length=100_000)
    message: str = Field(min_length=1, max_length=MAX_CONTENT)
    max_tokens: MaxTokens | None = None
    temperature: Temperature | None = None

    def generation(self) -> GenerationRequest:
        params = GenerationParams(max_tokens=self.max_tokens, temperature=self.temperature)
        return GenerationRequest.build(self.message, system=self.system or None, params=params, stream=True)


@bp.get("/playground")
def playground() -> str:
    """The form; only models that chat are offered."""
    registry = services().registry
    models = sorted(name for name, model in registry.models.items() if model.capabilities.chat)
    return render_template("dashboard/playground.html", models=models, default_model=registry.default_model_name)


@bp.post("/playground/stream")
def playground_stream() -> Response:
    """Stream one model's answer; the first chunk is awaited first, so an early refusal is still an HTTP error."""
    body = PlaygroundRequest.model_validate(request.get_json(silent=True) or {})
    model = services().registry.require_model(body.model)
    generation = body.generation()
    model.check_context(generation)
    context = CallContext(source="api", api_key_id=session.get("dashboard_key_id"), tags=(PLAYGROUND_TAG,))
    stream = model.run(generation, context)
    texts = stream.start()
    return Response(stream_with_context(_events(stream, texts)), mimetype="text/event-stream",
                    headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def _events(stream: StreamResponse, texts: Iterator[str]) -> Iterator[str]:
    """Each text delta, then the call's figures; a failure after the first chunk ends with an `error` event."""
    try:
        for text in texts:
            yield _event("chunk", {"text": text})
        result = stream.result
        yield _event("done", {"request_id": result.request_id, "model": result.model, "tokens": result.tokens,
                              "cost": result.cost, "latency": result.latency, "finish_reason": result.finish_reason})
    except AppError as error:
        yield _event("error", {"code": error.code, "message": error.message})
    finally:
        stream.close()


def _event(name: str, payload: dict[str, Any]) -> str:
    return f"event: {name}\ndata: {json.dumps(payload)}\n\n"
