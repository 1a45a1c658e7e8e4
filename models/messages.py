"""The canonical input of a call: a conversation of messages, with `prompt`/`system` as shorthand for it.

Each provider maps the list natively (Gemini `contents` + `system_instruction`, OpenAI-compatible
`messages`, the local model through its GGUF chat template).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from core.errors import InvalidInputError, validation_fields
from models.params import GenerationParams

Role = Literal["system", "user", "assistant"]
MAX_MESSAGES = 1000


class Message(BaseModel):
    """One turn of a conversation (text content)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    role: Role
    content: str = Field(max_length=10_000_000)


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
        parts = [m.content for m in self.messages if m.role == "system"]
        return "\n\n".join(parts) if parts else None

    @property
    def turns(self) -> tuple[Message, ...]:
        """The conversation without its system messages."""
        return tuple(m for m in self.messages if m.role != "system")

    @property
    def prompt(self) -> str:
        """The last user message: the question this call answers."""
        return next((m.content for m in reversed(self.messages) if m.role == "user"), "")

    @property
    def max_tokens(self) -> int | None:
        return self.params.max_tokens

    @property
    def temperature(self) -> float | None:
        return self.params.temperature

    def text_bytes(self) -> int:
        """UTF-8 bytes of every message's content: the basis of the local token bound."""
        return sum(len(m.content.encode("utf-8")) for m in self.messages)

    def as_dicts(self) -> list[dict[str, str]]:
        return [{"role": m.role, "content": m.content} for m in self.messages]


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
