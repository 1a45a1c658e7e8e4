"""request log: what each call did, `chat` or `embeddings` (existing rows are chat)

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("request_log", sa.Column("operation", sa.String(20), nullable=False, server_default="chat"))


def downgrade() -> None:
    with op.batch_alter_table("request_log") as batch:  # SQLite rebuilds the table
        batch.drop_column("operation")
