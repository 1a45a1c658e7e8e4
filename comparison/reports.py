"""Benchmark reports: per-model accuracy, score, latency percentiles and cost, a recommendation, and Markdown."""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from typing import Any

DEFAULT_QUALITY_BAR = 0.7


def percentile(values: Sequence[float], pct: int) -> float | None:
    """Linear-interpolated percentile (numpy's default method) for pct in 1..99; None for no values."""
    if not values:
        return None
    if len(values) == 1:
        return float(values[0])
    return statistics.quantiles(values, n=100, method="inclusive")[pct - 1]


def summarize_model(model: str, results: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Accuracy counts every item (a failed call is a wrong answer); latency covers the answered calls."""
    answered = [r for r in results if r["status"] == "success"]
    correct = sum(1 for r in results if r["correct"])
    latencies = [r["latency"] for r in answered if r["latency"] is not None]
    scores = [r["score"] for r in answered if r["score"] is not None]
    costs = [r["cost"] for r in answered]
    total_cost = sum(costs) if costs and None not in costs else None
    return {
        "model": model,
        "items": len(results),
        "answered": len(answered),
        "errors": len(results) - len(answered),
        "correct": correct,
        "accuracy": correct / len(results) if results else 0.0,
        "mean_score": sum(scores) / len(scores) if scores else None,
        "latency_p50": percentile(latencies, 50),
        "latency_p95": percentile(latencies, 95),
        "total_cost": total_cost,
        "cost_per_correct": total_cost / correct if total_cost is not None and correct else None,
        "total_tokens": sum(r["tokens"] or 0 for r in answered),
        "by_task": _by_task(results),
    }


def _by_task(results: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    tasks: dict[str, list[Mapping[str, Any]]] = {}
    for r in results:
        tasks.setdefault(r.get("task") or "general", []).append(r)
    return {
        task: {"items": len(rows), "correct": sum(1 for r in rows if r["correct"]),
               "accuracy": sum(1 for r in rows if r["correct"]) / len(rows)}
        for task, rows in sorted(tasks.items())
    }


def recommend(summaries: Sequence[Mapping[str, Any]], quality_bar: float = DEFAULT_QUALITY_BAR) -> dict[str, Any]:
    """Best quality, the cheapest model meeting the quality bar, and the fastest; each with its reason."""
    ranked = [s for s in summaries if s["answered"]]
    best = max(ranked, key=lambda s: (s["accuracy"], s["mean_score"] or 0.0), default=None)
    qualified = [s for s in ranked if s["accuracy"] >= quality_bar and s["total_cost"] is not None]
    cheapest = min(qualified, key=lambda s: (s["total_cost"], -s["accuracy"]), default=None)
    timed = [s for s in ranked if s["latency_p50"] is not None]
    fastest = min(timed, key=lambda s: s["latency_p50"], default=None)
    return {
        "quality_bar": quality_bar,
        "best_quality": _pick(best, f"highest accuracy ({best['accuracy']:.0%})" if best else None),
        "cheapest_meeting_bar": _pick(cheapest, (
            f"lowest total cost (${cheapest['total_cost']:.6f}) with accuracy >= {quality_bar:.0%}"
            if cheapest else f"no priced model reached accuracy {quality_bar:.0%}")),
        "fastest": _pick(fastest, f"lowest p50 latency ({fastest['latency_p50']:.3f} s)" if fastest else None),
    }


def _pick(summary: Mapping[str, Any] | None, reason: str | None) -> dict[str, Any]:
    return {"model": summary["model"] if summary else None, "reason": reason or "no model answered"}


def build_report(run: Mapping[str, Any], results: Sequence[Mapping[str, Any]],
                 quality_bar: float = DEFAULT_QUALITY_BAR) -> dict[str, Any]:
    """The JSON report of a run from its stored results."""
    models = list(run["models"])
    summaries = [summarize_model(m, [r for r in results if r["model"] == m]) for m in models]
    return {
        "run_id": run["id"],
        "dataset": run["dataset"],
        "items": len({r["item_id"] for r in results}),
        "models": summaries,
        "recommendation": recommend(summaries, quality_bar),
    }


def _fmt(value: Any, kind: str) -> str:
    if value is None:
        return "n/a"
    return {"pct": f"{value:.1%}", "sec": f"{value:.3f} s", "usd": f"${value:.6f}", "num": f"{value:.3f}"}[kind]


def render_markdown(report: Mapping[str, Any]) -> str:
    """The report as a Markdown document: a table per model, the recommendation, accuracy per task."""
    lines = [
        f"# Benchmark run {report['run_id']}: {report['dataset']}", "",
        f"{report['items']} items x {len(report['models'])} models.", "",
        "| Model | Accuracy | Mean score | p50 latency | p95 latency | Total cost | Cost per correct | Errors |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for s in report["models"]:
        lines.append(
            f"| {s['model']} | {_fmt(s['accuracy'], 'pct')} ({s['correct']}/{s['items']}) "
            f"| {_fmt(s['mean_score'], 'num')} | {_fmt(s['latency_p50'], 'sec')} | {_fmt(s['latency_p95'], 'sec')} "
            f"| {_fmt(s['total_cost'], 'usd')} | {_fmt(s['cost_per_correct'], 'usd')} | {s['errors']} |")
    rec = report["recommendation"]
    lines += ["", f"## Recommendation (quality bar {rec['quality_bar']:.0%})", ""]
    for key, label in (("best_quality", "Best quality"), ("cheapest_meeting_bar", "Cheapest meeting the bar"),
                       ("fastest", "Fastest")):
        lines.append(f"- **{label}:** {rec[key]['model'] or 'none'} - {rec[key]['reason']}")
    lines += ["", "## Accuracy per task", ""]
    for s in report["models"]:
        per_task = ", ".join(f"{t} {v['correct']}/{v['items']}" for t, v in s["by_task"].items())
        lines.append(f"- {s['model']}: {per_task}")
    return "\n".join(lines) + "\n"
