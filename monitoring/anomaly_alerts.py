"""Anomaly alerts: one per episode of a rule firing for a model, stored, and POSTed to ALERT_WEBHOOK_URL.

An episode begins when a rule of `monitoring.model_health` (latency, error_rate, traffic) fires for a model and
ends at the first check where it no longer does. The database allows one open episode per model and rule
(a unique key on `open_episode`, which is NULL once the episode ends), so the processes that check in parallel
raise each alert exactly once.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Column,
    DateTime,
    Engine,
    Float,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    select,
    update,
)

from monitoring.model_health import ModelHealth, ModelHealthService
from monitoring.webhooks import WebhookNotifier
from storage.clock import utcnow
from storage.database import ID_TYPE, metadata, read, upsert_into, write

OPEN = 1

anomaly_alerts = Table(
    "anomaly_alerts",
    metadata,
    Column("id", ID_TYPE, primary_key=True, autoincrement=True),
    Column("model", String(200), nullable=False),
    Column("rule", String(20), nullable=False),  # latency, error_rate or traffic
    Column("open_episode", Integer),  # 1 while the episode lasts, NULL once it ended
    Column("started_at", DateTime, nullable=False),
    Column("ended_at", DateTime),
    Column("recent", Float),  # the figure that fired: seconds, an error rate, or calls per 5 minutes
    Column("baseline", Float),
    Column("webhook_status", String(20)),  # pending, delivered or failed; NULL without ALERT_WEBHOOK_URL
    Column("webhook_attempts", Integer, nullable=False, server_default="0"),
    Column("webhook_error", Text),
    UniqueConstraint("model", "rule", "open_episode", name="uq_anomaly_alerts_open_episode"),
)

FIGURES = {"latency": "latency", "error_rate": "error_rate", "traffic": "calls"}


class AnomalyAlerts:
    """`check` opens and closes episodes from the current health of `models()`; `list` reads them back."""

    def __init__(self, engine: Engine, health: ModelHealthService, models: Callable[[], list[str]], *,
                 notifier: WebhookNotifier | None = None, webhook_url: str | None = None,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self.engine = engine
        self.health = health
        self.models = models
        self.notifier = notifier
        self.webhook_url = webhook_url
        self.clock = clock

    def check(self) -> list[dict[str, Any]]:
        """One pass: returns the alerts it raised (episodes it opened)."""
        reports = {report.model: report for report in self.health.report(self.models())}
        firing = {(model, rule) for model, report in reports.items() for rule in report.anomalies}
        now = self.clock()
        raised = []
        with write(self.engine) as conn:
            open_now = {(row.model, row.rule): row.id for row in conn.execute(
                select(anomaly_alerts.c.id, anomaly_alerts.c.model, anomaly_alerts.c.rule)
                .where(anomaly_alerts.c.open_episode == OPEN))}
            ended = [alert_id for key, alert_id in open_now.items() if key not in firing]
            if ended:
                conn.execute(update(anomaly_alerts).where(anomaly_alerts.c.id.in_(ended))
                             .values(open_episode=None, ended_at=now))
            for model, rule in sorted(firing - open_now.keys()):
                values = _alert(reports[model], rule, now, pending=self._notifying)
                alert_id = conn.execute(upsert_into(conn, anomaly_alerts).values(**values).on_conflict_do_nothing(
                    index_elements=["model", "rule", "open_episode"]).returning(anomaly_alerts.c.id)).scalar()
                if alert_id is not None:  # else another process opened it first
                    raised.append({"id": alert_id, **values})
        for alert in raised:
            self._notify(alert)
        return raised

    @property
    def _notifying(self) -> bool:
        return self.notifier is not None and self.webhook_url is not None

    def _notify(self, alert: dict[str, Any]) -> None:
        if self.notifier is None or self.webhook_url is None:
            return
        payload = {"event": "model_anomaly", "alert_id": alert["id"], "model": alert["model"], "rule": alert["rule"],
                   "recent": alert["recent"], "baseline": alert["baseline"],
                   "started_at": alert["started_at"].isoformat() + "Z"}
        self.notifier.send(self.webhook_url, payload, alert["id"])

    def set_webhook_status(self, alert_id: int, status: str, attempts: int, error: str | None = None) -> None:
        with write(self.engine) as conn:
            conn.execute(update(anomaly_alerts).where(anomaly_alerts.c.id == alert_id).values(
                webhook_status=status, webhook_attempts=attempts, webhook_error=error))

    def list(self, limit: int = 100, *, open_only: bool = False) -> list[dict[str, Any]]:
        """Newest first."""
        query = select(anomaly_alerts).order_by(anomaly_alerts.c.id.desc()).limit(limit)
        if open_only:
            query = query.where(anomaly_alerts.c.open_episode == OPEN)
        with read(self.engine) as conn:
            rows = [dict(row) for row in conn.execute(query).mappings()]
        for row in rows:
            row["open"] = row.pop("open_episode") == OPEN
            for name in ("started_at", "ended_at"):
                if row[name] is not None:
                    row[name] = row[name].isoformat() + "Z"
        return rows


def _alert(report: ModelHealth, rule: str, now: datetime, *, pending: bool) -> dict[str, Any]:
    figure = FIGURES[rule]
    return {"model": report.model, "rule": rule, "open_episode": OPEN, "started_at": now,
            "recent": getattr(report.recent, figure), "baseline": getattr(report.baseline, figure),
            "webhook_status": "pending" if pending else None}
