"""What a call produces: the provider's usage, and the result callers read."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar


@dataclass
class Usage:
    """Token counts exactly as the provider reported them; providers fill this while they run.

    `output_tokens` includes thinking tokens (they are billed as output); `cached_tokens` (prompt-cache reads) and
    `cache_write_tokens` (prompt-cache writes, priced apart by providers that bill them) are parts of
    `input_tokens`. `cost` is set only by a model that prices its own calls (an original-style one);
    otherwise the call path prices the tokens.
    """

    input_tokens: int | None = None
    output_tokens: int | None = None
    thinking_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    total_tokens: int | None = None
    finish_reason: str | None = None
    cost: float | None = None
    # The functions the model asked to call, in OpenAI's shape: [{"id", "type": "function", "function": {...}}].
    tool_calls: list[dict[str, Any]] | None = None
    # The provider's id of its reply and the model that actually answered (tracing reads them), when it says.
    response_id: str | None = None
    response_model: str | None = None

    def set(
        self,
        *,
        input: int | None = None,  # shadows the builtin to mirror the provider's vocabulary
        output: int | None = None,
        thinking: int | None = None,
        cached: int | None = None,
        total: int | None = None,
        cache_write: int | None = None,
    ) -> None:
        if input is not None:
            self.input_tokens = input
        if output is not None:
            self.output_tokens = output
        if thinking is not None:
            self.thinking_tokens = thinking
        if cached is not None:
            self.cached_tokens = cached
        if total is not None:
            self.total_tokens = total
        if cache_write is not None:
            self.cache_write_tokens = cache_write

    @property
    def tokens(self) -> int | None:
        if self.total_tokens is not None:
            return self.total_tokens
        if self.input_tokens is None and self.output_tokens is None:
            return None
        return (self.input_tokens or 0) + (self.output_tokens or 0)


class FieldMapping(Mapping[str, Any]):
    """A result dataclass read like the original's dict: `result['cost']`, `dict(result)`."""

    __dataclass_fields__: ClassVar[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        """Every field (a shallow copy; `dataclasses.asdict` deep-copies at ~5x the cost)."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__}

    def __getitem__(self, key: str) -> Any:
        if key not in self.__dataclass_fields__:
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self) -> Iterator[str]:
        return iter(self.__dataclass_fields__)

    def __len__(self) -> int:
        return len(self.__dataclass_fields__)


@dataclass
class GenerationResult(FieldMapping):
    """The outcome of one call. Reads like the original dict: `result['response']`, `result['cost']`."""

    response: str
    model: str
    provider: str
    request_id: str
    status: str = "success"
    source: str = "library"
    input_tokens: int | None = None
    output_tokens: int | None = None
    thinking_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    tokens: int | None = None
    latency: float = 0.0
    ttft: float | None = None
    cost: float | None = None
    finish_reason: str | None = None
    error_type: str | None = None
    error_message: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    # Set when a group routed the call: the group the client named, the attempts it made (this answer's included)
    # and whether the embedded model answered in place of the group's remote deployments.
    group: str | None = None
    attempts: int = 1
    degraded: bool = False
    # Set when the response cache answered: how it matched (`exact`), and what the original call cost.
    cache: str | None = None
    cost_saved: float | None = None

    @property
    def success(self) -> bool:
        return self.status == "success"


@dataclass
class EmbeddingResult(FieldMapping):
    """The outcome of one embeddings call: one vector per text, in order, and what the call was recorded with."""

    vectors: list[list[float]]
    model: str
    provider: str
    request_id: str
    status: str = "success"
    source: str = "library"
    input_tokens: int | None = None
    latency: float = 0.0
    cost: float | None = None

    @classmethod
    def recorded(cls, outcome: GenerationResult, vectors: list[list[float]]) -> EmbeddingResult:
        """The vectors with the accounting the call path recorded for them."""
        return cls(vectors=vectors, model=outcome.model, provider=outcome.provider, request_id=outcome.request_id,
                   status=outcome.status, source=outcome.source, input_tokens=outcome.input_tokens,
                   latency=outcome.latency, cost=outcome.cost)

    @property
    def dimensions(self) -> int:
        return len(self.vectors[0]) if self.vectors else 0
