"""monitoring: hourly rollups of the request log, budgets, reservations and alerts

The rollups start out holding the calls already in the request log, as `models.rollups` would have
counted them, so monitoring (which reads only rollups) does not lose the traffic logged before 0002.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from bisect import bisect_left

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

STATUS_COLUMNS = ("n_success", "n_error", "n_rejected", "n_cancelled")
TOKEN_COLUMNS = ("input_tokens", "output_tokens", "thinking_tokens", "cached_tokens", "total_tokens")
LATENCY_COLUMNS = tuple(f"lat_{i:02d}" for i in range(50))
# Copied from models.rollups, not imported: a migration must not change meaning when the code does.
LATENCY_BOUNDS = tuple(0.005 * 2 ** (k / 3) for k in range(49))
COUNTED_STATUSES = {"success": "n_success", "rejected": "n_rejected", "cancelled": "n_cancelled"}  # others: n_error


def _count(name: str) -> sa.Column:
    return sa.Column(name, sa.BigInteger, nullable=False, server_default="0")


def _amount(name: str) -> sa.Column:
    return sa.Column(name, sa.Float, nullable=False, server_default="0")


def upgrade() -> None:
    op.create_table(
        "rollup_hourly",
        sa.Column("hour", sa.DateTime, primary_key=True),
        sa.Column("model", sa.String(200), primary_key=True),
        *(_count(name) for name in STATUS_COLUMNS + TOKEN_COLUMNS),
        _amount("cost"),
        _amount("latency_sum"),
        _count("latency_count"),
        _amount("ttft_sum"),
        _count("ttft_count"),
        *(_count(name) for name in LATENCY_COLUMNS),
    )
    op.create_table(
        "rollup_errors",
        sa.Column("hour", sa.DateTime, primary_key=True),
        sa.Column("model", sa.String(200), primary_key=True),
        sa.Column("error_type", sa.String(100), primary_key=True),
        _count("count"),
    )
    op.create_table(
        "rollup_usage",
        sa.Column("hour", sa.DateTime, primary_key=True),
        sa.Column("dimension", sa.String(10), primary_key=True),
        sa.Column("key", sa.String(200), primary_key=True),
        _count("requests"),
        _count("tokens"),
        _amount("cost"),
    )
    op.create_index("ix_rollup_usage_key_hour", "rollup_usage", ["dimension", "key", "hour"])
    op.create_table(
        "budgets",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("scope", sa.String(10), nullable=False),
        sa.Column("target", sa.String(200)),
        sa.Column("period", sa.String(10), nullable=False),
        sa.Column("limit_usd", sa.Float, nullable=False),
        sa.Column("hard_limit", sa.Boolean, nullable=False),
        sa.Column("alert_thresholds", sa.JSON, nullable=False),
        sa.Column("webhook_url", sa.String(2000)),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
    )
    op.create_table(
        "budget_reservations",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("budget_id", sa.Integer, sa.ForeignKey("budgets.id", ondelete="CASCADE"), nullable=False),
        sa.Column("window_start", sa.DateTime, nullable=False),
        sa.Column("request_id", sa.String(36), nullable=False),
        sa.Column("amount", sa.Float, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    op.create_index("ix_budget_reservations_window", "budget_reservations", ["budget_id", "window_start"])
    op.create_index("ix_budget_reservations_request", "budget_reservations", ["request_id"])
    op.create_table(
        "budget_alerts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("budget_id", sa.Integer, sa.ForeignKey("budgets.id", ondelete="SET NULL")),
        sa.Column("budget_name", sa.String(200), nullable=False),
        sa.Column("threshold", sa.Float, nullable=False),
        sa.Column("window_start", sa.DateTime, nullable=False),
        sa.Column("window_end", sa.DateTime),
        sa.Column("spend", sa.Float, nullable=False),
        sa.Column("limit_usd", sa.Float, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("webhook_status", sa.String(20)),
        sa.Column("webhook_attempts", sa.Integer, nullable=False, server_default="0"),
        sa.UniqueConstraint("budget_id", "window_start", "threshold", name="uq_budget_alerts_window_threshold"),
    )
    _backfill_rollups()


def _backfill_rollups() -> None:
    """Count the request-log rows written before this revision into the new, empty rollup tables."""
    log = sa.table(
        "request_log",
        sa.column("created_at", sa.DateTime), sa.column("tags", sa.JSON),
        *(sa.column(name) for name in ("model", "status", "user_id", "cost", "latency", "ttft", "error_type")),
        *(sa.column(name) for name in TOKEN_COLUMNS),
    )
    counters = (*STATUS_COLUMNS, *TOKEN_COLUMNS, "cost", "latency_sum", "latency_count", "ttft_sum", "ttft_count",
                *LATENCY_COLUMNS)
    hourly: dict[tuple, dict[str, float]] = {}
    errors: dict[tuple, int] = {}
    usage: dict[tuple, dict[str, float]] = {}
    query = sa.select(log).where(log.c.status != "pending").execution_options(yield_per=10_000)
    for row in op.get_bind().execute(query):  # pending rows are not calls yet
        hour = row.created_at.replace(minute=0, second=0, microsecond=0)
        sums = hourly.setdefault((hour, row.model), dict.fromkeys(counters, 0))
        sums[COUNTED_STATUSES.get(row.status, "n_error")] += 1
        for name in TOKEN_COLUMNS:
            sums[name] += getattr(row, name) or 0
        sums["cost"] += row.cost or 0.0
        if row.latency is not None:
            sums["latency_sum"] += row.latency
            sums["latency_count"] += 1
            sums[LATENCY_COLUMNS[bisect_left(LATENCY_BOUNDS, row.latency)]] += 1  # first bound >= latency
        if row.ttft is not None:
            sums["ttft_sum"] += row.ttft
            sums["ttft_count"] += 1
        if row.status != "success":
            key = (hour, row.model, row.error_type or row.status)
            errors[key] = errors.get(key, 0) + 1
        tags = row.tags if isinstance(row.tags, list) else []
        keys = [("user", row.user_id)] if row.user_id else []
        keys += [("tag", tag) for tag in sorted({str(tag) for tag in tags if tag is not None})]
        for dimension, key in keys:
            totals = usage.setdefault((hour, dimension, key), {"requests": 0, "tokens": 0, "cost": 0.0})
            totals["requests"] += 1
            totals["tokens"] += row.total_tokens or 0
            totals["cost"] += row.cost or 0.0
    _insert("rollup_hourly", ("hour", "model"), hourly)
    _insert("rollup_errors", ("hour", "model", "error_type"), {key: {"count": n} for key, n in errors.items()})
    _insert("rollup_usage", ("hour", "dimension", "key"), usage)


def _insert(name: str, key_names: tuple[str, ...], rows: dict[tuple, dict[str, float]]) -> None:
    if rows:
        values = next(iter(rows.values()))
        table = sa.table(name, sa.column("hour", sa.DateTime), *(sa.column(c) for c in (*key_names[1:], *values)))
        op.bulk_insert(table, [{**dict(zip(key_names, key, strict=True)), **sums} for key, sums in rows.items()])


def downgrade() -> None:
    op.drop_table("budget_alerts")
    op.drop_table("budget_reservations")
    op.drop_table("budgets")
    op.drop_table("rollup_usage")
    op.drop_table("rollup_errors")
    op.drop_table("rollup_hourly")
