"""What the response cache did, from the rollups (every process's hits) and its store (what it holds now)."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from sqlalchemy import Engine

from models.cache.response_cache import ResponseCache
from monitoring import rollup_reads


def cache_report(engine: Engine, cache: ResponseCache, embedding_only: Collection[str] = ()) -> dict[str, Any]:
    """Hits against every call that reached an answer or an error, what the hits saved, and the entries.

    The calls of `embedding_only` models are left out: they are never cacheable, and the semantic cache makes one
    for each question it looks up, which would otherwise halve the hit rate it reports.
    """
    totals = {model: sums for model, sums in rollup_reads.totals_by_model(engine, None, None).items()
              if model not in embedding_only}
    hits = sum(float(sums["n_cache_hits"]) for sums in totals.values())
    calls = sum(float(sums["n_success"]) + float(sums["n_error"]) for sums in totals.values())
    entries, size = cache.backend.totals()
    return {"hits": int(hits), "calls": int(calls), "hit_rate": hits / calls if calls else None,
            "cost_saved": sum(float(sums["cost_saved"]) for sums in totals.values()),
            "entries": entries, "bytes": size,
            "semantic_entries": cache.semantic.entries() if cache.semantic is not None else 0}
