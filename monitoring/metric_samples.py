"""Metric samples: values a caller measured and tracked by hand (the original's `metrics` table).

A sample is a measurement, not a call: it never adds a request to any total.
"""

from __future__ import annotations

import math
from typing import Any

from sqlalchemy import Column, DateTime, Engine, Float, Index, String, Table, select

from core.errors import InvalidInputError
from storage.clock import utcnow
from storage.database import ID_TYPE, inserted_id, metadata, read, write

metric_samples = Table(
    "metric_samples",
    metadata,
    Column("id", ID_TYPE, primary_key=True, autoincrement=True),
    Column("created_at", DateTime, nullable=False),
    Column("model", String(200), nullable=False),
    Column("metric_name", String(100), nullable=False),
    Column("metric_value", Float, nullable=False),
    Index("ix_metric_samples_model_metric_created_at", "model", "metric_name", "created_at"),
)


class MetricSampleRepository:
    """Adds samples and reads a model's history of one metric; each method is one unit of work."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def add(self, model: str, metric_name: str, metric_value: float) -> int:
        """Store one sample; returns its id. The value must be a finite number."""
        if not isinstance(metric_name, str) or not 1 <= len(metric_name) <= 100:
            raise InvalidInputError.single("metric_name", "give a name of 1 to 100 characters")
        if isinstance(metric_value, bool) or not isinstance(metric_value, int | float) \
                or not math.isfinite(metric_value):
            raise InvalidInputError.single("metric_value", "give a finite number")
        with write(self.engine) as conn:
            result = conn.execute(metric_samples.insert().values(
                created_at=utcnow(), model=model, metric_name=metric_name, metric_value=float(metric_value)))
        return inserted_id(result)

    def history(self, model: str, metric_name: str, limit: int = 100) -> list[dict[str, Any]]:
        """Newest first, as {metric_value, timestamp}."""
        query = (select(metric_samples.c.metric_value, metric_samples.c.created_at)
                 .where(metric_samples.c.model == model, metric_samples.c.metric_name == metric_name)
                 .order_by(metric_samples.c.created_at.desc(), metric_samples.c.id.desc()).limit(limit))
        with read(self.engine) as conn:
            return [{"metric_value": value, "timestamp": created.isoformat() + "Z"}
                    for value, created in conn.execute(query)]
