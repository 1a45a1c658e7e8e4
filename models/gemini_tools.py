"""Tool use on Gemini: OpenAI-shaped tools and tool turns as function declarations, calls and responses.

Gemini has no tool-call ids of its own on every model: a call without one gets `call_<n>`, and a tool message
is matched back to its function by the id the assistant turn gave it.
"""

from __future__ import annotations

import json
from typing import Any

from google.genai import types

from models.images import ImagePart
from models.messages import GenerationRequest, Message
from models.params import GenerationParams, NamedToolChoice
from models.results import Usage

ROLES = {"user": "user", "assistant": "model", "tool": "user"}
Mode = types.FunctionCallingConfigMode
MODES = {"auto": Mode.AUTO, "required": Mode.ANY, "none": Mode.NONE}


def tool_config_fields(params: GenerationParams) -> dict[str, Any]:
    """GenerateContentConfig fields for `tools` and `tool_choice`."""
    if not params.tools:
        return {}
    declarations = [types.FunctionDeclaration(name=tool.function.name, description=tool.function.description,
                                              parameters_json_schema=tool.function.parameters)
                    for tool in params.tools]
    fields: dict[str, Any] = {"tools": [types.Tool(function_declarations=declarations)]}
    choice = params.tool_choice
    if isinstance(choice, NamedToolChoice):
        calling = types.FunctionCallingConfig(mode=Mode.ANY, allowed_function_names=[choice.function.name])
        fields["tool_config"] = types.ToolConfig(function_calling_config=calling)
    elif choice is not None:
        fields["tool_config"] = types.ToolConfig(function_calling_config=types.FunctionCallingConfig(
            mode=MODES[choice]))
    return fields


def contents(request: GenerationRequest) -> list[types.Content]:
    """The conversation as Gemini turns; system messages go to the system instruction instead."""
    names = {call.id: call.function.name for m in request.messages for call in m.tool_calls or ()}
    return [types.Content(role=ROLES[m.role], parts=_parts(m, names)) for m in request.turns]


def _parts(message: Message, names: dict[str, str]) -> list[types.Part]:
    if message.role == "tool":
        response = types.FunctionResponse(id=message.tool_call_id, name=names.get(message.tool_call_id or "", ""),
                                          response=_as_object(message.text))
        return [types.Part(function_response=response)]
    parts = [types.Part(text=message.content)] if message.content else []
    parts.extend(_image_part(image) for image in message.images or ())
    for call in message.tool_calls or ():
        parts.append(types.Part(function_call=types.FunctionCall(
            id=call.id, name=call.function.name, args=_as_object(call.function.arguments))))
    return parts


def _image_part(image: ImagePart) -> types.Part:
    """Inline bytes as `inline_data`; an https image as `file_data`, which Gemini fetches itself."""
    if image.inline:
        return types.Part(inline_data=types.Blob(mime_type=image.media_type, data=image.data))
    return types.Part(file_data=types.FileData(file_uri=image.url, mime_type=image.media_type))


def _as_object(text: str) -> dict[str, Any]:
    """Gemini takes objects where OpenAI sends JSON text: an object as itself, anything else as `result`."""
    try:
        value = json.loads(text)
    except ValueError:
        return {"result": text}
    return value if isinstance(value, dict) else {"result": value}


def read_function_calls(response: types.GenerateContentResponse, usage: Usage) -> None:
    """Add the function calls of a response (or stream chunk) to `usage`, in OpenAI's shape."""
    if not response.candidates or not response.candidates[0].content:
        return
    for part in response.candidates[0].content.parts or ():
        call = part.function_call
        if call is None:
            continue
        calls = usage.tool_calls = usage.tool_calls or []
        calls.append({"id": call.id or f"call_{len(calls)}", "type": "function",
                      "function": {"name": call.name or "", "arguments": json.dumps(call.args or {})}})
    if usage.tool_calls:
        usage.finish_reason = "tool_calls"
