"""OpenAI's chat-completions request, validated into our own types, and the response and chunk shapes.

The request is `GenerationParams` plus OpenAI's call fields, so a parameter means the same here as
everywhere else; a field we don't honour is refused by name, never ignored.
"""

from __future__ import annotations

import time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from api.openapi import OpenApiConfigDict
from models.messages import MAX_MESSAGES, Message
from models.params import GenerationParams, MaxTokens, UserId
from models.prompts.spec import PromptRef
from models.results import GenerationResult

EXPERIMENT_PREFIX = "experiment:"
# Finish reasons OpenAI knows; a provider's own (e.g. Gemini's safety) is translated or becomes "stop".
FINISH_REASONS = {"stop": "stop", "length": "length", "tool_calls": "tool_calls", "content_filter": "content_filter",
                  "safety": "content_filter", "blocklist": "content_filter", "prohibited_content": "content_filter",
                  "spii": "content_filter", "recitation": "content_filter"}


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    include_usage: bool = False


class ChatCompletionRequest(GenerationParams):
    """`POST /v1/chat/completions`; `model` may also be `experiment:<name>`.

    Our extension: `prompt_ref` (a registry prompt version and its variables) instead of `messages`; the OpenAI
    SDK sends it with `extra_body={"prompt_ref": {...}}`.
    """

    model_config = OpenApiConfigDict(extra="forbid", openapi_extra={"example": {
        "model": "local", "messages": [{"role": "user", "content": "Say hello"}], "max_tokens": 16}})

    model: str = Field(min_length=1, max_length=300)
    messages: list[Message] | None = Field(default=None, min_length=1, max_length=MAX_MESSAGES)
    prompt_ref: PromptRef | None = None
    max_completion_tokens: MaxTokens | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: int = Field(default=1, strict=True, ge=1)
    user: UserId | None = None
    metadata: dict[str, Any] | None = Field(default=None, max_length=16)

    @field_validator("n")
    @classmethod
    def _one_choice(cls, n: int) -> int:
        if n != 1:
            raise ValueError("only one choice per request is supported (n = 1)")
        return n

    @field_validator("metadata")
    @classmethod
    def _metadata_tags(cls, metadata: dict[str, Any] | None) -> dict[str, Any] | None:
        tags = (metadata or {}).get("tags")
        if tags is not None and not (isinstance(tags, str) or (
                isinstance(tags, list) and all(isinstance(tag, str) for tag in tags))):
            raise ValueError("`tags` must be a string of comma-separated tags or a list of strings")
        return metadata

    @model_validator(mode="after")
    def _messages_or_prompt_ref(self) -> ChatCompletionRequest:
        if (self.messages is None) == (self.prompt_ref is None):
            raise ValueError("give exactly one of `messages` or `prompt_ref`")
        return self

    @model_validator(mode="after")
    def _one_name_for_max_tokens(self) -> ChatCompletionRequest:
        if self.max_completion_tokens is not None:
            if self.max_tokens is not None and self.max_tokens != self.max_completion_tokens:
                raise ValueError("give `max_tokens` or `max_completion_tokens`, not two different values")
            self.max_tokens = self.max_completion_tokens
        return self

    @property
    def experiment(self) -> str | None:
        """The experiment's name when `model` is `experiment:<name>`."""
        return self.model.removeprefix(EXPERIMENT_PREFIX) if self.model.startswith(EXPERIMENT_PREFIX) else None

    def metadata_tags(self) -> list[str]:
        tags = (self.metadata or {}).get("tags") or []
        return [tag.strip() for tag in tags.split(",")] if isinstance(tags, str) else list(tags)


def completion_id(request_id: str) -> str:
    """The response `id`: the call's request id, so feedback and the request log find the call by it."""
    return f"chatcmpl-{request_id}"


def call_id(response_id: str) -> str:
    """The call's request id from a response `id` (or the request id itself)."""
    return response_id.removeprefix("chatcmpl-")


def usage_of(result: GenerationResult) -> dict[str, Any]:
    prompt, completion = result.input_tokens or 0, result.output_tokens or 0
    return {"prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": result.tokens if result.tokens is not None else prompt + completion,
            "prompt_tokens_details": {"cached_tokens": result.cached_tokens},
            "completion_tokens_details": {"reasoning_tokens": result.thinking_tokens}}


def finish_reason(result: GenerationResult) -> str:
    if result.tool_calls:
        return "tool_calls"
    return FINISH_REASONS.get(result.finish_reason or "stop", "stop")


def completion(result: GenerationResult, created: int) -> dict[str, Any]:
    """A `chat.completion` object for a finished call."""
    message: dict[str, Any] = {"role": "assistant", "content": result.response or None, "refusal": None}
    if result.tool_calls:
        message["tool_calls"] = result.tool_calls
    elif message["content"] is None:
        message["content"] = ""
    return {"id": completion_id(result.request_id), "object": "chat.completion", "created": created,
            "model": result.model, "system_fingerprint": None,
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason(result)}],
            "usage": usage_of(result), **routing_of(result)}


def routing_of(result: GenerationResult) -> dict[str, Any]:
    """A group's call says so beside OpenAI's fields: the group, the attempts made and whether it is degraded."""
    if result.group is None:
        return {}
    return {"group": result.group, "attempts": result.attempts, "degraded": result.degraded}


class ChunkWriter:
    """`chat.completion.chunk` objects of one streamed call, all with the same id, created time and model."""

    def __init__(self, request_id: str, model: str) -> None:
        self.base = {"id": completion_id(request_id), "object": "chat.completion.chunk",
                     "created": int(time.time()), "model": model, "system_fingerprint": None}

    def delta(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {**self.base, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}

    def usage(self, result: GenerationResult) -> dict[str, Any]:
        return {**self.base, "choices": [], "usage": usage_of(result), **routing_of(result)}
