"""The original `MetricsTracker`, now answered from the request log's hourly rollups."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine

from models.request_log import RequestLogRepository, RequestRecord
from monitoring import rollup_reads
from monitoring.summary import merge_errors, merge_sums, metrics_from_sums
from monitoring.windows import TimeRange, time_range
from storage.database import get_engine

HISTORY_BUCKETS = ("hour", "day")


def record_external(engine: Engine, model_name: str, **fields: Any) -> str:
    """Log one call made outside the managed path (provider `external`, source `library`); returns its id."""
    request_id = str(uuid.uuid4())
    RequestLogRepository(engine).insert(
        RequestRecord(request_id=request_id, model=model_name, provider="external", source="library", **fields)
    )
    return request_id


class MetricsTracker:
    """Per-model and overall metrics over any time range; `engine=None` uses the default database."""

    def __init__(self, engine: Engine | None = None) -> None:
        self.engine = engine or get_engine()

    def track_metric(
        self, model_name: str, latency: float, success: bool = True, tokens: int | None = None, *,
        error_type: str | None = None, cost: float | None = None, user_id: str | None = None,
    ) -> str:
        """Record a call made OUTSIDE the managed path (managed calls are already recorded: never re-track them).

        It becomes a request-log row with provider `external` and source `library`; returns its request id.
        """
        return record_external(
            self.engine, model_name, status="success" if success else "error", latency=latency,
            total_tokens=tokens, cost=cost, user_id=user_id,
            error_type=None if success else (error_type or "external_error"),
        )

    def get_model_metrics(
        self, model_name: str, *, window: str | None = None, since: datetime | None = None,
        until: datetime | None = None,
    ) -> dict[str, Any]:
        """One model's metrics (zeros when it has no calls in the range)."""
        span = time_range(window, since, until)
        totals = rollup_reads.totals_by_model(self.engine, span.since, span.until, model_name)
        errors = rollup_reads.errors_by_model(self.engine, span.since, span.until, model_name)
        return metrics_from_sums(model_name, merge_sums(totals.values()), errors.get(model_name, {}))

    def get_all_metrics(
        self, *, window: str | None = None, since: datetime | None = None, until: datetime | None = None,
    ) -> dict[str, dict[str, Any]]:
        """Metrics of every model with calls in the range, keyed by model name."""
        return self.report(time_range(window, since, until))["models"]

    def report(self, span: TimeRange, model: str | None = None) -> dict[str, Any]:
        """Per-model metrics plus the overall figures, for the API."""
        totals = rollup_reads.totals_by_model(self.engine, span.since, span.until, model)
        errors = rollup_reads.errors_by_model(self.engine, span.since, span.until, model)
        models = {name: metrics_from_sums(name, sums, errors.get(name, {})) for name, sums in totals.items()}
        overall = metrics_from_sums("all", merge_sums(totals.values()), merge_errors(errors.values()))
        return {**span.to_dict(), "overall": overall, "models": models}

    def history(self, span: TimeRange, bucket: str = "hour", model: str | None = None) -> list[dict[str, Any]]:
        """Metrics per hour or per UTC day, oldest first, for charts; empty buckets are left out."""
        if bucket not in HISTORY_BUCKETS:
            raise ValueError(f"Unknown bucket {bucket!r}; use hour or day")
        grouped: dict[datetime, list[dict[str, float]]] = {}
        for hour, sums in rollup_reads.totals_by_hour(self.engine, span.since, span.until, model):
            start = hour if bucket == "hour" else hour.replace(hour=0)
            grouped.setdefault(start, []).append(sums)
        width = timedelta(hours=1) if bucket == "hour" else timedelta(days=1)
        points = []
        for start, parts in grouped.items():
            metrics = metrics_from_sums(model or "all", merge_sums(parts), {})
            metrics.pop("errors")
            points.append({"start": start.isoformat() + "Z", "end": (start + width).isoformat() + "Z", **metrics})
        return points
