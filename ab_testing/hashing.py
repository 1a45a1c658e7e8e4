"""GrowthBook-compatible assignment maths (hash v2, bucket ranges, choose variant): pure functions, no state."""

from __future__ import annotations

from collections.abc import Sequence

FNV_OFFSET = 0x811C9DC5
FNV_PRIME = 0x01000193
NOT_ENROLLED = -1


def fnv1a32(text: str) -> int:
    """32-bit FNV-1a over the characters' code points, exactly as GrowthBook's SDKs compute it."""
    value = FNV_OFFSET
    for char in text:
        value = ((value ^ ord(char)) * FNV_PRIME) & 0xFFFFFFFF
    return value


def gbhash(seed: str, value: str) -> float:
    """GrowthBook hash v2 in [0, 1): double FNV-1a so that similar seeds give unrelated buckets."""
    return (fnv1a32(str(fnv1a32(seed + value))) % 10000) / 10000


def normalize_weights(weights: Sequence[float]) -> list[float]:
    """Scale non-negative weights to sum to 1, so callers may write 50/50 or 0.5/0.5."""
    if not weights or any(w < 0 for w in weights):
        raise ValueError("weights must be a non-empty list of non-negative numbers")
    total = float(sum(weights))
    if total <= 0:
        raise ValueError("at least one weight must be positive")
    return [w / total for w in weights]


def bucket_ranges(weights: Sequence[float], coverage: float = 1.0) -> list[tuple[float, float]]:
    """Ranges `[c, c + coverage * w_i)` over cumulative weights; the rest of [0, 1) is not enrolled."""
    if not 0.0 <= coverage <= 1.0:
        raise ValueError("coverage must be between 0 and 1")
    ranges = []
    cumulative = 0.0
    for weight in normalize_weights(weights):
        ranges.append((cumulative, cumulative + coverage * weight))
        cumulative += weight
    return ranges


def choose_variant(hash_value: float, ranges: Sequence[tuple[float, float]]) -> int:
    """Index of the range holding `hash_value`, or NOT_ENROLLED (-1) when it falls outside all of them."""
    for index, (start, end) in enumerate(ranges):
        if start <= hash_value < end:
            return index
    return NOT_ENROLLED


def assign(seed: str, user_id: str, weights: Sequence[float], coverage: float = 1.0) -> int:
    """The variant index for `user_id` (or NOT_ENROLLED): deterministic for a given seed, weights and coverage."""
    return choose_variant(gbhash(seed, user_id), bucket_ranges(weights, coverage))
