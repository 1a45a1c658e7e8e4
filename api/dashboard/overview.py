"""The overview: requests, errors, tokens, cost and latency over time (from the hourly rollups, so its cost does not
grow with the request log), the top models, spend against budgets, and what the cache saved."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import render_template, request

from api.dashboard import bp, page
from api.dashboard.charts import chart
from api.services import services
from monitoring.cache_report import cache_report
from monitoring.windows import TimeRange, time_range
from storage.clock import utcnow

WINDOWS = {"hour": "24h", "day": "30d"}  # the span each bucket width shows
TOP_MODELS = 10

page("overview", "Overview")


@bp.get("/")
def overview() -> str:
    svc = services()
    bucket = request.args.get("bucket", "hour")
    bucket = bucket if bucket in WINDOWS else "hour"
    span = time_range(WINDOWS[bucket])
    points = svc.metrics.history(span, bucket)
    report = svc.metrics.report(span)
    top = sorted(report["models"].values(), key=lambda m: m["total_requests"], reverse=True)[:TOP_MODELS]
    embedding_only = [name for name, model in svc.registry.models.items() if not model.capabilities.chat]
    return render_template("dashboard/overview.html", bucket=bucket, window=WINDOWS[bucket],
                           overall=report["overall"], top=top, charts=_charts(points, span),
                           budgets=svc.budgets.list(), cache=cache_report(svc.engine, svc.registry.call_path.cache,
                                                                          embedding_only))


def _charts(points: list[dict[str, Any]], span: TimeRange) -> dict[str, dict[str, Any]]:
    """One uPlot spec per chart over the window, one series per figure."""
    x = [datetime.fromisoformat(p["start"].rstrip("Z")) for p in points]
    since, until = span.since or (x[0] if x else utcnow()), span.until or utcnow()

    def figures(**series: str) -> dict[str, list[Any]]:
        return {label: [p[key] for p in points] for label, key in series.items()}

    return {
        "requests": chart("Requests and errors", x, figures(requests="total_requests", errors="failed"), since, until),
        "tokens": chart("Tokens", x, figures(tokens="total_tokens"), since, until),
        "cost": chart("Cost (USD)", x, figures(cost="total_cost"), since, until),
        "latency": chart("Latency (s)", x, figures(p50="p50_latency", p95="p95_latency"), since, until),
    }
