"""anomaly alerts: one row per episode of an anomaly rule firing for a model, with its webhook delivery

Revision ID: 0019
Revises: 0018
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "anomaly_alerts",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("rule", sa.String(20), nullable=False),
        sa.Column("open_episode", sa.Integer),
        sa.Column("started_at", sa.DateTime, nullable=False),
        sa.Column("ended_at", sa.DateTime),
        sa.Column("recent", sa.Float),
        sa.Column("baseline", sa.Float),
        sa.Column("webhook_status", sa.String(20)),
        sa.Column("webhook_attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("webhook_error", sa.Text),
        sa.UniqueConstraint("model", "rule", "open_episode", name="uq_anomaly_alerts_open_episode"),
    )


def downgrade() -> None:
    op.drop_table("anomaly_alerts")
