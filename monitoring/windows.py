"""Time ranges in UTC: query windows (`1h`, `24h`, ...) and budget periods (daily, weekly, ...)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from models.rollups import hour_of
from storage.clock import utcnow

WINDOWS: dict[str, timedelta | None] = {
    "1h": timedelta(hours=1), "24h": timedelta(hours=24), "7d": timedelta(days=7),
    "30d": timedelta(days=30), "all": None,
}
PERIODS = ("daily", "weekly", "monthly", "total")


@dataclass(frozen=True)
class TimeRange:
    """Half-open `[since, until)` on hour boundaries; None is unbounded. Rollups answer at hour granularity."""

    since: datetime | None = None
    until: datetime | None = None

    def to_dict(self) -> dict[str, str | None]:
        return {"since": _iso(self.since), "until": _iso(self.until)}


def time_range(
    window: str | None = None, since: datetime | None = None, until: datetime | None = None,
    now: datetime | None = None,
) -> TimeRange:
    """The hours covering `window` (start rounded down to the hour) or the explicit `since`/`until`."""
    if window is not None and (since is not None or until is not None):
        raise ValueError("Give either window or since/until, not both")
    if window is not None:
        if window not in WINDOWS:
            raise ValueError(f"Unknown window {window!r}; use one of {', '.join(WINDOWS)}")
        length = WINDOWS[window]
        return TimeRange(None if length is None else hour_of((now or utcnow()) - length), None)
    if since is not None and until is not None and until <= since:
        raise ValueError("until must be after since")
    return TimeRange(hour_of(since) if since else None, _ceil_hour(until) if until else None)


def _ceil_hour(moment: datetime) -> datetime:
    start = hour_of(moment)
    return start if start == moment else start + timedelta(hours=1)


@dataclass(frozen=True)
class BudgetWindow:
    """One budget period instance: `[start, end)`; `end` is None for the `total` period (never resets)."""

    start: datetime
    end: datetime | None

    @property
    def resets_at(self) -> str | None:
        return _iso(self.end)


TOTAL_START = datetime(1970, 1, 1)


def period_window(period: str, now: datetime | None = None) -> BudgetWindow:
    """The UTC window of `period` containing `now`: days start at 00:00, weeks on Monday, months on the 1st."""
    now = now or utcnow()
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "daily":
        return BudgetWindow(day, day + timedelta(days=1))
    if period == "weekly":
        start = day - timedelta(days=day.weekday())
        return BudgetWindow(start, start + timedelta(days=7))
    if period == "monthly":
        start = day.replace(day=1)
        end = start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)
        return BudgetWindow(start, end)
    if period == "total":
        return BudgetWindow(TOTAL_START, None)
    raise ValueError(f"Unknown period {period!r}; use one of {', '.join(PERIODS)}")


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() + "Z" if moment else None
