"""Read the hourly rollups over a time range: totals per model, per hour, per user/tag, errors by type.

Ranges are half-open `[since, until)` on hour starts; None means unbounded.
"""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, Engine, Table, func, select

from models.rollups import SUM_COLUMNS, rollup_errors, rollup_hourly, rollup_usage
from storage.database import read


def _in_range(query: Any, table: Table, since: datetime | None, until: datetime | None) -> Any:
    if since is not None:
        query = query.where(table.c.hour >= since)
    if until is not None:
        query = query.where(table.c.hour < until)
    return query


@lru_cache(maxsize=8)
def _sums(columns: tuple[str, ...] = SUM_COLUMNS) -> list[Any]:
    """Cached: building ~70 SQL expressions per request costs more than running the query."""
    return [func.coalesce(func.sum(rollup_hourly.c[name]), 0).label(name) for name in columns]


def totals_by_model(
    engine: Engine, since: datetime | None, until: datetime | None, model: str | None = None
) -> dict[str, dict[str, float]]:
    """Summed rollup columns per model."""
    query = _in_range(select(rollup_hourly.c.model, *_sums()), rollup_hourly, since, until)
    if model is not None:
        query = query.where(rollup_hourly.c.model == model)
    query = query.group_by(rollup_hourly.c.model).order_by(rollup_hourly.c.model)
    with read(engine) as conn:
        return {row["model"]: _numbers(row) for row in conn.execute(query).mappings()}


def totals_by_hour(
    engine: Engine, since: datetime | None, until: datetime | None, model: str | None = None,
    columns: tuple[str, ...] = SUM_COLUMNS,
) -> list[tuple[datetime, dict[str, float]]]:
    """Summed rollup `columns` per hour (all models, or one), oldest first."""
    query = _in_range(select(rollup_hourly.c.hour, *_sums(columns)), rollup_hourly, since, until)
    if model is not None:
        query = query.where(rollup_hourly.c.model == model)
    query = query.group_by(rollup_hourly.c.hour).order_by(rollup_hourly.c.hour)
    with read(engine) as conn:
        return [(row["hour"], {name: row[name] for name in columns}) for row in conn.execute(query).mappings()]


def errors_by_model(
    engine: Engine, since: datetime | None, until: datetime | None, model: str | None = None
) -> dict[str, dict[str, int]]:
    """Failed calls counted per model and error type."""
    query = _in_range(
        select(rollup_errors.c.model, rollup_errors.c.error_type, func.sum(rollup_errors.c.count).label("n")),
        rollup_errors, since, until,
    )
    if model is not None:
        query = query.where(rollup_errors.c.model == model)
    query = query.group_by(rollup_errors.c.model, rollup_errors.c.error_type)
    result: dict[str, dict[str, int]] = {}
    with read(engine) as conn:
        for row in conn.execute(query).mappings():
            if row["n"]:
                result.setdefault(row["model"], {})[row["error_type"]] = int(row["n"])
    return result


def usage_by_key(
    engine: Engine, dimension: str, since: datetime | None, until: datetime | None
) -> list[dict[str, Any]]:
    """Requests, tokens and cost per user id or tag, most expensive first."""
    query = _in_range(
        select(
            rollup_usage.c.key,
            func.sum(rollup_usage.c.requests).label("requests"),
            func.sum(rollup_usage.c.tokens).label("tokens"),
            func.sum(rollup_usage.c.cost).label("cost"),
        ).where(rollup_usage.c.dimension == dimension),
        rollup_usage, since, until,
    ).group_by(rollup_usage.c.key)
    with read(engine) as conn:
        rows = [
            {"key": row["key"], "requests": int(row["requests"]), "tokens": int(row["tokens"]),
             "cost": float(row["cost"])}
            for row in conn.execute(query).mappings() if row["requests"]
        ]
    return sorted(rows, key=lambda r: (-r["cost"], r["key"]))


def cost_between(
    conn: Connection, since: datetime | None, until: datetime | None, *, model: str | None = None,
    usage: tuple[str, str] | None = None,
) -> float:
    """Recorded spend in a range: globally, for one model, or for one (dimension, key) of `rollup_usage`
    such as ("user", "ana"); runs on the caller's connection."""
    if usage is not None:
        table = rollup_usage
        dimension, key = usage
        query = select(func.sum(table.c.cost)).where(table.c.dimension == dimension, table.c.key == key)
    else:
        table = rollup_hourly
        query = select(func.sum(table.c.cost))
        if model is not None:
            query = query.where(table.c.model == model)
    return float(conn.execute(_in_range(query, table, since, until)).scalar() or 0.0)


def _numbers(row: Any) -> dict[str, float]:
    return {name: row[name] for name in SUM_COLUMNS}
