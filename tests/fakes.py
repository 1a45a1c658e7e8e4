"""A fake model for unit tests: answers from a queue, reports usage like a provider, can be slow or fail."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator

from models.base_model import BaseModel, Capabilities
from models.embeddings import EmbeddingRequest
from models.messages import GenerationRequest
from models.params import GenerationParams
from models.pricing import ModelPricing
from models.results import Usage

FAKE_PRICING = ModelPricing(input_per_million=1.0, output_per_million=2.0, cached_input_per_million=0.5)


class FakeModel(BaseModel):
    """`enqueue` answers (str, or an exception to raise); otherwise echoes the prompt. It embeds too: a queued
    exception fails the next embeddings call; vectors are `fake_vector` of each text.

    Tokens: one per whitespace-separated word, as if the provider counted them.
    """

    provider = "fake"
    capabilities = Capabilities(embeddings=True, embedding_dimensions=True)
    supported_params = frozenset(GenerationParams.model_fields)

    def __init__(self, name: str = "fake-model", *, pricing: ModelPricing | None = FAKE_PRICING,
                 delay: float = 0.0, chunk_words: int = 1) -> None:
        super().__init__(name, pricing=pricing)
        self.delay = delay
        self.chunk_words = chunk_words
        self.calls: list[GenerationRequest] = []
        self.embedded: list[EmbeddingRequest] = []
        self.spans: list[tuple[float, float]] = []  # (start, end) of each call, time.monotonic()
        self._queue: list[str | BaseException] = []
        self._lock = threading.Lock()

    def enqueue(self, *answers: str | BaseException) -> FakeModel:
        with self._lock:
            self._queue.extend(answers)
        return self

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def count_input_tokens(self, request: GenerationRequest) -> int:
        """Exactly what `execute` reports as input: the fake chat format adds no tokens."""
        return sum(self.count_tokens(m.text) for m in request.messages)

    def input_token_bound(self, request: GenerationRequest) -> int:
        """The exact count, as for the local model: the fake tokenizer is local, so exactness is free."""
        return self.count_input_tokens(request)

    def execute(self, request: GenerationRequest, usage: Usage) -> Iterator[str]:
        with self._lock:
            self.calls.append(request)
            answer = self._queue.pop(0) if self._queue else f"echo: {request.prompt}"
        started = time.monotonic()
        if self.delay:
            time.sleep(self.delay)
        with self._lock:
            self.spans.append((started, time.monotonic()))
        if isinstance(answer, BaseException):
            raise answer
        words = answer.split(" ")
        if request.max_tokens:
            words = words[: request.max_tokens]
        usage.set(input=self.count_input_tokens(request), output=len(words))
        usage.finish_reason = "length" if request.max_tokens and len(words) == request.max_tokens else "stop"
        for start in range(0, len(words), self.chunk_words):
            piece = " ".join(words[start:start + self.chunk_words])
            yield piece if start == 0 else " " + piece

    def execute_embedding(self, request: EmbeddingRequest, usage: Usage) -> list[list[float]]:
        with self._lock:
            self.embedded.append(request)
            failure = self._queue.pop(0) if self._queue else None
        if isinstance(failure, BaseException):
            raise failure
        usage.set(input=sum(self.count_tokens(text) for text in request.texts))
        return [fake_vector(text, request.dimensions or 3) for text in request.texts]


def fake_vector(text: str, dimensions: int) -> list[float]:
    """A deterministic vector for `text`: its SHA-256 bytes scaled to [0, 1)."""
    digest = hashlib.sha256(text.encode()).digest()
    return [digest[i % len(digest)] / 256 for i in range(dimensions)]
