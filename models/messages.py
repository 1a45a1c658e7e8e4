"""The canonical input of a call: a conversation of messages, with `prompt`/`system` as shorthand for it.

Each provider maps the list natively (Gemini `contents` + `system_instruction`, OpenAI-compatible
`messages`, the local model through its GGUF chat template).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from core.errors import InvalidInputError, validation_fields
from models.images import ImagePart, image_url_of
from models.params import GenerationParams

Role = Literal["system", "user", "assistant", "tool"]
MAX_MESSAGES = 1000
MAX_CONTENT = 10_000_000
MAX_IMAGES = 100  # per message


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
    """One turn of a conversation: text (and, from a user, images), an assistant's tool calls, or a tool's answer
    to one of them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    role: Role
    content: str | None = Field(default=None, max_length=MAX_CONTENT)
    images: tuple[ImagePart, ...] | None = Field(default=None, max_length=MAX_IMAGES)
    tool_calls: tuple[ToolCall, ...] | None = Field(default=None, max_length=128)
    tool_call_id: str | None = Field(default=None, min_length=1, max_length=200)

    @model_validator(mode="before")
    @classmethod
    def _content_parts(cls, value: object) -> object:
        """OpenAI's content parts: the text parts, joined, and the `image_url` parts as `images` (after the text,
        whatever their place among the parts); any other kind of part is refused by name."""
        if not isinstance(value, dict) or not isinstance(value.get("content"), list):
            return value
        texts, images = [], []
        for part in value["content"]:
            kind = part.get("type") if isinstance(part, dict) else type(part).__name__
            if kind == "text" and isinstance(part.get("text"), str):
                texts.append(part["text"])
            elif kind == "image_url":
                images.append({"url": image_url_of(part)})  # validated as `images.N.url`
            else:
                raise ValueError(f"only text and image_url content parts are supported, not {kind!r}")
        return {**value, "content": "".join(texts), **({"images": images} if images else {})}

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
        if self.images and self.role != "user":
            raise ValueError("images belong to user messages")
        return self

    @property
    def text(self) -> str:
        return self.content or ""

    def as_dict(self) -> dict[str, Any]:
        """The chat-completions form: only the fields that are set; with images, the content as parts."""
        shape = self.model_dump(exclude_none=True, exclude={"images"})
        if self.images:
            shape["content"] = [{"type": "text", "text": self.text}, *(image.as_part() for image in self.images)]
        return shape


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
    def images(self) -> tuple[ImagePart, ...]:
        """Every image of the conversation, in order."""
        return tuple(image for m in self.messages for image in m.images or ())

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
