"""The one managed call path: context and guards before, the provider call, exactly one request-log row, observers.

Every generation, whatever its source, runs through `CallPath.run`, and every embeddings call through
`CallPath.embed`; both record through `_finish`. Hooks (budgets, ...) are attached by the composition root
(`wiring`), so this package never imports `monitoring`.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from core.settings import Settings
from models.cache.response_cache import MISS, CachedAnswer, CacheLookup, ResponseCache
from models.cache.stores import SqlCacheBackend
from models.embeddings import EmbeddingRequest
from models.errors import CallRefusedError, is_retryable
from models.messages import GenerationRequest
from models.params import CallContext, Route
from models.request_log import RequestLogRepository, RequestRecord
from models.results import EmbeddingResult, GenerationResult, Usage
from models.routing.breaker_store import SqlBreakerStore
from models.routing.breakers import CircuitBreakers

if TYPE_CHECKING:
    from models.base_model import BaseModel

log = logging.getLogger(__name__)

# The error type of a call whose process died before it ended (recorded by whoever finds it abandoned).
INTERRUPTED = "interrupted"
# Call.extras: the cached answer a call is served from (guards see it: a hit is free and needs no provider).
CACHE_HIT = "cache_hit"
# What a call does: the request log's `operation` column.
CHAT = "chat"
EMBEDDINGS = "embeddings"

Request = TypeVar("Request", GenerationRequest, EmbeddingRequest)


class CallCancelled(Exception):
    """The consumer stopped reading a stream before it ended."""


@dataclass
class Call(Generic[Request]):
    """One managed call: the model, what it is asked (a conversation, or texts to embed), whom it is for;
    hooks keep their state in `extras`."""

    model: BaseModel
    request: Request
    context: CallContext
    request_id: str
    extras: dict[str, Any] = field(default_factory=dict)
    usage: Usage = field(default_factory=Usage)  # what the provider reports, as it reports it

    @property
    def user_id(self) -> str | None:
        return self.context.user_id

    @property
    def api_key_id(self) -> str | None:
        return self.context.api_key_id

    @property
    def operation(self) -> str:
        return EMBEDDINGS if isinstance(self.request, EmbeddingRequest) else CHAT

    def input_token_bound(self) -> int:
        """The model's free upper bound of this call's input tokens (what a guard reserves for)."""
        if isinstance(self.request, EmbeddingRequest):
            return self.model.embedding_token_bound(self.request)
        return self.model.input_token_bound(self.request)

    def exact_input_tokens(self) -> int:
        """The model's exact count of this call's input tokens (may cost a provider round trip)."""
        if isinstance(self.request, EmbeddingRequest):
            return self.model.count_embedding_tokens(self.request)
        return self.model.count_input_tokens(self.request)

    def worst_case_cost(self, input_tokens: int) -> float | None:
        """The most this call can cost with `input_tokens` of input: for a generation, its whole output allowance,
        plus what a thinking model may think on top of it (billed at the output rate), at the tier those tokens
        reach; an embeddings call has no output, so only its input is priced."""
        pricing = self.model.pricing
        if pricing is None:
            return None
        if pricing.input_per_million == 0 and pricing.output_per_million == 0:
            return 0.0
        return pricing.cost(input_tokens, self._output_allowance())

    def _output_allowance(self) -> int:
        if isinstance(self.request, EmbeddingRequest):
            return 0
        params = self.request.params
        return (params.max_tokens or self.model.max_output_tokens) + self.model.thinking_allowance(params)


AnyCall = Call[GenerationRequest] | Call[EmbeddingRequest]


class CallHook(Protocol):
    """A guard and/or observer around every call. `before_call` may raise `CallRefusedError`.

    `after_call` sees what was recorded as a `GenerationResult`; for an embeddings call (`call.operation`) its
    response is empty and its tokens are all input.
    """

    def before_call(self, call: Call[Any]) -> None: ...

    def after_call(self, call: Call[Any], result: GenerationResult) -> None: ...


@dataclass(frozen=True)
class PromptLogging:
    """How much prompt and response text the request log keeps: full, truncated, or none."""

    mode: str = "full"
    max_chars: int = 2000

    def apply(self, text: str | None) -> str | None:
        if text is None or self.mode == "full":
            return text
        if self.mode == "none":
            return None
        return text[: self.max_chars]

    def tool_calls(self, calls: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
        """The tool calls of an answer; their arguments are text like any other and follow the same policy."""
        if not calls or self.mode == "none":
            return None
        return [{**call, "function": {**call["function"], "arguments": self.apply(call["function"]["arguments"])}}
                for call in calls]

    def conversation(self, request: GenerationRequest) -> list[dict[str, Any]] | None:
        """The whole conversation, when it is more than one user message (that one is the `prompt` column)."""
        if self.mode == "none" or (len(request.messages) == 1 and request.messages[0].role == "user"):
            return None
        return [{**m.as_dict(), "content": self.apply(m.text) or ""} for m in request.messages]

    @classmethod
    def from_settings(cls, settings: Settings) -> PromptLogging:
        return cls(settings.log_prompts, settings.log_prompts_max_chars)


class CallPath:
    """Runs calls and records each exactly once, success or failure.

    A chat call the response cache can answer is replayed from it (free, and needing no provider). Any other call
    passes its model's circuit breaker first: an open one refuses it (503, `circuit_open`) without touching the
    provider, and each outcome that says something of the provider's health is reported to it.
    """

    def __init__(
        self,
        request_log: RequestLogRepository,
        hooks: Sequence[CallHook] = (),
        prompt_logging: PromptLogging | None = None,
        breakers: CircuitBreakers | None = None,
        budget_share: Callable[[str], float | None] | None = None,
        cache: ResponseCache | None = None,
    ) -> None:
        """`budget_share(name)`: the share of a named budget spent so far (budget-aware groups route by it), given
        by the composition root, since budgets live above this layer."""
        self.request_log = request_log
        self._hooks: tuple[CallHook, ...] = tuple(hooks)
        self.prompt_logging = prompt_logging or PromptLogging()
        self.breakers = breakers or CircuitBreakers(SqlBreakerStore(request_log.engine))
        self.budget_share = budget_share or _no_budgets
        self.cache = cache or ResponseCache(SqlCacheBackend(request_log.engine))  # caches only models with a policy
        # The models a semantic cache policy may name as its embedding model: the registry's (set by it).
        self.resolve_model: Callable[[str], Any] | None = None

    def add_hook(self, hook: CallHook) -> None:
        self._hooks = (*self._hooks, hook)

    @property
    def hooks(self) -> tuple[CallHook, ...]:
        return self._hooks

    def lookup_cache(self, model: Any, request: GenerationRequest, context: CallContext) -> CacheLookup:
        """The response cache's answer for this call of `model` (a model or a group), if it holds one."""
        return self.cache.lookup(model, request, context, self._embed_for_cache)

    def store_in_cache(self, model: Any, request: GenerationRequest, context: CallContext,
                       result: GenerationResult, chunks: list[str], looked: CacheLookup = MISS) -> None:
        """Keep `model`'s answer, where its cache policy allows (`looked`: this call's lookup)."""
        self.cache.store(model, request, context, result, chunks, looked, self._embed_for_cache)

    def _embed_for_cache(self, model_name: str, text: str, context: CallContext) -> list[float]:
        """One text's vector from a registered embedding model: a recorded call of its own (source `cache`),
        for the same user and key as the call it serves, so it is budgeted and counted like any other."""
        if self.resolve_model is None:
            raise LookupError(f"no registry to find the embedding model {model_name!r} in")
        embedder = self.resolve_model(model_name)
        own = CallContext(source="cache", user_id=context.user_id, api_key_id=context.api_key_id,
                          tags=context.tags)
        return embedder.run_embeddings(EmbeddingRequest.build(text), own).vectors[0]

    def run(self, call: Call[GenerationRequest],
            looked: CacheLookup | None = None) -> Generator[str, None, GenerationResult]:
        """Yield the provider's chunks, or a cached answer's (`looked`, else looked up here); the generator's
        return value is the recorded result. An answer the provider gave is kept when the cache policy allows."""
        usage = call.usage
        chunks: list[str] = []
        started = time.monotonic()
        first_chunk_at: float | None = None
        error: BaseException | None = None
        try:
            call.model.check_context(call.request)
            looked = looked or self.lookup_cache(call.model, call.request, call.context)
            hit = looked.hit
            if hit is not None:
                call.extras[CACHE_HIT] = hit
                hit.replay_into(usage)
            self._before_call(call)
            for chunk in hit.chunks if hit is not None else call.model.execute(call.request, usage):
                if first_chunk_at is None:
                    first_chunk_at = time.monotonic()
                chunks.append(chunk)
                yield chunk
        except GeneratorExit:
            error = CallCancelled("The caller stopped reading the stream before it ended")
            raise
        except Exception as exc:
            error = exc
            raise
        finally:
            ttft = first_chunk_at - started if (first_chunk_at and call.request.stream) else None
            result = self._finish(call, usage, "".join(chunks), time.monotonic() - started, ttft, error)
        if hit is None:
            self.store_in_cache(call.model, call.request, call.context, result, chunks, looked or MISS)
        return result

    def embed(self, call: Call[EmbeddingRequest]) -> EmbeddingResult:
        """The provider's vectors, once the call is recorded (a failure is recorded, then raised)."""
        usage = call.usage
        vectors: list[list[float]] = []
        started = time.monotonic()
        error: BaseException | None = None
        try:
            self._before_call(call)
            vectors = call.model.execute_embedding(call.request, usage)
        except Exception as exc:
            error = exc
            raise
        finally:
            outcome = self._finish(call, usage, "", time.monotonic() - started, None, error)
        return EmbeddingResult.recorded(outcome, vectors)

    def _before_call(self, call: AnyCall) -> None:
        if CACHE_HIT not in call.extras:  # a cached answer needs no provider, however its breaker stands
            self.breakers.admit(call.model.name)
        for hook in self._hooks:
            hook.before_call(call)

    def record_interrupted(self, call: Call[GenerationRequest], reason: str) -> None:
        """The one row of a call whose process died mid-flight: an error with no usage and no latency (unknown)."""
        result = GenerationResult(response="", model=call.model.name, provider=call.model.provider,
                                  request_id=call.request_id, status="error", source=call.context.source,
                                  error_type=INTERRUPTED, error_message=reason)
        record = self._record(call, result)
        record.latency = None
        self.request_log.insert(record)

    def _finish(
        self, call: AnyCall, usage: Usage, text: str, latency: float, ttft: float | None,
        error: BaseException | None,
    ) -> GenerationResult:
        model = call.model
        cost = usage.cost
        if cost is None and (usage.input_tokens is not None or usage.output_tokens is not None):
            cost = model.calculate_cost(usage.input_tokens or 0, usage.output_tokens or 0, usage.cached_tokens,
                                        usage.cache_write_tokens)
        self._report_health(call, error)
        route = call.context.route
        result = GenerationResult(
            response=text, model=model.name, provider=model.provider, request_id=call.request_id,
            status=_status(error), source=call.context.source,
            input_tokens=usage.input_tokens, output_tokens=usage.output_tokens,
            thinking_tokens=usage.thinking_tokens, cached_tokens=usage.cached_tokens,
            cache_write_tokens=usage.cache_write_tokens, tokens=usage.tokens, latency=latency, ttft=ttft, cost=cost,
            finish_reason=usage.finish_reason,
            error_type=_error_type(error), error_message=str(error) if error else None,
            tool_calls=usage.tool_calls,
        )
        if route is not None:
            result.group, result.attempts, result.degraded = route.group, route.attempt + 1, route.degraded
        hit: CachedAnswer | None = call.extras.get(CACHE_HIT)
        if hit is not None:
            result.cache, result.cost_saved = hit.match, hit.cost
        try:
            self.request_log.insert(self._record(call, result))
        finally:  # even when the log write failed: a guard's reservation must not outlive its call
            for hook in self._hooks:
                try:
                    hook.after_call(call, result)
                except Exception:  # an observer must never fail the call it observes
                    log.exception("Call hook %r failed after request %s", hook, call.request_id)
        return result

    def _report_health(self, call: AnyCall, error: BaseException | None) -> None:
        """Tell the model's breaker how its provider did; a call refused before reaching it, or answered from
        the cache, says nothing."""
        if isinstance(error, CallRefusedError) or CACHE_HIT in call.extras:
            return
        try:
            self.breakers.record(call.model.name, failed=error is not None and is_retryable(error))
        except Exception:  # the breaker's store failing must not fail (or unrecord) the call
            log.exception("Circuit breaker of %s could not record request %s", call.model.name, call.request_id)

    def _record(self, call: AnyCall, result: GenerationResult) -> RequestRecord:
        """The row of a call. An embeddings call keeps its texts, one per line, as the prompt, and no response."""
        request, context = call.request, call.context
        if isinstance(request, EmbeddingRequest):
            params, stream, messages, response, images = request.given(), False, None, None, None
        else:
            params, stream = request.params.given(), request.stream
            messages = self.prompt_logging.conversation(request)
            images = [image.summary() for image in request.images] or None
            response = self.prompt_logging.apply(result.response)
        return RequestRecord(
            request_id=result.request_id, model=result.model, provider=result.provider, operation=call.operation,
            source=context.source, status=result.status, user_id=context.user_id,
            api_key_id=context.api_key_id, tags=list(context.tags) if context.tags else None,
            params=params or None, stream=stream,
            prompt=self.prompt_logging.apply(request.prompt),
            messages=messages, images=images, response=response,
            tool_calls=self.prompt_logging.tool_calls(result.tool_calls),
            input_tokens=result.input_tokens, output_tokens=result.output_tokens,
            thinking_tokens=result.thinking_tokens, cached_tokens=result.cached_tokens,
            cache_write_tokens=result.cache_write_tokens, total_tokens=result.tokens, latency=result.latency,
            ttft=result.ttft, cost=result.cost,
            finish_reason=result.finish_reason, error_type=result.error_type,
            error_message=result.error_message, prompt_name=context.prompt_name,
            prompt_version=context.prompt_version, model_version=call.model.version,
            **_route_columns(context.route), **_cache_columns(call),
        )


def _cache_columns(call: AnyCall) -> dict[str, Any]:
    """A hit's row: the original's cost and tokens as saved figures, apart from the counted ones."""
    hit: CachedAnswer | None = call.extras.get(CACHE_HIT)
    if hit is None:
        return {}
    return {"cache": hit.match, "cost_saved": hit.cost, "saved_input_tokens": hit.input_tokens,
            "saved_output_tokens": hit.output_tokens}


def _no_budgets(name: str) -> float | None:
    return None


def _route_columns(route: Route | None) -> dict[str, Any]:
    if route is None:
        return {}
    return {"route_group": route.group, "client_request_id": route.client_request_id, "attempt": route.attempt,
            "degraded": route.degraded}


def _status(error: BaseException | None) -> str:
    if error is None:
        return "success"
    if isinstance(error, CallRefusedError):
        return "rejected"
    if isinstance(error, CallCancelled):
        return "cancelled"
    return "error"


def _error_type(error: BaseException | None) -> str | None:
    if error is None:
        return None
    return getattr(error, "code", None) or type(error).__name__


def new_request_id() -> str:
    return str(uuid.uuid4())


