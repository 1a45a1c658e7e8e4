"""Percentiles from the rollups' fixed log-spaced latency buckets."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from models.rollups import LATENCY_BOUNDS, LATENCY_COLUMNS


def bucket_counts(sums: Mapping[str, float]) -> list[int]:
    """The latency bucket counts of summed rollup columns, in bound order."""
    return [int(sums.get(name, 0)) for name in LATENCY_COLUMNS]


def percentile(counts: Sequence[int], q: float, bounds: Sequence[float] = LATENCY_BOUNDS) -> float | None:
    """The q-quantile (0..1), interpolated geometrically inside its bucket; None without observations.

    The error is at most one bucket width (~26%); the overflow bucket answers its lower bound.
    """
    total = sum(counts)
    if total <= 0:
        return None
    rank = q * total
    seen = 0
    for index, count in enumerate(counts):
        if count <= 0:
            continue
        if seen + count >= rank:
            if index >= len(bounds):
                return bounds[-1]
            upper = bounds[index]
            lower = bounds[index - 1] if index > 0 else upper / 2 ** (1 / 3)
            fraction = max(rank - seen, 0) / count
            return lower * (upper / lower) ** fraction
        seen += count
    return bounds[-1]
