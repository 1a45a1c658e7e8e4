"""The one managed call path: context and guards before, the provider call, exactly one request-log row, observers.

Every generation, whatever its source, runs through `CallPath.run`. Hooks (budgets, Prometheus,
...) are attached by the composition root, so this package never imports `monitoring`.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from core.settings import Settings, get_settings
from models.errors import CallRefusedError
from models.request_log import RequestLogRepository, RequestRecord
from models.results import GenerationRequest, GenerationResult, Usage
from storage.database import get_engine

if TYPE_CHECKING:
    from models.base_model import BaseModel

log = logging.getLogger(__name__)

SOURCES = ("api", "workflow", "comparison", "experiment", "library")


class CallCancelled(Exception):
    """The consumer stopped reading a stream before it ended."""


@dataclass
class CallInfo:
    """Everything known about a call before the provider answers; hooks keep state in `extras`."""

    request_id: str
    model: BaseModel
    request: GenerationRequest
    source: str = "library"
    user_id: str | None = None
    tags: list[str] | None = None
    api_key_id: str | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    def max_cost(self) -> float | None:
        """Worst-case cost: the counted input plus the full output allowance at the output price."""
        pricing = self.model.pricing
        if pricing is None:
            return None
        if pricing.input_per_million == 0 and pricing.output_per_million == 0:
            return 0.0
        text = (self.request.system or "") + self.request.prompt
        input_tokens = self.model.count_tokens(text)
        output_allowance = self.request.max_tokens or self.model.max_output_tokens
        return pricing.cost(input_tokens, output_allowance)


class CallHook(Protocol):
    """A guard and/or observer around every call. `before_call` may raise `CallRefusedError`."""

    def before_call(self, call: CallInfo) -> None: ...

    def after_call(self, call: CallInfo, result: GenerationResult) -> None: ...


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

    @classmethod
    def from_settings(cls, settings: Settings) -> PromptLogging:
        return cls(settings.log_prompts, settings.log_prompts_max_chars)


class CallPath:
    """Runs calls and records each exactly once, success or failure."""

    def __init__(
        self,
        request_log: RequestLogRepository,
        hooks: Sequence[CallHook] = (),
        prompt_logging: PromptLogging | None = None,
    ) -> None:
        self.request_log = request_log
        self._hooks: tuple[CallHook, ...] = tuple(hooks)
        self.prompt_logging = prompt_logging or PromptLogging()

    def add_hook(self, hook: CallHook) -> None:
        self._hooks = (*self._hooks, hook)

    @property
    def hooks(self) -> tuple[CallHook, ...]:
        return self._hooks

    def run(self, call: CallInfo) -> Generator[str, None, GenerationResult]:
        """Yield the provider's chunks; the generator's return value is the recorded result."""
        usage = Usage()
        chunks: list[str] = []
        started = time.monotonic()
        first_chunk_at: float | None = None
        error: BaseException | None = None
        try:
            call.model.check_context(call.request.prompt, call.request.system)
            for hook in self._hooks:
                hook.before_call(call)
            for chunk in call.model.execute(call.request, usage):
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
        return result

    def _finish(
        self, call: CallInfo, usage: Usage, text: str, latency: float, ttft: float | None,
        error: BaseException | None,
    ) -> GenerationResult:
        model = call.model
        cost = None
        if usage.input_tokens is not None or usage.output_tokens is not None:
            cost = model.calculate_cost(usage.input_tokens or 0, usage.output_tokens or 0, usage.cached_tokens)
        result = GenerationResult(
            response=text, model=model.name, provider=model.provider, request_id=call.request_id,
            status=_status(error), source=call.source,
            input_tokens=usage.input_tokens, output_tokens=usage.output_tokens,
            thinking_tokens=usage.thinking_tokens, cached_tokens=usage.cached_tokens,
            tokens=usage.tokens, latency=latency, ttft=ttft, cost=cost,
            finish_reason=usage.finish_reason,
            error_type=_error_type(error), error_message=str(error) if error else None,
        )
        self.request_log.insert(self._record(call, result))
        for hook in self._hooks:
            try:
                hook.after_call(call, result)
            except Exception:  # an observer must never fail the call it observes
                log.exception("Call hook %r failed after request %s", hook, call.request_id)
        return result

    def _record(self, call: CallInfo, result: GenerationResult) -> RequestRecord:
        request = call.request
        params = {"temperature": request.temperature, "max_tokens": request.max_tokens, **request.params}
        return RequestRecord(
            request_id=result.request_id, model=result.model, provider=result.provider,
            source=call.source, status=result.status, user_id=call.user_id,
            api_key_id=call.api_key_id, tags=call.tags,
            params={k: v for k, v in params.items() if v is not None}, stream=request.stream,
            prompt=self.prompt_logging.apply(request.prompt),
            response=self.prompt_logging.apply(result.response),
            input_tokens=result.input_tokens, output_tokens=result.output_tokens,
            thinking_tokens=result.thinking_tokens, cached_tokens=result.cached_tokens,
            total_tokens=result.tokens, latency=result.latency, ttft=result.ttft, cost=result.cost,
            finish_reason=result.finish_reason, error_type=result.error_type,
            error_message=result.error_message,
        )


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


_default_path: CallPath | None = None
_default_lock = threading.Lock()


def default_call_path() -> CallPath:
    """The call path for models used on their own, outside a registry: the default database."""
    global _default_path
    with _default_lock:
        if _default_path is None:
            settings = get_settings()
            _default_path = CallPath(
                RequestLogRepository(get_engine(settings.database_url)),
                prompt_logging=PromptLogging.from_settings(settings),
            )
        return _default_path
