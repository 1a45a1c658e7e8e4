"""When a call may be answered from the cache, and for how long an answer is kept.

A policy comes from the models file (per model or group) or the settings (for every model); it is off by default.
A request narrows it (`models.params.CacheMode`): `on` (the policy), `off`, `read` (use, don't store) or `write`
(store, don't use); it cannot turn on a cache its model's policy leaves off.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from models.cache.semantic import SemanticPolicy
from models.messages import GenerationRequest

# Whose answers a cached answer may serve: the same API key's calls (the default), the same user's, or everyone's.
CacheScope = Literal["key", "user", "shared"]
MAX_TTL_S = 365 * 86_400


class CachePolicy(BaseModel):
    """`deterministic_only`: cache only calls whose answer is meant to repeat (temperature 0, or a seed).
    `semantic`: also answer a question asked in other words (off unless set; see `models.cache.semantic`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    ttl_s: int = Field(default=3600, ge=1, le=MAX_TTL_S)
    scope: CacheScope = "key"
    deterministic_only: bool = True
    semantic: SemanticPolicy | None = None

    def admits(self, request: GenerationRequest) -> bool:
        """Whether this request's answer may be cached at all."""
        if not self.enabled:
            return False
        params = request.params
        return not self.deterministic_only or params.temperature == 0 or params.seed is not None
