"""Prompt and answer text in the GenAI conventions' JSON shapes, for spans that opted in to content capture.

Only text, tool calls and tool answers are kept; images are left out (their bytes, or URLs that may be signed,
are not the trace's business).
"""

from __future__ import annotations

import json
from typing import Any

from opentelemetry.semconv._incubating.attributes.gen_ai_attributes import (
    GEN_AI_INPUT_MESSAGES,
    GEN_AI_OUTPUT_MESSAGES,
    GEN_AI_SYSTEM_INSTRUCTIONS,
)

from models.messages import GenerationRequest, Message
from models.results import GenerationResult


def content_attributes(request: GenerationRequest, result: GenerationResult) -> dict[str, str]:
    """`gen_ai.system_instructions`, `gen_ai.input.messages` and `gen_ai.output.messages`, JSON-encoded."""
    system = [{"type": "text", "content": m.text} for m in request.messages if m.role == "system"]
    conversation = [_message(m) for m in request.messages if m.role != "system"]
    attributes = {GEN_AI_INPUT_MESSAGES: _json(conversation)}
    if system:
        attributes[GEN_AI_SYSTEM_INSTRUCTIONS] = _json(system)
    if result.success:
        attributes[GEN_AI_OUTPUT_MESSAGES] = _json([_answer(result)])
    return attributes


def _message(message: Message) -> dict[str, Any]:
    if message.role == "tool":
        return {"role": "tool", "parts": [{"type": "tool_call_response", "id": message.tool_call_id,
                                           "response": message.text}]}
    parts: list[dict[str, Any]] = [{"type": "text", "content": message.content}] if message.content else []
    parts += [_tool_call(call.id, call.function.name, call.function.arguments) for call in message.tool_calls or ()]
    return {"role": message.role, "parts": parts}


def _answer(result: GenerationResult) -> dict[str, Any]:
    parts: list[dict[str, Any]] = [{"type": "text", "content": result.response}] if result.response else []
    parts += [_tool_call(call["id"], call["function"]["name"], call["function"]["arguments"])
              for call in result.tool_calls or ()]
    return {"role": "assistant", "parts": parts, "finish_reason": result.finish_reason or "stop"}


def _tool_call(call_id: str, name: str, arguments: str) -> dict[str, Any]:
    try:
        parsed: Any = json.loads(arguments)
    except ValueError:  # a model's malformed arguments are kept as it sent them
        parsed = arguments
    return {"type": "tool_call", "id": call_id, "name": name, "arguments": parsed}


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
