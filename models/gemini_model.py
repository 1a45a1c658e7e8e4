"""Google Gemini through the official google-genai SDK, with usage exactly as Gemini reports it.

Usage: input = promptTokenCount (cached tokens included), cached = cachedContentTokenCount,
thinking = thoughtsTokenCount, output = candidatesTokenCount + thoughtsTokenCount (thinking is billed
as output), total = totalTokenCount. Error mapping lives in `models.gemini_errors`.

Retries: the SDK's own are off, because it retries neither a connection reset nor a body cut short;
every call (streams before their first chunk) goes through `models.retry` with the shared policy.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from contextlib import closing
from typing import Any, cast

from google import genai
from google.genai import types
from pydantic import SecretStr

from core.settings import Settings, get_settings
from models.base_model import BaseModel, Capabilities
from models.errors import MissingAPIKeyError
from models.gemini_errors import is_retryable, map_error
from models.gemini_tools import contents, read_function_calls, tool_config_fields
from models.messages import GenerationRequest
from models.params import GenerationParams
from models.pricing import ModelPricing, PricingTable
from models.results import Usage
from models.retry import RetryPolicy, forget_usage, retry_call, retrying
from models.stream_deadline import StreamDeadline
from models.streams import require_start

API_VERSION = "v1beta"  # google-genai 3.4.0 defaults to v1; the wire format we speak is v1beta
CONTEXT_WINDOW = 1_048_576
KEY_VARIABLES = ("GEMINI_API_KEY", "GOOGLE_API_KEY")
# Generation parameters -> GenerateContentConfig fields (the ones with the same meaning under another name).
CONFIG_FIELDS = {
    "temperature": "temperature", "max_tokens": "max_output_tokens", "top_p": "top_p", "top_k": "top_k",
    "seed": "seed", "stop": "stop_sequences", "presence_penalty": "presence_penalty",
    "frequency_penalty": "frequency_penalty",
}
FINISH_REASONS = {"STOP": "stop", "MAX_TOKENS": "length"}
# The largest thinking budget of each thinking model (Google's documented maximum; -1, dynamic, stays below it).
MAX_THINKING_TOKENS = {"gemini-2.5-pro": 32_768, "gemini-2.5-flash": 24_576, "gemini-2.5-flash-lite": 24_576}


class GeminiModel(BaseModel):
    """A Gemini model; the key comes from the argument, else GEMINI_API_KEY or GOOGLE_API_KEY.

    `GeminiModel()` is the original's default model, gemini-2.0-flash-exp.
    """

    provider = "gemini"
    context_window = CONTEXT_WINDOW
    supported_params = frozenset({*CONFIG_FIELDS, "response_format", "thinking_budget", "tools", "tool_choice"})

    def __init__(
        self,
        model_name: str = "gemini-2.0-flash-exp",
        api_key: str | None = None,
        *,
        base_url: str | None = None,
        timeout: float | None = None,
        max_attempts: int | None = None,
        pricing: ModelPricing | None = None,
        settings: Settings | None = None,
        retry: RetryPolicy | None = None,
        stream_timeout: float | None = None,
    ) -> None:
        """Unset arguments come from `settings` (default: the process settings: environment and `.env`).

        `timeout` bounds each read; `stream_timeout` a whole streamed answer.
        """
        super().__init__(model_name, pricing=pricing)
        settings = settings or get_settings()
        key = api_key or (settings.gemini_api_key.get_secret_value() if settings.gemini_api_key else "")
        if not key:
            raise MissingAPIKeyError(
                f"No Gemini API key for {model_name!r}: set {' or '.join(KEY_VARIABLES)}, or pass api_key=",
                details={"variables": list(KEY_VARIABLES)},
            )
        self._api_key = SecretStr(key)  # never printed: repr shows '**********'
        self.base_url = base_url if base_url is not None else settings.gemini_base_url
        self.timeout = float(timeout if timeout is not None else settings.gemini_timeout)
        self.stream_timeout = float(stream_timeout if stream_timeout is not None else settings.stream_timeout)
        self.retry = retry or RetryPolicy.default(max_attempts or settings.gemini_max_attempts)
        self.capabilities = Capabilities(streaming=True, system_prompt=True, thinking=_thinks(model_name), vision=True)
        self.max_output_tokens = 65_536 if model_name.startswith("gemini-2.5") else 8_192
        self.max_thinking_tokens = MAX_THINKING_TOKENS.get(model_name, 24_576) if _thinks(model_name) else 0
        deadline = StreamDeadline(self.stream_timeout, label=self.label, provider=self.provider)
        self._client = genai.Client(api_key=key, http_options=types.HttpOptions(
            base_url=self.base_url, api_version=API_VERSION, timeout=int(self.timeout * 1000),
            client_args={"event_hooks": {"response": [deadline]}},  # no retry_options: the SDK never retries
        ))

    @classmethod
    def from_settings(cls, name: str, settings: Settings, prices: PricingTable | None = None) -> GeminiModel:
        """The model as configured: key, endpoint, timeout, attempts, and its price (PRICING_FILE included)."""
        return cls(name, None, pricing=(prices or PricingTable.for_settings(settings)).get(name), settings=settings)

    @property
    def client(self) -> genai.Client:
        """The original attribute: the google-genai client this model calls through."""
        return self._client

    def __repr__(self) -> str:
        return f"GeminiModel(name={self.name!r}, base_url={self.base_url!r}, timeout={self.timeout:g})"

    @property
    def label(self) -> str:
        """How messages name the model."""
        return f"Gemini model {self.name!r}"

    def thinking_allowance(self, params: GenerationParams) -> int:
        """The thinking budget asked for, else the model's largest: Gemini bills thoughts as output tokens,
        reported apart from the answer's, so a reservation must cover both."""
        if not self.max_thinking_tokens:
            return 0
        return self.max_thinking_tokens if params.thinking_budget is None else params.thinking_budget

    def count_tokens(self, text: str) -> int:
        """Gemini's own count (a countTokens request), retried like any other call."""
        return self._count(text)

    def count_input_tokens(self, request: GenerationRequest) -> int:
        """Gemini's count of the whole conversation, the system instruction counted as a user turn."""
        system = [types.Content(role="user", parts=[types.Part(text=request.system)])] if request.system else []
        return self._count([*system, *contents(request)])

    def _count(self, contents: Any) -> int:
        return retry_call(lambda: int(self._client.models.count_tokens(model=self.name, contents=contents)
                                      .total_tokens or 0), **self._retrying())

    def execute(self, request: GenerationRequest, usage: Usage) -> Iterator[str]:
        attempt = self._stream_attempt if request.stream else self._plain_attempt
        yield from retrying(lambda: attempt(request, self._config(request), usage),  # the SDK may refuse the config
                            before_retry=lambda: forget_usage(usage), **self._retrying())

    def _plain_attempt(self, request: GenerationRequest, config: types.GenerateContentConfig,
                       usage: Usage) -> Generator[str, None, None]:
        response = self._client.models.generate_content(model=self.name, contents=contents(request), config=config)
        text = _read(response, usage)
        if text:
            yield text

    def _stream_attempt(self, request: GenerationRequest, config: types.GenerateContentConfig,
                        usage: Usage) -> Generator[str, None, None]:
        responses = self._client.models.generate_content_stream(model=self.name, contents=contents(request),
                                                                config=config)
        # The SDK types its stream as an Iterator; it is a generator, which `closing` needs.
        stream = cast("Generator[types.GenerateContentResponse, None, None]", responses)
        with closing(stream):  # a caller that stops early also closes the HTTP stream
            texts = (text for response in stream if (text := _read(response, usage)))
            yield from require_start(texts, usage, label=self.label, provider=self.provider)

    def _retrying(self) -> dict[str, Any]:
        """The arguments of `models.retry` for this model's calls."""
        return {"policy": self.retry, "is_retryable": lambda exc: is_retryable(self.retry, exc),
                "map_error": self._error, "label": self.label}

    def _config(self, request: GenerationRequest) -> types.GenerateContentConfig:
        params = request.params
        fields: dict[str, Any] = {CONFIG_FIELDS[name]: value for name, value in params.given().items()
                                  if name in CONFIG_FIELDS}
        if params.thinking_budget is not None:
            fields["thinking_config"] = types.ThinkingConfig(thinking_budget=params.thinking_budget)
        if params.response_format is not None and params.response_format.wants_json:
            fields["response_mime_type"] = "application/json"
            fields["response_json_schema"] = params.response_format.output_schema
        return types.GenerateContentConfig(
            system_instruction=request.system,
            automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
            **fields, **tool_config_fields(params),
        )

    def _error(self, exc: BaseException, attempts: int) -> BaseException:
        return map_error(exc, attempts=attempts, timeout=self.timeout)


def _thinks(model_name: str) -> bool:
    return model_name.startswith("gemini-2.5")


def _read(response: types.GenerateContentResponse, usage: Usage) -> str:
    """The text of a response (or stream chunk), after taking its usage and finish reason."""
    _read_usage(response, usage)
    read_function_calls(response, usage)
    return _text(response)


def _read_usage(response: types.GenerateContentResponse, usage: Usage) -> None:
    """Take the counts of a response (or stream chunk) that carries usageMetadata; later ones win."""
    usage.response_id, usage.response_model = response.response_id, response.model_version
    meta = response.usage_metadata
    if meta is not None:
        thoughts = meta.thoughts_token_count or 0
        candidates = meta.candidates_token_count
        usage.set(
            input=meta.prompt_token_count,
            cached=meta.cached_content_token_count or 0,
            thinking=thoughts,
            output=(candidates or 0) + thoughts if candidates is not None or thoughts else None,
            total=meta.total_token_count,
        )
    feedback = response.prompt_feedback  # a blocked prompt ends the answer with no candidates
    reason = (response.candidates[0].finish_reason if response.candidates
              else feedback.block_reason if feedback is not None else None)
    if reason:
        value = reason.value if hasattr(reason, "value") else str(reason)
        usage.finish_reason = FINISH_REASONS.get(value, value.lower())


def _text(response: types.GenerateContentResponse) -> str:
    """The answer's text parts, thoughts excluded (no SDK warning about non-text parts)."""
    if not response.candidates or not response.candidates[0].content:
        return ""
    parts = response.candidates[0].content.parts or []
    return "".join(part.text for part in parts if part.text and not part.thought)
