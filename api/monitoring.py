"""Metrics, costs and Prometheus endpoints, plus `flask monitoring ...` maintenance commands."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Literal

import click
from flask import Response, jsonify
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from api.openapi import ApiBlueprint, json_object, text_body
from api.services import services
from models.errors import UnknownModelError
from models.rollups import purge_raw_rows
from monitoring.prometheus import exposition
from monitoring.rollup_rebuild import rebuild_rollups
from monitoring.windows import TimeRange, time_range
from storage.clock import utcnow

bp = ApiBlueprint("monitoring", __name__, cli_group="monitoring")

Window = Literal["1h", "24h", "7d", "30d", "all"]


class RangeQuery(BaseModel):
    """`window=1h|24h|7d|30d|all`, or ISO `since`/`until` (UTC when no offset is given); optional `model`."""

    model_config = ConfigDict(extra="forbid")

    window: Window | None = None
    since: datetime | None = None
    until: datetime | None = None
    model: str | None = None

    @field_validator("since", "until", mode="before")
    @classmethod
    def _iso_only(cls, value: object) -> object:
        """Pydantic would read a number as a Unix timestamp; the contract is ISO 8601."""
        if isinstance(value, str) and value.strip().lstrip("+-").replace(".", "", 1).isdigit():
            raise ValueError("expected an ISO 8601 date or date-time, e.g. 2026-01-31T12:00:00Z")
        return value

    @field_validator("since", "until")
    @classmethod
    def _naive_utc(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is not None:
            return value.astimezone(UTC).replace(tzinfo=None)
        return value

    @model_validator(mode="after")
    def _one_way_to_say_when(self) -> RangeQuery:
        if self.window and (self.since or self.until):
            raise ValueError("give either window or since/until, not both")
        if self.since and self.until and self.until <= self.since:
            raise ValueError("until must be after since")
        return self

    def span(self, default_window: str | None = None) -> TimeRange:
        explicit = self.window or self.since or self.until
        return time_range(self.window if explicit else default_window, self.since, self.until)

    def canonical_model(self) -> str | None:
        """An alias names the same model; names the registry does not know (history, external) pass through."""
        if self.model is None:
            return None
        try:
            return services().registry.resolve(self.model)
        except UnknownModelError:
            return self.model


class HistoryQuery(RangeQuery):
    bucket: Literal["hour", "day"] = "hour"


@bp.get("/api/metrics", responses={200: json_object("Requests, success rate, latency percentiles, tokens, cost")})
def metrics(query: RangeQuery) -> Response:
    """Metrics over a window (all time by default), overall and per model; `metrics` is the original's list."""
    window = query.window or (None if query.since or query.until else "all")
    report = services().metrics.report(query.span(), query.canonical_model())
    return jsonify({"status": "success", "metrics": list(report["models"].values()), "window": window, **report})


@bp.get("/api/metrics/history", responses={200: json_object("One point per hour or day")})
def metrics_history(query: HistoryQuery) -> Response:
    """Metrics per hour (last 24h by default) or per day (last 30d)."""
    span = query.span("24h" if query.bucket == "hour" else "30d")
    points = services().metrics.history(span, query.bucket, query.canonical_model())
    return jsonify({**span.to_dict(), "bucket": query.bucket, "history": points, "count": len(points)})


@bp.get("/api/costs", responses={200: json_object("Total cost, by model, user, tag and day")})
def costs(query: RangeQuery) -> Response:
    """Costs over a window (the last 30 days by default), in the original's envelope plus the breakdowns."""
    return jsonify({"status": "success", **services().costs.report(query.span(), query.canonical_model())})


class ModelHealthResponse(BaseModel):
    models: list[dict] = Field(description="Per model: score (0-100), breaker (closed, open, half_open), recent and "
                                           "baseline figures, active anomalies")


@bp.get("/api/health/models", responses={200: ModelHealthResponse})
def model_health() -> Response:
    """Each model's health score, circuit breaker state and anomalies (weights: `monitoring.model_health`)."""
    svc = services()
    return jsonify({"models": [health.to_dict() for health in svc.health.report(svc.registry.deployment_names())]})


class AnomaliesQuery(BaseModel):
    limit: int = Field(default=100, ge=1, le=1000)
    open: bool = False


@bp.get("/api/health/anomalies", responses={200: json_object("Anomaly alerts, newest first")})
def anomalies(query: AnomaliesQuery) -> Response:
    """One alert per episode of a rule (latency, error_rate, traffic) firing for a model; `open=true`: ongoing."""
    alerts = services().anomalies.list(query.limit, open_only=query.open)
    return jsonify({"alerts": alerts, "count": len(alerts)})


@bp.get("/metrics", security=[{}], responses={200: text_body("text/plain", "Prometheus exposition format")})
def prometheus_metrics() -> Response:
    """Prometheus metrics (needs a key only when METRICS_REQUIRE_KEY is set)."""
    svc = services()
    body = exposition(svc.budgets, svc.health.report(svc.registry.deployment_names()),
                      budget_names=svc.settings.metrics_require_key)
    return Response(body, content_type=CONTENT_TYPE_LATEST)


@bp.cli.command("purge")
@click.option("--days", type=click.IntRange(min=1), help="Override RETENTION_DAYS.")
def purge(days: int | None) -> None:
    """Delete raw request-log rows, and finished background jobs, older than RETENTION_DAYS; hourly rollups keep
    their figures, and batches keep their jobs."""
    days = days or services().settings.retention_days
    if not days:
        raise click.UsageError("Set RETENTION_DAYS or pass --days")
    deleted = purge_raw_rows(services().engine, days)
    jobs = services().jobs.runner.store.purge_finished(utcnow() - timedelta(days=days))
    click.echo(f"Deleted {deleted} request-log rows and {jobs} finished jobs older than {days} days")


@bp.cli.command("rebuild-rollups")
@click.option("--since", type=click.DateTime(), help="Rebuild only hours from this UTC time on.")
def rebuild(since: datetime | None) -> None:
    """Recompute the hourly rollups from the raw request log."""
    rows = rebuild_rollups(services().engine, since)
    click.echo(f"Rebuilt rollups from {rows} request-log rows")
