"""Per-version figures of one model, read from the request log (which names the version that answered each call).

One grouped query over `[since, until)` of one model: the request log's (model, created_at) index bounds it to
that model's rows in the window (SQLite: `SEARCH request_log USING INDEX ix_request_log_model_created_at`), so no
index of its own is needed, and none is paid for on every insert. Latency percentiles come from the rollups'
buckets, computed in SQL.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Engine, case, func, select

from models.request_log import request_log
from models.rollups import LATENCY_BOUNDS
from monitoring.histogram import percentile
from storage.database import read


def version_metrics(engine: Engine, model: str, since: datetime | None, until: datetime | None) -> list[dict[str, Any]]:
    """Per version (null: calls recorded before versions existed): requests, error rate, latency p50/p95 and mean,
    tokens and cost, by version in order of first use."""
    log = request_log.c
    bucket = case(*((log.latency <= bound, index) for index, bound in enumerate(LATENCY_BOUNDS)),
                  else_=len(LATENCY_BOUNDS))
    query = (select(log.model_version, bucket.label("bucket"), func.count().label("requests"),
                    func.sum(case((log.status == "error", 1), else_=0)).label("errors"),
                    func.count(log.latency).label("timed"), func.sum(log.latency).label("latency"),
                    func.sum(log.total_tokens).label("tokens"), func.sum(log.cost).label("cost"),
                    func.min(log.created_at).label("first_seen"))
             .where(log.model == model, *([log.created_at >= since] if since else []),
                    *([log.created_at < until] if until else []))
             .group_by(log.model_version, bucket))
    versions: dict[str | None, dict[str, Any]] = {}
    with read(engine) as conn:
        for row in conn.execute(query):
            sums = versions.setdefault(row.model_version, {
                "requests": 0, "errors": 0, "timed": 0, "latency": 0.0, "tokens": 0, "cost": 0.0,
                "first_seen": row.first_seen, "buckets": [0] * (len(LATENCY_BOUNDS) + 1)})
            for name in ("requests", "errors", "timed", "latency", "tokens", "cost"):
                sums[name] += getattr(row, name) or 0
            sums["first_seen"] = min(sums["first_seen"], row.first_seen)
            if row.timed:
                sums["buckets"][row.bucket] += row.timed
    ordered = sorted(versions.items(), key=lambda item: item[1]["first_seen"])
    return [_figures(version, sums) for version, sums in ordered]


def _figures(version: str | None, sums: dict[str, Any]) -> dict[str, Any]:
    requests, timed = sums["requests"], sums["timed"]
    return {
        "version": version, "requests": requests, "errors": sums["errors"],
        "error_rate": sums["errors"] / requests if requests else 0.0,
        "avg_latency": sums["latency"] / timed if timed else None,
        "p50_latency": percentile(sums["buckets"], 0.50), "p95_latency": percentile(sums["buckets"], 0.95),
        "total_tokens": int(sums["tokens"]), "total_cost": float(sums["cost"]),
    }
