"""The abstract model: a provider writes `execute`; the base class supplies the managed API."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Generator, Iterator
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

from models.call_path import CallInfo, CallPath, default_call_path, new_request_id
from models.errors import ContextLengthExceededError
from models.pricing import ModelPricing, PricingTable
from models.results import GenerationRequest, GenerationResult, Usage


@dataclass(frozen=True)
class Capabilities:
    """What a model supports, so callers can choose without trying."""

    streaming: bool = True
    system_prompt: bool = True
    thinking: bool = False
    token_counting: bool = True


class StreamResponse(Iterator[str]):
    """Iterating yields text chunks; once the stream ends, `result` holds the recorded result."""

    def __init__(self, chunks: Generator[str, None, GenerationResult]) -> None:
        self._chunks = chunks
        self._result: GenerationResult | None = None

    def __iter__(self) -> StreamResponse:
        return self

    def __next__(self) -> str:
        try:
            return next(self._chunks)
        except StopIteration as stop:
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

    def text(self) -> str:
        return self.result.response

    def close(self) -> None:
        """Stop early; the call is still recorded (status `cancelled`)."""
        self._chunks.close()


class BaseModel(ABC):
    """A model that can generate text. Subclasses set `provider` and implement `execute`."""

    provider: ClassVar[str] = "unknown"
    capabilities: ClassVar[Capabilities] = Capabilities()
    context_window: int = 32_768
    max_output_tokens: int = 8_192

    def __init__(self, name: str, *, pricing: ModelPricing | None = None) -> None:
        self.name = name
        self.pricing = pricing if pricing is not None else PricingTable.default().get(name)
        self._call_path: CallPath | None = None

    @property
    def model_name(self) -> str:
        """The original attribute name for `name`."""
        return self.name

    @abstractmethod
    def execute(self, request: GenerationRequest, usage: Usage) -> Iterator[str]:
        """Call the provider: yield text chunks and fill `usage` with what the provider reported.

        Raise `models.errors.ProviderError` subclasses for provider failures.
        """

    @abstractmethod
    def count_tokens(self, text: str) -> int:
        """Exact token count of `text` with this model's tokenizer."""

    def check_context(self, prompt: str, system: str | None = None) -> None:
        """Refuse a prompt longer than the context window, before any provider call.

        Tokens are counted only when the UTF-8 size exceeds the window (no tokenizer makes more tokens than
        bytes), so ordinary prompts cost nothing; models whose count is only an estimate are not checked.
        """
        text = (system or "") + prompt
        if not self.capabilities.token_counting or len(text.encode("utf-8")) <= self.context_window:
            return
        tokens = self.count_tokens(text)
        if tokens > self.context_window:
            raise ContextLengthExceededError(
                f"The prompt is {tokens} tokens; {self.name} accepts at most {self.context_window}",
                details={"model": self.name, "prompt_tokens": tokens, "context_window": self.context_window},
            )

    def bind(self, call_path: CallPath) -> None:
        """Route this model's calls through `call_path` (the registry does this on registration)."""
        self._call_path = call_path

    @property
    def call_path(self) -> CallPath:
        return self._call_path or default_call_path()

    def calculate_cost(self, input_tokens: int, output_tokens: int, cached_tokens: int = 0) -> float | None:
        """Cost in USD from the pricing table, or None when this model has no known price."""
        if self.pricing is None:
            return None
        return self.pricing.cost(input_tokens, output_tokens, cached_tokens)

    def generate(
        self,
        prompt: str,
        *,
        system: str | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        user_id: str | None = None,
        tags: list[str] | None = None,
        source: str = "library",
        api_key_id: str | None = None,
        request_id: str | None = None,
        **params: Any,
    ) -> GenerationResult:
        """Generate a complete answer; the call is recorded once in the request log."""
        return self._start(
            prompt, stream=False, system=system, temperature=temperature, max_tokens=max_tokens,
            user_id=user_id, tags=tags, source=source, api_key_id=api_key_id,
            request_id=request_id, **params,
        ).result

    def generate_stream(self, prompt: str, **kwargs: Any) -> StreamResponse:
        """Stream the answer as text chunks; takes `generate`'s arguments; `.result` is the final result."""
        return self._start(prompt, stream=True, **kwargs)

    def _start(
        self,
        prompt: str,
        *,
        stream: bool,
        system: str | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        user_id: str | None = None,
        tags: list[str] | None = None,
        source: str = "library",
        api_key_id: str | None = None,
        request_id: str | None = None,
        **params: Any,
    ) -> StreamResponse:
        request = GenerationRequest(
            prompt=prompt, system=system, temperature=temperature, max_tokens=max_tokens,
            stream=stream, params=params,
        )
        call = CallInfo(
            request_id=request_id or new_request_id(), model=self, request=request, source=source,
            user_id=user_id, tags=list(tags) if tags else None, api_key_id=api_key_id,
        )
        return StreamResponse(self.call_path.run(call))

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "provider": self.provider,
            "capabilities": asdict(self.capabilities),
            "context_window": self.context_window,
            "max_output_tokens": self.max_output_tokens,
            "pricing": self.pricing.summary() if self.pricing else None,
        }
