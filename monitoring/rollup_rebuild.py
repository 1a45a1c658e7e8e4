"""Rebuild the hourly rollups from the raw request log with set-based SQL (seconds for a million rows).

The live path (`models.rollups.apply_rows`) and this rebuild must agree exactly; tests compare them.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, case, delete, func, literal, select, text, true

from models.request_log import request_log, tag_elements
from models.rollups import (
    LATENCY_BOUNDS,
    LATENCY_COLUMNS,
    ROLLUP_TABLES,
    STATUS_COLUMNS,
    SUM_COLUMNS,
    TOKEN_COLUMNS,
    hour_of,
    rollup_errors,
    rollup_hourly,
    rollup_usage,
)
from storage.database import is_sqlite, write

c = request_log.c
COUNTED = c.status != "pending"


def rebuild_rollups(engine: Engine, since: datetime | None = None) -> int:
    """Recompute every hour from `since` (default: all) from the raw log; returns the raw rows counted.

    Hours before the oldest retained raw row should not be rebuilt: their raw rows are gone.
    """
    start = hour_of(since) if since else None
    scope = [COUNTED] + ([c.created_at >= start] if start else [])
    with write(engine) as conn:
        if not is_sqlite(conn):  # writers wait until the rebuild commits, so nothing is missed or doubled
            conn.execute(text("LOCK TABLE request_log IN SHARE MODE"))
        for table in ROLLUP_TABLES:
            conn.execute(delete(table).where(table.c.hour >= start) if start else delete(table))
        hour = _hour_expression(conn)
        count = _rebuild_hourly(conn, hour, scope)
        _rebuild_errors(conn, hour, scope)
        _rebuild_usage(conn, hour, scope)
    return count


def _hour_expression(conn: Connection) -> Any:
    """created_at truncated to the hour, in the same stored form as the Python-written hours."""
    if is_sqlite(conn):  # SQLite datetimes are ISO text: "YYYY-MM-DD HH" plus the stored zero suffix
        return func.substr(c.created_at, 1, 13).concat(":00:00.000000")
    return func.date_trunc("hour", c.created_at)


def _rebuild_hourly(conn: Connection, hour: Any, scope: list[Any]) -> int:
    named = [status for status in STATUS_COLUMNS if status != "error"]
    sums = [func.sum(case((c.status == status, 1), else_=0)).label(STATUS_COLUMNS[status]) for status in named]
    sums.append(func.sum(case((c.status.in_(named), 0), else_=1)).label("n_error"))  # as `contributions`
    sums += [func.sum(func.coalesce(c[field], 0)).label(column) for field, column in TOKEN_COLUMNS.items()]
    sums += [
        func.sum(func.coalesce(c.cost, 0.0)).label("cost"),
        func.sum(func.coalesce(c.latency, 0.0)).label("latency_sum"), func.count(c.latency).label("latency_count"),
        func.sum(func.coalesce(c.ttft, 0.0)).label("ttft_sum"), func.count(c.ttft).label("ttft_count"),
    ]
    query = select(hour.label("hour"), c.model, *sums).where(*scope).group_by(hour, c.model)
    rows: dict[tuple, dict[str, Any]] = {}
    for row in conn.execute(query).mappings():
        values = dict.fromkeys(SUM_COLUMNS, 0) | {k: row[k] for k in row.keys() if k not in ("hour", "model")}
        rows[(row["hour"], row["model"])] = values
    bucket = _bucket_expression()
    latency_query = (select(hour.label("hour"), c.model, bucket.label("bucket"), func.count().label("n"))
                     .where(*scope, c.latency.is_not(None)).group_by(hour, c.model, bucket))
    for row in conn.execute(latency_query).mappings():
        rows[(row["hour"], row["model"])][LATENCY_COLUMNS[row["bucket"]]] = row["n"]
    _bulk(conn, rollup_hourly, [{"hour": _as_datetime(h), "model": m, **v} for (h, m), v in rows.items()])
    return sum(int(sum(v[column] for column in STATUS_COLUMNS.values())) for v in rows.values())


def _bucket_expression(low: int = 0, high: int = len(LATENCY_BOUNDS)) -> Any:
    """Binary-search CASE giving the first bucket whose upper bound holds the latency (as `latency_bucket`)."""
    if low == high:
        return literal(low)
    middle = (low + high) // 2
    return case((c.latency <= LATENCY_BOUNDS[middle], _bucket_expression(low, middle)),
                else_=_bucket_expression(middle + 1, high))


def _rebuild_errors(conn: Connection, hour: Any, scope: list[Any]) -> None:
    error_type = func.coalesce(c.error_type, c.status)
    query = (select(hour.label("hour"), c.model, error_type.label("error_type"), func.count().label("count"))
             .where(*scope, c.status != "success").group_by(hour, c.model, error_type))
    _bulk(conn, rollup_errors, [{**row, "hour": _as_datetime(row["hour"])} for row in conn.execute(query).mappings()])


def _rebuild_usage(conn: Connection, hour: Any, scope: list[Any]) -> None:
    sums = [func.count().label("requests"), func.sum(func.coalesce(c.total_tokens, 0)).label("tokens"),
            func.sum(func.coalesce(c.cost, 0.0)).label("cost")]
    rows = []
    for dimension, column in (("user", c.user_id), ("api_key", c.api_key_id)):
        per_key = (select(hour.label("hour"), column.label("key"), *sums)
                   .where(*scope, column.is_not(None), column != "").group_by(hour, column))
        rows += [{**row, "dimension": dimension} for row in conn.execute(per_key).mappings()]
    tag = tag_elements(conn).table_valued("value").alias("tag")
    per_row = (select(c.id, hour.label("hour"), tag.c.value.label("key"), c.total_tokens, c.cost)
               .select_from(request_log).join(tag, true()).where(*scope, tag.c.value.is_not(None))
               .distinct().subquery())
    tags = (select(per_row.c.hour, per_row.c.key, func.count().label("requests"),
                   func.sum(func.coalesce(per_row.c.total_tokens, 0)).label("tokens"),
                   func.sum(func.coalesce(per_row.c.cost, 0.0)).label("cost"))
            .group_by(per_row.c.hour, per_row.c.key))
    rows += [{**row, "dimension": "tag"} for row in conn.execute(tags).mappings()]
    merged: dict[tuple, dict[str, Any]] = defaultdict(dict)
    for row in rows:
        merged[(_as_datetime(row["hour"]), row["dimension"], str(row["key"]))] = {
            "requests": row["requests"], "tokens": row["tokens"], "cost": row["cost"]}
    _bulk(conn, rollup_usage, [{"hour": h, "dimension": d, "key": k, **v} for (h, d, k), v in merged.items()])


def _as_datetime(value: Any) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)


def _bulk(conn: Connection, table: Any, rows: list[dict[str, Any]], chunk: int = 5_000) -> None:
    for start in range(0, len(rows), chunk):
        conn.execute(table.insert(), rows[start:start + chunk])
