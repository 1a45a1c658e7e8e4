"""Gemini embedding models (gemini-embedding-001) through the google-genai SDK's `models.embed_content`.

Wire: `POST /v1beta/models/{m}:batchEmbedContents`, at most `BATCH_SIZE` texts per request, so a larger call is
sent in several requests (still one recorded call). Retries and error mapping are the chat models'.

Usage: the documented batch reply carries vectors only. When a reply does report `usageMetadata.promptTokenCount`,
that is the input count; otherwise the texts are counted with one countTokens request (free of charge) once the
vectors have arrived, so the recorded latency includes it. Should that count fail, the free byte bound is
recorded instead (an overestimate, so budgets stay on the safe side) and a warning logged.
"""

from __future__ import annotations

import logging
from functools import partial
from typing import Any

from google.genai import types

from models.base_model import Capabilities
from models.embeddings import EmbeddingRequest
from models.errors import MalformedResponseError, ProviderError
from models.gemini_model import GeminiModel
from models.results import Usage
from models.retry import retry_call

log = logging.getLogger(__name__)

BATCH_SIZE = 100  # the most requests batchEmbedContents takes at once
INPUT_TOKEN_LIMIT = 2048  # per text, gemini-embedding-001


def is_embedding_model(name: str) -> bool:
    """Gemini names its embedding models `*embedding*` (gemini-embedding-001, text-embedding-004)."""
    return "embedding" in name


class GeminiEmbeddingModel(GeminiModel):
    """A Gemini embedding model: it embeds and does not chat, so a generation is refused before any call.

    Takes `GeminiModel`'s arguments (key, endpoint, timeouts, attempts); `dimensions` becomes
    `outputDimensionality` (gemini-embedding-001 returns 3,072 by default; Google recommends 768, 1,536 or 3,072).
    """

    def __init__(self, model_name: str = "gemini-embedding-001", api_key: str | None = None, **kwargs: Any) -> None:
        super().__init__(model_name, api_key, **kwargs)
        self.capabilities = Capabilities(chat=False, streaming=False, system_prompt=False, embeddings=True,
                                         embedding_dimensions=True)
        self.context_window = INPUT_TOKEN_LIMIT

    def execute_embedding(self, request: EmbeddingRequest, usage: Usage) -> list[list[float]]:
        config = types.EmbedContentConfig(output_dimensionality=request.dimensions)
        vectors: list[list[float]] = []
        reported: list[int | None] = []
        for start in range(0, len(request.texts), BATCH_SIZE):
            contents = _contents(request.texts[start:start + BATCH_SIZE])
            embed = partial(self._client.models.embed_content, model=self.name, contents=contents, config=config)
            response = retry_call(embed, **self._retrying())
            vectors.extend(self._vectors(response, len(contents)))
            meta = response.usage_metadata
            reported.append(meta.prompt_token_count if meta is not None else None)
        usage.set(input=self._input_tokens(request, reported))
        return vectors

    def count_embedding_tokens(self, request: EmbeddingRequest) -> int:
        """Gemini's count of all the texts, in one countTokens request."""
        return self._count(_contents(request.texts))

    def _input_tokens(self, request: EmbeddingRequest, reported: list[int | None]) -> int:
        counts = [count for count in reported if count is not None]
        if len(counts) == len(reported):
            return sum(counts)
        try:
            return self.count_embedding_tokens(request)
        except ProviderError as exc:
            log.warning("%s: countTokens failed (%s); recording the byte bound as the input tokens", self.label, exc)
            return self.embedding_token_bound(request)

    def _vectors(self, response: types.EmbedContentResponse, expected: int) -> list[list[float]]:
        """The reply's vectors; a reply without one vector per text is malformed."""
        vectors = [embedding.values for embedding in response.embeddings or [] if embedding.values is not None]
        if len(vectors) != expected:
            raise MalformedResponseError(
                f"The {self.label} answered {len(vectors)} embeddings for {expected} texts",
                details={"provider": self.provider})
        return vectors


def _contents(texts: tuple[str, ...]) -> list[types.Content]:
    """One content per text, so each gets its own vector (a list of plain strings may become one multi-part turn)."""
    return [types.Content(role="user", parts=[types.Part(text=text)]) for text in texts]
