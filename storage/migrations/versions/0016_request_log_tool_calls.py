"""request log: the tool calls a model answered with

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("request_log", sa.Column("tool_calls", sa.JSON))


def downgrade() -> None:
    with op.batch_alter_table("request_log") as batch:  # SQLite rebuilds the table
        batch.drop_column("tool_calls")
