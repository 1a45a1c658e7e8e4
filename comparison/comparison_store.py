"""History: persists every comparison and benchmark run, and derives win rates, ratings and the leaderboard."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import Engine

from comparison.benchmark_repository import BenchmarkRepository
from comparison.errors import BenchmarkNotFoundError, ComparisonNotFoundError
from comparison.ratings import elo_ratings, leaderboard
from comparison.repository import ComparisonRepository, EntryRow, PairRow
from comparison.winner import model_outcomes, model_pairs
from storage.database import engine_for
from storage.heartbeat import STALE_AFTER


class ComparisonStore:
    """The comparison service's storage facade; `ComparisonStore()` uses the configured database."""

    def __init__(self, db_path: Engine | str | None = None) -> None:
        """On `db_path`: an Engine, a URL or, as originally, a SQLite file path."""
        self.engine = engine_for(db_path)
        self.comparisons = ComparisonRepository(self.engine)
        self.benchmarks = BenchmarkRepository(self.engine)

    def save_comparison(self, comparison: dict[str, Any]) -> int:
        """Store a comparison (as `compare_models` returns it) with one entry per model and the pairwise outcomes
        between different models (`comparison.winner`, rule 7)."""
        results, winner = comparison["results"], comparison["winner"]
        model_of = {r["label"]: r["model"] for r in results}
        outcomes = model_outcomes({r["label"]: r["outcome"] for r in results}, model_of, winner)
        entries = []
        for model, outcome in outcomes.items():
            own = [r for r in results if r["model"] == model]
            scores = [r["total_score"] for r in own if r["total_score"] is not None]
            entries.append(EntryRow(
                model=model, status="success" if any(r["status"] == "success" for r in own) else "error",
                outcome=outcome, total_score=max(scores) if scores else None,
                request_ids=[rid for r in own for rid in r.get("request_ids", [])],
            ))
        pairs = [PairRow(p["model_a"], p["model_b"], p["score_a"])
                 for p in model_pairs(comparison["winner_details"]["pairs"], model_of)]
        metrics = comparison["comparison_metrics"]
        return self.comparisons.insert(
            prompt=comparison["prompt"], models=[r["model"] for r in results], winner=winner,
            tie=winner is None and comparison["winner_details"]["tie"], wall_time=metrics.get("wall_time"),
            total_cost=metrics.get("total_cost"), result=comparison, entries=entries, pairs=pairs,
        )

    def store_comparison(self, prompt: str, results: list[dict[str, Any]], winner: str | None) -> int | None:
        """The original call: store results (each with model, response, latency, tokens) and the winner's name.

        The winner beats every other model; None, as originally, when fewer than two results are given.
        """
        if len(results) < 2:
            return None
        models = list(dict.fromkeys(r["model"] for r in results))
        lost = "tie" if winner is None else "loss"
        entries = [EntryRow(model, "success", "win" if model == winner else lost, None, []) for model in models]
        pairs = [PairRow(winner, model, 1.0) for model in models if winner is not None and winner in models
                 and model != winner]
        costs = [r["cost"] for r in results if r.get("cost") is not None]
        return self.comparisons.insert(
            prompt=prompt, models=[r["model"] for r in results], winner=winner, tie=winner is None, wall_time=None,
            total_cost=sum(costs) if len(costs) == len(results) else None, entries=entries, pairs=pairs,
            result={"prompt": prompt, "results": [dict(r) for r in results], "winner": winner},
        )

    def get_comparison_history(self, limit: int = 10) -> list[dict[str, Any]]:
        """As originally: the latest comparisons, newest first, with the original's keys (`timestamp` and the
        first two results' `model1_name`, `model1_latency`, `model1_tokens`, `model2_...`) beside ours."""
        return [_with_original_keys(comparison) for comparison in self.list_comparisons(limit)]

    def get_model_win_rate(self, model_name: str) -> float:
        """As originally: the percentage of the comparisons `model_name` entered that it won (0.0 when none)."""
        counts = self.comparisons.entry_counts().get(model_name)
        if not counts or not counts["comparisons"]:
            return 0.0
        return 100.0 * counts["wins"] / counts["comparisons"]

    def get_comparison(self, comparison_id: int) -> dict[str, Any]:
        comparison = self.comparisons.get(comparison_id)
        if comparison is None:
            raise ComparisonNotFoundError(f"No comparison with id {comparison_id}", details={"id": comparison_id})
        return comparison

    def list_comparisons(self, limit: int = 50, *, model: str | None = None) -> list[dict[str, Any]]:
        return self.comparisons.list(limit, model=model)

    def ratings(self) -> dict[str, float]:
        """Elo per model from all pairwise outcomes so far."""
        return elo_ratings((p.model_a, p.model_b, p.score_a) for p in self.comparisons.pairs())

    def leaderboard(self) -> list[dict[str, Any]]:
        return leaderboard(self.comparisons.entry_counts(), self.ratings())

    def create_benchmark(self, *, dataset: str, models: list[str], total: int, params: dict[str, Any],
                         owner: str | None = None) -> int:
        return self.benchmarks.create(dataset=dataset, models=models, total=total, params=params, api_key_id=owner)

    def record_benchmark_result(self, run_id: int, result: dict[str, Any]) -> int:
        """Store one answer; returns how many answers the run has now (its progress)."""
        return self.benchmarks.add_result(run_id, result)

    def claim_benchmark(self, run_id: int, owner: str, statuses: tuple[str, ...] = ("pending",)) -> bool:
        """Start a run (pending by default) for `owner`; False when it is not in `statuses` (another caller won)."""
        return self.benchmarks.claim(run_id, owner, statuses)

    def mark_benchmark(self, run_id: int, status: str, *, report: dict[str, Any] | None = None,
                       error: str | None = None) -> None:
        self.benchmarks.set_status(run_id, status, report=report, error=error)

    def benchmark_heartbeat(self, owner: str) -> int:
        """Refresh `heartbeat_at` of the benchmark runs `owner` is executing; returns how many."""
        return self.benchmarks.heartbeat(owner)

    def mark_interrupted_benchmarks(self, stale_after: timedelta = STALE_AFTER) -> int:
        """Benchmark runs left `running` by a runner that stopped beating become `interrupted`; returns how many."""
        return self.benchmarks.mark_interrupted(stale_after)

    def get_benchmark(self, run_id: int, *, with_results: bool = False, owner: str | None = None) -> dict[str, Any]:
        """The run record with its progress; `with_results` adds every stored answer; another tenant's (`owner`)
        run is as absent as a missing one."""
        run = self.benchmarks.get(run_id)
        if run is None or (owner is not None and run["api_key_id"] != owner):
            raise BenchmarkNotFoundError(f"No benchmark run with id {run_id}", details={"id": run_id})
        total = run["total"] or 0
        run["progress"] = {"completed": run["completed"], "total": total,
                           "percent": round(100 * run["completed"] / total, 1) if total else 100.0}
        if with_results:
            run["results"] = self.benchmarks.results(run_id)
        return run

    def benchmark_results(self, run_id: int) -> list[dict[str, Any]]:
        return self.benchmarks.results(run_id)

    def list_benchmarks(self, limit: int = 50, owner: str | None = None) -> list[dict[str, Any]]:
        return self.benchmarks.list(limit, owner)


def _with_original_keys(comparison: dict[str, Any]) -> dict[str, Any]:
    """The original history row read the first two models' figures from its own columns."""
    original: dict[str, Any] = {"timestamp": comparison["created_at"]}
    for number, result in enumerate(comparison.get("results", [])[:2], 1):
        for key, name in (("model", "name"), ("latency", "latency"), ("tokens", "tokens")):
            original[f"model{number}_{name}"] = result.get(key)
    return {**comparison, **original}
