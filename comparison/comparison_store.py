"""History: persists every comparison and benchmark run, and derives win rates, ratings and the leaderboard."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import Engine

from comparison.benchmark_repository import BenchmarkRepository
from comparison.errors import BenchmarkNotFoundError, ComparisonNotFoundError
from comparison.ratings import elo_ratings, leaderboard
from comparison.repository import ComparisonRepository, EntryRow, PairRow
from core.settings import get_settings
from storage.database import get_engine
from storage.heartbeat import STALE_AFTER


class ComparisonStore:
    """The comparison service's storage facade; `ComparisonStore()` uses the configured database."""

    def __init__(self, engine: Engine | None = None) -> None:
        self.engine = engine or get_engine(get_settings().database_url)
        self.comparisons = ComparisonRepository(self.engine)
        self.benchmarks = BenchmarkRepository(self.engine)

    def save_comparison(self, comparison: dict[str, Any]) -> int:
        """Store a comparison (as `compare_models` returns it) with its entries and pairwise outcomes."""
        details = comparison["winner_details"]
        entries = [
            EntryRow(model=r["model"], status=r["status"], outcome=details["outcomes"][r["model"]],
                     total_score=details["totals"].get(r["model"]), request_ids=r.get("request_ids", []))
            for r in comparison["results"]
        ]
        pairs = [PairRow(p["model_a"], p["model_b"], p["score_a"]) for p in details["pairs"]]
        metrics = comparison["comparison_metrics"]
        return self.comparisons.insert(
            prompt=comparison["prompt"], models=[r["model"] for r in comparison["results"]],
            winner=comparison["winner"], tie=details["tie"], wall_time=metrics.get("wall_time"),
            total_cost=metrics.get("total_cost"), result=comparison, entries=entries, pairs=pairs,
        )

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

    def create_benchmark(self, *, dataset: str, models: list[str], total: int, params: dict[str, Any]) -> int:
        return self.benchmarks.create(dataset=dataset, models=models, total=total, params=params)

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

    def get_benchmark(self, run_id: int, *, with_results: bool = False) -> dict[str, Any]:
        """The run record with its progress; `with_results` adds every stored answer."""
        run = self.benchmarks.get(run_id)
        if run is None:
            raise BenchmarkNotFoundError(f"No benchmark run with id {run_id}", details={"id": run_id})
        total = run["total"] or 0
        run["progress"] = {"completed": run["completed"], "total": total,
                           "percent": round(100 * run["completed"] / total, 1) if total else 100.0}
        if with_results:
            run["results"] = self.benchmarks.results(run_id)
        return run

    def benchmark_results(self, run_id: int) -> list[dict[str, Any]]:
        return self.benchmarks.results(run_id)

    def list_benchmarks(self, limit: int = 50) -> list[dict[str, Any]]:
        return self.benchmarks.list(limit)
