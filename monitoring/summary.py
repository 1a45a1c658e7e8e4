"""Turn summed rollup columns into the metric dictionaries callers read (original keys kept)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from models.rollups import SUM_COLUMNS
from monitoring.histogram import bucket_counts, percentile


def merge_sums(parts: Iterable[Mapping[str, float]]) -> dict[str, float]:
    total: dict[str, float] = {name: 0 for name in SUM_COLUMNS}
    for part in parts:
        for name in SUM_COLUMNS:
            total[name] += part.get(name, 0)
    return total


def merge_errors(parts: Iterable[Mapping[str, int]]) -> dict[str, int]:
    merged: dict[str, int] = {}
    for part in parts:
        for error_type, count in part.items():
            merged[error_type] = merged.get(error_type, 0) + count
    return dict(sorted(merged.items()))


def metrics_from_sums(model_name: str, sums: Mapping[str, float], errors: Mapping[str, int]) -> dict[str, Any]:
    """The full metric set of one model (or `all`) from its rollup sums."""
    by_status = {name: int(sums.get(f"n_{name}", 0)) for name in ("success", "error", "rejected", "cancelled")}
    total = sum(by_status.values())
    successful = by_status["success"]
    counts = bucket_counts(sums)
    latency_count = int(sums.get("latency_count", 0))
    ttft_count = int(sums.get("ttft_count", 0))
    cost = float(sums.get("cost", 0.0))
    return {
        "model_name": model_name,
        "total_requests": total,
        "successful": successful,
        "failed": total - successful,
        "success_rate": round(100.0 * successful / total, 4) if total else 0.0,
        "by_status": by_status,
        "avg_latency": sums["latency_sum"] / latency_count if latency_count else 0.0,
        "p50_latency": percentile(counts, 0.50),
        "p95_latency": percentile(counts, 0.95),
        "p99_latency": percentile(counts, 0.99),
        "avg_ttft": sums["ttft_sum"] / ttft_count if ttft_count else None,
        "input_tokens": int(sums.get("input_tokens", 0)),
        "output_tokens": int(sums.get("output_tokens", 0)),
        "thinking_tokens": int(sums.get("thinking_tokens", 0)),
        "cached_tokens": int(sums.get("cached_tokens", 0)),
        "total_tokens": int(sums.get("total_tokens", 0)),
        "total_cost": cost,
        "avg_cost": cost / total if total else 0.0,
        "errors": dict(sorted(errors.items())),
    }
