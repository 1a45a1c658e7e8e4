"""request log: prompt-cache writes, part of the input tokens and priced apart (Anthropic bills them at 1.25x)

Revision ID: 0022
Revises: 0021
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("request_log", sa.Column("cache_write_tokens", sa.Integer))


def downgrade() -> None:
    with op.batch_alter_table("request_log") as batch:  # SQLite rebuilds the table
        batch.drop_column("cache_write_tokens")
