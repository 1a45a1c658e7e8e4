"""Our conversation and parameters as Anthropic's Messages API body, and its answer's content back as ours.

System messages go to `system`; an assistant's tool calls become `tool_use` blocks and `tool` messages
`tool_result` blocks of a user turn (consecutive turns of one role are merged, as the API would merge them);
OpenAI-shaped tools become `{name, description, input_schema}` and `tool_choice` Anthropic's `auto`/`any`/
`none`/`tool`.
"""

from __future__ import annotations

import json
from typing import Any

from core.errors import InvalidInputError
from models.images import ImagePart
from models.messages import GenerationRequest, Message
from models.params import GenerationParams, NamedToolChoice, ToolSpec

# Generation parameters -> Messages API fields (`max_tokens` is set apart: the API requires it). The API of
# SDK 2.x takes no sampling parameters (temperature, top_p, top_k): they are refused, never silently dropped.
PARAM_FIELDS = {"stop": "stop_sequences"}
TOOL_CHOICES = {"auto": "auto", "required": "any", "none": "none"}
# stop_reason -> finish_reason; others (`pause_turn`) are kept as Anthropic names them.
FINISH_REASONS = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length", "tool_use": "tool_calls",
                  "model_context_window_exceeded": "length", "refusal": "content_filter"}
EMPTY_SCHEMA: dict[str, Any] = {"type": "object", "properties": {}}


def message_body(request: GenerationRequest, *, model: str, max_tokens: int) -> dict[str, Any]:
    """The `messages.create` arguments for `request`; `max_tokens` when the request sets none."""
    params = request.params
    body: dict[str, Any] = {"model": model, "max_tokens": params.max_tokens or max_tokens,
                            "messages": _turns(request)}
    if request.system:
        body["system"] = request.system
    body.update({field: value for name, field in PARAM_FIELDS.items()
                 if (value := getattr(params, name)) is not None})
    body.update(_tool_fields(params))
    return body


def finish_reason(stop_reason: str | None) -> str | None:
    return FINISH_REASONS.get(stop_reason, stop_reason) if stop_reason else None


def tool_call(block_id: str, name: str, arguments: str) -> dict[str, Any]:
    """A `tool_use` block as the tool call we record (OpenAI's shape, arguments as JSON text)."""
    return {"id": block_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def _turns(request: GenerationRequest) -> list[dict[str, Any]]:
    turns: list[dict[str, Any]] = []
    for message in request.turns:
        role = "assistant" if message.role == "assistant" else "user"  # a tool's answer is a user turn
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(_blocks(message))
        else:
            turns.append({"role": role, "content": _blocks(message)})
    return turns


def _blocks(message: Message) -> list[dict[str, Any]]:
    if message.role == "tool":
        return [{"type": "tool_result", "tool_use_id": message.tool_call_id, "content": message.text}]
    blocks: list[dict[str, Any]] = [{"type": "text", "text": message.text}] if message.text else []
    blocks.extend(_image_block(image) for image in message.images or ())
    for index, call in enumerate(message.tool_calls or ()):
        blocks.append({"type": "tool_use", "id": call.id, "name": call.function.name,
                       "input": _arguments(call.function.arguments, index)})
    return blocks


def _image_block(image: ImagePart) -> dict[str, Any]:
    """Inline bytes as a base64 source; an https image as a URL source, which Anthropic fetches itself."""
    if image.inline:
        return {"type": "image", "source": {"type": "base64", "media_type": image.media_type,
                                            "data": image.base64_data}}
    return {"type": "image", "source": {"type": "url", "url": image.url}}


def _arguments(text: str, index: int) -> dict[str, Any]:
    """A tool call's JSON arguments as the object `tool_use.input` must be."""
    try:
        value = json.loads(text or "{}")
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise InvalidInputError.single(f"tool_calls.{index}.function.arguments",
                                       "Anthropic takes a tool call's arguments as a JSON object")
    return value


def _tool_fields(params: GenerationParams) -> dict[str, Any]:
    if not params.tools:
        return {}
    fields: dict[str, Any] = {"tools": [_tool(tool) for tool in params.tools]}
    choice = params.tool_choice
    if isinstance(choice, NamedToolChoice):
        fields["tool_choice"] = {"type": "tool", "name": choice.function.name}
    elif choice is not None:
        fields["tool_choice"] = {"type": TOOL_CHOICES[choice]}
    return fields


def _tool(tool: ToolSpec) -> dict[str, Any]:
    function = tool.function
    spec: dict[str, Any] = {"name": function.name, "input_schema": function.parameters or EMPTY_SCHEMA}
    if function.description:
        spec["description"] = function.description
    return spec
