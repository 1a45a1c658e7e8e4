"""Demonstrations of AI Model Manager as a library: `python main.py`.

With no key it runs everything offline on the embedded local model; with GEMINI_API_KEY set, on Gemini.
Every call below is recorded in the request log of the configured database (DATABASE_URL).
"""

from __future__ import annotations

import random
import time

from ab_testing.experiment_manager import ExperimentManager
from ab_testing.traffic_router import TrafficRouter
from comparison.model_comparator import ModelComparator
from models.model_registry import ModelRegistry
from monitoring.budgets import BudgetService, BudgetSpec
from monitoring.cost_tracker import CostTracker
from monitoring.metrics_tracker import MetricsTracker
from workflows.workflow_engine import WorkflowEngine
from workflows.workflow_templates import WorkflowTemplates

SHORT = 48  # max_tokens for every demo call: enough to read, quick on two cores


def heading(title: str) -> None:
    print(f"\n=== {title} " + "=" * max(0, 66 - len(title)))


def demo_generation(registry: ModelRegistry, model_name: str) -> None:
    heading(f"1. Generation and streaming on {model_name}")
    model = registry.get_model(model_name)
    result = model.generate("Explain what an API is in one sentence.", max_tokens=SHORT)
    print(result["response"].strip())
    print(f"  tokens {result['input_tokens']} in / {result['output_tokens']} out, "
          f"latency {result['latency']:.2f}s, cost ${result['cost'] or 0:.6f}")
    print("Streaming: ", end="", flush=True)
    stream = model.generate_stream("List three fruits, comma-separated.", max_tokens=24)
    for chunk in stream:
        print(chunk, end="", flush=True)
    print(f"\n  first token after {stream.result['ttft']:.3f}s, {stream.result['output_tokens']} tokens")


def demo_workflow(registry: ModelRegistry, model_name: str) -> None:
    heading("2. A three-step workflow (draft -> improve -> format)")
    steps = [{**step, "max_tokens": SHORT} for step in WorkflowTemplates.content_generation_workflow(model_name)]
    result = WorkflowEngine(registry).execute_workflow("content_generation", steps, "why tea is popular")
    for step in result["steps"]:
        print(f"  {step['name']:<8} {step['tokens']:>4} tokens  {step['latency']:.2f}s  "
              f"{step['output'].strip()[:60]!r}")
    print(f"  run {result['run_id']}: {result['status']}, {result['total_tokens']} tokens, "
          f"${result['total_cost']:.6f}")


def demo_comparison(registry: ModelRegistry, models: list[str]) -> None:
    heading(f"3. Comparing {', '.join(models)}")
    if len(models) == 1:
        print("  Only one model is available offline: scoring it over 3 runs (set GEMINI_API_KEY to compare models).")
    comparison = ModelComparator(registry).compare_models(
        models, "What is the capital of France? Answer in one word.", max_tokens=16,
        scorers=[{"type": "contains", "reference": "Paris"}], repetitions=3 if len(models) == 1 else 1)
    for row in comparison["results"]:
        spread = row["latency_stats"]
        print(f"  {row['model']:<24} median {spread['median']:.2f}s (min {spread['min']:.2f}, max {spread['max']:.2f})"
              f"  quality {row['quality']}  {row['response'].strip()[:40]!r}")
    print(f"  winner: {comparison['winner']} - {comparison['explanation']}")


def demo_experiment(registry: ModelRegistry, model_name: str) -> None:
    heading("4. An A/B experiment: two system prompts on the same model")
    manager = ExperimentManager(registry)
    experiment_id = manager.create_experiment({
        "name": f"tone-{int(time.time())}", "start": True, "control": "terse",
        "variants": [
            {"name": "terse", "model": model_name, "weight": 0.5, "params": {"system": "Answer tersely.",
                                                                             "max_tokens": 16}},
            {"name": "friendly", "model": model_name, "weight": 0.5, "params": {"system": "Answer warmly.",
                                                                                "max_tokens": 16}},
        ],
    })
    router = TrafficRouter(registry, manager)
    for user in ("ana", "ben", "chen", "dev"):
        served = router.run_experiment(experiment_id, user, "Say hi.")
        print(f"  {user:<5} -> {served['variant']:<8} {served['response'].strip()[:50]!r}")
    print("  Recording 400 simulated user ratings per variant (seeded) to show the statistics...")
    rng = random.Random(42)
    for variant, rate in (("terse", 0.30), ("friendly", 0.38)):
        manager.record_results(experiment_id, [
            {"variant": variant, "success": rng.random() < rate, "rating": rng.randint(2, 5)} for _ in range(400)])
    stats = manager.get_experiment_stats(experiment_id)
    assert stats is not None, "the experiment was just created"
    conversion = stats["comparisons"][0]["metrics"]["conversion"]
    print(f"  conversion lift {conversion['absolute_lift']:+.3f}, p = {conversion['p_value']:.4f}, "
          f"chance to win {conversion['chance_to_win']:.2f}")
    print(f"  decision: {stats['decision']} (winner: {stats['winner']})")


def demo_monitoring(registry: ModelRegistry, model_name: str) -> None:
    heading("5. Metrics, costs and a budget (computed from the request log)")
    metrics = MetricsTracker(registry.engine).get_model_metrics(model_name, window="24h")
    print(f"  {model_name}: {metrics['total_requests']} requests in 24h, {metrics['success_rate']:.0f}% ok, "
          f"avg {metrics['avg_latency']:.2f}s, p95 {metrics['p95_latency']:.2f}s, {metrics['total_tokens']} tokens")
    costs = CostTracker(registry.engine)
    print(f"  total cost so far: ${costs.get_total_cost():.6f}")
    print("  Recording a $0.02 call made outside the managed path (e.g. billed by another tool)...")
    costs.track_cost("external-llm", 0.02, tokens=1200)
    budgets = BudgetService(registry.engine)
    budget = budgets.create(BudgetSpec(name=f"demo-daily-{int(time.time())}", scope="global", period="daily",
                                       limit_usd=0.01, hard_limit=False))
    status = budgets.describe(budget)["current"]
    print(f"  budget {budget['name']}: spent ${status['spend']:.4f} of ${budget['limit_usd']:.2f}, "
          f"resets {status['resets_at']}")
    print(f"  check_budget_alert(0.01) -> {costs.check_budget_alert(0.01)}")


def main() -> None:
    started = time.monotonic()
    registry = ModelRegistry()  # wired like the service: hard budgets hold for these calls too
    model_name = registry.default_model_name
    contenders = [model_name] + [name for name in ("gemini-2.0-flash", "local") if name in registry.list_models()
                                 or name in registry.aliases_of(registry.resolve("local"))]
    print(f"AI Model Manager demo: default model {model_name}; models available: {', '.join(registry.list_models())}")
    demo_generation(registry, model_name)
    demo_workflow(registry, model_name)
    demo_comparison(registry, list(dict.fromkeys(registry.resolve(name) for name in contenders)))
    demo_experiment(registry, model_name)
    demo_monitoring(registry, model_name)
    print(f"\nDone in {time.monotonic() - started:.1f}s. Every call above is in the request log: "
          "GET /api/requests when the service runs.")


if __name__ == "__main__":
    main()
