"""Elo ratings replayed from every pairwise outcome in the order they happened, and win rates."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

INITIAL_RATING = 1500.0
K_FACTOR = 32.0


def expected_score(rating_a: float, rating_b: float) -> float:
    """The Elo probability that A beats B."""
    return 1.0 / (1.0 + 10 ** ((rating_b - rating_a) / 400))


def elo_ratings(outcomes: Iterable[tuple[str, str, float]], *, k: float = K_FACTOR,
                initial: float = INITIAL_RATING) -> dict[str, float]:
    """Replay (model_a, model_b, score_a) outcomes; score_a is 1 for a win, 0.5 a draw, 0 a loss."""
    ratings: dict[str, float] = {}
    for model_a, model_b, score_a in outcomes:
        rating_a, rating_b = ratings.get(model_a, initial), ratings.get(model_b, initial)
        change = k * (score_a - expected_score(rating_a, rating_b))
        ratings[model_a] = rating_a + change
        ratings[model_b] = rating_b - change
    return ratings


def leaderboard(counts: Mapping[str, Mapping[str, int]], ratings: Mapping[str, float]) -> list[dict[str, Any]]:
    """One row per model, best rating first: win rate is wins divided by comparisons entered."""
    rows: list[dict[str, Any]] = []
    for model in sorted(set(counts) | set(ratings)):
        c = counts.get(model, {})
        entered = c.get("comparisons", 0)
        rows.append({
            "model": model,
            "win_rate": round(c.get("wins", 0) / entered, 4) if entered else 0.0,
            "rating": round(ratings.get(model, INITIAL_RATING), 1),
            "comparisons": entered,
            "wins": c.get("wins", 0), "ties": c.get("ties", 0),
            "losses": c.get("losses", 0), "errors": c.get("errors", 0),
        })
    rows.sort(key=lambda r: (-r["rating"], -r["win_rate"], r["model"]))
    return rows
