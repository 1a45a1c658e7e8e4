"""The exact response cache: the key, what is kept of an answer, and the levels it is looked up in.

The key is a sha256 over the model or group asked, the whole conversation (system message included), every
generation parameter the call set, and the tenant (`CachePolicy.scope`): two API keys never share an answer
unless the policy says `shared`. An answer is kept with the usage and cost of the call that produced it, so a
hit can report what it saved; a hit itself costs nothing and counts no tokens.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from models.cache.policy import CachePolicy
from models.cache.stores import CacheBackend, MemoryLevel
from models.messages import GenerationRequest
from models.params import CallContext
from models.results import GenerationResult, Usage
from storage.change_stamp import ChangeStamp

log = logging.getLogger(__name__)

DEFAULT_MEMORY_BYTES = 64 * 1024 * 1024
DEFAULT_MEMORY_FRESH_S = 60.0
EXACT = "exact"


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


def cache_key(model: str, request: GenerationRequest, tenant: str) -> str:
    material = {"model": model, "messages": request.as_dicts(), "params": request.params.given(), "tenant": tenant}
    return hashlib.sha256(json.dumps(material, sort_keys=True, default=str).encode()).hexdigest()


class ResponseCache:
    """Looks answers up in memory, then the shared backend; stores into both. `default_policy` applies to models
    that set none (None: only models with a policy of their own are cached)."""

    def __init__(self, backend: CacheBackend, *, default_policy: CachePolicy | None = None,
                 memory_bytes: int = DEFAULT_MEMORY_BYTES, memory_fresh_s: float = DEFAULT_MEMORY_FRESH_S,
                 cleared: ChangeStamp | None = None, clock: Callable[[], float] = time.time) -> None:
        """`cleared`: a stamp every clearing touches (SQLite), so that each process empties its memory level at
        once rather than within `memory_fresh_s`."""
        self.backend = backend
        self.default_policy = default_policy
        self.memory = MemoryLevel(memory_bytes, memory_fresh_s)
        self.cleared = cleared
        self._cleared_version = cleared.version() if cleared else None
        self.clock = clock

    def policy(self, model: Any) -> CachePolicy | None:
        return getattr(model, "cache_policy", None) or self.default_policy

    def lookup(self, model: Any, request: GenerationRequest, context: CallContext) -> CachedAnswer | None:
        """The cached answer for this call, when its policy and its request allow reading one."""
        key = self._key(model, request, context, reading=True)
        if key is None:
            return None
        self._forget_if_cleared()
        value = self.memory.get(key)
        try:
            if value is None:
                value = self.backend.get(key)
                if value is not None:
                    self.memory.put(key, value)
        except Exception:  # an unreachable cache is a miss, never a failed call
            log.warning("Response cache unreadable; calling %s", model.name, exc_info=True)
            return None
        if value is None:
            return None
        answer = CachedAnswer.from_json(value)
        return answer if answer.expires_at > self.clock() else None

    def store(self, model: Any, request: GenerationRequest, context: CallContext, result: GenerationResult,
              chunks: list[str]) -> None:
        """Keep a successful answer, when its policy and its request allow writing one."""
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

    def clear(self, *, model: str | None = None, key: str | None = None) -> int:
        """Remove the entries of a model, one entry, or all; this process's memory level is emptied too."""
        removed = self.backend.delete(model=model, key=key)
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

    def _key(self, model: Any, request: GenerationRequest, context: CallContext, *, reading: bool) -> str | None:
        if context.route is not None:  # a group's attempt: the group caches under its own name
            return None
        mode = context.cache or "on"
        if mode == "off" or mode == ("write" if reading else "read"):
            return None
        policy = self.policy(model)
        if policy is None or not policy.admits(request):
            return None
        tenant = {"key": context.api_key_id, "user": context.user_id, "shared": "*"}[policy.scope] or ""
        return cache_key(model.name, request, tenant)
