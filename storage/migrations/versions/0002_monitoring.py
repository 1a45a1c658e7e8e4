"""monitoring: hourly rollups of the request log, budgets, reservations and alerts

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

STATUS_COLUMNS = ("n_success", "n_error", "n_rejected", "n_cancelled")
TOKEN_COLUMNS = ("input_tokens", "output_tokens", "thinking_tokens", "cached_tokens", "total_tokens")
LATENCY_COLUMNS = tuple(f"lat_{i:02d}" for i in range(50))


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


def downgrade() -> None:
    op.drop_table("budget_alerts")
    op.drop_table("budget_reservations")
    op.drop_table("budgets")
    op.drop_table("rollup_usage")
    op.drop_table("rollup_errors")
    op.drop_table("rollup_hourly")
