"""The semantic cache's policy, and what of a request is compared by meaning rather than matched exactly.

Only the last message, a user's, is compared by meaning: by the cosine of its embedding with a stored question's,
then by `models.cache.question_guard`, which refuses the candidates an embedding cannot tell apart (other numbers,
another order, one slot swapped). Everything else (the model or group, the system prompt,
any earlier turns, every parameter, the tenant and the embedding model) must match exactly: it is hashed into
the request's *partition*, and a request is only ever compared with the requests of its own partition. So "the
same question under another system prompt" or "at another temperature" never hits.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from models.messages import GenerationRequest

# all-MiniLM-L6-v2 (`models.sentence_embeddings`): works offline and separates paraphrases from near misses.
DEFAULT_EMBEDDING_MODEL = "all-minilm-l6-v2"
# With all-MiniLM-L6-v2 and the question guard, on tests/data/semantic_cache_pairs.jsonl: 0.90 is the lowest with
# <= 1% false hits (0.8%); 0.91 gives 0% (9.2% of paraphrases hit), and is what a held-out half chooses
# (python -m benchmarks.bench_semantic_threshold --model all-minilm-l6-v2). Another model needs its own.
DEFAULT_THRESHOLD = 0.91


class SemanticPolicy(BaseModel):
    """`threshold`: the least cosine similarity that counts as the same question. `multi_turn`: compare the last
    user message of longer conversations too (their earlier turns must match exactly); off, only single-turn
    requests (a user message, after any system message) are compared."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    embedding_model: str = Field(default=DEFAULT_EMBEDDING_MODEL, min_length=1, max_length=200)
    threshold: float = Field(default=DEFAULT_THRESHOLD, gt=0, le=1)
    multi_turn: bool = False


@dataclass(frozen=True)
class SemanticQuery:
    """A request as the semantic cache sees it: the partition it must match exactly, and the text to compare."""

    partition: str
    text: str


def semantic_query(model: str, request: GenerationRequest, tenant: str,
                   policy: SemanticPolicy) -> SemanticQuery | None:
    """The request's partition and compared text, or None when it is not one the policy compares: its last
    message is not a user's plain text, or it has earlier turns and the policy is single-turn."""
    *earlier, last = request.messages
    if last.role != "user" or not last.text.strip():
        return None
    if any(m.role != "system" for m in earlier) and not policy.multi_turn:
        return None
    material = {"model": model, "earlier": [m.as_dict() for m in earlier], "params": request.params.given(),
                "tenant": tenant, "embedding_model": policy.embedding_model}
    partition = hashlib.sha256(json.dumps(material, sort_keys=True, default=str).encode()).hexdigest()
    return SemanticQuery(partition, last.text)
