"""The abstract model: a provider writes `execute`; the base class supplies the managed API.

A subclass written for the original base class (its own `generate` / `generate_stream`) is adapted to run on
the managed path too (see `models.original_style`).
"""

from __future__ import annotations

import itertools
from abc import ABC, abstractmethod
from collections.abc import Generator, Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any, ClassVar

from core.errors import InvalidInputError
from models import original_style
from models.cache.policy import CachePolicy
from models.call_path import CACHE_HIT, CHAT, EMBEDDINGS, Call, CallPath, new_request_id
from models.defaults import default_pricing, managed_call_path
from models.embeddings import EmbeddingRequest
from models.errors import ContextLengthExceededError, UnsupportedOperationError, UnsupportedParameterError
from models.messages import GenerationRequest, Message
from models.params import CacheMode, CallContext, GenerationParams, PromptParams
from models.pricing import ModelPricing
from models.results import EmbeddingResult, GenerationResult, Usage
from models.versions import VersionArchivedError

# Tokens a chat format may add per message (role markers, turn separators), or a tokenizer per embedded text
# (BOS/EOS, CLS/SEP): part of the input bound.
MESSAGE_OVERHEAD_TOKENS = 16
# `generate`'s keyword arguments that say whom a call is for rather than what it generates.
CONTEXT_ARGUMENTS = ("user_id", "tags", "source", "api_key_id", "request_id", "cache", "cache_ttl")


@dataclass(frozen=True)
class Capabilities:
    """What a model supports, so callers can choose without trying."""

    streaming: bool = True
    system_prompt: bool = True
    thinking: bool = False
    token_counting: bool = True
    chat: bool = True  # False for an embedding-only model
    embeddings: bool = False
    embedding_dimensions: bool = False  # honours `dimensions` (shorter vectors) on embeddings calls
    vision: bool = False  # takes images in user messages


class StreamResponse(Iterator[str]):
    """Iterating yields text chunks; once the stream ends, `result` holds the recorded result."""

    def __init__(self, chunks: Generator[str, None, GenerationResult], call: Call[Any] | None = None) -> None:
        self._chunks = chunks
        self._call = call
        self._result: GenerationResult | None = None
        # The model answering, when it is not the one asked (a group's deployment), once the stream has started.
        self.served_by: str | None = None

    def __iter__(self) -> StreamResponse:
        return self

    def __next__(self) -> str:
        try:
            return next(self._chunks)
        except StopIteration as stop:
            if self._result is None:  # a finished generator stops again, with no value, when asked again
                self._result = stop.value
            raise

    @property
    def result(self) -> GenerationResult:
        """The final result; reading it first drains whatever the caller has not consumed."""
        if self._result is None:
            for _ in self:
                pass
        assert self._result is not None
        return self._result

    def start(self) -> Iterator[str]:
        """Run the call up to its first chunk now: a refusal (budget, key limits) or an early provider failure
        raises here, where an HTTP answer can still say so, rather than after a streaming response began."""
        first = next(self, None)
        return itertools.chain(() if first is None else (first,), self)

    @property
    def from_cache(self) -> bool:
        """Whether the response cache answers (known once the stream has started)."""
        return self._call is not None and CACHE_HIT in self._call.extras

    def text(self) -> str:
        return self.result.response

    def close(self) -> None:
        """Stop early; the call is still recorded (status `cancelled`)."""
        self._chunks.close()


class BaseModel(ABC):
    """A model that can generate text. Subclasses set `provider` and implement `execute`.

    `supported_params` names the generation parameters the provider honours: any other one that a call
    sets is refused with `UnsupportedParameterError` before the call, never silently dropped.
    """

    provider: str = "unknown"
    capabilities: Capabilities = Capabilities()  # per class; a provider may set it per instance (Gemini)
    supported_params: ClassVar[frozenset[str]] = GenerationParams.COMMON
    context_window: int = 32_768
    max_output_tokens: int = 8_192
    cache_policy: CachePolicy | None = None  # the response cache's policy for this model (models.yaml `cache`)
    defaults: PromptParams | None = None  # what a call leaves unset (models.yaml `defaults`; see `with_defaults`)
    display_name: str | None = None  # a human-readable name for listings (models.yaml `display_name`)
    version: str | None = None  # the serving version (models.version_manager): recorded with each call
    archived: bool = False  # the serving version was archived and none replaced it: calls are refused

    def __init__(self, name: str, provider: str | None = None, cost_per_token: float | None = None, *,
                 pricing: ModelPricing | None = None) -> None:
        """`provider` and a flat `cost_per_token` (USD) as the original took them; without either, the class's
        provider and the pricing table's price for `name`."""
        self.name = name
        if provider is not None:
            self.provider = provider
        if pricing is None and cost_per_token is not None:
            per_million = cost_per_token * 1_000_000
            pricing = ModelPricing(input_per_million=per_million, output_per_million=per_million)
        self.pricing = pricing if pricing is not None else default_pricing(name)
        self._call_path: CallPath | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if original_style.needs_adapting(cls):
            original_style.adapt(cls, {"generate": BaseModel.generate, "generate_stream": BaseModel.generate_stream},
                                 Capabilities(system_prompt=False, token_counting=False))

    @property
    def model_name(self) -> str:
        """The original attribute name for `name`."""
        return self.name

    @model_name.setter
    def model_name(self, value: str) -> None:
        self.name = value

    @property
    def cost_per_token(self) -> float | None:
        """The original's flat price: USD per input token (None when no price is known)."""
        return None if self.pricing is None else self.pricing.input_per_million / 1_000_000

    @abstractmethod
    def execute(self, request: GenerationRequest, usage: Usage) -> Iterator[str]:
        """Call the provider: yield text chunks and fill `usage` with what the provider reported.

        Raise `models.errors.ProviderError` subclasses for provider failures.
        """

    @abstractmethod
    def count_tokens(self, text: str) -> int:
        """Exact token count of `text` with this model's tokenizer."""

    def count_input_tokens(self, request: GenerationRequest) -> int:
        """Tokens the conversation costs as input; providers with a chat format override this to be exact."""
        return sum(self.count_tokens(m.text) for m in request.messages) + MESSAGE_OVERHEAD_TOKENS * len(
            request.messages)

    def input_token_bound(self, request: GenerationRequest) -> int:
        """An upper bound of the input tokens, computed locally for free: one token per UTF-8 byte, plus
        `MESSAGE_OVERHEAD_TOKENS` per message for the chat format's role markers.

        It holds for byte-level BPE and SentencePiece-with-byte-fallback tokenizers, where no token covers
        less than one byte of text. The bound decides budget reservations and context checks; a model is
        asked to count exactly only when the bound alone would refuse the call.
        """
        return request.text_bytes() + MESSAGE_OVERHEAD_TOKENS * len(request.messages)

    def check_images(self, request: GenerationRequest) -> None:
        """Refuse images (400) on a model that cannot see them, before anything reads the conversation."""
        if request.images and not self.capabilities.vision:
            raise UnsupportedParameterError.single(
                "messages", f"{self.name} ({self.provider}) does not accept images; send text only, or ask a model "
                            "that sees (capabilities.vision)", prefix="Unsupported parameter")

    def check_context(self, request: GenerationRequest) -> None:
        """Refuse a conversation longer than the context window, before any provider call.

        Counted exactly only when the free bound exceeds the window; models whose count is only an
        estimate are left to the provider.
        """
        self.check_images(request)
        if not self.capabilities.token_counting or self.input_token_bound(request) <= self.context_window:
            return
        tokens = self.count_input_tokens(request)
        if tokens > self.context_window:
            raise ContextLengthExceededError(
                f"The prompt is {tokens} tokens; {self.name} accepts at most {self.context_window}",
                details={"model": self.name, "prompt_tokens": tokens, "context_window": self.context_window},
            )

    def check_params(self, params: GenerationParams) -> None:
        """Refuse parameters this provider cannot honour, naming them, and a `max_tokens` beyond the model's
        output limit: refused rather than clamped, so an answer is never shorter than asked without saying so
        (and a budget reservation is never sized on an allowance the model cannot use)."""
        unsupported = sorted(set(params.given()) - self.supported_params)
        if unsupported:
            raise UnsupportedParameterError(
                [{"field": name, "reason": f"not supported by {self.name} ({self.provider}); supported: "
                                           f"{', '.join(sorted(self.supported_params))}"} for name in unsupported],
                prefix="Unsupported parameter")
        if params.max_tokens is not None and params.max_tokens > self.max_output_tokens:
            raise InvalidInputError.single(
                "max_tokens", f"{self.name} generates at most {self.max_output_tokens} tokens; "
                              f"{params.max_tokens} were asked")

    def with_defaults(self, request: GenerationRequest) -> GenerationRequest:
        """`request` completed by this model's `defaults`, so a deployment can fix its own limits and system prompt
        once: a parameter the call sets wins, and the default system prompt leads only a conversation without one."""
        if self.defaults is None:
            return request
        unset = {name: getattr(self.defaults, name) for name in GenerationParams.model_fields
                 if getattr(request.params, name) is None and getattr(self.defaults, name) is not None}
        messages = request.messages
        if self.defaults.system is not None and request.system is None:
            messages = (Message(role="system", content=self.defaults.system), *messages)
        return replace(request, messages=messages, params=request.params.model_copy(update=unset))

    def thinking_allowance(self, params: GenerationParams) -> int:
        """Tokens a thinking model may think beyond `max_tokens`; 0 for a model that does not think."""
        return 0

    def bind(self, call_path: CallPath) -> None:
        """Route this model's calls through `call_path` (the registry does this on registration)."""
        self._call_path = call_path

    @property
    def is_bound(self) -> bool:
        return self._call_path is not None

    @property
    def call_path(self) -> CallPath:
        """The registry's call path; a model used on its own gets the default wiring's."""
        if self._call_path is None:
            self._call_path = managed_call_path()
        return self._call_path

    def calculate_cost(self, tokens: int, output_tokens: int | None = None, cached_tokens: int = 0,
                       cache_write_tokens: int = 0) -> float | None:
        """Cost in USD from the pricing table, or None when this model has no known price.

        With one argument, as originally: `tokens x cost_per_token`. With `output_tokens`, `tokens` are the input
        tokens (`cached_tokens` of them read from the prompt cache and `cache_write_tokens` written to it, each at
        its own rate) and each side is priced at its own rate.
        """
        if self.pricing is None:
            return None
        return self.pricing.cost(tokens, output_tokens or 0, cached_tokens, cache_write_tokens)

    def get_info(self) -> dict[str, Any]:
        """The original summary: name, provider and cost per token (`describe` has everything)."""
        return {"name": self.name, "provider": self.provider, "cost_per_token": self.cost_per_token}

    def generate(
        self,
        prompt: str | None = None,
        *,
        messages: Sequence[Message | dict[str, Any]] | None = None,
        system: str | None = None,
        user_id: str | None = None,
        tags: Sequence[str] | None = None,
        source: str = "library",
        api_key_id: str | None = None,
        request_id: str | None = None,
        cache: CacheMode | None = None,
        cache_ttl: int | None = None,
        **params: Any,
    ) -> GenerationResult:
        """Generate a complete answer; the call is recorded once in the request log.

        Give a `prompt` (with an optional `system`) or a list of `messages`. `params` are
        `GenerationParams` fields (temperature, max_tokens, top_p, stop, seed, response_format, ...);
        an unknown or unsupported one raises a `ValueError` naming it. `cache` (`on`, `off`, `read`, `write`) and
        `cache_ttl` narrow what the model's cache policy does for this call.
        """
        context = {"user_id": user_id, "tags": tags, "source": source, "api_key_id": api_key_id,
                   "request_id": request_id, "cache": cache, "cache_ttl": cache_ttl}
        return self.run(*_prepare(prompt, messages, system, params, context, stream=False)).result

    def generate_stream(self, prompt: str | None = None, **kwargs: Any) -> StreamResponse:
        """Stream the answer as text chunks; takes `generate`'s arguments; `.result` is the final result."""
        context = {name: kwargs.pop(name) for name in CONTEXT_ARGUMENTS if name in kwargs}
        messages, system = kwargs.pop("messages", None), kwargs.pop("system", None)
        return self.run(*_prepare(prompt, messages, system, kwargs, context, stream=True))

    def run(self, request: GenerationRequest, context: CallContext | None = None) -> StreamResponse:
        """The typed entry point: run `request` for `context` on the managed call path.

        Plain requests are consumed by reading `.result`; streamed ones by iterating.
        """
        self._require(self.capabilities.chat, CHAT)
        self._require_serving()
        request = self.with_defaults(request)
        self.check_params(request.params)
        if request.uses_tools and "tools" not in self.supported_params:
            raise UnsupportedParameterError.single(
                "messages", f"{self.name} ({self.provider}) does not use tools, but the conversation has tool calls",
                prefix="Unsupported parameter")
        self.check_images(request)
        context = context or CallContext()
        call = Call(self, request, context, context.request_id or new_request_id())
        return StreamResponse(self.call_path.run(call), call)

    def embed(
        self,
        texts: str | Sequence[str],
        *,
        user_id: str | None = None,
        tags: Sequence[str] | None = None,
        source: str = "library",
        api_key_id: str | None = None,
        request_id: str | None = None,
        dimensions: int | None = None,
    ) -> EmbeddingResult:
        """One vector per text, in order; the call is recorded once in the request log (operation `embeddings`).

        A model that does not embed raises `UnsupportedOperationError` (code `embeddings_not_supported`), and
        invalid texts an `InvalidInputError` naming them, before any provider call.
        """
        request = EmbeddingRequest.build(texts, dimensions=dimensions)
        context = CallContext.parse(user_id=user_id, tags=tags, source=source, api_key_id=api_key_id,
                                    request_id=request_id)
        return self.run_embeddings(request, context)

    def run_embeddings(self, request: EmbeddingRequest, context: CallContext | None = None) -> EmbeddingResult:
        """The typed entry point of `embed`: run `request` for `context` on the managed call path."""
        self.check_embeddings(request)
        self._require_serving()
        context = context or CallContext()
        return self.call_path.embed(Call(self, request, context, context.request_id or new_request_id()))

    def check_embeddings(self, request: EmbeddingRequest) -> None:
        """Refuse an embeddings call this model cannot make as asked, before any provider call."""
        self._require(self.capabilities.embeddings, EMBEDDINGS)
        if request.dimensions is not None and not self.capabilities.embedding_dimensions:
            raise UnsupportedParameterError.single(
                "dimensions", f"not supported by {self.name} ({self.provider}): its vectors have a fixed size",
                prefix="Unsupported parameter")

    def execute_embedding(self, request: EmbeddingRequest, usage: Usage) -> list[list[float]]:
        """Call the provider's embeddings endpoint: one vector per text, in order; set `usage.input_tokens`
        to the provider's count. Models with `capabilities.embeddings` implement it."""
        raise UnsupportedOperationError.refusing(self.name, self.provider, EMBEDDINGS)

    def embedding_token_bound(self, request: EmbeddingRequest) -> int:
        """A free upper bound of the input tokens, as for chat: one token per UTF-8 byte, plus
        `MESSAGE_OVERHEAD_TOKENS` per text for the special tokens a tokenizer adds."""
        return request.text_bytes() + MESSAGE_OVERHEAD_TOKENS * len(request.texts)

    def count_embedding_tokens(self, request: EmbeddingRequest) -> int:
        """Exact input tokens of the texts; providers that count a whole batch at once override this."""
        return sum(self.count_tokens(text) for text in request.texts)

    def _require_serving(self) -> None:
        if self.archived:
            raise VersionArchivedError(self.name, self.version)

    def _require(self, supported: bool, operation: str) -> None:
        if not supported:
            raise UnsupportedOperationError.refusing(self.name, self.provider, operation)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "display_name": self.display_name or self.name,
            "provider": self.provider,
            "capabilities": asdict(self.capabilities),
            "supported_params": sorted(self.supported_params),
            "context_window": self.context_window,
            "max_output_tokens": self.max_output_tokens,
            "pricing": self.pricing.summary() if self.pricing else None,
        }


def _prepare(prompt: str | None, messages: Sequence[Message | dict[str, Any]] | None, system: str | None,
             params: dict[str, Any], context: dict[str, Any], *,
             stream: bool) -> tuple[GenerationRequest, CallContext]:
    """`generate`'s keyword arguments as the typed request and context; invalid ones raise `ValueError`."""
    request = GenerationRequest.build(prompt, messages=messages, system=system,
                                      params=GenerationParams.parse(params), stream=stream)
    return request, CallContext.parse(**context)
