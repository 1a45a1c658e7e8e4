"""The canonical input of a call: a conversation of messages, with `prompt`/`system` as shorthand for it.

Each provider maps the list natively (Gemini `contents` + `system_instruction`, OpenAI-compatible
`messages`, the local model through its GGUF chat template).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from core.errors import InvalidInputError, validation_fields
from models.params import GenerationParams

Role = Literal["system", "user", "assistant", "tool"]
MAX_MESSAGES = 1000
MAX_CONTENT = 10_000_000


class FunctionCall(BaseModel):
    """The function a model asked to call, with its arguments as a JSON text (OpenAI's shape)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=200)
    arguments: str = Field(default="{}", max_length=MAX_CONTENT)


class ToolCall(BaseModel):
    """One tool call of an assistant turn; a later `tool` message answers it by `id`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1, max_length=200)
    type: Literal["function"] = "function"
    function: FunctionCall


class Message(BaseModel):
    """One turn of a conversation: text, an assistant's tool calls, or a tool's answer to one of them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    role: Role
    content: str | None = Field(default=None, max_length=MAX_CONTENT)
    tool_calls: tuple[ToolCall, ...] | None = Field(default=None, max_length=128)
    tool_call_id: str | None = Field(default=None, min_length=1, max_length=200)

    @field_validator("content", mode="before")
    @classmethod
    def _text_parts(cls, value: object) -> object:
        """OpenAI's content parts: the text parts, joined; any other kind of part is refused by name."""
        if not isinstance(value, list):
            return value
        texts = []
        for part in value:
            if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                kind = part.get("type") if isinstance(part, dict) else type(part).__name__
                raise ValueError(f"only text content parts are supported, not {kind!r}")
            texts.append(part["text"])
        return "".join(texts)

    @model_validator(mode="after")
    def _shape_of_the_role(self) -> Message:
        if self.role == "tool" and (self.tool_call_id is None or self.content is None):
            raise ValueError("a tool message needs `tool_call_id` and `content`")
        if self.role != "tool" and self.tool_call_id is not None:
            raise ValueError("`tool_call_id` belongs to tool messages")
        if self.tool_calls and self.role != "assistant":
            raise ValueError("`tool_calls` belong to assistant messages")
        if self.content is None and not (self.role == "assistant" and self.tool_calls):
            raise ValueError("`content` is required (an assistant turn may have `tool_calls` instead)")
        return self

    @property
    def text(self) -> str:
        return self.content or ""

    def as_dict(self) -> dict[str, Any]:
        """The chat-completions form: only the fields that are set."""
        return self.model_dump(exclude_none=True)


@dataclass(frozen=True)
class GenerationRequest:
    """What a provider receives: the conversation, the parameters, and whether to stream."""

    messages: tuple[Message, ...]
    params: GenerationParams = field(default_factory=GenerationParams)
    stream: bool = False

    @classmethod
    def build(cls, prompt: str | None = None, *, messages: Sequence[Message | dict[str, Any]] | None = None,
              system: str | None = None, params: GenerationParams | None = None,
              stream: bool = False) -> GenerationRequest:
        """From exactly one of `prompt` or `messages`; `system` becomes a leading system message."""
        if (prompt is None) == (messages is None):
            raise InvalidInputError.single("prompt", "give exactly one of `prompt` or `messages`")
        if messages is None:
            conversation: list[Message] = [Message(role="user", content=prompt or "")]
        else:
            conversation = parse_messages(messages)
        if system is not None:
            conversation.insert(0, Message(role="system", content=system))
        return cls(tuple(conversation), params or GenerationParams(), stream)

    @property
    def system(self) -> str | None:
        """Every system message, joined: what providers with one system instruction receive."""
        parts = [m.text for m in self.messages if m.role == "system"]
        return "\n\n".join(parts) if parts else None

    @property
    def turns(self) -> tuple[Message, ...]:
        """The conversation without its system messages."""
        return tuple(m for m in self.messages if m.role != "system")

    @property
    def prompt(self) -> str:
        """The last user message: the question this call answers."""
        return next((m.text for m in reversed(self.messages) if m.role == "user"), "")

    @property
    def max_tokens(self) -> int | None:
        return self.params.max_tokens

    @property
    def temperature(self) -> float | None:
        return self.params.temperature

    @property
    def uses_tools(self) -> bool:
        """Whether the conversation holds tool calls or tool answers (only tool-capable models can read it)."""
        return any(m.tool_calls or m.role == "tool" for m in self.messages)

    def text_bytes(self) -> int:
        """UTF-8 bytes of the conversation (contents and tool-call arguments): the basis of the input bound."""
        return sum(len(m.text.encode("utf-8")) + sum(len(c.function.arguments.encode("utf-8")) + len(c.function.name)
                                                       for c in m.tool_calls or ()) for m in self.messages)

    def as_dicts(self) -> list[dict[str, Any]]:
        """The conversation in the chat-completions form."""
        return [m.as_dict() for m in self.messages]


def parse_messages(messages: Sequence[Message | dict[str, Any]], *, field_name: str = "messages") -> list[Message]:
    """Validate a conversation: at least one user or assistant message; raises `InvalidInputError` naming it."""
    if isinstance(messages, str | bytes) or not 1 <= len(messages) <= MAX_MESSAGES:
        raise InvalidInputError.single(field_name, f"give a list of 1 to {MAX_MESSAGES} messages")
    parsed = []
    for index, message in enumerate(messages):
        try:
            parsed.append(message if isinstance(message, Message) else Message.model_validate(message))
        except ValidationError as exc:
            raise InvalidInputError(validation_fields(exc, f"{field_name}.{index}.")) from None
    if all(m.role == "system" for m in parsed):
        raise InvalidInputError.single(field_name, "the conversation needs a user or assistant message")
    return parsed
