"""virtual keys: a model allow-list, an expiry, per-minute request and token limits and metadata per API key;
the per-key, per-minute usage counters those limits are checked against

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

POLICY_COLUMNS = ("models", "expires_at", "rpm", "tpm", "metadata")


def upgrade() -> None:
    op.add_column("api_keys", sa.Column("models", sa.JSON))
    op.add_column("api_keys", sa.Column("expires_at", sa.DateTime))
    op.add_column("api_keys", sa.Column("rpm", sa.Integer))
    op.add_column("api_keys", sa.Column("tpm", sa.Integer))
    op.add_column("api_keys", sa.Column("metadata", sa.JSON))
    op.create_table(
        "key_usage",
        sa.Column("key_id", sa.String(40), primary_key=True),
        sa.Column("window_start", sa.DateTime, primary_key=True),
        sa.Column("requests", sa.Integer, nullable=False),
        sa.Column("tokens", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("key_usage")
    with op.batch_alter_table("api_keys") as batch:  # SQLite rebuilds the table
        for column in POLICY_COLUMNS:
            batch.drop_column(column)
