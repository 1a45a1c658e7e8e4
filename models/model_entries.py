"""The models file's model entries: one class per `provider`, sharing the fields every model has, each building its
model. Unknown keys are refused (`extra="forbid"`), so a misspelt field is an error rather than silently ignored."""

from __future__ import annotations

import logging
from dataclasses import fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from models.base_model import Capabilities
from models.cache.policy import CachePolicy
from models.errors import MissingAPIKeyError
from models.local_model import DEFAULT_CONTEXT
from models.openai_compatible import (
    DEFAULT_CONTEXT_WINDOW,
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_MAX_OUTPUT_TOKENS,
    DEFAULT_TIMEOUT,
)
from models.params import MAX_TOKENS_LIMIT, PromptParams
from models.pricing import ModelPricing

if TYPE_CHECKING:
    from core.settings import Settings
    from models.base_model import BaseModel as Model
    from models.pricing import PricingTable

log = logging.getLogger(__name__)

ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
CAPABILITY_FLAGS = frozenset(flag.name for flag in fields(Capabilities))


def _http_url(value: str) -> str:
    if not value.startswith(("http://", "https://")) or len(value) <= len("https://"):
        raise ValueError("must be an http:// or https:// URL, e.g. http://127.0.0.1:8001/v1")
    return value


HttpUrl = Annotated[str, AfterValidator(_http_url)]
EnvName = Annotated[str, Field(pattern=ENV_NAME)]
UpstreamId = Annotated[str, Field(min_length=1, max_length=200)]
Timeout = Annotated[float, Field(gt=0)]
Attempts = Annotated[int, Field(ge=1, le=20)]
ContextWindow = Annotated[int, Field(ge=1, le=100_000_000)]
OutputTokens = Annotated[int, Field(ge=1, le=MAX_TOKENS_LIMIT)]


class CommonEntry(BaseModel):
    """What every declared model may set, whatever its provider.

    `capabilities` overrides flags of `models.base_model.Capabilities` (e.g. `{streaming: false}` for a server that
    cannot stream); `defaults` are generation parameters and a `system` prompt for the calls that leave them unset
    (`BaseModel.with_defaults`), checked against the model's limits at start-up.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=200)
    display_name: str | None = Field(default=None, min_length=1, max_length=200)  # for listings; default: name
    aliases: list[str] = Field(default_factory=list)
    pricing: ModelPricing | None = None  # default: the pricing table's, by upstream model id, else by name
    capabilities: dict[str, bool] | None = None  # flags of models.base_model.Capabilities declared differently
    cache: CachePolicy | None = None  # the response cache for this model (off unless set, or CACHE_ENABLED)
    defaults: PromptParams | None = None  # parameters (and a system prompt) for calls that do not set them

    @field_validator("aliases")
    @classmethod
    def _non_empty_aliases(cls, value: list[str]) -> list[str]:
        if any(not alias.strip() for alias in value):
            raise ValueError("aliases must be non-empty strings")
        return value

    @field_validator("capabilities")
    @classmethod
    def _known_flags(cls, value: dict[str, bool] | None) -> dict[str, bool] | None:
        unknown = sorted(set(value or ()) - CAPABILITY_FLAGS)
        if unknown:
            raise ValueError(f"unknown capabilities {', '.join(unknown)}; known: {', '.join(sorted(CAPABILITY_FLAGS))}")
        return value

    @property
    def upstream_id(self) -> str:
        """The provider's id for the model: what the pricing table is searched for first."""
        return self.name

    def price(self, table: PricingTable) -> ModelPricing | None:
        """The entry's own prices, else the table's for the upstream model id, else for the name; None (cost
        recorded as null) when none is known."""
        if self.pricing is not None:
            return self.pricing
        return table.get(self.upstream_id if self.upstream_id in table.names() else self.name)

    def configure(self, model: Model) -> None:
        """Apply the fields every provider shares; a default the model cannot honour (a `max_tokens` past its
        output limit, a parameter its provider lacks) raises `InvalidInputError` naming it."""
        if self.defaults is not None:
            model.check_params(self.defaults.only_generation())
        model.defaults = self.defaults
        model.display_name = self.display_name
        model.cache_policy = self.cache
        if self.capabilities:
            model.capabilities = replace(model.capabilities, **self.capabilities)


class KeyedEntry(CommonEntry):
    """A model behind a remote API whose key lives in the variable `api_key_env` names (never in the file)."""

    api_key_env: EnvName | None = None

    def read_key(self, settings: Settings) -> str | None:
        api_key = settings.env_value(self.api_key_env) if self.api_key_env else None
        if self.api_key_env and not api_key:
            log.warning("Models file: %s is not set, so calls to %r will fail until it is", self.api_key_env, self.name)
        return api_key


class TimedEntry(KeyedEntry):
    timeout: Timeout = DEFAULT_TIMEOUT
    max_attempts: Attempts = DEFAULT_MAX_ATTEMPTS


class ChatCompletionsEntry(TimedEntry):
    """A server speaking OpenAI's chat-completions format."""

    base_url: HttpUrl
    model: UpstreamId | None = None
    context_window: ContextWindow = DEFAULT_CONTEXT_WINDOW
    max_output_tokens: OutputTokens = DEFAULT_MAX_OUTPUT_TOKENS

    @property
    def upstream_id(self) -> str:
        return self.model or self.name


class OpenAICompatibleEntry(ChatCompletionsEntry):
    provider: Literal["openai_compatible"]
    kind: Literal["chat", "embeddings"] = "chat"  # an embedding model embeds and does not chat

    def build(self, settings: Settings, pricing: ModelPricing | None) -> Model | None:
        from models.openai_compatible import OpenAICompatibleModel
        from models.openai_embeddings import OpenAICompatibleEmbeddingModel

        model_class = OpenAICompatibleEmbeddingModel if self.kind == "embeddings" else OpenAICompatibleModel
        return model_class(
            self.name, base_url=self.base_url, model=self.model, api_key=self.read_key(settings),
            api_key_env=self.api_key_env, pricing=pricing, timeout=self.timeout, max_attempts=self.max_attempts,
            stream_timeout=settings.stream_timeout, context_window=self.context_window,
            max_output_tokens=self.max_output_tokens,
        )


class AzureOpenAIEntry(ChatCompletionsEntry):
    """`base_url` is the resource endpoint (https://<resource>.openai.azure.com); `model`, the OpenAI model the
    deployment serves, prices it (default: the deployment's name)."""

    provider: Literal["azure_openai"]
    deployment: UpstreamId
    api_version: str = Field(min_length=1, max_length=50)
    api_key_env: EnvName

    @property
    def upstream_id(self) -> str:
        return self.model or self.deployment

    def build(self, settings: Settings, pricing: ModelPricing | None) -> Model | None:
        from models.azure_openai import AzureOpenAIModel

        return AzureOpenAIModel(
            self.name, base_url=self.base_url, deployment=self.deployment, api_version=self.api_version,
            model=self.model, api_key=self.read_key(settings), api_key_env=self.api_key_env, pricing=pricing,
            timeout=self.timeout, max_attempts=self.max_attempts, stream_timeout=settings.stream_timeout,
            context_window=self.context_window, max_output_tokens=self.max_output_tokens,
        )


class AnthropicEntry(TimedEntry):
    """Claude; the context and output limits, when not declared, are the Anthropic model class's."""

    provider: Literal["anthropic"]
    model: UpstreamId | None = None
    base_url: HttpUrl | None = None
    api_key_env: EnvName = "ANTHROPIC_API_KEY"
    context_window: ContextWindow | None = None
    max_output_tokens: OutputTokens | None = None

    @property
    def upstream_id(self) -> str:
        return self.model or self.name

    def build(self, settings: Settings, pricing: ModelPricing | None) -> Model | None:
        from models.anthropic_model import AnthropicModel

        limits = self.model_dump(include={"context_window", "max_output_tokens"}, exclude_none=True)
        return AnthropicModel(
            self.name, model=self.upstream_id, api_key_env=self.api_key_env, api_key=self.read_key(settings),
            base_url=self.base_url, pricing=pricing, timeout=self.timeout, max_attempts=self.max_attempts,
            stream_timeout=settings.stream_timeout, **limits)


class GeminiEntry(KeyedEntry):
    """A Gemini model, called by its Gemini id: `model`, when given, must be the name (declare other names as
    aliases). Without its key (`api_key_env`, else GEMINI_API_KEY or GOOGLE_API_KEY) it is left out, as the
    built-in Gemini models are."""

    provider: Literal["gemini"]
    model: UpstreamId | None = None
    base_url: HttpUrl | None = None
    api_key_env: EnvName = "GEMINI_API_KEY"
    timeout: Timeout | None = None  # default: GEMINI_TIMEOUT
    max_attempts: Attempts | None = None  # default: GEMINI_MAX_ATTEMPTS

    @field_validator("model")
    @classmethod
    def _the_name(cls, value: str | None, info: ValidationInfo) -> str | None:
        name = info.data.get("name")  # validated before: `name` is declared first
        if value is not None and name is not None and value != name:
            raise ValueError(f"a Gemini model is called by its name: use name {value!r} (with aliases for others)")
        return value

    def build(self, settings: Settings, pricing: ModelPricing | None) -> Model | None:
        from models.gemini_model import GeminiModel

        try:
            return GeminiModel(self.name, settings.env_value(self.api_key_env), base_url=self.base_url,
                               timeout=self.timeout, max_attempts=self.max_attempts, pricing=pricing,
                               settings=settings)
        except MissingAPIKeyError:
            log.warning("Models file: %s is not set, so %r is not registered", self.api_key_env, self.name)
            return None


class LocalEntry(CommonEntry):
    """A GGUF file run in-process by llama.cpp (default: the bundled model)."""

    provider: Literal["local"]
    path: str | None = None
    n_ctx: ContextWindow = DEFAULT_CONTEXT

    @field_validator("path")
    @classmethod
    def _a_file(cls, value: str | None) -> str | None:
        if value is not None and not Path(value).is_file():
            raise ValueError(f"no such file: {value}")
        return value

    def build(self, settings: Settings, pricing: ModelPricing | None) -> Model | None:
        from models.local_model import LocalModel

        return LocalModel(self.path, name=self.name, n_threads=settings.local_model_threads, n_ctx=self.n_ctx,
                          pricing=pricing)


ModelEntry = Annotated[
    OpenAICompatibleEntry | AzureOpenAIEntry | AnthropicEntry | GeminiEntry | LocalEntry,
    Field(discriminator="provider"),
]
