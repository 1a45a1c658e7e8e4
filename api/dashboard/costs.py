"""Costs: where this month's spend is heading, when each budget runs out at the current rate, and where spend
could drop (a cheaper model measured as good, repeated prompts the cache would have answered). The same figures
as `GET /api/costs/forecast` and `GET /api/costs/recommendations`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import render_template

from api.costs import forecast_report, recommendations_report
from api.dashboard import bp, page
from api.dashboard.charts import chart
from api.services import services
from monitoring.windows import time_range

page("costs", "Costs")


@bp.get("/costs")
def costs() -> str:
    return render_template("dashboard/costs.html", forecast=forecast_report(), advice=recommendations_report(),
                           chart=_daily_chart(services().budgets.clock()))


def _daily_chart(now: datetime) -> dict[str, Any]:
    """Spend per day over the last 30 days, as a uPlot spec."""
    span = time_range("30d", now=now)
    days = services().costs.costs_by_day(span)
    return chart("Spend per day (USD)", [datetime.fromisoformat(d["date"]) for d in days],
                 {"cost": [d["cost"] for d in days]}, span.since or now, span.until or now)
