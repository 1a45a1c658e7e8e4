"""LangChain interop: `ManagedChatModel`, a LangChain chat model over a managed model or group.

Every LLM call LangChain makes through it (`invoke`, `stream`, `batch`, LCEL chains, agents) runs on the managed
call path with source `langchain`: guards, cache, routing, exactly one request-log row per call (per attempt for a
group), cost and observers, like any other call.

    from models.langchain_chat import ManagedChatModel

    chat = ManagedChatModel(model="gemini-2.5-flash", registry=registry)   # or ManagedChatModel.from_model(model)
    chain = prompt | chat | StrOutputParser()

Needs the optional `langchain-core` (`pip install -r requirements-langchain.txt`). Nothing in the product
imports this module, so the service runs without it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

try:
    from langchain_core.language_models import BaseChatModel, LanguageModelInput
    from langchain_core.messages import (
        AIMessage,
        AIMessageChunk,
        BaseMessage,
        ChatMessage,
        HumanMessage,
        SystemMessage,
        ToolMessage,
        UsageMetadata,
    )
    from langchain_core.messages.tool import InvalidToolCall, ToolCall, ToolCallChunk, tool_call_chunk
    from langchain_core.output_parsers.openai_tools import make_invalid_tool_call, parse_tool_call
    from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
    from langchain_core.runnables import Runnable
    from langchain_core.tools import BaseTool
    from langchain_core.utils.function_calling import convert_to_openai_tool
except ImportError as missing:  # pragma: no cover - exercised only without the extra
    raise ImportError("models.langchain_chat needs langchain-core: pip install -r requirements-langchain.txt") \
        from missing
from pydantic import ConfigDict, Field

from core.errors import InvalidInputError
from models.base_model import BaseModel
from models.errors import UnsupportedParameterError
from models.messages import GenerationRequest, parse_messages
from models.model_registry import ModelRegistry
from models.params import CacheMode, CallContext, GenerationParams
from models.results import GenerationResult
from models.routing.group import ModelGroup

if TYPE_CHECKING:
    from langchain_core.callbacks import CallbackManagerForLLMRun

SOURCE = "langchain"
# Keyword arguments of a call (`invoke(..., user_id=...)`, `bind(...)`) that say whom it is for, not what to generate.
CONTEXT_KWARGS = ("user_id", "api_key_id", "request_id", "request_tags", "cache_mode", "cache_ttl")
# Our roles for a `ChatMessage`'s free-form role.
CHAT_ROLES = {"system": "system", "user": "user", "human": "user", "assistant": "assistant", "ai": "assistant",
              "tool": "tool"}


class ManagedChatModel(BaseChatModel):
    """A LangChain `BaseChatModel` whose calls go through the registry's managed call path.

    `model` names a registered model, alias or group (None: the registry's default model); `registry` defaults to
    `ModelRegistry()`, the process's default wiring. The generation fields (temperature, max_tokens, ...) and
    `model_kwargs` (any other `GenerationParams` field) are defaults that a call's keyword arguments override; a
    parameter the model cannot honour is refused by name, never dropped. `user_id`, `api_key_id`, `request_tags`,
    `cache_mode` and `cache_ttl` are recorded with each call (budgets, tenants, the cache), and a call may set them
    too, with `request_id`.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    model: str | None = None
    registry: ModelRegistry | None = Field(default=None, exclude=True)
    managed: BaseModel | None = Field(default=None, exclude=True)  # set by `from_model`: this model, not a name
    temperature: float | None = None
    max_tokens: int | None = None
    top_p: float | None = None
    stop: list[str] | None = None
    seed: int | None = None
    model_kwargs: dict[str, Any] = Field(default_factory=dict)
    user_id: str | None = None
    api_key_id: str | None = None
    request_tags: list[str] | None = None
    cache_mode: CacheMode | None = None
    cache_ttl: int | None = None

    def __init__(self, **fields: Any) -> None:
        """Refuses a name nobody registered (`UnknownModelError`) and invalid default parameters
        (`InvalidInputError`) here, as themselves rather than wrapped in pydantic's `ValidationError`."""
        super().__init__(**fields)
        if self.managed is None:
            if self.registry is None:
                self.registry = ModelRegistry()
            resolved = self.registry.require_model(self.model)
            self.model = self.model or resolved.name
        self._generation_params({})

    @classmethod
    def from_model(cls, model: BaseModel, **fields: Any) -> ManagedChatModel:
        """Over one managed model or group (a registered one records in its registry's request log)."""
        return cls(model=model.name, managed=model, **fields)

    @property
    def managed_model(self) -> BaseModel:
        """The model or group answering: the one given to `from_model`, else the registry's current one for
        `model` (so a model registered again under the same name takes over)."""
        if self.managed is not None:
            return self.managed
        assert self.registry is not None
        return self.registry.require_model(self.model)

    @property
    def _llm_type(self) -> str:
        return "ai-model-manager"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model": self.model, **self._defaults()}

    # --- tools ----------------------------------------------------------------------------------------------------

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | dict[str, Any] | bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind `tools` (LangChain tools, functions, pydantic classes or OpenAI tool dicts) for the model to call.

        `tool_choice`: "auto", "none", "required" (or "any"/True), a tool's name, or an OpenAI tool-choice dict.
        Refused with `UnsupportedParameterError` when the model (for a group: any of its members) does not use
        tools.
        """
        model = self.managed_model
        if not _uses_tools(model):
            raise UnsupportedParameterError.single(
                "tools", f"{model.name} ({model.provider}) does not use tools (its supported parameters: "
                         f"{', '.join(sorted(model.supported_params))}); bind tools to a model that supports them",
                prefix="Unsupported parameter")
        formatted = [convert_to_openai_tool(tool) for tool in tools]
        bound: dict[str, Any] = {"tools": formatted}
        if tool_choice is not None:
            bound["tool_choice"] = _tool_choice(tool_choice)
        GenerationParams.parse(bound)  # refuse a malformed tool or choice now, not at the first call
        return super().bind(**bound, **kwargs)

    # --- calls ----------------------------------------------------------------------------------------------------

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        model, request, context = self._prepare(messages, stop, kwargs, stream=False)
        result = model.run(request, context).result
        calls, invalid = _tool_calls(result)
        message = AIMessage(content=result.response, tool_calls=calls, invalid_tool_calls=invalid,
                            usage_metadata=_usage(result), response_metadata=_metadata(result))
        generation = ChatGeneration(message=message, generation_info={"finish_reason": result.finish_reason})
        return ChatResult(generations=[generation], llm_output={"model_name": result.model,
                                                                "request_id": result.request_id})

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        """The text as it comes, then a last chunk with the tool calls, usage and metadata of the recorded call."""
        model, request, context = self._prepare(messages, stop, kwargs, stream=True)
        stream = model.run(request, context)
        try:
            for text in stream:
                chunk = ChatGenerationChunk(message=AIMessageChunk(content=text))
                if run_manager is not None:
                    run_manager.on_llm_new_token(text, chunk=chunk)
                yield chunk
            result = stream.result
        finally:
            stream.close()  # a caller that stops early leaves the call recorded as cancelled
        calls: list[ToolCallChunk] = [
            tool_call_chunk(name=call["function"]["name"], args=call["function"].get("arguments"), id=call.get("id"),
                            index=index) for index, call in enumerate(result.tool_calls or ())]
        last = AIMessageChunk(content="", tool_call_chunks=calls, usage_metadata=_usage(result),
                              response_metadata=_metadata(result), chunk_position="last")
        yield ChatGenerationChunk(message=last, generation_info={"finish_reason": result.finish_reason})

    def _prepare(self, messages: list[BaseMessage], stop: list[str] | None, kwargs: dict[str, Any], *,
                 stream: bool) -> tuple[BaseModel, GenerationRequest, CallContext]:
        kwargs = dict(kwargs)
        kwargs.pop("stream", None)  # LangChain's own switch between `_generate` and `_stream`
        context_values = {name: kwargs.pop(name) for name in CONTEXT_KWARGS if name in kwargs}
        if stop is not None:
            kwargs["stop"] = stop
        params = self._generation_params(kwargs)
        context = CallContext.parse(
            source=SOURCE,
            user_id=context_values.get("user_id", self.user_id),
            api_key_id=context_values.get("api_key_id", self.api_key_id),
            tags=context_values.get("request_tags", self.request_tags),
            request_id=context_values.get("request_id"),
            cache=context_values.get("cache_mode", self.cache_mode),
            cache_ttl=context_values.get("cache_ttl", self.cache_ttl))
        conversation = parse_messages(to_messages(messages))
        return self.managed_model, GenerationRequest(tuple(conversation), params, stream), context

    def _defaults(self) -> dict[str, Any]:
        fields = {"temperature": self.temperature, "max_tokens": self.max_tokens, "top_p": self.top_p,
                  "stop": self.stop, "seed": self.seed}
        return {**{name: value for name, value in fields.items() if value is not None}, **self.model_kwargs}

    def _generation_params(self, overrides: dict[str, Any]) -> GenerationParams:
        """The defaults, then the call's parameters; an unknown or invalid one raises `InvalidInputError`."""
        return GenerationParams.parse({**self._defaults(), **overrides})


# --- LangChain messages -> ours ---------------------------------------------------------------------------------------

def to_messages(messages: Sequence[BaseMessage]) -> list[dict[str, Any]]:
    """LangChain messages as our chat-completions dicts (validated by `parse_messages`)."""
    return [_message(message, index) for index, message in enumerate(messages)]


def _message(message: BaseMessage, index: int) -> dict[str, Any]:
    if isinstance(message, SystemMessage):
        return {"role": "system", "content": _text(message.content)}
    if isinstance(message, HumanMessage):
        return {"role": "user", "content": _user_content(message.content)}
    if isinstance(message, AIMessage):
        calls = [{"id": call.get("id") or f"call_{index}_{position}", "type": "function",
                  "function": {"name": call["name"], "arguments": json.dumps(call["args"])}}
                 for position, call in enumerate(message.tool_calls)]
        text = _text(message.content)
        return {"role": "assistant", "content": text if text or not calls else None,
                **({"tool_calls": calls} if calls else {})}
    if isinstance(message, ToolMessage):
        return {"role": "tool", "tool_call_id": message.tool_call_id, "content": _text(message.content)}
    if isinstance(message, ChatMessage) and message.role in CHAT_ROLES:
        role = CHAT_ROLES[message.role]
        return {"role": role, "content": _user_content(message.content) if role == "user" else _text(message.content)}
    raise InvalidInputError.single(
        f"messages.{index}", f"{type(message).__name__} (type {message.type!r}) has no equivalent here; use system, "
                             "human, AI (with tool calls) or tool messages")


def _text(content: str | list[str | dict[str, Any]]) -> str:
    """The text of a message: its string, or its text blocks joined (reasoning and other blocks left out)."""
    if isinstance(content, str):
        return content
    return "".join(part if isinstance(part, str) else str(part.get("text", "")) for part in content
                   if isinstance(part, str) or part.get("type") == "text")


def _user_content(content: str | list[str | dict[str, Any]]) -> str | list[Any]:
    """A user message's content: text, or OpenAI content parts (LangChain's `image` blocks as `image_url` parts);
    any other kind of block is refused by name when the conversation is validated."""
    if isinstance(content, str):
        return content
    parts: list[Any] = []
    for part in content:
        if isinstance(part, str):
            parts.append({"type": "text", "text": part})
        elif part.get("type") == "image" and (part.get("url") or part.get("base64")):
            url = part.get("url") or f"data:{part.get('mime_type') or 'image/png'};base64,{part['base64']}"
            parts.append({"type": "image_url", "image_url": {"url": url}})
        else:
            parts.append(part)
    return parts


# --- our result -> LangChain's ----------------------------------------------------------------------------------------

def _tool_calls(result: GenerationResult) -> tuple[list[ToolCall], list[InvalidToolCall]]:
    """The answer's tool calls, parsed; one whose arguments are not JSON is an invalid tool call (LangChain's way)."""
    calls: list[ToolCall] = []
    invalid: list[InvalidToolCall] = []
    for raw in result.tool_calls or ():
        try:
            parsed = parse_tool_call(raw, return_id=True)
        except Exception as exc:  # OutputParserException: arguments that are not JSON
            invalid.append(make_invalid_tool_call(raw, str(exc)))
            continue
        if parsed is not None:
            calls.append(ToolCall(name=parsed["name"], args=parsed["args"], id=parsed.get("id"), type="tool_call"))
    return calls, invalid


def _usage(result: GenerationResult) -> UsageMetadata | None:
    """The tokens the provider reported, as recorded; None when it reported none (a cache hit counts none)."""
    if result.input_tokens is None and result.output_tokens is None:
        return None
    input_tokens, output_tokens = result.input_tokens or 0, result.output_tokens or 0
    usage = UsageMetadata(input_tokens=input_tokens, output_tokens=output_tokens,
                          total_tokens=input_tokens + output_tokens)
    if result.cached_tokens or result.cache_write_tokens:
        usage["input_token_details"] = {"cache_read": result.cached_tokens,
                                        "cache_creation": result.cache_write_tokens}
    if result.thinking_tokens:
        usage["output_token_details"] = {"reasoning": result.thinking_tokens}
    return usage


def _metadata(result: GenerationResult) -> dict[str, Any]:
    """What the request log recorded about the call, for callers that read `response_metadata`."""
    metadata = {"model_name": result.model, "model": result.model, "provider": result.provider,
                "request_id": result.request_id, "cost": result.cost, "finish_reason": result.finish_reason,
                "latency": result.latency, "group": result.group, "cache": result.cache}
    return {name: value for name, value in metadata.items() if value is not None}


def _uses_tools(model: BaseModel) -> bool:
    """Whether `model` honours `tools`: for a group, whether any of its members does (the others are skipped)."""
    members = model.members() if isinstance(model, ModelGroup) else [model]
    return any("tools" in member.supported_params for member in members)


def _tool_choice(choice: str | dict[str, Any] | bool) -> str | dict[str, Any]:
    """LangChain's tool choices as OpenAI's: "any" and True force some tool, a bare name forces that one."""
    if choice is True or choice == "any":
        return "required"
    if choice is False:
        return "none"
    if isinstance(choice, str) and choice not in ("auto", "none", "required"):
        return {"type": "function", "function": {"name": choice}}
    assert not isinstance(choice, bool)
    return choice
