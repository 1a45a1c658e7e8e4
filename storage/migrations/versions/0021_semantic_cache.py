"""semantic cache: the vectors of cached questions, by partition (what must match exactly)

Revision ID: 0021
Revises: 0020
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "semantic_cache",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("partition", sa.String(64), nullable=False),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("vector", sa.LargeBinary, nullable=False),
        sa.Column("question", sa.Text, nullable=False),
        sa.Column("expires_at", sa.DateTime, nullable=False),
    )
    op.create_index("ix_semantic_cache_partition_id", "semantic_cache", ["partition", "id"])


def downgrade() -> None:
    op.drop_table("semantic_cache")
