"""What the pages hand to `static/dashboard.js`: uPlot specs with x in epoch seconds over a fixed window."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any


def epoch(moment: datetime) -> float:
    """A naive-UTC time (as the rollups keep them) as epoch seconds."""
    return moment.replace(tzinfo=UTC).timestamp()


def chart(title: str, x: list[datetime], series: dict[str, list[Any]], since: datetime,
          until: datetime) -> dict[str, Any]:
    """One chart: its x axis spans [since, until] whatever the points cover, one line per series."""
    return {"title": title, "x": [epoch(moment) for moment in x], "range": [epoch(since), epoch(until)],
            "series": [{"label": label, "values": values} for label, values in series.items()]}
