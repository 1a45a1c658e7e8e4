"""The original `MetricsTracker`: metrics answered from the request log's hourly rollups, plus tracked samples."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine

from models.model_store import ModelStore
from monitoring import rollup_reads
from monitoring.metric_samples import MetricSampleRepository
from monitoring.summary import merge_errors, merge_sums, metrics_from_sums
from monitoring.windows import TimeRange, time_range
from storage.database import engine_for

HISTORY_BUCKETS = ("hour", "day")


class MetricsTracker:
    """Per-model and overall metrics over any time range, on `db_path` (an Engine, a URL or, as originally, a
    SQLite path; default: the configured database)."""

    def __init__(self, db_path: Engine | str | None = None) -> None:
        self.engine = engine_for(db_path)
        self.samples = MetricSampleRepository(self.engine)

    def track_metric(self, model_id: int | str, metric_name: str, metric_value: float) -> int:
        """As originally: store one measured value (e.g. 'latency', 1.5) of a model named by its id or name.

        A sample is a measurement, not a call: it never adds a request, so tracking a managed call's figures by
        hand counts nothing twice. Samples are read back with `get_metric_history`; returns the sample's id.
        """
        return self.samples.add(ModelStore(self.engine).name_for(model_id), metric_name, metric_value)

    def get_metric_history(self, model_name: str, metric_name: str, limit: int = 100) -> list[dict[str, Any]]:
        """As originally: the model's tracked values of one metric, newest first, as {metric_value, timestamp}."""
        return self.samples.history(model_name, metric_name, limit)

    def get_model_metrics(
        self, model_name: str, *, window: str | None = None, since: datetime | None = None,
        until: datetime | None = None,
    ) -> dict[str, Any] | None:
        """One model's metrics from its calls in the range (zeros when it had none); None, as originally, for
        a model this database has never registered or called."""
        if not rollup_reads.model_known(self.engine, model_name):
            return None
        span = time_range(window, since, until)
        totals = rollup_reads.totals_by_model(self.engine, span.since, span.until, model_name)
        errors = rollup_reads.errors_by_model(self.engine, span.since, span.until, model_name)
        return metrics_from_sums(model_name, merge_sums(totals.values()), errors.get(model_name, {}))

    def get_all_metrics(
        self, *, window: str | None = None, since: datetime | None = None, until: datetime | None = None,
    ) -> list[dict[str, Any]]:
        """As originally, a list: the metrics of every model with calls in the range, by model name."""
        return list(self.report(time_range(window, since, until))["models"].values())

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
