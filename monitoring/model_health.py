"""A health score per model (deployment), from 0 to 100, and the anomalies that lower it.

The score starts at 100 and loses:
- 50 x the error rate of the last 5 minutes (all calls failing: -50), counting the provider's failures only
  (`PROVIDER_FAILURE_CODES`: a client's mistake says nothing of the provider);
- up to 25 for latency above its baseline, in proportion (twice the baseline or more: -25);
- 10 per active anomaly;
- everything while its circuit breaker is open (score 0), and 50 while it is half-open (one probe in flight).

Recent figures come from the request log's last 5 minutes; baselines from the hourly rollups of the 24 whole
hours before. An anomaly needs at least `MIN_CALLS` recent calls and a baseline, so a quiet model is never flagged.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, case, func, select

from models.errors import PROVIDER_FAILURE_CODES
from models.request_log import request_log
from models.routing.breakers import CircuitBreakers
from monitoring import rollup_reads
from storage.clock import utcnow
from storage.database import read

RECENT = timedelta(minutes=5)
BASELINE = timedelta(hours=24)
ERROR_WEIGHT = 50.0
LATENCY_WEIGHT = 25.0
ANOMALY_PENALTY = 10.0
HALF_OPEN_PENALTY = 50.0
MIN_CALLS = 20
# The anomaly rules: latency above 2x its baseline, an error rate 5 points above its baseline, traffic above 3x.
LATENCY_FACTOR = 2.0
ERROR_POINTS = 0.05
TRAFFIC_FACTOR = 3.0


@dataclass(frozen=True)
class Figures:
    """Calls that reached an answer or an error, their error rate and mean latency (seconds)."""

    calls: float = 0
    error_rate: float | None = None
    latency: float | None = None


@dataclass(frozen=True)
class ModelHealth:
    model: str
    score: float
    breaker: str
    recent: Figures
    baseline: Figures  # `calls` scaled to one recent window, so the two compare
    anomalies: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class ModelHealthService:
    """Scores the models it is asked about, from the database the calls were recorded in."""

    def __init__(self, engine: Engine, breakers: CircuitBreakers, *,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self.engine = engine
        self.breakers = breakers
        self.clock = clock

    def report(self, models: Iterable[str]) -> list[ModelHealth]:
        now = self.clock()
        recent = self._recent(now - RECENT)
        until = (now - RECENT).replace(minute=0, second=0, microsecond=0)  # whole hours: none holds a recent call
        baseline = _baselines(self.engine, until - BASELINE, until)
        return [_health(name, recent.get(name, Figures()), baseline.get(name, Figures()),
                        self.breakers.state(name).state) for name in models]

    def _recent(self, since: datetime) -> dict[str, Figures]:
        log = request_log.c
        errors = func.sum(case((log.error_type.in_(PROVIDER_FAILURE_CODES), 1), else_=0))
        # Grouped by an expression, not the column: SQLite would otherwise walk the whole (model, created_at)
        # index to group without sorting (180 ms at 1M rows) instead of reading the recent rows by `created_at`.
        model = log.model.concat("").label("model")
        query = (select(model, func.count().label("calls"), errors.label("errors"),
                        func.avg(log.latency).label("latency"))
                 .where(log.created_at >= since, log.status.in_(("success", "error")))
                 .group_by(model))
        with read(self.engine) as conn:
            rows = list(conn.execute(query))
        # PostgreSQL sums integers as numeric (Decimal): figures are floats from here on.
        return {row.model: Figures(float(row.calls), float(row.errors) / float(row.calls), _float(row.latency))
                for row in rows}


def _baselines(engine: Engine, since: datetime, until: datetime) -> dict[str, Figures]:
    windows = BASELINE / RECENT
    failures = rollup_reads.errors_by_model(engine, since, until)
    baselines = {}
    for model, raw in rollup_reads.totals_by_model(engine, since, until).items():
        sums = {name: float(value) for name, value in raw.items()}
        calls = sums["n_success"] + sums["n_error"]
        if calls:
            latency = sums["latency_sum"] / sums["latency_count"] if sums["latency_count"] else None
            errors = sum(n for code, n in failures.get(model, {}).items() if code in PROVIDER_FAILURE_CODES)
            baselines[model] = Figures(calls / windows, errors / calls, latency)
    return baselines


def _float(value: float | Decimal | None) -> float | None:
    return None if value is None else float(value)


def anomalies(recent: Figures, baseline: Figures) -> list[str]:
    """The rules that fire: `latency`, `error_rate`, `traffic`."""
    if recent.calls < MIN_CALLS or not baseline.calls:
        return []
    fired = []
    if recent.latency and baseline.latency and recent.latency > LATENCY_FACTOR * baseline.latency:
        fired.append("latency")
    if recent.error_rate is not None and baseline.error_rate is not None \
            and recent.error_rate > baseline.error_rate + ERROR_POINTS:
        fired.append("error_rate")
    if recent.calls > TRAFFIC_FACTOR * baseline.calls:
        fired.append("traffic")
    return fired


def _health(model: str, recent: Figures, baseline: Figures, breaker: str) -> ModelHealth:
    fired = anomalies(recent, baseline)
    score = 100.0 - ERROR_WEIGHT * (recent.error_rate or 0.0) - ANOMALY_PENALTY * len(fired)
    if recent.latency and baseline.latency:
        score -= LATENCY_WEIGHT * min(max(recent.latency / baseline.latency - 1, 0.0), 1.0)
    if breaker == "open":
        score = 0.0
    elif breaker == "half_open":
        score -= HALF_OPEN_PENALTY
    return ModelHealth(model, round(max(score, 0.0), 1), breaker, recent, baseline, fired)
