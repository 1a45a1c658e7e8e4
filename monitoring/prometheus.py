"""Prometheus exposition read from the rollups at scrape time, so every worker process reports the same totals."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from models.rollups import STATUS_COLUMNS, iter_bucket_bounds
from monitoring import rollup_reads
from monitoring.budgets import BudgetService
from monitoring.model_health import ModelHealth

CIRCUIT_STATES = {"closed": 0, "half_open": 1, "open": 2}
TOKEN_TYPES = {"input": "input_tokens", "output": "output_tokens", "thinking": "thinking_tokens",
               "cached": "cached_tokens"}


class RollupCollector(Collector):
    """Request, latency, token and cost totals per model, and the remaining amount of every budget.

    Budgets are labelled by id unless `budget_names` (the endpoint requires a key): names can say whom a
    budget is for, which a public scrape must not tell.
    """

    def __init__(self, budgets: BudgetService, health: list[ModelHealth], *, budget_names: bool = False) -> None:
        self.budgets = budgets
        self.engine = budgets.engine
        self.health = health
        self.budget_names = budget_names

    def collect(self) -> Iterator[Metric]:
        totals = rollup_reads.totals_by_model(self.engine, None, None)
        requests = CounterMetricFamily("ai_model_requests", "Model calls recorded, by status",
                                       labels=["model", "status"])
        tokens = CounterMetricFamily("ai_model_tokens", "Tokens reported by providers, by type",
                                     labels=["model", "type"])
        cost = CounterMetricFamily("ai_model_cost", "Recorded cost in USD", labels=["model"])
        duration = HistogramMetricFamily("ai_model_request_duration_seconds", "Model call latency",
                                         labels=["model"])
        for model, sums in totals.items():
            for status, column in STATUS_COLUMNS.items():
                requests.add_metric([model, status], sums[column])
            for kind, column in TOKEN_TYPES.items():
                tokens.add_metric([model, kind], sums[column])
            cost.add_metric([model], sums["cost"])
            duration.add_metric([model], _cumulative(sums), sum_value=sums["latency_sum"])
        remaining = GaugeMetricFamily("ai_budget_remaining", "USD left in the budget's current window",
                                      labels=["budget"])  # the budget's id, or its name behind a key
        for budget in self.budgets.list():
            label = budget["name"] if self.budget_names else str(budget["id"])
            remaining.add_metric([label], budget["current"]["remaining"])
        hit_rate = GaugeMetricFamily("ai_cache_hit_rate", "Share of calls answered by the response cache",
                                     labels=["model"])
        saved = CounterMetricFamily("ai_cache_cost_saved", "USD the response cache's hits saved", labels=["model"])
        for model, sums in totals.items():
            calls = sums["n_success"] + sums["n_error"]
            hit_rate.add_metric([model], sums["n_cache_hits"] / calls if calls else 0.0)
            saved.add_metric([model], sums["cost_saved"])
        score = GaugeMetricFamily("ai_model_health_score", "Health score, 0-100", labels=["model"])
        circuit = GaugeMetricFamily("ai_circuit_state", "Circuit breaker: 0 closed, 1 half-open, 2 open",
                                    labels=["model"])
        for health in self.health:
            score.add_metric([health.model], health.score)
            circuit.add_metric([health.model], CIRCUIT_STATES[health.breaker])
        yield from (requests, duration, tokens, cost, remaining, hit_rate, saved, score, circuit)


def _cumulative(sums: dict[str, float]) -> list[tuple[str, float]]:
    buckets: list[tuple[str, float]] = []
    running: float = 0
    for column, bound in iter_bucket_bounds():
        running += sums[column]
        buckets.append(("+Inf" if bound == float("inf") else repr(round(bound, 6)), running))
    return buckets


def exposition(budgets: BudgetService, health: list[ModelHealth], *, budget_names: bool = False) -> bytes:
    """The text exposition format for one scrape."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RollupCollector(budgets, health, budget_names=budget_names))
    return generate_latest(registry)
