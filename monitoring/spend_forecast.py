"""Where spend is heading: month-to-date spend, a daily rate, the projected month-end total, and when each budget
would run out at that rate. Read from the hourly rollups, so its cost does not grow with the request log.

The rules, all in UTC and deterministic given `now`:
- month to date: recorded spend from the 1st at 00:00 through the hour holding `now` (rollups are hourly);
- daily rate: the mean spend of the `RATE_DAYS` (7) full days before today; days without calls count as 0 and
  today's partial day is left out, so the rate does not swing with the hour of the day;
- projected month end: month to date + daily rate x the days left in the month (fractional, from `now`);
- a budget's rate is the same mean over its own scope (a model, user, tag or key budget counts only its calls);
  it runs out at `now + remaining / rate` (at `now` when nothing remains), and never (None) when its rate is 0
  or that moment falls on or after its window's reset.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine

from models.rollups import hour_of
from monitoring import rollup_reads
from monitoring.budgets import spend_in_window
from monitoring.windows import BudgetWindow, period_window
from storage.database import read

RATE_DAYS = 7
DAY = timedelta(days=1)


def rate_window(now: datetime) -> BudgetWindow:
    """The `RATE_DAYS` full UTC days before the day holding `now`."""
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return BudgetWindow(today - RATE_DAYS * DAY, today)


def spend_forecast(engine: Engine, budgets: Iterable[dict[str, Any]], now: datetime) -> dict[str, Any]:
    """The forecast of the month holding `now`, and a run-out estimate per budget (as `BudgetStore` lists them)."""
    month = period_window("monthly", now)
    assert month.end is not None  # a month always ends
    rates = rate_window(now)
    with read(engine) as conn:
        month_to_date = rollup_reads.cost_between(conn, month.start, hour_of(now) + timedelta(hours=1))
        daily_rate = rollup_reads.cost_between(conn, rates.start, rates.end) / RATE_DAYS
        runs = [_budget_run_out(conn, budget, rates, now) for budget in budgets]
    return {
        "now": _iso(now),
        "month_start": _iso(month.start),
        "month_end": _iso(month.end),
        "month_to_date": month_to_date,
        "rate_rule": f"mean daily spend of the {RATE_DAYS} full UTC days before today",
        "rate_since": _iso(rates.start),
        "rate_until": _iso(rates.end),
        "daily_rate": daily_rate,
        "projected_month_end": month_to_date + daily_rate * ((month.end - now) / DAY),
        "budgets": runs,
    }


def _budget_run_out(conn: Connection, budget: dict[str, Any], rates: BudgetWindow, now: datetime) -> dict[str, Any]:
    window = period_window(budget["period"], now)
    spend = spend_in_window(conn, budget, window)
    remaining = budget["limit_usd"] - spend
    rate = spend_in_window(conn, budget, rates) / RATE_DAYS
    runs_out_at: datetime | None = None
    if remaining <= 0:
        runs_out_at = now
    elif rate > 0:
        runs_out_at = now + remaining / rate * DAY
        if window.end is not None and runs_out_at >= window.end:
            runs_out_at = None
    return {
        "id": budget["id"], "name": budget["name"], "scope": budget["scope"], "target": budget["target"],
        "period": budget["period"], "limit_usd": budget["limit_usd"], "spend": spend, "remaining": remaining,
        "daily_rate": rate, "resets_at": window.resets_at, "runs_out_at": _iso(runs_out_at),
    }


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() + "Z" if moment is not None else None
