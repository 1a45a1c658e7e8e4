"""A managed call in the OpenTelemetry GenAI semantic conventions' attributes.

`identity` is what both the span and the metrics carry (low cardinality); `request_attributes` and
`response_attributes` only go on the span. Attributes under `ai_model_manager.` tie a span to the request log.
Nothing here reads keys or headers: a span never holds a secret.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as gen_ai
from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE
from opentelemetry.semconv.attributes.server_attributes import SERVER_ADDRESS, SERVER_PORT

from models.cache.response_cache import CachedAnswer
from models.call_path import CACHE_HIT, CHAT, AnyCall
from models.embeddings import EmbeddingRequest
from models.messages import GenerationRequest
from models.results import GenerationResult

# Our provider names -> `gen_ai.provider.name` (the conventions' well-known values; a custom one for llama.cpp).
PROVIDER_NAMES = {
    "openai_compatible": gen_ai.GenAiProviderNameValues.OPENAI.value,
    "azure_openai": gen_ai.GenAiProviderNameValues.AZURE_AI_OPENAI.value,
    "gemini": gen_ai.GenAiProviderNameValues.GCP_GEMINI.value,
    "anthropic": gen_ai.GenAiProviderNameValues.ANTHROPIC.value,
    "local": "llama_cpp",
}
# Where a provider's SDK sends calls when the model names no base URL.
DEFAULT_SERVERS = {"gemini": ("generativelanguage.googleapis.com", 443)}
DEFAULT_PORTS = {"http": 80, "https": 443}
# Generation parameters -> `gen_ai.request.*`.
REQUEST_PARAMS = {
    "temperature": gen_ai.GEN_AI_REQUEST_TEMPERATURE,
    "max_tokens": gen_ai.GEN_AI_REQUEST_MAX_TOKENS,
    "top_p": gen_ai.GEN_AI_REQUEST_TOP_P,
    "top_k": gen_ai.GEN_AI_REQUEST_TOP_K,
    "stop": gen_ai.GEN_AI_REQUEST_STOP_SEQUENCES,
    "seed": gen_ai.GEN_AI_REQUEST_SEED,
    "presence_penalty": gen_ai.GEN_AI_REQUEST_PRESENCE_PENALTY,
    "frequency_penalty": gen_ai.GEN_AI_REQUEST_FREQUENCY_PENALTY,
}
OWN = "ai_model_manager."


def operation_name(call: AnyCall) -> str:
    """`chat` or `embeddings`; a Gemini generation is `generate_content`, after the API it calls."""
    if call.operation == CHAT and call.model.provider == "gemini":
        return gen_ai.GenAiOperationNameValues.GENERATE_CONTENT.value
    return call.operation


def request_model(call: AnyCall) -> str:
    """The model id the provider is asked for (a deployment may name it differently from ours)."""
    return getattr(call.model, "upstream_model", None) or call.model.name


def identity(call: AnyCall) -> dict[str, Any]:
    """Operation, provider, requested model and server: the attributes spans and metrics share."""
    provider = call.model.provider
    attributes: dict[str, Any] = {
        gen_ai.GEN_AI_OPERATION_NAME: operation_name(call),
        gen_ai.GEN_AI_PROVIDER_NAME: PROVIDER_NAMES.get(provider, provider),
        gen_ai.GEN_AI_REQUEST_MODEL: request_model(call),
    }
    server = _server(getattr(call.model, "base_url", None)) or DEFAULT_SERVERS.get(provider)
    if server is not None:
        attributes[SERVER_ADDRESS], attributes[SERVER_PORT] = server
    return attributes


def request_attributes(call: AnyCall) -> dict[str, Any]:
    """The parameters the call set, under their convention names, and our request-log identity."""
    request = call.request
    attributes: dict[str, Any] = {OWN + "request_id": call.request_id, OWN + "model": call.model.name,
                                  OWN + "source": call.context.source}
    if isinstance(request, GenerationRequest):
        params = request.params
        for name, key in REQUEST_PARAMS.items():
            value = getattr(params, name)
            if value is not None:
                attributes[key] = value
        attributes[gen_ai.GEN_AI_REQUEST_STREAM] = request.stream
    elif isinstance(request, EmbeddingRequest) and request.dimensions is not None:
        attributes[gen_ai.GEN_AI_EMBEDDINGS_DIMENSION_COUNT] = request.dimensions
    route = call.context.route
    if route is not None:
        attributes[OWN + "route.group"], attributes[OWN + "route.attempt"] = route.group, route.attempt
    return attributes


def response_attributes(call: AnyCall, result: GenerationResult) -> dict[str, Any]:
    """What the provider answered: its reply id and model, finish reason, the tokens it counted, or the error."""
    usage = call.usage
    found = {
        gen_ai.GEN_AI_RESPONSE_ID: usage.response_id,
        gen_ai.GEN_AI_RESPONSE_MODEL: usage.response_model,
        gen_ai.GEN_AI_RESPONSE_FINISH_REASONS: [result.finish_reason] if result.finish_reason else None,
        gen_ai.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK: result.ttft,
        gen_ai.GEN_AI_USAGE_INPUT_TOKENS: result.input_tokens,
        gen_ai.GEN_AI_USAGE_OUTPUT_TOKENS: result.output_tokens,
        gen_ai.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: result.cached_tokens or None,
        gen_ai.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS: result.cache_write_tokens or None,
        gen_ai.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: result.thinking_tokens or None,
        ERROR_TYPE: result.error_type if not result.success else None,
        OWN + "cost_usd": result.cost,
    }
    hit: CachedAnswer | None = call.extras.get(CACHE_HIT)
    if hit is not None:
        found[OWN + "cache"] = hit.match
    return {key: value for key, value in found.items() if value is not None}


def _server(base_url: str | None) -> tuple[str, int] | None:
    if not base_url:
        return None
    parts = urlsplit(base_url)
    if not parts.hostname:
        return None
    return parts.hostname, parts.port or DEFAULT_PORTS.get(parts.scheme, 443)
