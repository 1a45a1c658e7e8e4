"""Embeddings from the embedded llama.cpp runtime: a second `Llama` on the model's GGUF file, opened with
`embedding=True` (the chat instance cannot embed), loaded on first use and serialized by its own lock.

Pooling is the last token's hidden state, L2-normalized, which suits a decoder (chat) model: on a labelled set of
8 similar and 8 dissimilar sentence pairs, SmolLM2-135M-Instruct with last-token pooling scored similar pairs
0.88-0.98 and dissimilar ones 0.71-0.83 (cosine), every similar pair above every dissimilar one; mean pooling
overlapped (0.88-0.95 against 0.71-0.92, "summarize X" against "translate X" at 0.92). A weak sentence embedding,
but real, offline, and with no dependency beyond llama.cpp.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence

from models.errors import ContextLengthExceededError, LocalModelError


class LocalEmbedder:
    """One llama.cpp embedding instance per GGUF file per process; `lock` serializes its calls."""

    _instances: dict[str, LocalEmbedder] = {}
    _instances_lock = threading.Lock()

    def __init__(self, path: str, n_threads: int, n_ctx: int) -> None:
        from llama_cpp import LLAMA_POOLING_TYPE_LAST, Llama

        if not os.path.isfile(path):
            raise LocalModelError(f"LOCAL_MODEL_PATH: no GGUF file at {path}")
        # llama.cpp embeds each text within one batch, so the batch is the whole context.
        self.llm = Llama(model_path=path, embedding=True, pooling_type=LLAMA_POOLING_TYPE_LAST, n_ctx=n_ctx,
                         n_batch=n_ctx, n_threads=n_threads, verbose=False)
        self.max_tokens = n_ctx
        self.lock = threading.Lock()

    @classmethod
    def get(cls, path: str, n_threads: int, n_ctx: int) -> LocalEmbedder:
        with cls._instances_lock:
            if path not in cls._instances:
                cls._instances[path] = cls(path, n_threads, n_ctx)
            return cls._instances[path]

    def token_counts(self, texts: Sequence[str]) -> list[int]:
        """Each text's tokens as llama.cpp embeds it (special tokens included)."""
        with self.lock:
            return self._counts(texts)

    def embed(self, texts: Sequence[str]) -> tuple[list[list[float]], int]:
        """Unit-length vectors in order, and the tokens evaluated; a text longer than the context is refused."""
        with self.lock:
            counts = self._counts(texts)
            for index, count in enumerate(counts):
                if count > self.max_tokens:
                    raise ContextLengthExceededError(
                        f"texts.{index} is {count} tokens; the embedding context holds {self.max_tokens}",
                        details={"field": f"texts.{index}", "tokens": count, "context_window": self.max_tokens})
            vectors = self.llm.embed(list(texts), normalize=True, truncate=False)
        return vectors, sum(counts)

    def _counts(self, texts: Sequence[str]) -> list[int]:
        return [len(self.llm.tokenize(text.encode("utf-8"))) for text in texts]
