"""response cache: the cached answers; request-log rows of hits (how matched, saved cost and tokens); hits and
saved cost in the hourly rollups

Revision ID: 0020
Revises: 0019
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

LOG_COLUMNS = ("cache", "cost_saved", "saved_input_tokens", "saved_output_tokens")
ROLLUP_COLUMNS = ("n_cache_hits", "cost_saved")


def upgrade() -> None:
    op.create_table(
        "response_cache",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("value", sa.Text, nullable=False),
        sa.Column("bytes", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("expires_at", sa.DateTime, nullable=False),
    )
    op.add_column("request_log", sa.Column("cache", sa.String(10)))
    op.add_column("request_log", sa.Column("cost_saved", sa.Float))
    op.add_column("request_log", sa.Column("saved_input_tokens", sa.Integer))
    op.add_column("request_log", sa.Column("saved_output_tokens", sa.Integer))
    op.add_column("rollup_hourly", sa.Column("n_cache_hits", sa.BigInteger, nullable=False, server_default="0"))
    op.add_column("rollup_hourly", sa.Column("cost_saved", sa.Float, nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("rollup_hourly") as batch:  # SQLite rebuilds the table
        for column in ROLLUP_COLUMNS:
            batch.drop_column(column)
    with op.batch_alter_table("request_log") as batch:
        for column in LOG_COLUMNS:
            batch.drop_column(column)
    op.drop_table("response_cache")
