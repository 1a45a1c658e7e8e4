"""tenants: budgets, experiments and runs record the API key that owns them; admin keys; spend per API key

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

OWNED_TABLES = ("budgets", "experiments", "workflow_runs", "benchmark_runs")


def upgrade() -> None:
    for table in OWNED_TABLES:
        op.add_column(table, sa.Column("api_key_id", sa.String(64)))
    op.add_column("api_keys", sa.Column("admin", sa.Boolean, nullable=False, server_default=sa.false()))
    _backfill_spend_per_key()


def _backfill_spend_per_key() -> None:
    """The rollups gain an `api_key` dimension: count the calls already in the request log into it."""
    log = sa.table("request_log", sa.column("created_at", sa.DateTime), sa.column("api_key_id", sa.String),
                   sa.column("status", sa.String), sa.column("total_tokens", sa.Integer), sa.column("cost", sa.Float))
    query = sa.select(log).where(log.c.api_key_id.is_not(None), log.c.status != "pending")
    usage: dict[tuple, dict[str, float]] = {}
    for row in op.get_bind().execute(query.execution_options(yield_per=10_000)):
        hour = row.created_at.replace(minute=0, second=0, microsecond=0)
        totals = usage.setdefault((hour, row.api_key_id), {"requests": 0, "tokens": 0, "cost": 0.0})
        totals["requests"] += 1
        totals["tokens"] += row.total_tokens or 0
        totals["cost"] += row.cost or 0.0
    if usage:
        table = sa.table("rollup_usage", sa.column("hour", sa.DateTime),  # typed: stored as the code stores it
                         *(sa.column(name) for name in ("dimension", "key", "requests", "tokens", "cost")))
        op.bulk_insert(table, [{"hour": hour, "dimension": "api_key", "key": key, **totals}
                               for (hour, key), totals in usage.items()])


def downgrade() -> None:
    op.execute("DELETE FROM rollup_usage WHERE dimension = 'api_key'")
    with op.batch_alter_table("api_keys") as batch:  # SQLite rebuilds the table
        batch.drop_column("admin")
    for table in OWNED_TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("api_key_id")
