"""The original `CostTracker`: spend per model, user, tag and day, from costs fixed when each call was recorded."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine

from models.model_store import ModelStore
from models.rollups import STATUS_COLUMNS, SUM_COLUMNS
from monitoring import rollup_reads
from monitoring.tracked_costs import TrackedCostRepository
from monitoring.windows import TimeRange, time_range
from storage.clock import utcnow
from storage.database import engine_for

DAY_COLUMNS = ("cost", "total_tokens", *STATUS_COLUMNS.values())


def _cost_entry(model_name: str, sums: dict[str, float]) -> dict[str, Any]:
    requests = int(sum(sums[column] for column in STATUS_COLUMNS.values()))
    cost = float(sums["cost"])
    return {
        "model_name": model_name,
        "total_cost": cost,
        "total_requests": requests,
        "avg_cost": cost / requests if requests else 0.0,
        "total_tokens": int(sums["total_tokens"]),
        "input_tokens": int(sums["input_tokens"]),
        "output_tokens": int(sums["output_tokens"]),
        "thinking_tokens": int(sums["thinking_tokens"]),
        "cached_tokens": int(sums["cached_tokens"]),
    }


class CostTracker:
    """Costs over any time range, on `db_path` (an Engine, a URL or, as originally, a SQLite path; default: the
    configured database). A price change never reprices history."""

    def __init__(self, db_path: Engine | str | None = None) -> None:
        self.engine = engine_for(db_path)
        self.tracked = TrackedCostRepository(self.engine)

    def track_cost(
        self, model_id: int | str, cost: float | None, tokens: int | None = None, *,
        input_tokens: int | None = None, output_tokens: int | None = None, user_id: str | None = None,
        tags: list[str] | None = None,
    ) -> int:
        """As originally: the cost of one call of a model named by its id or name; returns the record's id.

        Counted once: a managed call with the same cost and tokens in the last 10 minutes (not claimed by an
        earlier `track_cost`) is already counted, so the record links to it; otherwise it is recorded as a call
        made outside the managed path (provider `external`, with the optional token split, user and tags).
        """
        return self.tracked.track(
            ModelStore(self.engine).name_for(model_id), cost, tokens, input_tokens=input_tokens,
            output_tokens=output_tokens, user_id=user_id, tags=tags,
        ).id

    def get_model_costs(self, model_name: str, *, window: str | None = None, since: datetime | None = None,
                        until: datetime | None = None) -> dict[str, Any] | None:
        """One model's spend in the range (zeros when it had no calls in it); None, as originally, for a model
        this database has never registered or called."""
        if not rollup_reads.model_known(self.engine, model_name):
            return None
        span = time_range(window, since, until)
        totals = rollup_reads.totals_by_model(self.engine, span.since, span.until, model_name)
        return _cost_entry(model_name, totals.get(model_name) or dict.fromkeys(SUM_COLUMNS, 0))

    def get_all_costs(self, *, window: str | None = None, since: datetime | None = None,
                      until: datetime | None = None) -> list[dict[str, Any]]:
        """As originally, a list: the costs of every model with calls in the range, by model name."""
        span = time_range(window, since, until)
        entries = [_cost_entry(name, sums)
                   for name, sums in rollup_reads.totals_by_model(self.engine, span.since, span.until).items()]
        return [entry for entry in entries if entry["total_requests"]]

    def get_total_cost(self, *, window: str | None = None, since: datetime | None = None,
                       until: datetime | None = None) -> float:
        return sum(entry["total_cost"] for entry in self.get_all_costs(window=window, since=since, until=until))

    def get_daily_costs(self, days: int = 7) -> list[dict[str, Any]]:
        """As originally: spend per UTC day over the last `days` days, newest first, as
        {date, total_cost, total_tokens, requests}."""
        span = time_range(since=utcnow() - timedelta(days=days))
        return [{"date": day["date"], "total_cost": day["cost"], "total_tokens": day["tokens"],
                 "requests": day["requests"]} for day in reversed(self.costs_by_day(span))]

    def check_budget_alert(self, budget_limit: float, *, window: str | None = None) -> bool:
        """True when spend (all time, or over `window`) is over `budget_limit`."""
        return self.get_total_cost(window=window) > budget_limit

    def costs_by_day(self, span: TimeRange, model: str | None = None) -> list[dict[str, Any]]:
        """Spend per UTC day, oldest first."""
        days: dict[datetime, dict[str, float]] = {}
        for hour, sums in rollup_reads.totals_by_hour(self.engine, span.since, span.until, model, DAY_COLUMNS):
            day = days.setdefault(hour.replace(hour=0), {"cost": 0.0, "requests": 0, "tokens": 0})
            day["cost"] += sums["cost"]
            day["requests"] += sum(sums[column] for column in STATUS_COLUMNS.values())
            day["tokens"] += sums["total_tokens"]
        return [{"date": day.date().isoformat(), "cost": v["cost"], "requests": int(v["requests"]),
                 "tokens": int(v["tokens"])} for day, v in days.items()]

    def report(self, span: TimeRange, model: str | None = None) -> dict[str, Any]:
        """Everything `GET /api/costs` answers: per model, total, and per user, tag and day."""
        totals = rollup_reads.totals_by_model(self.engine, span.since, span.until, model)
        costs = [_cost_entry(name, sums) for name, sums in totals.items()]
        report: dict[str, Any] = {
            **span.to_dict(),
            "costs": costs,
            "total_cost": sum(entry["total_cost"] for entry in costs),
            "total_requests": sum(entry["total_requests"] for entry in costs),
            "by_day": self.costs_by_day(span, model),
        }
        if model is None:  # user and tag rollups span all models, so they are left out for one model
            for dimension, key_name, field in (("user", "user_id", "by_user"), ("tag", "tag", "by_tag")):
                rows = rollup_reads.usage_by_key(self.engine, dimension, span.since, span.until)
                report[field] = [{key_name: row.pop("key"), **row} for row in rows]
        return report
