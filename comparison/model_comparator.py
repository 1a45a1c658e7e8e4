"""Side-by-side comparison: the models answer one prompt concurrently, are scored, and a winner is explained.

The winner rule is documented in `comparison.winner`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from itertools import combinations
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine

from comparison.errors import ComparisonConfigError
from comparison.execution import ModelRun, latency_stats, run_concurrently, run_model
from comparison.scorers import Score
from comparison.scoring import ScoringPlan, build_scoring, mean_score
from comparison.winner import Candidate, Decision, decide, entry_labels, resolve_weights, winning_model
from models.base_model import BaseModel
from models.model_registry import ModelRegistry
from models.params import CallContext, PromptParams

if TYPE_CHECKING:
    from comparison.comparison_store import ComparisonStore

MAX_REPETITIONS = 20


class ModelComparator:
    """Compares models; `ModelComparator()` uses the default registry and stores every comparison."""

    def __init__(self, model_registry: ModelRegistry | None = None, db_path: Engine | str | None = None, *,
                 store: ComparisonStore | None = None) -> None:
        """Comparisons are stored in `store`, else in `db_path` (an Engine, a URL or, as originally, a SQLite
        path), else in the registry's database."""
        self.registry = model_registry or ModelRegistry()
        if store is None:
            from comparison.comparison_store import ComparisonStore

            store = ComparisonStore(self.registry.engine if db_path is None else db_path)
        self.store = store

    @property
    def model_registry(self) -> ModelRegistry:
        """The original attribute name for `registry`."""
        return self.registry

    @property
    def comparison_store(self) -> ComparisonStore:
        """The original attribute name for `store`."""
        return self.store

    def compare_models(
        self,
        model_names: Sequence[str],
        prompt: str,
        *,
        scorers: Sequence[Mapping[str, Any]] | None = None,
        reference: str | None = None,
        weights: Mapping[str, float] | None = None,
        repetitions: int = 1,
        user_id: str | None = None,
        tags: list[str] | None = None,
        api_key_id: str | None = None,
        save: bool = True,
        on_model_done: Callable[[str], None] | None = None,
        **params: Any,
    ) -> dict[str, Any]:
        """Run, score and rank `model_names` on `prompt`; returns {prompt, results, winner, comparison_metrics, ...}.

        A model may be listed more than once: each listing is its own entry (see `comparison.winner`).
        `params` are what every model is called with: `system` and the `GenerationParams` fields.
        """
        call = PromptParams.parse(params)
        context = CallContext.parse(source="comparison", user_id=user_id, tags=tags, api_key_id=api_key_id)
        resolved = self._resolve(model_names, repetitions)
        labels = entry_labels([model.name for model in resolved])
        plan = build_scoring(scorers, self.registry, reference, api_key_id)
        if weights is not None:
            resolve_weights(weights, plan.active)
        tasks = [self._task(model, prompt, call, context, repetitions, plan) for model in resolved]
        done = (lambda item: on_model_done(item[0].model)) if on_model_done else None
        outcomes, wall_time = run_concurrently(tasks, done)
        entries = [{"label": label, **_entry(run, scores)} for label, (run, scores) in zip(labels, outcomes,
                                                                                            strict=True)]
        pairwise = self._pairwise(plan, prompt, entries)
        decision = decide([_candidate(e, plan.active) for e in entries], weights)
        for entry in entries:
            entry["total_score"] = decision.totals.get(entry["label"])
            entry["outcome"] = decision.outcomes[entry["label"]]
        winner = winning_model(decision, {e["label"]: e["model"] for e in entries})
        comparison = {
            "prompt": prompt,
            "results": entries,
            "winner": winner,
            "winner_details": decision.to_dict(),
            "explanation": decision.explanation + _same_model_note(decision, winner),
            "comparison_metrics": _metrics(entries, wall_time, repetitions, pairwise),
            "params": call.given(),
            "scorers": [dict(spec) for spec in scorers or ()],
            "reference": reference,
            "repetitions": repetitions,
        }
        if pairwise:
            comparison["pairwise"] = pairwise
        if save and self.store is not None:
            comparison["id"] = self.store.save_comparison(comparison)
        return comparison

    def get_comparison_history(self, limit: int = 10) -> list[dict[str, Any]]:
        """As originally: the latest comparisons, newest first."""
        return self.store.get_comparison_history(limit)

    def _resolve(self, names: Sequence[str], repetitions: int) -> list[BaseModel]:
        if isinstance(names, str) or not names:
            raise ComparisonConfigError("Give a non-empty list of model names")
        if not 1 <= repetitions <= MAX_REPETITIONS:
            raise ComparisonConfigError(f"repetitions must be between 1 and {MAX_REPETITIONS}")
        return [self.registry.require_model(name) for name in names]

    @staticmethod
    def _task(model: BaseModel, prompt: str, call: PromptParams, context: CallContext, repetitions: int,
              plan: ScoringPlan) -> Callable[[], tuple[ModelRun, list[list[Score]]]]:
        def task() -> tuple[ModelRun, list[list[Score]]]:
            run = run_model(model, prompt, call, context, repetitions)
            return run, [plan.score_answer(result.response, prompt) for result in run.results]

        return task

    @staticmethod
    def _pairwise(plan: ScoringPlan, prompt: str, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Judge every pair of answers in both orders; each model gets its share of pairwise points."""
        judge = plan.pairwise
        answered = [e for e in entries if e["status"] == "success"]
        if judge is None or len(answered) < 2:
            return []
        pairs = list(combinations(answered, 2))
        tasks = [lambda a=a, b=b: judge.compare(prompt, a["response"], b["response"]) for a, b in pairs]
        verdicts, _ = run_concurrently(tasks)
        points = {e["label"]: 0.0 for e in answered}
        report = []
        for (a, b), verdict in zip(pairs, verdicts, strict=True):
            share = {"first": (1.0, 0.0), "second": (0.0, 1.0), "tie": (0.5, 0.5)}[verdict["outcome"]]
            points[a["label"]] += share[0]
            points[b["label"]] += share[1]
            winner = {"first": a["label"], "second": b["label"]}.get(verdict["outcome"])
            report.append({"model_a": a["label"], "model_b": b["label"], "winner": winner, **verdict})
        for entry in answered:
            score = points[entry["label"]] / (len(answered) - 1)
            entry["scores"].append(Score("pairwise", score, score > 0.5).to_dict())
            decided = [s["score"] for s in entry["scores"] if s["score"] is not None]
            entry["quality"] = sum(decided) / len(decided)
        return report


def _entry(run: ModelRun, scores_per_answer: list[list[Score]]) -> dict[str, Any]:
    """One model's line of the result, in the original shape plus latency spread, scores and errors."""
    stats = latency_stats([r.latency for r in run.results])
    known_costs = [r.cost for r in run.results if r.cost is not None]
    all_costs_known = bool(run.results) and len(known_costs) == len(run.results)
    first = run.results[0] if run.results else None
    scores = _aggregate(scores_per_answer)
    entry: dict[str, Any] = {
        "model": run.model,
        "status": "success" if run.ok else "error",
        "response": first.response if first else None,
        "tokens": first.tokens if first else None,
        "total_tokens": sum(r.tokens or 0 for r in run.results),
        "input_tokens": first.input_tokens if first else None,
        "output_tokens": first.output_tokens if first else None,
        "latency": stats["median"],
        "cost": sum(known_costs) / len(known_costs) if all_costs_known else None,
        "total_cost": sum(known_costs) if all_costs_known else None,
        "request_id": first.request_id if first else (run.errors[0]["request_id"] if run.errors else None),
        "request_ids": run.request_ids,
        "latency_stats": stats,
        "failures": len(run.errors),
        "scores": [s.to_dict() for s in scores],
        "quality": mean_score(scores) if scores else None,
    }
    if not run.ok:
        entry["error"] = {"code": run.errors[-1]["code"], "message": run.errors[-1]["message"]}
    return entry


def _aggregate(scores_per_answer: list[list[Score]]) -> list[Score]:
    """One score per scorer over repeated answers: the mean score, passing only if every answer passed."""
    if len(scores_per_answer) <= 1:
        return scores_per_answer[0] if scores_per_answer else []
    merged = []
    for column in zip(*scores_per_answer, strict=True):
        decided = [s.score for s in column if s.score is not None]
        merged.append(Score(
            column[0].scorer, sum(decided) / len(decided) if decided else None, all(s.passed for s in column),
            detail=column[0].detail, request_ids=[rid for s in column for rid in s.request_ids],
            cost=sum(s.cost for s in column if s.cost is not None) or None,
        ))
    return merged


def _candidate(entry: dict[str, Any], scored: bool) -> Candidate:
    ok = entry["status"] == "success"
    return Candidate(entry["label"], ok, entry["quality"] if scored else None, entry["latency"], entry["cost"])


def _same_model_note(decision: Decision, winner: str | None) -> str:
    """Say why a tie between entries of one model still names that model."""
    if decision.tie and winner is not None:
        return f" The tied entries are all {winner}, so {winner} is the winner."
    return ""


def _metrics(entries: list[dict[str, Any]], wall_time: float, repetitions: int,
             pairwise: list[dict[str, Any]]) -> dict[str, Any]:
    """Aggregate figures: wall time against the sequential sum, fastest/cheapest/best, totals."""
    ok = [e for e in entries if e["status"] == "success"]
    sequential = sum(e["latency_stats"]["median"] * e["latency_stats"]["runs"] for e in ok)
    priced = [e for e in ok if e["cost"] is not None]
    scored = [e for e in ok if e["quality"] is not None]
    judge_costs = [s["cost"] for e in entries for s in e["scores"] if s.get("cost") is not None]
    judge_costs += [p["cost"] for p in pairwise if p.get("cost") is not None]
    return {
        "wall_time": wall_time,
        "sequential_latency": sequential,
        "speedup": sequential / wall_time if wall_time > 0 and sequential else None,
        "fastest_model": min(ok, key=lambda e: e["latency"])["model"] if ok else None,
        "cheapest_model": min(priced, key=lambda e: e["cost"])["model"] if priced else None,
        "best_quality_model": max(scored, key=lambda e: e["quality"])["model"] if scored else None,
        "avg_latency": sum(e["latency"] for e in ok) / len(ok) if ok else None,
        "avg_tokens": _mean([e["tokens"] for e in ok]),
        "avg_cost": _mean([e["cost"] for e in ok]),
        "total_cost": sum(e["total_cost"] for e in priced) if priced else None,
        "judge_cost": sum(judge_costs) if judge_costs else None,
        "total_tokens": sum(e["total_tokens"] for e in ok),
        "successful": len(ok),
        "failed": len(entries) - len(ok),
        "repetitions": repetitions,
    }


def _mean(values: list[float | None]) -> float | None:
    """The mean of the known values (None when none is known)."""
    known = [value for value in values if value is not None]
    return sum(known) / len(known) if known else None
