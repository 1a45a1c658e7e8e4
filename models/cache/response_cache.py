"""The response cache: the key, what is kept of an answer, and the levels it is looked up in.

The exact key is a sha256 over the model or group asked, the whole conversation (system message included), every
generation parameter the call set, and the tenant (`CachePolicy.scope`): two API keys never share an answer
unless the policy says `shared`. An answer is kept with the usage and cost of the call that produced it, so a
hit can report what it saved; a hit itself costs nothing and counts no tokens.

Where the policy is semantic, an exact miss is looked up once more by meaning (`models.cache.semantic`): the
user message is embedded by the policy's embedding model (a recorded call of its own, source `cache`) and the
most similar stored question of the same partition answers, when it is at least `threshold` similar and the
question guard finds nothing that makes it another question.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from models.cache.policy import CachePolicy
from models.cache.question_guard import same_question
from models.cache.semantic import SemanticPolicy, SemanticQuery, semantic_query
from models.cache.semantic_index import SemanticIndex
from models.cache.stores import CacheBackend, MemoryLevel
from models.messages import GenerationRequest
from models.params import CallContext
from models.results import GenerationResult, Usage
from storage.change_stamp import ChangeStamp

log = logging.getLogger(__name__)

DEFAULT_MEMORY_BYTES = 64 * 1024 * 1024
DEFAULT_MEMORY_FRESH_S = 60.0
EXACT = "exact"
SEMANTIC = "semantic"

# Embeds one text for the semantic cache: (embedding model name, text, the call's context) -> its vector.
Embed = Callable[[str, str, CallContext], Sequence[float]]


@dataclass(frozen=True)
class CachedAnswer:
    """An answer as it was streamed (its chunks), with the original call's usage and cost."""

    chunks: list[str]
    model: str
    provider: str
    input_tokens: int | None
    output_tokens: int | None
    thinking_tokens: int
    cached_tokens: int
    cost: float | None
    finish_reason: str | None
    tool_calls: list[dict[str, Any]] | None
    expires_at: float  # epoch seconds
    match: str = EXACT  # how the call asking was matched to it: `exact` or `semantic` (set on lookup)

    def replay_into(self, usage: Usage) -> None:
        """What a hit reports of itself: no tokens and no cost (the saved ones are recorded apart)."""
        usage.cost = 0.0
        usage.finish_reason = self.finish_reason
        usage.tool_calls = self.tool_calls

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, value: str) -> CachedAnswer:
        return cls(**json.loads(value))


@dataclass(frozen=True)
class CacheLookup:
    """What a lookup found (`hit`), and what storing this call's answer will reuse: the semantic query and the
    vector its text was embedded as (None where the policy is exact, or the lookup never embedded)."""

    hit: CachedAnswer | None = None
    query: SemanticQuery | None = None
    vector: Sequence[float] | None = None


MISS = CacheLookup()


def cache_key(model: str, request: GenerationRequest, tenant: str) -> str:
    material = {"model": model, "messages": request.as_dicts(), "params": request.params.given(), "tenant": tenant}
    return hashlib.sha256(json.dumps(material, sort_keys=True, default=str).encode()).hexdigest()


class ResponseCache:
    """Looks answers up in memory, then the shared backend; stores into both. `default_policy` applies to models
    that set none (None: only models with a policy of their own are cached)."""

    def __init__(self, backend: CacheBackend, *, default_policy: CachePolicy | None = None,
                 memory_bytes: int = DEFAULT_MEMORY_BYTES, memory_fresh_s: float = DEFAULT_MEMORY_FRESH_S,
                 cleared: ChangeStamp | None = None, semantic: SemanticIndex | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        """`cleared`: a stamp every clearing touches (SQLite), so that each process empties its memory level at
        once rather than within `memory_fresh_s`. `semantic`: where semantic policies keep their vectors (None:
        semantic policies act as exact ones)."""
        self.backend = backend
        self.semantic = semantic
        self.default_policy = default_policy
        self.memory = MemoryLevel(memory_bytes, memory_fresh_s)
        self.cleared = cleared
        self._cleared_version = cleared.version() if cleared else None
        self.clock = clock

    def policy(self, model: Any) -> CachePolicy | None:
        return getattr(model, "cache_policy", None) or self.default_policy

    def lookup(self, model: Any, request: GenerationRequest, context: CallContext,
               embed: Embed | None = None) -> CacheLookup:
        """The cached answer for this call, when its policy and its request allow reading one: the exact entry,
        else (semantic policy, `embed` given) the nearest question's. An unreachable cache is a miss."""
        key = self._key(model, request, context, reading=True)
        if key is None:
            return MISS
        self._forget_if_cleared()
        try:
            hit = self._answer(key)
        except Exception:  # an unreachable cache is a miss, never a failed call
            log.warning("Response cache unreadable; calling %s", model.name, exc_info=True)
            return MISS
        if hit is not None:
            return CacheLookup(hit)
        return self._lookup_by_meaning(model, request, context, embed)

    def _answer(self, key: str) -> CachedAnswer | None:
        value = self.memory.get(key)
        if value is None:
            value = self.backend.get(key)
            if value is not None:
                self.memory.put(key, value)
        if value is None:
            return None
        answer = CachedAnswer.from_json(value)
        return answer if answer.expires_at > self.clock() else None

    def _lookup_by_meaning(self, model: Any, request: GenerationRequest, context: CallContext,
                           embed: Embed | None) -> CacheLookup:
        found = self._semantic_query(model, request, context)
        if found is None or embed is None or self.semantic is None:
            return MISS
        semantic, query = found
        try:
            vector = embed(semantic.embedding_model, query.text, context)
            hit = next((answer for candidate in self.semantic.closest(query.partition, vector, semantic.threshold)
                        if same_question(query.text, candidate.question)
                        and (answer := self._answer(candidate.key)) is not None), None)
        except Exception:  # an embedding model or store failing is a miss, never a failed call
            log.warning("Semantic cache unusable; calling %s", model.name, exc_info=True)
            return MISS
        return CacheLookup(replace(hit, match=SEMANTIC) if hit else None, query, vector)

    def store(self, model: Any, request: GenerationRequest, context: CallContext, result: GenerationResult,
              chunks: list[str], looked: CacheLookup = MISS, embed: Embed | None = None) -> None:
        """Keep a successful answer, when its policy and its request allow writing one; under a semantic policy,
        with its question's vector (the lookup's, else embedded now)."""
        key = self._key(model, request, context, reading=False)
        policy = self.policy(model)
        if key is None or policy is None or result.status != "success":
            return
        ttl_s = context.cache_ttl or policy.ttl_s
        answer = CachedAnswer(chunks, result.model, result.provider, result.input_tokens, result.output_tokens,
                              result.thinking_tokens, result.cached_tokens, result.cost, result.finish_reason,
                              result.tool_calls, self.clock() + ttl_s)
        value = answer.to_json()
        try:
            self.backend.put(key, model.name, value, ttl_s)
        except Exception:  # the answer was served; failing to keep it costs only a future miss
            log.warning("Response cache unwritable; answer of %s not kept", model.name, exc_info=True)
            return
        self.memory.put(key, value)
        self._store_meaning(model, request, context, key, ttl_s, looked, embed)

    def _store_meaning(self, model: Any, request: GenerationRequest, context: CallContext, key: str, ttl_s: int,
                       looked: CacheLookup, embed: Embed | None) -> None:
        found = self._semantic_query(model, request, context)
        if found is None or embed is None or self.semantic is None:
            return
        semantic, query = found
        try:
            vector = looked.vector
            if vector is None or looked.query != query:
                vector = embed(semantic.embedding_model, query.text, context)
            self.semantic.add(query.partition, key, model.name, query.text, vector, ttl_s)
        except Exception:  # the exact entry is kept; only matching by meaning is lost
            log.warning("Semantic cache unwritable; answer of %s kept for exact matches only", model.name,
                        exc_info=True)

    def clear(self, *, model: str | None = None, key: str | None = None) -> int:
        """Remove the entries of a model, one entry, or all; this process's memory level is emptied too."""
        removed = self.backend.delete(model=model, key=key)
        if self.semantic is not None:
            self.semantic.delete(model=model, key=key)
        self.memory.clear()
        if self.cleared is not None:
            self.cleared.touch()
        return removed

    def _forget_if_cleared(self) -> None:
        """Empty the memory level when another process cleared the shared one (one `stat` on SQLite)."""
        if self.cleared is None:
            return
        version = self.cleared.version()
        if version != self._cleared_version:
            self._cleared_version = version
            self.memory.clear()
            if self.semantic is not None:
                self.semantic.forget()

    def _key(self, model: Any, request: GenerationRequest, context: CallContext, *, reading: bool) -> str | None:
        if context.route is not None:  # a group's attempt: the group caches under its own name
            return None
        mode = context.cache or "on"
        if mode == "off" or mode == ("write" if reading else "read"):
            return None
        policy = self.policy(model)
        if policy is None or not policy.admits(request):
            return None
        return cache_key(model.name, request, _tenant(policy, context))

    def _semantic_query(self, model: Any, request: GenerationRequest,
                        context: CallContext) -> tuple[SemanticPolicy, SemanticQuery] | None:
        """The model's semantic policy and the request's query, where both exist."""
        policy = self.policy(model)
        if policy is None or policy.semantic is None:
            return None
        query = semantic_query(model.name, request, _tenant(policy, context), policy.semantic)
        return None if query is None else (policy.semantic, query)


def _tenant(policy: CachePolicy, context: CallContext) -> str:
    """Whose answers a call may share (`CachePolicy.scope`)."""
    return {"key": context.api_key_id, "user": context.user_id, "shared": "*"}[policy.scope] or ""
