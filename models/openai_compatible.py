"""Any OpenAI-compatible chat-completions server (OpenAI, Ollama, vLLM, LM Studio, llama.cpp) via the `openai` SDK.

Usage as the upstream reports it: input = prompt_tokens (cached included), cached =
prompt_tokens_details.cached_tokens, thinking = completion_tokens_details.reasoning_tokens,
output = completion_tokens (reasoning included), total = total_tokens. Streams ask for usage with
`stream_options.include_usage` and read it from the final chunk.

Retries: the SDK's own are off (`max_retries=0`) because its policy differs from ours (it also
retries 409, honours Retry-After and backs off 0.5-8 s); `models.retry` applies Gemini's policy.
A 200 whose body is not a chat completion (or, for a stream, not an event stream) is a `MalformedResponseError`;
a stream must end within `stream_timeout` seconds (`models.stream_deadline`).
"""

from __future__ import annotations

import threading
from collections.abc import Generator, Iterator
from typing import TYPE_CHECKING, Any, cast

from pydantic import SecretStr

from models.base_model import BaseModel, Capabilities
from models.errors import MalformedResponseError, MissingAPIKeyError
from models.messages import GenerationRequest
from models.openai_errors import is_retryable, malformed_response, map_error
from models.pricing import ModelPricing
from models.results import Usage
from models.retry import RetryPolicy, forget_usage, retrying
from models.streams import EVENT_STREAM, require_start

if TYPE_CHECKING:  # `import openai` takes ~1 s: the client is built on first use, not at start-up
    import httpx2
    import openai
    from openai.types.chat import ChatCompletionChunk

DEFAULT_TIMEOUT = 60.0
DEFAULT_MAX_ATTEMPTS = 4
DEFAULT_STREAM_TIMEOUT = 600.0
# Unless the models file says otherwise: a context and an output limit that today's chat models meet.
DEFAULT_CONTEXT_WINDOW = 128_000
DEFAULT_MAX_OUTPUT_TOKENS = 32_768
# Sent when no key is configured: local servers (Ollama, vLLM, llama.cpp) ignore it, the SDK requires one.
PLACEHOLDER_KEY = "no-key-configured"
# Generation parameters sent as chat-completions fields of the same name (`max_tokens` is the field every
# compatible server accepts; OpenAI's newer `max_completion_tokens` is not).
SUPPORTED_PARAMS = frozenset({"temperature", "max_tokens", "top_p", "stop", "seed", "response_format",
                              "presence_penalty", "frequency_penalty", "reasoning_effort", "tools", "tool_choice"})


class OpenAICompatibleModel(BaseModel):
    """A model behind a chat-completions endpoint; `name` is ours, `model` the upstream's id."""

    provider = "openai_compatible"
    # vision: the upstream decides; one that cannot see refuses the image itself (models.yaml can say `vision: false`)
    capabilities = Capabilities(streaming=True, system_prompt=True, thinking=False, token_counting=False,
                                vision=True)
    supported_params = SUPPORTED_PARAMS

    def __init__(
        self,
        name: str,
        *,
        base_url: str,
        model: str | None = None,
        api_key: str | None = None,
        api_key_env: str | None = None,
        pricing: ModelPricing | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        retry: RetryPolicy | None = None,
        stream_timeout: float = DEFAULT_STREAM_TIMEOUT,
        context_window: int = DEFAULT_CONTEXT_WINDOW,
        max_output_tokens: int = DEFAULT_MAX_OUTPUT_TOKENS,
    ) -> None:
        """`api_key_env` names the variable the key should come from: without a key, calls then fail saying so.

        `timeout` bounds each read; `stream_timeout` a whole streamed answer.
        """
        super().__init__(name, pricing=pricing)
        self.base_url = base_url
        self.upstream_model = model or name
        self.context_window = context_window
        self.max_output_tokens = max_output_tokens
        self.api_key_env = api_key_env
        self.timeout = float(timeout)
        self.stream_timeout = float(stream_timeout)
        self.retry = retry or RetryPolicy.default(max_attempts)
        self._api_key = SecretStr(api_key or "")  # never printed: repr shows '**********'
        self._client: openai.OpenAI | None = None
        self._client_lock = threading.Lock()

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(name={self.name!r}, model={self.upstream_model!r}, "
                f"base_url={self.base_url!r}, timeout={self.timeout:g})")

    @property
    def client(self) -> openai.OpenAI:
        """The SDK client, built (and `openai` imported) by the first call rather than at start-up."""
        if self._client is None:
            with self._client_lock:
                if self._client is None:
                    import openai

                    from models.stream_deadline import StreamDeadline

                    deadline = StreamDeadline(self.stream_timeout, label=self.label, provider=self.provider)
                    http_client = openai.DefaultHttpxClient(event_hooks={"response": [deadline]})
                    client = self._new_client({"api_key": self._api_key.get_secret_value() or PLACEHOLDER_KEY,
                                               "timeout": self.timeout, "max_retries": 0, "http_client": http_client})
                    # The SDK's platform telemetry headers (X-Stainless-OS, -Arch, -Runtime ...): no server
                    # needs them, and normalizing them costs ~40 us, about 8% of a call (measured).
                    telemetry = [name for name in client.default_headers if name.lower().startswith("x-stainless-")]
                    # Omit() removes a header; the SDK handles it although `default_headers` is typed str only.
                    omitted = cast("dict[str, str]", dict.fromkeys(telemetry, openai.Omit()))
                    self._client = client.with_options(default_headers=omitted)
        return self._client

    def _new_client(self, options: dict[str, Any]) -> openai.OpenAI:
        """The SDK client with the shared `options` (key, timeout, no retries, HTTP client); a subclass for another
        URL layout or auth (Azure OpenAI) overrides this one method."""
        import openai

        return openai.OpenAI(base_url=self.base_url, **options)

    @property
    def label(self) -> str:
        """How messages name the upstream."""
        return f"upstream {self.upstream_model!r} of {self.name!r}"

    def count_tokens(self, text: str) -> int:
        """An upper bound, for budget reservations only: the UTF-8 byte count.

        Chat-completions servers have no standard counting endpoint, and a byte-level BPE token is
        at least one byte. Recorded usage always comes from the upstream's reply, never from here.
        """
        return len(text.encode("utf-8"))

    def execute(self, request: GenerationRequest, usage: Usage) -> Iterator[str]:
        self._require_key()
        attempt = self._stream_attempt if request.stream else self._plain_attempt
        yield from retrying(
            lambda: attempt(request, usage), self.retry,
            is_retryable=lambda exc: is_retryable(self.retry, exc),
            map_error=self._error, label=self.label, before_retry=lambda: forget_usage(usage),
        )



    def _require_key(self) -> None:
        """A key named by `api_key_env` but not set fails here, saying which variable."""
        if self.api_key_env and not self._api_key.get_secret_value():
            raise MissingAPIKeyError(
                f"No API key for {self.name!r}: set {self.api_key_env} (named by api_key_env in the models file)",
                details={"variables": [self.api_key_env]},
            )

    def _plain_attempt(self, request: GenerationRequest, usage: Usage) -> Generator[str, None, None]:
        """Through the SDK's documented raw `client.post`: the same request, auth, timeouts and error
        classes as `chat.completions.create`, minus its typed-params transform and response models,
        which cost ~60% of the gateway's CPU per call (profiled; see benchmarks/bench_server.py)."""
        import httpx2

        response = self.client.post("/chat/completions", body=self._arguments(request), cast_to=httpx2.Response)
        completion = response.json()  # not JSON: a JSONDecodeError, mapped to MalformedResponseError
        if not isinstance(completion, dict):
            raise self._malformed(response.text)
        _read_usage(completion.get("usage"), usage)
        usage.response_id, usage.response_model = completion.get("id"), completion.get("model")
        for choice in (completion.get("choices") or [])[:1]:
            usage.finish_reason = choice.get("finish_reason")
            message = choice.get("message") or {}
            usage.tool_calls = message.get("tool_calls") or None
            if message.get("content"):
                yield message["content"]

    def _stream_attempt(self, request: GenerationRequest, usage: Usage) -> Generator[str, None, None]:
        stream = self.client.chat.completions.create(
            **self._arguments(request), stream=True, stream_options={"include_usage": True})
        with stream:  # closes the HTTP response when the caller stops early
            if not stream.response.headers.get("content-type", "").startswith(EVENT_STREAM):
                raise self._malformed(_excerpt(stream.response))
            texts = (text for chunk in stream for text in _chunk_text(chunk, usage))
            yield from require_start(texts, usage, label=self.label, provider=self.provider)

    def _arguments(self, request: GenerationRequest) -> dict[str, Any]:
        """The chat-completions body: the conversation as it is, and the parameters under their own names."""
        return {"model": self.upstream_model, "messages": request.as_dicts(), **request.params.given()}

    def _error(self, exc: BaseException, attempts: int) -> BaseException:
        return map_error(exc, attempts=attempts, label=self.label, timeout=self.timeout,
                         secret=self._api_key.get_secret_value())

    def _malformed(self, body: str) -> BaseException:
        return malformed_response(self.label, body, self._api_key.get_secret_value())


def _excerpt(response: httpx2.Response) -> str:
    """The start of a body that will not be used, read no further than the error message quotes."""
    return next(response.iter_bytes(MalformedResponseError.EXCERPT_CHARS), b"").decode(errors="replace")


def _chunk_text(chunk: ChatCompletionChunk, usage: Usage) -> Iterator[str]:
    """The text of one stream chunk; records its finish reason and, on the final chunk, the usage."""
    usage.response_id, usage.response_model = chunk.id, chunk.model
    if chunk.usage is not None:
        _read_usage(chunk.usage.to_dict(), usage)
    for choice in chunk.choices[:1]:
        if choice.finish_reason:
            usage.finish_reason = choice.finish_reason
        for delta in choice.delta.tool_calls or ():
            _add_tool_call_delta(usage, delta.to_dict())
        if choice.delta.content:
            yield choice.delta.content


def _add_tool_call_delta(usage: Usage, delta: dict[str, Any]) -> None:
    """Streams send each tool call in pieces by `index`: the first names it, later ones add argument text."""
    calls = usage.tool_calls = usage.tool_calls or []
    index = delta.get("index", len(calls))
    while len(calls) <= index:
        calls.append({"id": "", "type": "function", "function": {"name": "", "arguments": ""}})
    call, function = calls[index], delta.get("function") or {}
    call["id"] = delta.get("id") or call["id"]
    call["function"]["name"] += function.get("name") or ""
    call["function"]["arguments"] += function.get("arguments") or ""


def _read_usage(reported: dict[str, Any] | None, usage: Usage) -> None:
    """The upstream's `usage` object, as JSON; absent details count as 0."""
    if not reported:
        return
    prompt_details = reported.get("prompt_tokens_details") or {}
    completion_details = reported.get("completion_tokens_details") or {}
    usage.set(
        input=reported.get("prompt_tokens"),
        output=reported.get("completion_tokens"),
        cached=prompt_details.get("cached_tokens") or 0,
        thinking=completion_details.get("reasoning_tokens") or 0,
        total=reported.get("total_tokens"),
    )
