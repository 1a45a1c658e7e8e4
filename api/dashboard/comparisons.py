"""Comparisons and benchmarks: the history, the Elo leaderboard and the benchmark runs, read from the same store
calls as the JSON API (`api.comparison`), and one comparison's answers side by side."""

from __future__ import annotations

from flask import render_template

from api.dashboard import bp, page
from api.services import services

HISTORY = 50  # newest comparisons listed; older ones stay in the JSON API's history
BENCHMARKS = 20

page("comparisons", "Comparisons")


@bp.get("/comparisons")
def comparisons() -> str:
    store = services().comparison_store
    return render_template("dashboard/comparisons.html", comparisons=store.list_comparisons(HISTORY),
                           leaderboard=store.leaderboard(), benchmarks=store.list_benchmarks(BENCHMARKS))


@bp.get("/comparisons/<int:comparison_id>")
def comparison_detail(comparison_id: int) -> str:
    """One comparison's report; an unknown id is the store's 404, as in the JSON API."""
    comparison = services().comparison_store.get_comparison(comparison_id)
    return render_template("dashboard/comparison_detail.html", comparison=comparison)
