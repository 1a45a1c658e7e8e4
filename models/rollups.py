"""Hourly rollups of the request log, updated in the request's own transaction so they never drift.

Aggregates answer any time window without scanning raw rows; they survive raw-row retention.
Latency percentiles come from fixed log-spaced histogram columns, so a rollup row's size does not
grow with traffic.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    DateTime,
    Engine,
    Float,
    Index,
    String,
    Table,
    delete,
    func,
    select,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from storage.clock import utcnow
from storage.database import metadata, read, write

# Upper bounds (seconds) of the latency buckets: 5 ms x 2^(k/3), ~26% apart, up to ~327 s; plus overflow.
LATENCY_BOUNDS: tuple[float, ...] = tuple(0.005 * 2 ** (k / 3) for k in range(49))
LATENCY_COLUMNS: tuple[str, ...] = tuple(f"lat_{i:02d}" for i in range(len(LATENCY_BOUNDS) + 1))
STATUS_COLUMNS: dict[str, str] = {
    "success": "n_success", "error": "n_error", "rejected": "n_rejected", "cancelled": "n_cancelled",
}
TOKEN_COLUMNS: dict[str, str] = {
    "input_tokens": "input_tokens", "output_tokens": "output_tokens", "thinking_tokens": "thinking_tokens",
    "cached_tokens": "cached_tokens", "total_tokens": "total_tokens",
}
SUM_COLUMNS: tuple[str, ...] = (
    *STATUS_COLUMNS.values(), *TOKEN_COLUMNS.values(), "cost", "latency_sum", "latency_count", "ttft_sum",
    "ttft_count", *LATENCY_COLUMNS, "n_cache_hits", "cost_saved",
)
FLOAT_COLUMNS = frozenset({"cost", "latency_sum", "ttft_sum", "cost_saved"})


def _counter(name: str) -> Column:
    kind = Float if name in FLOAT_COLUMNS else BigInteger
    return Column(name, kind, nullable=False, server_default="0")


rollup_hourly = Table(
    "rollup_hourly",
    metadata,
    Column("hour", DateTime, primary_key=True),
    Column("model", String(200), primary_key=True),
    *(_counter(name) for name in SUM_COLUMNS),
)

rollup_errors = Table(
    "rollup_errors",
    metadata,
    Column("hour", DateTime, primary_key=True),
    Column("model", String(200), primary_key=True),
    Column("error_type", String(100), primary_key=True),
    Column("count", BigInteger, nullable=False, server_default="0"),
)

# Spend and volume per user id, per tag and per API key ("dimension" is "user", "tag" or "api_key").
rollup_usage = Table(
    "rollup_usage",
    metadata,
    Column("hour", DateTime, primary_key=True),
    Column("dimension", String(10), primary_key=True),
    Column("key", String(200), primary_key=True),
    Column("requests", BigInteger, nullable=False, server_default="0"),
    Column("tokens", BigInteger, nullable=False, server_default="0"),
    Column("cost", Float, nullable=False, server_default="0"),
    Index("ix_rollup_usage_key_hour", "dimension", "key", "hour"),
)

ROLLUP_TABLES = (rollup_hourly, rollup_errors, rollup_usage)


def hour_of(moment: datetime) -> datetime:
    """The start of the UTC hour holding `moment`: the rollups' time key."""
    return moment.replace(minute=0, second=0, microsecond=0)


def latency_bucket(latency: float) -> int:
    """Index of the first bucket whose upper bound holds `latency` (the last one is overflow)."""
    if latency <= LATENCY_BOUNDS[0]:
        return 0
    index = min(math.ceil(3 * math.log2(latency / LATENCY_BOUNDS[0]) - 1e-9), len(LATENCY_BOUNDS))
    while index < len(LATENCY_BOUNDS) and latency > LATENCY_BOUNDS[index]:
        index += 1
    while index > 0 and latency <= LATENCY_BOUNDS[index - 1]:
        index -= 1
    return index


def contributions(row: Mapping[str, Any]) -> dict[str, Any] | None:
    """What one request-log row adds to the rollups; None for rows still pending (not yet a call)."""
    status = row["status"]
    if status == "pending":
        return None
    sums: dict[str, float] = {STATUS_COLUMNS.get(status, "n_error"): 1}
    for field, column in TOKEN_COLUMNS.items():
        sums[column] = row.get(field) or 0
    sums["cost"] = row.get("cost") or 0.0
    if row.get("latency") is not None:
        sums.update(latency_sum=row["latency"], latency_count=1)
        sums[LATENCY_COLUMNS[latency_bucket(row["latency"])]] = 1
    if row.get("ttft") is not None:
        sums.update(ttft_sum=row["ttft"], ttft_count=1)
    if row.get("cache"):  # a hit: counted, and what it saved; its tokens and cost are not the call's
        sums.update(n_cache_hits=1, cost_saved=row.get("cost_saved") or 0.0)
    keys = [("user", row["user_id"])] if row.get("user_id") else []
    keys += [("api_key", row["api_key_id"])] if row.get("api_key_id") else []
    keys += [("tag", tag) for tag in sorted({str(t) for t in row.get("tags") or []})]
    usage = {"requests": 1, "tokens": row.get("total_tokens") or 0, "cost": row.get("cost") or 0.0}
    error_type = None if status == "success" else (row.get("error_type") or status)
    return {"hour": hour_of(row["created_at"]), "model": row["model"], "sums": sums,
            "usage_keys": keys, "usage": usage, "error_type": error_type}


def apply_rows(conn: Connection, rows: Iterable[tuple[Mapping[Any, Any], int]]) -> None:
    """Add (sign 1) or remove (sign -1) request-log rows' contributions, inside the caller's transaction.

    Contributions to the same rollup row are summed first, so a batch of N calls to one model in one
    hour costs one upsert per table, not N. Keys are written in sorted order: concurrent PostgreSQL
    transactions then lock rollup rows in the same order and cannot deadlock.
    """
    pending: dict[Table, dict[tuple, dict[str, float]]] = {table: {} for table in ROLLUP_TABLES}

    def add(table: Table, keys: tuple, counters: Mapping[str, float], sign: int) -> None:
        sums = pending[table].setdefault(keys, {})
        for name, value in counters.items():
            sums[name] = sums.get(name, 0) + sign * value

    for row, sign in rows:
        parts = contributions(row)
        if parts is None:
            continue
        hour, model = parts["hour"], parts["model"]
        add(rollup_hourly, (hour, model), parts["sums"], sign)
        if parts["error_type"]:
            add(rollup_errors, (hour, model, parts["error_type"]), {"count": 1}, sign)
        for dimension, key in parts["usage_keys"]:
            add(rollup_usage, (hour, dimension, key), parts["usage"], sign)
    for table, by_key in pending.items():
        if by_key:
            key_names = [column.name for column in table.primary_key]
            zeros = dict.fromkeys(_counter_columns(table), 0)
            params = [{**zeros, **dict(zip(key_names, keys, strict=True)), **by_key[keys]} for keys in sorted(by_key)]
            conn.execute(_upsert_statement(conn.dialect.name, table), params)


def _counter_columns(table: Table) -> list[str]:
    return [column.name for column in table.columns if not column.primary_key]


@cache
def _upsert_statement(dialect: str, table: Table) -> Any:
    """INSERT ... ON CONFLICT DO UPDATE adding to every counter (untouched ones add 0): atomic under
    concurrent writers. One statement per table and dialect.

    Built once and executed with parameters, so SQLAlchemy compiles it once: building a fresh statement
    per call cost ~3 ms, most of the managed call path's overhead.
    """
    insert = sqlite_insert if dialect == "sqlite" else pg_insert
    stmt = insert(table)
    return stmt.on_conflict_do_update(
        index_elements=[column.name for column in table.primary_key],
        set_={name: table.c[name] + stmt.excluded[name] for name in _counter_columns(table)},
    )


def purge_raw_rows(engine: Engine, retention_days: int, now: datetime | None = None) -> int:
    """Delete request-log rows older than `retention_days`; rollups keep their figures. Returns rows deleted."""
    from models.request_log import request_log

    cutoff = (now or utcnow()) - timedelta(days=retention_days)
    with write(engine) as conn:
        return conn.execute(delete(request_log).where(request_log.c.created_at < cutoff)).rowcount


def rollup_row_counts(engine: Engine) -> dict[str, int]:
    """Rows per rollup table, for operators and the benchmark."""
    with read(engine) as conn:
        return {t.name: int(conn.execute(select(func.count()).select_from(t)).scalar_one()) for t in ROLLUP_TABLES}


def iter_bucket_bounds() -> Iterable[tuple[str, float]]:
    """(column, upper bound) pairs, the overflow bucket last with an infinite bound."""
    return zip(LATENCY_COLUMNS, (*LATENCY_BOUNDS, math.inf), strict=True)
