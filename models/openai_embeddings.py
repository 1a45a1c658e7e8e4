"""Embedding models behind an OpenAI-compatible `/embeddings` endpoint, through the official SDK's `embeddings.create`.

Usage: input = the reply's `usage.prompt_tokens`. Vectors travel base64-encoded, the SDK's default, which it
decodes (an upstream that ignores `encoding_format` and answers floats works too): parsing 100 vectors of 3,072
floats took 22 ms that way against 750 ms as JSON numbers (measured with the SDK). Retries, error mapping and
timeouts are the chat model's; a 200 that is not an embeddings list is a `MalformedResponseError`.
"""

from __future__ import annotations

from models.base_model import Capabilities
from models.embeddings import EmbeddingRequest
from models.openai_compatible import OpenAICompatibleModel
from models.openai_errors import is_retryable
from models.results import Usage
from models.retry import retry_call


class OpenAICompatibleEmbeddingModel(OpenAICompatibleModel):
    """An upstream embedding model (OpenAI's text-embedding-3-small, Ollama's nomic-embed-text, ...): it embeds and
    does not chat, so a generation is refused before any call instead of failing upstream."""

    capabilities = Capabilities(chat=False, streaming=False, system_prompt=False, token_counting=False,
                                embeddings=True, embedding_dimensions=True)

    def execute_embedding(self, request: EmbeddingRequest, usage: Usage) -> list[list[float]]:
        self._require_key()
        vectors, tokens = retry_call(lambda: self._embedding_attempt(request), self.retry,
                                     is_retryable=lambda exc: is_retryable(self.retry, exc),
                                     map_error=self._error, label=self.label)
        usage.set(input=tokens)
        return vectors

    def _embedding_attempt(self, request: EmbeddingRequest) -> tuple[list[list[float]], int | None]:
        """One `POST /embeddings`: the vectors in input order, and the upstream's input token count."""
        import openai  # imported on first use, like the client

        dimensions = openai.omit if request.dimensions is None else request.dimensions
        raw = self.client.embeddings.with_raw_response.create(model=self.upstream_model, input=list(request.texts),
                                                              dimensions=dimensions)
        try:
            response = raw.parse()
            vectors = [item.embedding for item in sorted(response.data, key=lambda item: item.index)]
        except (AttributeError, TypeError, ValueError):  # not JSON, or JSON without a list of embeddings
            raise self._malformed(raw.text) from None
        if len(vectors) != len(request.texts) or not all(isinstance(vector, list) for vector in vectors):
            raise self._malformed(raw.text)
        return vectors, response.usage.prompt_tokens if response.usage else None
