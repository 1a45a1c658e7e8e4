"""Anthropic Claude through the official `anthropic` SDK (Messages API), with prompt-cache reads and writes priced.

Usage: Anthropic's `input_tokens` excludes the prompt-cache reads (`cache_read_input_tokens`) and writes
(`cache_creation_input_tokens`); the three are disjoint and sum to the prompt. Ours includes both (see
`ModelPricing.cost`): input = input_tokens + cache_creation + cache_read, cached = cache_read,
cache_write = cache_creation, output = output_tokens. Streams take the prompt's counts from `message_start`
and the output count (cumulative) from `message_delta`.

Retries: the SDK's own are off (`max_retries=0`), as for the other providers; `models.retry` applies the shared
policy, plus Anthropic's 529 overloaded. Error mapping lives in `models.anthropic_errors`, the body mapping in
`models.anthropic_messages`. Token counting is the free byte bound, as for OpenAI-compatible upstreams: an exact
count would cost a `count_tokens` round trip per check, and the provider refuses a prompt past its window anyway.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Generator, Iterator
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr

from core.settings import Settings
from models.anthropic_errors import PROVIDER, is_retryable, malformed_response, map_error
from models.anthropic_messages import finish_reason, message_body, tool_call
from models.base_model import BaseModel, Capabilities
from models.errors import MalformedResponseError, MissingAPIKeyError
from models.messages import GenerationRequest
from models.pricing import ModelPricing, PricingTable
from models.results import Usage
from models.retry import RetryPolicy, forget_usage, retrying
from models.streams import EVENT_STREAM, require_start

if TYPE_CHECKING:  # `import anthropic` takes ~1.5 s: the client is built on first use, not at start-up
    import anthropic
    from anthropic.types import Message, MessageDeltaUsage, RawMessageStreamEvent
    from anthropic.types import Usage as Reported

DEFAULT_BASE_URL = "https://api.anthropic.com"  # passed explicitly: the SDK would read ANTHROPIC_BASE_URL itself
DEFAULT_TIMEOUT = 60.0
DEFAULT_MAX_ATTEMPTS = 4
DEFAULT_STREAM_TIMEOUT = 600.0
KEY_VARIABLE = "ANTHROPIC_API_KEY"
# Output limits (Anthropic's models overview); a call that sets no `max_tokens` is sent its model's limit, so an
# answer is never cut short by a default nobody chose, and a budget reservation covers exactly what may come.
MAX_OUTPUT_TOKENS = {"claude-opus-4": 32_000, "claude-opus-4-1": 32_000, "claude-3-5-haiku": 8_192}
DEFAULT_MAX_OUTPUT_TOKENS = 64_000
SUPPORTED_PARAMS = frozenset({"max_tokens", "stop", "tools", "tool_choice"})  # see anthropic_messages.PARAM_FIELDS


class AnthropicModel(BaseModel):
    """A Claude model; `name` is ours, `model` Anthropic's id (default: the name)."""

    provider = PROVIDER
    capabilities = Capabilities(streaming=True, system_prompt=True, thinking=False, token_counting=False,
                                vision=True)
    supported_params = SUPPORTED_PARAMS

    def __init__(
        self,
        name: str,
        *,
        model: str | None = None,
        api_key: str | None = None,
        api_key_env: str | None = None,
        base_url: str | None = None,
        pricing: ModelPricing | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        context_window: int = 200_000,
        max_output_tokens: int | None = None,
        retry: RetryPolicy | None = None,
        stream_timeout: float = DEFAULT_STREAM_TIMEOUT,
    ) -> None:
        """`api_key_env` names the variable the key should come from, for the message when it is missing.

        `timeout` bounds each read; `stream_timeout` a whole streamed answer.
        """
        super().__init__(name, pricing=pricing)
        self.upstream_model = model or name
        self.base_url = base_url or DEFAULT_BASE_URL
        self.api_key_env = api_key_env
        self.timeout = float(timeout)
        self.stream_timeout = float(stream_timeout)
        self.retry = retry or RetryPolicy.default(max_attempts)
        self.context_window = context_window
        self.max_output_tokens = max_output_tokens or MAX_OUTPUT_TOKENS.get(self.upstream_model,
                                                                            DEFAULT_MAX_OUTPUT_TOKENS)
        self._api_key = SecretStr(api_key or "")  # never printed: repr shows '**********'
        self._client: anthropic.Anthropic | None = None
        self._client_lock = threading.Lock()

    @classmethod
    def from_settings(cls, name: str, settings: Settings, prices: PricingTable) -> AnthropicModel:
        """The model as configured by ANTHROPIC_*: key, endpoint, timeout, attempts, and its price."""
        key = settings.anthropic_api_key
        return cls(name, api_key=key.get_secret_value() if key else None, api_key_env=KEY_VARIABLE,
                   base_url=settings.anthropic_base_url, pricing=prices.get(name), timeout=settings.anthropic_timeout,
                   max_attempts=settings.anthropic_max_attempts, stream_timeout=settings.stream_timeout)

    def __repr__(self) -> str:
        return (f"AnthropicModel(name={self.name!r}, model={self.upstream_model!r}, base_url={self.base_url!r}, "
                f"timeout={self.timeout:g})")

    @property
    def label(self) -> str:
        """How messages name the model (and its Anthropic id, when that differs)."""
        upstream = "" if self.upstream_model == self.name else f" ({self.upstream_model!r})"
        return f"Anthropic model {self.name!r}{upstream}"

    @property
    def client(self) -> anthropic.Anthropic:
        """The SDK client, built (and `anthropic` imported) by the first call rather than at start-up."""
        if self._client is None:
            with self._client_lock:
                if self._client is None:
                    import anthropic

                    from models.stream_deadline import StreamDeadline

                    deadline = StreamDeadline(self.stream_timeout, label=self.label, provider=self.provider)
                    # No OpenTelemetry spans (the request log is the trace); the key and endpoint are explicit, so
                    # the SDK's own lookups (ANTHROPIC_API_KEY, ANTHROPIC_BASE_URL, profiles) never apply.
                    self._client = anthropic.Anthropic(
                        api_key=self._api_key.get_secret_value(), base_url=self.base_url, timeout=self.timeout,
                        max_retries=0, open_telemetry=False,
                        http_client=anthropic.DefaultHttpxClient(event_hooks={"response": [deadline]}))
        return self._client

    def count_tokens(self, text: str) -> int:
        """An upper bound, for budget reservations only: the UTF-8 byte count (no Claude token is shorter than a
        byte). Recorded usage always comes from Anthropic's reply, never from here."""
        return len(text.encode("utf-8"))

    def execute(self, request: GenerationRequest, usage: Usage) -> Iterator[str]:
        self._require_key()
        body = message_body(request, model=self.upstream_model, max_tokens=self.max_output_tokens)
        attempt = self._stream_attempt if request.stream else self._plain_attempt
        yield from retrying(
            lambda: attempt(body, usage), self.retry,
            is_retryable=lambda exc: is_retryable(self.retry, exc),
            map_error=self._error, label=self.label, before_retry=lambda: forget_usage(usage),
        )

    def _require_key(self) -> None:
        if not self._api_key.get_secret_value():
            variable = self.api_key_env or KEY_VARIABLE
            raise MissingAPIKeyError(f"No Anthropic API key for {self.name!r}: set {variable}",
                                     details={"variables": [variable]})

    def _plain_attempt(self, body: dict[str, Any], usage: Usage) -> Generator[str, None, None]:
        message: Any = self.client.messages.create(**body)
        if not hasattr(message, "content"):  # a 200 that is not JSON: the SDK returns its text
            raise malformed_response(self.label, str(message), self._api_key.get_secret_value())
        text = _read_message(message, usage)
        if text:
            yield text

    def _stream_attempt(self, body: dict[str, Any], usage: Usage) -> Generator[str, None, None]:
        stream = self.client.messages.create(**body, stream=True)
        with stream:  # closes the HTTP response when the caller stops early
            if not stream.response.headers.get("content-type", "").startswith(EVENT_STREAM):
                excerpt = next(stream.response.iter_bytes(MalformedResponseError.EXCERPT_CHARS), b"")
                raise malformed_response(self.label, excerpt.decode(errors="replace"), self._api_key.get_secret_value())
            blocks: dict[int, dict[str, Any]] = {}  # the stream's tool_use blocks by content-block index
            texts = (text for event in stream for text in _event_text(event, usage, blocks))
            yield from require_start(texts, usage, label=self.label, provider=self.provider)

    def _error(self, exc: BaseException, attempts: int) -> BaseException:
        return map_error(exc, attempts=attempts, label=self.label, timeout=self.timeout,
                         secret=self._api_key.get_secret_value())


def _read_message(message: Message, usage: Usage) -> str:
    """A whole answer: its usage, stop reason and tool calls taken; its text returned."""
    _read_usage(message.usage, usage)
    usage.response_id, usage.response_model = message.id, message.model
    usage.finish_reason = finish_reason(message.stop_reason)
    calls = [tool_call(block.id, block.name, json.dumps(block.input)) for block in message.content
             if block.type == "tool_use"]
    usage.tool_calls = calls or None
    return "".join(block.text for block in message.content if block.type == "text")


def _event_text(event: RawMessageStreamEvent, usage: Usage, blocks: dict[int, dict[str, Any]]) -> Iterator[str]:
    """The text of one stream event; records usage, the stop reason and tool calls (built from their pieces)."""
    if event.type == "message_start":
        _read_usage(event.message.usage, usage)
        usage.response_id, usage.response_model = event.message.id, event.message.model
    elif event.type == "content_block_start" and event.content_block.type == "tool_use":
        block = event.content_block
        blocks[event.index] = tool_call(block.id, block.name, "")
        usage.tool_calls = [*(usage.tool_calls or ()), blocks[event.index]]
    elif event.type == "content_block_delta":
        if event.delta.type == "text_delta" and event.delta.text:
            yield event.delta.text
        elif event.delta.type == "input_json_delta" and event.index in blocks:
            blocks[event.index]["function"]["arguments"] += event.delta.partial_json
    elif event.type == "content_block_stop" and event.index in blocks:
        function = blocks[event.index]["function"]
        function["arguments"] = function["arguments"] or "{}"  # a call without arguments sends no pieces
    elif event.type == "message_delta":
        _read_usage(event.usage, usage)
        usage.finish_reason = finish_reason(event.delta.stop_reason) or usage.finish_reason


def _read_usage(reported: Reported | MessageDeltaUsage, usage: Usage) -> None:
    """Anthropic's usage (a message's, or a `message_delta`'s cumulative one) in our terms: the input count
    includes cache reads and writes. Counts a delta leaves out keep their earlier values."""
    written = _or(reported.cache_creation_input_tokens, usage.cache_write_tokens)
    read = _or(reported.cache_read_input_tokens, usage.cached_tokens)
    if reported.input_tokens is not None:
        usage.set(input=reported.input_tokens + written + read, cached=read, cache_write=written)
    usage.set(output=reported.output_tokens)


def _or(value: int | None, default: int) -> int:
    return default if value is None else value
