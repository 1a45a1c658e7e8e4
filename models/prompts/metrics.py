"""Per-version figures of a prompt from the request log, over a time window.

Read through `ix_request_log_prompt_created_at` (prompt_name, prompt_version, created_at): only the prompt's own
rows are visited, however long the log is.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Engine, case, func, select

from models.request_log import request_log
from storage.database import read


def version_metrics(engine: Engine, name: str, since: datetime, until: datetime) -> list[dict[str, Any]]:
    """Calls, error rate, mean latency, tokens and cost per version of `name` in `[since, until)`; calls still in
    flight are not counted."""
    log = request_log.c
    query = (
        select(log.prompt_version, func.count().label("requests"),
               func.sum(case((log.status == "success", 0), else_=1)).label("errors"),
               func.avg(log.latency).label("avg_latency"), func.sum(log.total_tokens).label("total_tokens"),
               func.sum(log.cost).label("total_cost"))
        .where(log.prompt_name == name, log.created_at >= since, log.created_at < until, log.status != "pending")
        .group_by(log.prompt_version).order_by(log.prompt_version)
    )
    with read(engine) as conn:
        rows = conn.execute(query).all()
    return [{"version": row.prompt_version, "requests": row.requests, "errors": int(row.errors),
             "error_rate": int(row.errors) / row.requests, "avg_latency": row.avg_latency,
             "total_tokens": int(row.total_tokens or 0), "total_cost": float(row.total_cost or 0.0)}
            for row in rows]
